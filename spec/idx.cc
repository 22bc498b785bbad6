#include "spec/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/errors.h"

namespace prelude {

namespace {

struct GzCloser {
  void operator()(gzFile f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

// Reads up to n bytes; returns how many were read.
uint64_t read_some(gzFile f, uint8_t* out, uint64_t n, const std::string& path) {
  uint64_t total = 0;
  while (total < n) {
    const unsigned chunk = static_cast<unsigned>(std::min<uint64_t>(n - total, 1u << 24));
    const int got = gzread(f, out + total, chunk);
    if (got < 0) {
      int err = 0;
      const char* msg = gzerror(f, &err);
      throw user_error(path, std::string("cannot read: ") + (err == Z_ERRNO ? std::strerror(errno) : msg));
    }
    if (got == 0) break;
    total += static_cast<uint64_t>(got);
  }
  return total;
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

}  // namespace

struct IdxReader::Impl {
  GzFile f;
};

IdxReader::IdxReader(const std::string& path, int expected_ndim) : path_(path), impl_(std::make_unique<Impl>()) {
  errno = 0;
  impl_->f.reset(gzopen(path.c_str(), "rb"));
  if (!impl_->f)
    throw user_error(path, std::string("cannot open: ") + (errno ? std::strerror(errno) : "out of memory"));
  gzFile f = impl_->f.get();
  gzbuffer(f, 1 << 20);

  const uint32_t expected_magic = 0x0800u | static_cast<uint32_t>(expected_ndim);
  const char* what = expected_ndim == 3 ? "an IDX image file" : expected_ndim == 1 ? "an IDX label file" : "an IDX file";
  uint8_t head[4];
  if (read_some(f, head, 4, path) != 4)
    throw user_error(path, std::string("too short to be ") + what + " (no 4-byte magic number)");
  const uint32_t magic = (uint32_t(head[0]) << 24) | (uint32_t(head[1]) << 16) | (uint32_t(head[2]) << 8) | head[3];
  if (head[0] != 0 || head[1] != 0 || head[2] != 0x08)
    throw user_error(path, std::string("expected ") + what + " (magic " + hex32(expected_magic) + "), found " +
                               hex32(magic) + (head[2] != 0x08 && head[0] == 0 && head[1] == 0 ? " (not unsigned bytes)" : ""));
  if (head[3] != expected_ndim)
    throw user_error(path, std::string("expected ") + what + " with " + std::to_string(expected_ndim) +
                               " dimensions (magic " + hex32(expected_magic) + "), found " +
                               std::to_string(head[3]) + " (magic " + hex32(magic) + ")");

  std::vector<uint8_t> dim_bytes(4 * expected_ndim);
  if (read_some(f, dim_bytes.data(), dim_bytes.size(), path) != dim_bytes.size())
    throw user_error(path, "truncated: the header ends before its " + std::to_string(expected_ndim) + " dimensions");
  for (int i = 0; i < expected_ndim; ++i) {
    const uint8_t* b = dim_bytes.data() + 4 * i;
    const uint32_t d = (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | b[3];
    if (d == 0) throw user_error(path, "dimension " + std::to_string(i) + " is 0");
    dims_.push_back(d);
  }
  // Each dimension is below 2^32, so three of them may overflow 64 bits: checked, so
  // that no size computed from them later can wrap around.
  uint64_t total = dims_[0];
  for (size_t i = 1; i < dims_.size(); ++i) {
    if (__builtin_mul_overflow(item_bytes_, dims_[i], &item_bytes_) ||
        __builtin_mul_overflow(total, dims_[i], &total))
      throw user_error(path, "dimensions " + dims_text() + " too large: their product does not fit in 64 bits");
  }
  taken_ = dims_[0];
}

IdxReader::~IdxReader() = default;

std::string IdxReader::dims_text() const {
  std::string s;
  for (size_t i = 0; i < dims_.size(); ++i) s += (i ? "x" : "") + std::to_string(dims_[i]);
  return s;
}

uint64_t IdxReader::take(uint64_t max_items) {
  taken_ = max_items > 0 && max_items < items() ? max_items : items();
  return taken_;
}

void IdxReader::read(uint8_t* out, uint64_t n) {
  const uint64_t expected = taken_ * item_bytes_;  // no overflow: at most the checked total
  if (n > expected - consumed_)
    throw std::logic_error("IdxReader::read past the items taken of " + path_);
  const uint64_t got = read_some(impl_->f.get(), out, n, path_);
  consumed_ += got;
  if (got != n)
    throw user_error(path_, "truncated: expected " + std::to_string(expected) + " bytes of data" +
                                (taken_ < items() ? " (the first " + std::to_string(taken_) + " of " +
                                                        std::to_string(items()) + " items)"
                                                  : "") +
                                ", found " + std::to_string(consumed_));
}

void IdxReader::finish() {
  if (taken_ < items()) return;
  uint8_t extra;
  if (read_some(impl_->f.get(), &extra, 1, path_) != 0)
    throw user_error(path_, "trailing bytes after the " + std::to_string(consumed_) +
                                " bytes of data the header announces");
}

IdxArray read_idx(const std::string& path, int expected_ndim, const IdxBounds& bounds) {
  IdxReader r(path, expected_ndim);
  const uint64_t items = r.take(bounds.max_items);
  const uint64_t bytes = items * r.item_bytes();
  if (bytes > bounds.max_bytes)
    throw user_error(path, "too large: " +
                               (items < r.items() ? "its first " + std::to_string(items) + " items (of " +
                                                        r.dims_text() + ")"
                                                  : "the header announces " + r.dims_text()) +
                               " = " + std::to_string(bytes) + " bytes, more than " +
                               (bounds.budget.empty() ? "the limit of " + std::to_string(bounds.max_bytes) + " bytes"
                                                      : bounds.budget));
  IdxArray out;
  out.dims = r.dims();
  out.items = items;
  out.data.resize(bytes);
  r.read(out.data.data(), bytes);
  r.finish();
  return out;
}

}  // namespace prelude
