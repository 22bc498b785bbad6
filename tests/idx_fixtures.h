// IDX files for tests: raw or gzip, well-formed or not, and gzip bombs (a small
// file that inflates to gigabytes), written to a temporary directory.
#pragma once

#include <stdlib.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace prelude::testutil {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/prelude-idx-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline std::string be32(uint32_t v) {
  return {char(v >> 24), char((v >> 16) & 255), char((v >> 8) & 255), char(v & 255)};
}

// The header (magic for unsigned bytes, then the dimensions) and the data.
inline std::string idx_bytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data = {},
                             uint8_t type = 8) {
  std::string s{0, 0, char(type), char(dims.size())};
  for (auto d : dims) s += be32(d);
  s.append(data.begin(), data.end());
  return s;
}

inline void write_raw(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// One gzip member holding `bytes`.
inline std::string gzip_member(const std::string& bytes) {
  z_stream z{};
  deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY);  // +16: a gzip wrapper
  std::string out(deflateBound(&z, bytes.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  z.avail_in = static_cast<uInt>(bytes.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

inline void write_gz(const std::string& path, const std::string& bytes) { write_raw(path, gzip_member(bytes)); }

// A gzip file whose header announces `dims` and whose data is that many zero bytes:
// the header, then the same member of `chunk` compressed zeros again and again (gzip
// readers inflate concatenated members as one stream), so 2e9 bytes of data take
// about 2 MB on disk and no time to write (a shorter last member makes up the rest).
inline void write_gzip_bomb(const std::string& path, const std::vector<uint32_t>& dims, uint64_t chunk = 1000000) {
  uint64_t total = 1;
  for (auto d : dims) total *= d;
  std::ofstream out(path, std::ios::binary);
  out << gzip_member(idx_bytes(dims));
  const std::string member = gzip_member(std::string(chunk, '\0'));
  uint64_t written = 0;
  for (; written + chunk <= total; written += chunk) out << member;
  if (written < total) out << gzip_member(std::string(total - written, '\0'));
}

}  // namespace prelude::testutil
