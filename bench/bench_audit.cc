// prelude-bench-audit: what the audit log costs the calls it records, and what
// reading it costs an admin.
//
//   prelude-bench-audit [--rows N]
//
// On a database file in a temporary directory (WAL, synchronous=NORMAL, as the
// coordinator's): the time of one record() (an insert; pruning batches included),
// of one held-back refusal in a flood (over the limit of the second: counted only),
// and of ListAudit's pages over N rows (default 100000, the default --audit-keep):
// the newest page, a page of a user with one entry in a thousand, and a user with
// none (a scan of the whole table).
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "server/audit_log.h"

namespace {

using namespace prelude::server;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double us_since(Clock::time_point start, int64_t n) {
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count() / static_cast<double>(n);
}

AuditEntry entry(int64_t i) {
  AuditEntry e;
  e.user = i % 1000 == 0 ? "rare" : "user" + std::to_string(i % 7);
  e.role = "user";
  e.peer = "ipv4:10.0.0." + std::to_string(i % 200) + ":" + std::to_string(40000 + i % 20000);
  e.action = i % 3 ? "submit" : "cancel";
  e.target = "job-" + std::to_string(i);
  e.outcome = kOutcomeOk;
  return e;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t rows = 100000;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--rows" && i + 1 < argc) {
      rows = std::atoll(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: prelude-bench-audit [--rows N]\n");
      return 2;
    }
  }
  const fs::path dir = fs::temp_directory_path() / ("prelude-bench-audit-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "prelude.db").string();
  {
    std::atomic<int64_t> now{1767323045000};
    AuditOptions o;
    o.keep = rows;
    o.now_ms = [&] { return now.load(); };
    AuditLog log(path, o);

    // Twice the rows: the second half prunes as the coordinator's log does once full.
    auto start = Clock::now();
    for (int64_t i = 0; i < 2 * rows; ++i) {
      log.record(entry(i));
      if (i % 100 == 0) now += 1000;  // a new second now and then: no refusal window matters here
    }
    std::printf("record(): %.1f us each (%lld entries, the table kept at %lld)\n", us_since(start, 2 * rows),
                static_cast<long long>(2 * rows), static_cast<long long>(rows));

    constexpr int64_t kFlood = 1000000;
    AuditEntry refused;
    refused.peer = "ipv4:10.0.0.66:50000";
    refused.action = kTokenRefused;
    refused.outcome = "UNAUTHENTICATED: wrong token";
    start = Clock::now();
    for (int64_t i = 0; i < kFlood; ++i) log.record(refused);  // one second of the fake clock
    std::printf("a flood of %lld refusals in one second: %.2f us each (%lld summarised)\n",
                static_cast<long long>(kFlood), us_since(start, kFlood), static_cast<long long>(log.summarised()));

    auto time_page = [&](const char* what, AuditQuery q) {
      constexpr int kRuns = 20;
      size_t got = 0;
      const auto t = Clock::now();
      for (int r = 0; r < kRuns; ++r) got = log.page(q).entries.size();
      std::printf("page(): %-44s %7.2f ms (%zu entries)\n", what, us_since(t, kRuns) / 1000, got);
    };
    time_page("the newest 100", {});
    AuditQuery q;
    q.page_size = 1000;
    time_page("the newest 1000", q);
    q = {};
    q.user = "rare";
    time_page("100 of a user with 1 entry in 1000", q);
    q.user = "nobody";
    time_page("a user with none (the whole table scanned)", q);
  }
  std::printf("database file: %.1f MiB for %lld rows\n",
              static_cast<double>(fs::file_size(path)) / (1 << 20), static_cast<long long>(rows));
  std::error_code ec;
  fs::remove_all(dir, ec);
  return 0;
}
