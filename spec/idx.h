// Reader for IDX files (the MNIST / Fashion-MNIST format), gzip-compressed or raw.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace prelude {

struct IdxArray {
  std::vector<uint32_t> dims;
  std::vector<uint8_t> data;
};

// Reads an unsigned-byte IDX file with `expected_ndim` dimensions (3 for images, 1 for
// labels). Validates the magic number, the dimensions, and that the data is exactly as
// long as they say (neither truncated nor followed by extra bytes). Every problem is a
// UserError whose message starts with the path.
IdxArray read_idx(const std::string& path, int expected_ndim);

}  // namespace prelude
