#include "engine/memory_budget.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace prelude {

namespace {

// Values at or above this are "no limit": cgroup v1 writes PAGE_COUNTER_MAX pages
// (9223372036854771712 on x86-64) for an unlimited group.
constexpr uint64_t kUnlimited = uint64_t(1) << 60;

std::optional<std::string> read_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

// A whole non-negative decimal number (surrounding whitespace allowed), or nothing.
std::optional<uint64_t> parse_u64(const std::string& text) {
  size_t i = 0, end = text.size();
  while (i < end && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  while (end > i && std::isspace(static_cast<unsigned char>(text[end - 1]))) --end;
  if (i == end) return std::nullopt;
  uint64_t v = 0;
  for (; i < end; ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    const uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (v > (UINT64_MAX - digit) / 10) return std::nullopt;
    v = v * 10 + digit;
  }
  return v;
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_octal(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isdigit(static_cast<unsigned char>(s[i + 2])) && std::isdigit(static_cast<unsigned char>(s[i + 3]))) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

struct Mount {
  std::string root, point, fstype;
  std::vector<std::string> super_options;
};

std::vector<Mount> cgroup_mounts(const std::string& mountinfo) {
  std::vector<Mount> out;
  std::istringstream lines(mountinfo);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::vector<std::string> f;
    for (std::string w; fields >> w;) f.push_back(w);
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS
    const auto dash = std::find(f.begin(), f.end(), "-");
    if (f.size() < 6 || dash == f.end() || f.end() - dash < 4) continue;
    Mount m{unescape_octal(f[3]), unescape_octal(f[4]), dash[1], split(dash[3], ',')};
    if (m.fstype == "cgroup" || m.fstype == "cgroup2") out.push_back(std::move(m));
  }
  return out;
}

// The directory of cgroup `path` under mount `m`. A path outside the mount's root
// (a container that sees its host's path without a cgroup namespace) falls back to
// the mount point itself, which is then the container's own group.
std::string cgroup_dir(const std::string& root, const Mount& m, const std::string& path) {
  std::string rel;
  if (m.root == "/")
    rel = path;
  else if (path.compare(0, m.root.size(), m.root) == 0 && (path.size() == m.root.size() || path[m.root.size()] == '/'))
    rel = path.substr(m.root.size());
  const std::string dir = root + m.point + (rel == "/" ? "" : rel);
  std::error_code ec;
  return std::filesystem::is_directory(dir, ec) ? dir : root + m.point;
}

// The lowest limit in `file` from `dir` up to the mount point `top` (a parent's limit
// binds its children), and which file holds it.
void lowest_limit(std::string dir, const std::string& top, const std::string& file, HostMemory* out) {
  for (;;) {
    if (const auto text = read_text(dir + "/" + file)) {
      const auto v = parse_u64(*text);  // "max" (v2) does not parse: no limit
      if (v && *v < kUnlimited && (!out->cgroup || *v < *out->cgroup)) {
        out->cgroup = *v;
        out->cgroup_file = dir + "/" + file;
      }
    }
    if (dir.size() <= top.size()) break;
    const size_t slash = dir.find_last_of('/');
    if (slash == std::string::npos || slash < top.size()) break;
    dir = dir.substr(0, std::max(slash, top.size()));
  }
}

// "MemTotal:  24684040 kB" -> bytes.
std::optional<uint64_t> meminfo_field(const std::string& meminfo, const std::string& name) {
  std::istringstream lines(meminfo);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.compare(0, name.size() + 1, name + ":") != 0) continue;
    std::istringstream f(line.substr(name.size() + 1));
    std::string number, unit;
    f >> number >> unit;
    const auto v = parse_u64(number);
    if (!v) return std::nullopt;
    return unit == "kB" ? *v * 1024 : *v;
  }
  return std::nullopt;
}

std::atomic<int> g_ranks_on_host{0};

}  // namespace

