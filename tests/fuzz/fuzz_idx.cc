// Fuzz target: an IDX data file (images or labels, raw or gzip), as the worker reads
// a job's data set. read_idx takes a path, so the input goes to an in-memory file
// (memfd) whose /proc/self/fd path it opens.
// The first byte of the input is the harness's, not the file's:
//   bit 0   1: a label file (1 dimension), 0: an image file (3 dimensions)
//   bit 1   1: the rest is gzip-compressed here first, so that the fuzzer reaches
//           the decompressing reader with valid streams; 0: written as it is (the
//           seeds include gzip files, which the fuzzer then damages)
//   bit 2   1: read only the first 3 items (a trainLimit)
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "spec/idx.h"

namespace {

// The bound the harness gives read_idx: a header announcing more is refused before
// anything is allocated (the reader's own check, which the fuzzer exercises).
constexpr uint64_t kMaxBytes = uint64_t{4} << 20;

std::string gzip(const std::string& raw) {
  z_stream z{};
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::abort();
  std::string out(deflateBound(&z, raw.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  z.avail_in = static_cast<uInt>(raw.size());
  z.next_out = reinterpret_cast<Bytef*>(&out[0]);
  z.avail_out = static_cast<uInt>(out.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) std::abort();
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int ndim = (data[0] & 1) ? 1 : 3;
  std::string file(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 2) file = gzip(file);

  const int fd = memfd_create("fuzz-idx", MFD_CLOEXEC);
  FUZZ_EXPECT(fd >= 0, "memfd_create to work");
  FUZZ_EXPECT(write(fd, file.data(), file.size()) == static_cast<ssize_t>(file.size()), "the whole input written");
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  prelude::IdxBounds bounds;
  bounds.max_bytes = kMaxBytes;
  if (data[0] & 4) bounds.max_items = 3;  // a trainLimit: only a prefix is read
  try {
    const prelude::IdxArray a = prelude::read_idx(path, ndim, bounds);
    FUZZ_EXPECT(a.dims.size() == static_cast<size_t>(ndim), "%d dimensions, got %zu", ndim, a.dims.size());
    FUZZ_EXPECT(a.items <= a.dims[0], "at most %u items, got %llu", a.dims[0], static_cast<unsigned long long>(a.items));
    if (bounds.max_items > 0)
      FUZZ_EXPECT(a.items <= bounds.max_items, "at most the limit's items, got %llu",
                  static_cast<unsigned long long>(a.items));
    uint64_t item_bytes = 1;
    for (size_t i = 1; i < a.dims.size(); ++i) item_bytes *= a.dims[i];
    FUZZ_EXPECT(a.data.size() == a.items * item_bytes, "%llu bytes of data, got %zu",
                static_cast<unsigned long long>(a.items * item_bytes), a.data.size());
    FUZZ_EXPECT(a.data.size() <= kMaxBytes, "at most the bound's bytes, got %zu", a.data.size());
  } catch (const prelude::UserError& e) {
    prelude::fuzz::check_message(e, path);
  }
  close(fd);
  return 0;
}
