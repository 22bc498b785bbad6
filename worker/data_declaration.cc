#include "data_declaration.h"

#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "engine/context.h"
#include "spec/data_files.h"

namespace prelude {

namespace v1 = prelude::v1;
namespace fs = std::filesystem;

namespace {

constexpr char kCacheHeader[] = "prelude data sha256 cache v1";

struct FileKey {
  int64_t size = 0, mtime_ns = 0;
  bool operator==(const FileKey& o) const { return size == o.size && mtime_ns == o.mtime_ns; }
};

struct CacheEntry {
  FileKey key;
  std::string sha256;
};

bool is_sha256_hex(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

bool parse_int(const std::string& s, int64_t* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (*end || errno || v < 0) return false;
  *out = v;
  return true;
}

// The cache as "<sha256>\t<size>\t<mtime ns>\t<absolute path>" lines under a header.
// Anything else (a torn write of an older version, garbage): an empty cache and why.
std::map<std::string, CacheEntry> read_cache(const std::string& file, std::string* note) {
  std::map<std::string, CacheEntry> out;
  std::ifstream in(file);
  if (!in) return out;  // none yet
  std::string line;
  if (!std::getline(in, line) || line != kCacheHeader) {
    *note = "ignored the digest cache " + file + " (not a cache of this version): rebuilding it";
    return out;
  }
  int number = 1;
  while (std::getline(in, line)) {
    ++number;
    std::istringstream fields(line);
    std::string sha, size, mtime, path;
    CacheEntry e;
    if (!std::getline(fields, sha, '\t') || !std::getline(fields, size, '\t') || !std::getline(fields, mtime, '\t') ||
        !std::getline(fields, path) || !is_sha256_hex(sha) || !parse_int(size, &e.key.size) ||
        !parse_int(mtime, &e.key.mtime_ns) || path.empty() || path[0] != '/') {
      *note = "ignored the digest cache " + file + " (line " + std::to_string(number) + " is corrupt): rebuilding it";
      return {};
    }
    e.sha256 = sha;
    out[path] = e;
  }
  return out;
}

// Written whole to a temporary file next to it, then renamed over it: a reader (another
// pool on this host) sees the old cache or the new one, never half of one.
void write_cache(const std::string& file, const std::map<std::string, CacheEntry>& cache, std::string* note) {
  std::error_code ec;
  fs::create_directories(fs::path(file).parent_path(), ec);
  const std::string tmp = file + ".tmp." + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << kCacheHeader << "\n";
    for (const auto& [path, e] : cache)
      out << e.sha256 << '\t' << e.key.size << '\t' << e.key.mtime_ns << '\t' << path << '\n';
    out.flush();
    if (!out) {
      fs::remove(tmp, ec);
      *note = "cannot write the digest cache " + file + ": the next start hashes again";
      return;
    }
  }
  if (std::rename(tmp.c_str(), file.c_str()) != 0) {
    *note = "cannot write the digest cache " + file + " (" + std::strerror(errno) + "): the next start hashes again";
    fs::remove(tmp, ec);
  }
}

std::string hex(const unsigned char* d, unsigned n) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < n; ++i) s += {digits[d[i] >> 4], digits[d[i] & 15]};
  return s;
}

std::string megabytes(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", bytes / 1e6);
  return buf;
}

}  // namespace

std::string sha256_file(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw std::runtime_error(path + ": cannot read it (" + std::strerror(errno) + ")");
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("OpenSSL: cannot start a SHA-256 digest");
  std::vector<char> buf(1 << 20);
  size_t got;
  while ((got = std::fread(buf.data(), 1, buf.size(), f.get())) > 0) EVP_DigestUpdate(ctx.get(), buf.data(), got);
  if (std::ferror(f.get())) throw std::runtime_error(path + ": error reading it");
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &n);
  return hex(digest, n);
}

std::string default_hash_cache_file() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg && *xdg == '/') return (fs::path(xdg) / "prelude" / "data-sha256.tsv").string();
  const char* home = std::getenv("HOME");
  if (home && *home == '/') return (fs::path(home) / ".cache" / "prelude" / "data-sha256.tsv").string();
  return "";
}

std::vector<v1::DataSetDeclaration> declare_data_sets(const std::string& data_root, const std::string& cache_file,
                                                      DeclarationStats* stats) {
  const auto start = std::chrono::steady_clock::now();
  DeclarationStats local;
  DeclarationStats& st = stats ? *stats : local;
  st = DeclarationStats{};
  std::map<std::string, CacheEntry> cache;
  if (!cache_file.empty()) cache = read_cache(cache_file, &st.cache_note);
  bool changed = !st.cache_note.empty();  // a corrupt cache is replaced even when nothing is hashed
  std::vector<v1::DataSetDeclaration> out;
  for (const DataSetFiles& set : scan_data_sets(data_root)) {
    v1::DataSetDeclaration d;
    d.set_name(set.name);
    for (const std::string& rel : set.files) {
      std::error_code ec;
      const fs::path abs = fs::canonical(fs::path(data_root) / rel, ec);
      struct stat sb;
      if (ec || ::stat(abs.c_str(), &sb) != 0) continue;
      const FileKey key{static_cast<int64_t>(sb.st_size),
                        static_cast<int64_t>(sb.st_mtim.tv_sec) * 1000000000 + sb.st_mtim.tv_nsec};
      std::string sha;
      auto it = cache.find(abs.string());
      if (it != cache.end() && it->second.key == key) {
        sha = it->second.sha256;
      } else {
        try {
          sha = sha256_file(abs.string());
        } catch (const std::exception&) {
          continue;  // unreadable: not declared, so no job is sent here for it
        }
        ++st.hashed;
        st.bytes_hashed += key.size;
        cache[abs.string()] = CacheEntry{key, sha};
        changed = true;
      }
      auto* f = d.add_files();
      f->set_path(rel);
      f->set_size(key.size);
      f->set_sha256(sha);
      ++st.files;
    }
    if (d.files_size() > 0) out.push_back(std::move(d));
  }
  if (changed && !cache_file.empty()) write_cache(cache_file, cache, &st.cache_note);
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

v1::PoolCapabilities pool_capabilities(const std::string& data_root, const std::string& cache_file,
                                       DeclarationStats* stats) {
  v1::PoolCapabilities caps;
  for (auto& d : declare_data_sets(data_root, cache_file, stats)) *caps.add_data_sets() = std::move(d);
  caps.set_isa(effective_isa_name());
  caps.set_bf16(cpu_has_bf16());
  return caps;
}

std::string declaration_summary(const v1::PoolCapabilities& caps, const DeclarationStats& stats) {
  std::string sets;
  for (const auto& d : caps.data_sets())
    sets += (sets.empty() ? "" : ", ") + d.name() + ": " + std::to_string(d.files_size()) +
            (d.files_size() == 1 ? " file" : " files");
  const int n = caps.data_sets_size();
  std::string line = "declared " + std::to_string(n) + (n == 1 ? " data set" : " data sets") +
                     (sets.empty() ? "" : " (" + sets + ")") + ", CPU " + caps.isa() + ", bf16 " +
                     (caps.bf16() ? "yes" : "no");
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.3f s", stats.seconds);
  if (stats.hashed > 0)
    line += "; hashed " + std::to_string(stats.hashed) + " of " + std::to_string(stats.files) + " files (" +
            megabytes(stats.bytes_hashed) + ") in " + secs;
  else
    line += std::string("; ") + (stats.files > 0 ? "every digest from the cache" : "nothing to hash") + " (" + secs +
            ")";
  return line;
}

}  // namespace prelude