HostMemory read_host_memory(const std::string& root) {
  HostMemory h;
  if (const auto meminfo = read_text(root + "/proc/meminfo")) {
    h.physical = meminfo_field(*meminfo, "MemTotal").value_or(0);
    h.available = meminfo_field(*meminfo, "MemAvailable");
  }
  if (h.physical == 0 && root.empty()) {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    if (pages > 0 && page > 0) h.physical = static_cast<uint64_t>(pages) * static_cast<uint64_t>(page);
  }

  const auto mountinfo = read_text(root + "/proc/self/mountinfo");
  const auto cgroups = read_text(root + "/proc/self/cgroup");
  if (!mountinfo || !cgroups) return h;
  const std::vector<Mount> mounts = cgroup_mounts(*mountinfo);
  std::istringstream lines(*cgroups);
  std::string line;
  while (std::getline(lines, line)) {
    // hierarchy-ID:controller-list:path; the path may itself hold ':'.
    const size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string id = line.substr(0, a), controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    const bool v2 = id == "0" && controllers.empty();
    const auto list = split(controllers, ',');
    const bool v1_memory = std::find(list.begin(), list.end(), "memory") != list.end();
    if (!v2 && !v1_memory) continue;
    for (const Mount& m : mounts) {
      const bool mount_has_memory =
          std::find(m.super_options.begin(), m.super_options.end(), "memory") != m.super_options.end();
      if (v2 && m.fstype == "cgroup2")
        lowest_limit(cgroup_dir(root, m, path), root + m.point, "memory.max", &h);
      else if (v1_memory && m.fstype == "cgroup" && mount_has_memory)
        lowest_limit(cgroup_dir(root, m, path), root + m.point, "memory.limit_in_bytes", &h);
    }
  }
  return h;
}

std::string format_bytes(uint64_t bytes) {
  char buf[64];
  const double mib = static_cast<double>(bytes) / (1 << 20);
  if (mib >= 10 * 1024.0)
    std::snprintf(buf, sizeof buf, "%.1f GiB", mib / 1024);
  else if (bytes >= (1 << 20))
    std::snprintf(buf, sizeof buf, "%.0f MiB", mib);
  else
    std::snprintf(buf, sizeof buf, "%llu bytes", static_cast<unsigned long long>(bytes));
  return buf;
}

std::string MemoryBudget::describe() const {
  if (bytes == UINT64_MAX) return "unbounded (" + source + ")";
  return format_bytes(bytes) + " (" + source + ")";
}

MemoryBudget memory_budget(const HostMemory& host, int ranks_on_host) {
  const uint64_t ranks = static_cast<uint64_t>(std::max(1, ranks_on_host));
  uint64_t limit = UINT64_MAX;
  std::string source;
  if (host.physical > 0) {
    limit = host.physical;
    source = "this host's " + format_bytes(host.physical) + " of RAM";
  }
  if (host.cgroup && *host.cgroup < limit) {
    limit = *host.cgroup;
    source = "the cgroup limit of " + format_bytes(*host.cgroup) + " (" + host.cgroup_file + ")";
  }
  if (limit == UINT64_MAX) return {UINT64_MAX, "no memory figure found"};
  if (ranks > 1) source += " shared by " + std::to_string(ranks) + " ranks";
  if (host.available) source += "; " + format_bytes(*host.available) + " available now";
  return {limit / ranks, source};
}

uint64_t resident_bytes() {
  std::ifstream in("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  if (!(in >> size >> resident)) return 0;
  const long page = sysconf(_SC_PAGE_SIZE);
  return page > 0 ? resident * static_cast<uint64_t>(page) : 0;
}

MemoryBudget this_rank_memory_budget() { return memory_budget(read_host_memory(), ranks_on_host()); }

int ranks_on_host() {
  if (const int n = g_ranks_on_host.load()) return n;
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"}) {
    const char* v = std::getenv(name);
    if (!v) continue;
    const auto n = parse_u64(v);
    if (n && *n >= 1 && *n < 1u << 20) return static_cast<int>(*n);
  }
  return 1;
}

void set_ranks_on_host(int n) { g_ranks_on_host.store(std::max(1, n)); }

}  // namespace prelude
