#include "spec/idx.h"

#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "common/errors.h"

namespace prelude {

namespace {

struct GzCloser {
  void operator()(gzFile f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

// Reads up to n bytes; returns how many were read.
size_t read_some(gzFile f, uint8_t* out, size_t n, const std::string& path) {
  size_t total = 0;
  while (total < n) {
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - total, 1u << 24));
    const int got = gzread(f, out + total, chunk);
    if (got < 0) {
      int err = 0;
      const char* msg = gzerror(f, &err);
      throw user_error(path, std::string("cannot read: ") + (err == Z_ERRNO ? std::strerror(errno) : msg));
    }
    if (got == 0) break;
    total += static_cast<size_t>(got);
  }
  return total;
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

}  // namespace

IdxArray read_idx(const std::string& path, int expected_ndim) {
  errno = 0;
  GzFile f(gzopen(path.c_str(), "rb"));
  if (!f) throw user_error(path, std::string("cannot open: ") + (errno ? std::strerror(errno) : "out of memory"));
  gzbuffer(f.get(), 1 << 20);

  const uint32_t expected_magic = 0x0800u | static_cast<uint32_t>(expected_ndim);
  const char* what = expected_ndim == 3 ? "an IDX image file" : expected_ndim == 1 ? "an IDX label file" : "an IDX file";
  uint8_t head[4];
  if (read_some(f.get(), head, 4, path) != 4)
    throw user_error(path, std::string("too short to be ") + what + " (no 4-byte magic number)");
  const uint32_t magic = (uint32_t(head[0]) << 24) | (uint32_t(head[1]) << 16) | (uint32_t(head[2]) << 8) | head[3];
  if (head[0] != 0 || head[1] != 0 || head[2] != 0x08)
    throw user_error(path, std::string("expected ") + what + " (magic " + hex32(expected_magic) + "), found " +
                               hex32(magic) + (head[2] != 0x08 && head[0] == 0 && head[1] == 0 ? " (not unsigned bytes)" : ""));
  if (head[3] != expected_ndim)
    throw user_error(path, std::string("expected ") + what + " with " + std::to_string(expected_ndim) +
                               " dimensions (magic " + hex32(expected_magic) + "), found " +
                               std::to_string(head[3]) + " (magic " + hex32(magic) + ")");

  IdxArray out;
  std::vector<uint8_t> dim_bytes(4 * expected_ndim);
  if (read_some(f.get(), dim_bytes.data(), dim_bytes.size(), path) != dim_bytes.size())
    throw user_error(path, "truncated: the header ends before its " + std::to_string(expected_ndim) + " dimensions");
  uint64_t total = 1;
  for (int i = 0; i < expected_ndim; ++i) {
    const uint8_t* b = dim_bytes.data() + 4 * i;
    const uint32_t d = (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | b[3];
    if (d == 0) throw user_error(path, "dimension " + std::to_string(i) + " is 0");
    total *= d;
    if (total > (uint64_t(1) << 31))
      throw user_error(path, "dimensions too large (more than 2^31 elements)");
    out.dims.push_back(d);
  }
  out.data.resize(total);
  const size_t got = read_some(f.get(), out.data.data(), total, path);
  if (got != total)
    throw user_error(path, "truncated: expected " + std::to_string(total) + " bytes of data, found " + std::to_string(got));
  uint8_t extra;
  if (read_some(f.get(), &extra, 1, path) != 0)
    throw user_error(path, "trailing bytes after the " + std::to_string(total) + " bytes of data the header announces");
  return out;
}

}  // namespace prelude
