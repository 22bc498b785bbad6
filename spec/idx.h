// Reader for IDX files (the MNIST / Fashion-MNIST format), gzip-compressed or raw.
//
// The header says how large the data is before any of it is read, so a reader can
// refuse a file it has no room for, and read only the first items it needs: a small
// gzip file may announce, and inflate to, gigabytes (a "gzip bomb").
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace prelude {

// Streams an unsigned-byte IDX file. The constructor reads and checks the header (the
// magic number, `expected_ndim` dimensions, none of them 0, a total size that fits in
// 64 bits) and nothing else; read() then inflates only as many bytes as it is asked
// for. Every problem is a UserError whose message starts with the path.
class IdxReader {
 public:
  IdxReader(const std::string& path, int expected_ndim);
  ~IdxReader();
  IdxReader(const IdxReader&) = delete;
  IdxReader& operator=(const IdxReader&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<uint32_t>& dims() const { return dims_; }
  uint64_t items() const { return dims_[0]; }
  // The bytes of one item: the product of dims[1..] (1 for a label file).
  uint64_t item_bytes() const { return item_bytes_; }
  // The dimensions as "60000x28x28".
  std::string dims_text() const;

  // Says how many items will be read: the first `max_items` (0: all of them). Returns
  // that number. Until called, all of them.
  uint64_t take(uint64_t max_items);
  uint64_t items_taken() const { return taken_; }
  // Reads the next n bytes of the items taken. A file that ends before them is a
  // UserError ("truncated: expected B bytes of data ..., found F").
  void read(uint8_t* out, uint64_t n);
  // After the items taken were read: when they are all the file has, the file must
  // end here ("trailing bytes ..."). Under a limit the rest is never inflated.
  void finish();

 private:
  struct Impl;
  std::string path_;
  std::vector<uint32_t> dims_;
  uint64_t item_bytes_ = 1;
  uint64_t taken_ = 0;     // items to read
  uint64_t consumed_ = 0;  // data bytes read so far
  std::unique_ptr<Impl> impl_;
};

// What read_idx may take: the first `max_items` items (0: all of them), and at most
// `max_bytes` bytes of data, which `budget` names in the refusal (e.g. "this rank's
// memory budget, 2048 MiB (...)"; empty: "the limit of N bytes").
struct IdxBounds {
  uint64_t max_items = 0;
  uint64_t max_bytes = UINT64_MAX;
  std::string budget;
};

struct IdxArray {
  std::vector<uint32_t> dims;  // as the header announces them
  uint64_t items = 0;          // how many items `data` holds (dims[0], or fewer under a limit)
  std::vector<uint8_t> data;   // items * (product of dims[1..]) bytes
};

// Reads the first items of an IDX file (see IdxReader) in one go. Refuses, before
// allocating anything, data larger than bounds.max_bytes (the message names the file,
// the announced size and the budget). Reading everything, the data must be exactly as
// long as the header says (neither truncated nor followed by extra bytes); reading a
// prefix, only that prefix must be there.
IdxArray read_idx(const std::string& path, int expected_ndim, const IdxBounds& bounds);

}  // namespace prelude
