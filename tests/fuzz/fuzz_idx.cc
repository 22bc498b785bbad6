// Fuzz target: an IDX data file (images or labels, raw or gzip), as the worker reads
// a job's data set. read_idx takes a path, so the input goes to an in-memory file
// (memfd) whose /proc/self/fd path it opens.
// The first byte of the input is the harness's, not the file's:
//   bit 0   1: a label file (1 dimension), 0: an image file (3 dimensions)
//   bit 1   1: the rest is gzip-compressed here first, so that the fuzzer reaches
//           the decompressing reader with valid streams; 0: written as it is (the
//           seeds include gzip files, which the fuzzer then damages)
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "spec/idx.h"

namespace {

// Inputs whose header announces more data than this are not read. read_idx
// allocates (and zeroes) what the header announces before reading, up to 2 GiB:
// the unbounded allocation the reader's rework (bounded, streaming decompression;
// issue 12 item 6) is about, reported from here rather than found again on every
// run. A 2 KiB input inflates to at most about 2 MiB, so nothing but such a header
// is skipped; bigger announcements would only make each run slow.
constexpr uint64_t kMaxAnnouncedBytes = uint64_t{4} << 20;

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

// What the file's header announces, in bytes of data, as read_idx would see it
// (through zlib, which passes files that are not gzip through as they are).
uint64_t announced_bytes(const std::string& path, int ndim) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) return 0;
  unsigned char head[4 + 4 * 3];
  const int want = 4 + 4 * ndim;
  const int got = gzread(f, head, static_cast<unsigned>(want));
  gzclose(f);
  if (got != want) return 0;
  uint64_t total = 1;
  for (int i = 0; i < ndim; ++i) {
    const unsigned char* b = head + 4 + 4 * i;
    total *= (uint64_t{b[0]} << 24) | (uint64_t{b[1]} << 16) | (uint64_t{b[2]} << 8) | b[3];
    if (total > kMaxAnnouncedBytes) return total;
  }
  return total;
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
  if (announced_bytes(path, ndim) <= kMaxAnnouncedBytes) {
    try {
      const prelude::IdxArray a = prelude::read_idx(path, ndim);
      FUZZ_EXPECT(a.dims.size() == static_cast<size_t>(ndim), "%d dimensions, got %zu", ndim, a.dims.size());
      uint64_t total = 1;
      for (uint32_t d : a.dims) total *= d;
      FUZZ_EXPECT(a.data.size() == total, "%llu bytes of data, got %zu", static_cast<unsigned long long>(total),
                  a.data.size());
    } catch (const prelude::UserError& e) {
      prelude::fuzz::check_message(e, path);
    }
  }
  close(fd);
  return 0;
}
