// prelude-coordinator: the job service.
//
//   prelude-coordinator [--listen ADDR] [--db FILE] [--data-root DIR] [--token-file F] [--tokens-file F]
//                       [--spawn-workers N] [--heartbeat-timeout S] [--stall-timeout S] [--max-attempts K]
//                       [--tls-cert F --tls-key F [--tls-client-ca F]] [--insecure] [--audit-keep N]
//                       [--http ADDR] [--http-port-file F]
//                       [--slurm [--slurm-partition P] [--slurm-account A] [--slurm-max-jobs K] ...]
//
// Serves prelude.v1.JobService (clients) and prelude.v1.WorkerService (pools) on
// one port, plus grpc.health.v1.Health and server reflection; and /metrics
// (Prometheus) over HTTP on another. Stops cleanly on
// SIGINT or SIGTERM.
//
//   prelude-coordinator token add NAME --role admin|user|pool --tokens-file F
//   prelude-coordinator token list|remove ...
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/flags.h"
#include "common/errors.h"
#include "common/tls.h"
#include "server/artifact_store.h"
#include "server/audit_log.h"
#include "server/auth.h"
#include "server/db_lock.h"
#include "server/dashboard.h"
#include "server/http_server.h"
#include "server/job_manager.h"
#include "server/metrics.h"
#include "server/pool_spawner.h"
#include "server/services.h"
#include "server/slurm_dispatcher.h"
#include "server/store.h"
#include "server/tokens.h"

namespace {

using prelude::FlagReader;
using prelude::parse_whole_number;
using prelude::UserError;

const std::vector<prelude::FlagSpec> kFlags = {
    {"--listen", "ADDR", "address to serve on (default 127.0.0.1:50051; port 0 picks one)"},
    {"--db", "FILE", "SQLite database of jobs and metrics (default prelude.db)"},
    {"--data-root", "DIR",
     "where data sets live for its own pool (--spawn-workers) and Slurm's nodes; other pools declare theirs "
     "(default $PRELUDE_DATA_ROOT or /usr/share/datasets)"},
    {"--artifact-dir", "DIR", "where jobs' checkpoints are kept (default: the database's name + .artifacts)"},
    {"--keep-checkpoints", "K", "checkpoints kept per job besides its final model (default 2)"},
    {"--max-log-lines", "N", "lines of worker output kept per attempt of a job: the newest (default 10000)"},
    {"--token-file", "F", "require 'authorization: Bearer <token>': the token in F is an admin's"},
    {"--tokens-file", "F",
     "require tokens: F lists their SHA-256s, names and roles (admin, user, pool); see `token add`"},
    {"--max-queued-per-user", "N", "a user may have at most N jobs queued at once (default 0: no limit)"},
    {"--max-sweep-points", "N", "the largest sweep accepted, in jobs (default 1000)"},
    {"--max-request-mib", "M", "the largest request message accepted, in MiB (default 16)"},
    {"--spawn-workers", "N", "start a local worker pool of N MPI ranks (restarted if it dies)"},
    {"--worker-threads", "T", "threads per rank of that pool (default: cores / N, at least 1)"},
    {"--worker-binary", "PATH", "the prelude-worker to spawn (default: next to this program)"},
    {"--heartbeat-timeout", "S", "drop a pool silent this long and requeue its job (default 15)"},
    {"--stall-timeout", "S",
     "a pool whose ranks stop reaching their collectives this long is ended and its job requeued; a cancel wins "
     "over a pool that does not stop within S + the heartbeat timeout (default 300)"},
    {"--max-attempts", "K", "start a job at most K times when pools are lost (default 3)"},
    {"--port-file", "F", "write the port actually bound to F once serving"},
    {"--tls-cert", "F", "serve TLS with the certificate (chain) in F, PEM"},
    {"--tls-key", "F", "the private key of --tls-cert, PEM"},
    {"--tls-client-ca", "F", "mutual TLS: require client certificates signed by a CA in F"},
    {"--pool-tls-ca", "F", "the CA the --spawn-workers pool and --slurm's workers trust (default: the system's CAs)"},
    {"--pool-tls-cert", "F", "under mutual TLS: their certificate"},
    {"--pool-tls-key", "F", "and its private key"},
    {"--insecure", "", "allow a non-loopback --listen with neither TLS nor a token"},
    {"--audit-keep", "N", "audit trail entries kept in the database, the newest (default 100000)"},
    {"--http", "ADDR",
     "serve /metrics (Prometheus) and the web dashboard over HTTP on ADDR (default 127.0.0.1:8080; '' turns it off; "
     "port 0 picks one)"},
    {"--http-port-file", "F", "write the HTTP port actually bound to F once serving"},
    {"--slurm", "", "dispatch each queued job to Slurm as a batch job of resources.ranks tasks (sbatch)"},
    {"--slurm-partition", "P", "the partition its batch jobs go to (default: Slurm's)"},
    {"--slurm-account", "A", "the account they are charged to (default: Slurm's)"},
    {"--slurm-max-jobs", "K", "at most K batch jobs submitted and not ended at once (default 0: no limit)"},
    {"--slurm-time", "T", "their time limit, as sbatch --time takes it (default: the partition's)"},
    {"--slurm-address", "ADDR", "the address their workers dial (default: --listen's, with the port bound)"},
    {"--slurm-token-file", "F", "the token file their workers read, as the nodes see it (default: --token-file's)"},
    {"--slurm-dir", "DIR",
     "where their batch scripts and output go, a directory the nodes see (default: the database's name + .slurm)"},
};

std::string usage() {
  return "usage: prelude-coordinator [--listen ADDR] [--db FILE] [--data-root DIR] [--token-file F]\n"
         "                           [--tokens-file F] [--max-queued-per-user N] [--max-sweep-points N]\n"
         "                           [--max-request-mib M]\n"
         "                           [--artifact-dir DIR] [--keep-checkpoints K] [--max-log-lines N]\n"
         "                           [--spawn-workers N] [--worker-threads T] [--worker-binary PATH]\n"
         "                           [--heartbeat-timeout SECONDS] [--stall-timeout SECONDS] [--max-attempts K]\n"
         "                           [--port-file F] [--tls-cert F --tls-key F [--tls-client-ca F]] [--insecure]\n"
         "                           [--pool-tls-ca F] [--pool-tls-cert F --pool-tls-key F] [--audit-keep N]\n"
         "                           [--http ADDR] [--http-port-file F]\n"
         "                           [--slurm [--slurm-partition P] [--slurm-account A] [--slurm-max-jobs K]\n"
         "                            [--slurm-time T] [--slurm-address ADDR] [--slurm-token-file F]\n"
         "                            [--slurm-dir DIR]]\n"
         "\n"
         "       prelude-coordinator token add NAME --role admin|user|pool --tokens-file F\n"
         "       prelude-coordinator token list|remove ... (token --help)\n"
         "\n"
         "Runs the Prelude job service (gRPC prelude.v1.JobService, health and reflection).\n" +
         prelude::flag_list(kFlags, /*min_width=*/23);  // the column these lines have always had
}

struct Flags {
  std::string listen = "127.0.0.1:50051";
  std::string db = "prelude.db";
  std::string data_root = "/usr/share/datasets";
  std::string token_file, tokens_file, worker_binary, port_file, artifact_dir;
  std::string http = "127.0.0.1:8080", http_port_file;
  bool http_given = false;  // --http given: failing to bind it is an error, not a warning
  int spawn_workers = 0, worker_threads = 0, max_attempts = 3, keep_checkpoints = 2;
  long max_log_lines = 10000;
  int max_queued_per_user = 0, max_sweep_points = 1000, max_request_mib = 16;
  int64_t audit_keep = 100000;
  double heartbeat_timeout = 15, stall_timeout = 300;
  prelude::ServerTls tls{{"", "--tls-cert"}, {"", "--tls-key"}, {"", "--tls-client-ca"}};
  prelude::ClientTls pool_tls{false, {"", "--pool-tls-ca"}, {"", "--pool-tls-cert"}, {"", "--pool-tls-key"}};
  bool insecure = false;
  bool slurm = false;
  std::string slurm_partition, slurm_account, slurm_time, slurm_address, slurm_token_file, slurm_dir;
  int slurm_max_jobs = 0;
};

std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}

double parse_seconds(const std::string& flag, const std::string& v, double lo, double hi) {
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end || !(x >= lo && x <= hi))
    throw UserError(flag + ": must be a number of seconds from " + seconds_text(lo) + " to " + seconds_text(hi) +
                    ", got '" + v + "'");
  return x;
}

// Returns nullopt after --help.
std::optional<Flags> parse_flags(int argc, char** argv) {
  Flags f;
  if (const char* root = std::getenv("PRELUDE_DATA_ROOT")) f.data_root = root;
  FlagReader reader({argv + 1, argv + argc}, kFlags);
  while (const auto item = reader.next()) {
    if (item->kind == FlagReader::Item::kHelp) {
      std::fputs(usage().c_str(), stdout);
      return std::nullopt;
    }
    // The coordinator takes no arguments: anything but its flags is unknown.
    if (item->kind != FlagReader::Item::kFlag) throw UserError("unknown argument '" + item->text + "'");
    const std::string& a = item->text;
    const std::string& v = item->value;  // a flag given twice: the last one counts
    if (a == "--listen") f.listen = v;
    else if (a == "--db") f.db = v;
    else if (a == "--data-root") f.data_root = v;
    else if (a == "--token-file") f.token_file = v;
    else if (a == "--tokens-file") f.tokens_file = v;
    else if (a == "--max-queued-per-user")
      f.max_queued_per_user = static_cast<int>(parse_whole_number(a, v, 0, 1000000));
    else if (a == "--max-sweep-points") f.max_sweep_points = static_cast<int>(parse_whole_number(a, v, 1, 100000));
    else if (a == "--max-request-mib") f.max_request_mib = static_cast<int>(parse_whole_number(a, v, 1, 1024));
    else if (a == "--artifact-dir") f.artifact_dir = v;
    else if (a == "--keep-checkpoints") f.keep_checkpoints = static_cast<int>(parse_whole_number(a, v, 1, 1000));
    else if (a == "--max-log-lines") f.max_log_lines = parse_whole_number(a, v, 1, 10000000);
    else if (a == "--worker-binary") f.worker_binary = v;
    else if (a == "--port-file") f.port_file = v;
    else if (a == "--http") {
      f.http = v;
      f.http_given = true;
    } else if (a == "--http-port-file") f.http_port_file = v;
    else if (a == "--tls-cert") f.tls.cert.path = v;
    else if (a == "--tls-key") f.tls.key.path = v;
    else if (a == "--tls-client-ca") f.tls.client_ca.path = v;
    else if (a == "--pool-tls-ca") f.pool_tls.ca.path = v;
    else if (a == "--pool-tls-cert") f.pool_tls.cert.path = v;
    else if (a == "--pool-tls-key") f.pool_tls.key.path = v;
    else if (a == "--insecure") f.insecure = true;
    else if (a == "--audit-keep") f.audit_keep = parse_whole_number(a, v, 1, 100000000);
    else if (a == "--spawn-workers") f.spawn_workers = static_cast<int>(parse_whole_number(a, v, 0, 256));
    else if (a == "--worker-threads") f.worker_threads = static_cast<int>(parse_whole_number(a, v, 1, 1024));
    else if (a == "--max-attempts") f.max_attempts = static_cast<int>(parse_whole_number(a, v, 1, 100));
    else if (a == "--heartbeat-timeout") f.heartbeat_timeout = parse_seconds(a, v, 0.5, 3600);
    else if (a == "--stall-timeout") f.stall_timeout = parse_seconds(a, v, 1, 86400);
    else if (a == "--slurm") f.slurm = true;
    else if (a == "--slurm-partition") f.slurm_partition = v;
    else if (a == "--slurm-account") f.slurm_account = v;
    else if (a == "--slurm-max-jobs") f.slurm_max_jobs = static_cast<int>(parse_whole_number(a, v, 0, 100000));
    else if (a == "--slurm-time") f.slurm_time = v;
    else if (a == "--slurm-address") f.slurm_address = v;
    else if (a == "--slurm-token-file") f.slurm_token_file = v;
    else if (a == "--slurm-dir") f.slurm_dir = v;
  }
  const bool slurm_detail = !f.slurm_partition.empty() || !f.slurm_account.empty() || f.slurm_max_jobs > 0 ||
                            !f.slurm_time.empty() || !f.slurm_address.empty() || !f.slurm_token_file.empty() ||
                            !f.slurm_dir.empty();
  if (slurm_detail && !f.slurm) throw UserError("--slurm-*: only with --slurm");
  if (f.slurm && f.spawn_workers > 0)
    throw UserError("--slurm and --spawn-workers: choose one (Slurm starts the pools of a --slurm coordinator)");
  if (!f.tls.enabled() && (f.pool_tls.ca.given() || f.pool_tls.cert.given() || f.pool_tls.key.given()))
    throw prelude::UsageError("--pool-tls-ca, --pool-tls-cert and --pool-tls-key: only with --tls-cert and --tls-key");
  // Plain text on a reachable port with no token: anyone who reaches it could submit,
  // read, cancel and delete jobs, and act as a pool (Ray's CVE-2023-48022).
  if (!prelude::is_loopback_address(f.listen) && !f.tls.enabled() && f.token_file.empty() && f.tokens_file.empty() &&
      !f.insecure)
    throw UserError("--listen " + f.listen + ": refusing to serve a non-loopback address in plain text with no "
                    "token: anyone who can reach the port could run, read and cancel jobs and pose as a pool. "
                    "Give --tls-cert/--tls-key and/or --tokens-file (or --token-file), or --insecure to serve it anyway (a private "
                    "network); loopback (127.0.0.0/8, ::1, localhost) needs none of them");
  if (!f.http.empty() && !prelude::is_loopback_address(f.http) && !f.tls.enabled() && f.token_file.empty() &&
      f.tokens_file.empty() && !f.insecure)
    throw UserError("--http " + f.http + ": refusing to serve the dashboard, its API (jobs, logs, models) and the "
                    "metrics on a non-loopback address in plain text with no token: anyone who can reach the port "
                    "could read every job and download its models. Give --tls-cert/--tls-key and/or --tokens-file (or --token-file), or --insecure");
  if (f.http.empty() && !f.http_port_file.empty()) throw UserError("--http-port-file: needs --http (it is off)");
  return f;
}

void write_port_file(const std::string& path, int port) {
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp) << port << "\n";
  std::rename(tmp.c_str(), path.c_str());
}

// The TLS of the pools the coordinator starts (--spawn-workers' pool, --slurm's batch
// jobs): TLS whenever the coordinator serves it, and checked now, so a pool that would
// be refused is an error at start, not a pool restarted in a loop (or a Slurm job failing
// on a node). Slurm's workers read the files on their nodes: the paths are made absolute,
// as for --slurm-token-file.
void check_pool_tls(Flags& f, const std::string& address) {
  if (!f.tls.enabled() || (f.spawn_workers == 0 && !f.slurm)) return;
  f.pool_tls.enabled = true;
  if (f.slurm)
    for (prelude::PemFile* file : {&f.pool_tls.ca, &f.pool_tls.cert, &f.pool_tls.key})
      if (file->given()) file->path = std::filesystem::absolute(file->path);
  if (f.pool_tls.cert.given() != f.pool_tls.key.given())
    throw prelude::UsageError(f.pool_tls.cert.given() ? "--pool-tls-cert: needs --pool-tls-key too"
                                                      : "--pool-tls-key: needs --pool-tls-cert too");
  if (f.tls.client_ca.given() && !f.pool_tls.cert.given())
    throw prelude::UsageError(std::string(f.slurm ? "--slurm" : "--spawn-workers") +
                              " with --tls-client-ca: the pool needs a client certificate signed by "
                              "that CA: give --pool-tls-cert and --pool-tls-key");
  prelude::channel_credentials(f.pool_tls);  // reads and checks the pool's files
  std::string host = address.substr(0, address.rfind(':'));
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);  // [::1]
  if (f.pool_tls.ca.given()) prelude::check_certificate(f.tls.cert, f.pool_tls.ca, host);
  if (f.tls.client_ca.given()) prelude::check_certificate(f.pool_tls.cert, f.tls.client_ca, "");
}

// The address as bound: --listen's host (0.0.0.0 stays 0.0.0.0, so the log says who can
// reach it) with the port the kernel gave.
std::string bound_address(const std::string& listen, int port) {
  return listen.substr(0, listen.rfind(':')) + ":" + std::to_string(port);
}

// Where a local pool reaches a server listening on `listen` (bound to `port`).
std::string local_address(const std::string& listen, int port) {
  std::string host = listen.substr(0, listen.rfind(':'));
  if (host.empty() || host == "0.0.0.0" || host == "[::]" || host == "::") host = "127.0.0.1";
  return host + ":" + std::to_string(port);
}

// The spawned pool's own token, when calls need one: a `pool` token made at start,
// known only to this coordinator (in memory, as its hash) and to its pool (in an
// owner-only file of a private directory, removed at shutdown).
class SpawnedPoolToken {
 public:
  explicit SpawnedPoolToken(prelude::server::Authenticator& auth) {
    namespace fs = std::filesystem;
    std::string dir = (fs::temp_directory_path() / "prelude-coordinator-XXXXXX").string();
    if (!mkdtemp(dir.data())) throw UserError("cannot make a private directory for the pool's token");
    dir_ = dir;
    file_ = dir + "/pool-token";
    const std::string token = prelude::server::new_token();
    {
      std::ofstream out(file_);
      out << token << "\n";
      if (!out) throw UserError(file_ + ": cannot write the pool's token");
    }
    auth.add_token(token, prelude::server::Caller{"spawned-pool", prelude::server::Role::kPool});
  }
  ~SpawnedPoolToken() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  const std::string& file() const { return file_; }

 private:
  std::string dir_, file_;
};

}  // namespace

int main(int argc, char** argv) {
  using namespace prelude::server;
  if (argc > 1 && std::string(argv[1]) == "token") return token_command({argv + 2, argv + argc});
  std::optional<Flags> flags;
  Authenticator auth;
  std::unique_ptr<SpawnedPoolToken> pool_token;
  try {
    flags = parse_flags(argc, argv);
    if (!flags) return 0;
    if (!flags->token_file.empty()) auth.add_admin_token_file(flags->token_file);
    if (!flags->tokens_file.empty()) auth.add_tokens_file(flags->tokens_file);
    if (flags->spawn_workers > 0 && auth.required()) pool_token = std::make_unique<SpawnedPoolToken>(auth);
  } catch (const UserError& e) {
    std::fprintf(stderr, "prelude-coordinator: %s\n%s", e.what(), usage().c_str());
    return 2;
  }
  // TLS files are read and checked before anything else starts: a bad one is exit 2
  // naming the flag and the file (without the usage: the flags were right).
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  try {
    if (flags->tls.enabled()) {
      credentials = prelude::server_credentials(flags->tls, [](const std::string& warning) {
        std::fprintf(stderr, "prelude-coordinator: warning: %s\n", warning.c_str());
      });
      // The port is not known yet (port 0), the host the pools dial is.
      check_pool_tls(*flags, !flags->slurm_address.empty() ? flags->slurm_address
                                                            : local_address(flags->listen, 0));
    }
  } catch (const prelude::UsageError& e) {
    std::fprintf(stderr, "prelude-coordinator: %s\n%s", e.what(), usage().c_str());
    return 2;
  } catch (const UserError& e) {
    std::fprintf(stderr, "prelude-coordinator: %s\n", e.what());
    return 2;
  }
  const Flags& f = *flags;

  // Signals are taken by sigwait below; every thread started from here on inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  // A scraper that hangs up while /metrics is written over TLS (SSL_write: no MSG_NOSIGNAL)
  // must cost that write, not the coordinator.
  signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<DatabaseLock> db_lock;
  std::unique_ptr<Store> store;
  std::unique_ptr<ArtifactStore> artifacts;
  std::unique_ptr<AuditLog> audit;
  try {
    db_lock = std::make_unique<DatabaseLock>(f.db);  // before anything reads the database
    store = std::make_unique<Store>(f.db);
    AuditOptions ao;
    ao.keep = f.audit_keep;
    ao.flush_interval_ms = 1000;  // a flood's summary row within a second or two, even if all goes quiet
    audit = std::make_unique<AuditLog>(f.db, ao);
    artifacts = std::make_unique<ArtifactStore>(
        !f.artifact_dir.empty() ? f.artifact_dir : (f.db == ":memory:" ? "prelude" : f.db) + ".artifacts");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prelude-coordinator: %s\n", e.what());
    return 2;
  }
  ManagerOptions mo;
  mo.data_root = f.data_root;
  // Pools declare what they hold; the coordinator's data root counts only for the pools it
  // starts itself or that Slurm starts on the nodes' shared data.
  mo.local_data = f.spawn_workers > 0 || f.slurm;
  mo.max_attempts = f.max_attempts;
  mo.keep_checkpoints = f.keep_checkpoints;
  mo.max_log_lines = f.max_log_lines;
  mo.heartbeat_timeout = std::chrono::milliseconds(static_cast<long>(f.heartbeat_timeout * 1000));
  mo.heartbeat_interval = std::min<std::chrono::milliseconds>(std::chrono::milliseconds(2000), mo.heartbeat_timeout / 4);
  mo.cancel_grace = std::chrono::milliseconds(static_cast<long>((f.stall_timeout + f.heartbeat_timeout) * 1000));
  if (f.spawn_workers > 0) mo.expected_pool_ranks = {f.spawn_workers};
  mo.max_queued_per_user = f.max_queued_per_user;
  mo.max_sweep_points = f.max_sweep_points;
  mo.slurm = f.slurm;
  mo.log = [](const std::string& line) { std::fprintf(stderr, "prelude-coordinator: %s\n", line.c_str()); };
  Metrics metrics;
  mo.on_final = [&metrics](const prelude::v1::Job& job) { metrics.observe_job_end(job); };
  JobManager jobs(*store, mo);
  metrics.set_stats([&jobs] { return jobs.stats(); });
  JobServiceImpl job_service(jobs, *artifacts, &auth, audit.get(), &metrics);
  WorkerServiceImpl worker_service(jobs, *artifacts, &auth, audit.get(), &metrics);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(f.listen, credentials, &port);
  builder.RegisterService(&job_service);
  builder.RegisterService(&worker_service);
  builder.SetMaxReceiveMessageSize(f.max_request_mib << 20);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::fprintf(stderr, "prelude-coordinator: --listen: cannot listen on '%s'\n", f.listen.c_str());
    return 2;
  }
  // NOT_SERVING while the database takes no writes (a full disk), SERVING again once it does.
  if (grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService())
    jobs.set_health_listener([health](bool serving, const std::string&) { health->SetServingStatus(serving); });
  std::fprintf(stderr, "prelude-coordinator: serving on %s (database %s, models in %s, data root %s%s%s)\n",
               bound_address(f.listen, port).c_str(), f.db.c_str(), artifacts->dir().c_str(), f.data_root.c_str(),
               auth.required() ? ", tokens required" : "",
               !f.tls.enabled() ? "" : f.tls.client_ca.given() ? ", TLS with client certificates" : ", TLS");
  // The web dashboard's API answers with the same JobManager and callers as the gRPC API.
  const Dashboard dashboard(jobs, artifacts.get());
  // /metrics and the dashboard: before the port file, so a test that sees it finds the HTTP port file too.
  std::unique_ptr<HttpServer> http;
  if (!f.http.empty()) {
    HttpOptions ho;
    ho.address = f.http;
    ho.cert = f.tls.cert.path;
    ho.key = f.tls.key.path;
    ho.client_ca = f.tls.client_ca.path;
    ho.auth = &auth;
    ho.dashboard = &dashboard;
    try {
      http = std::make_unique<HttpServer>(ho, [&metrics] { return metrics.exposition(); });
      const char* scheme = f.tls.enabled() ? "https" : "http";
      const std::string at = local_address(f.http, http->port());
      std::fprintf(stderr, "prelude-coordinator: metrics on %s://%s/metrics, dashboard on %s://%s/\n", scheme,
                   at.c_str(), scheme, at.c_str());
      if (!f.http_port_file.empty()) write_port_file(f.http_port_file, http->port());
    } catch (const UserError& e) {
      // The default port may be another coordinator's: that costs the metrics, not the service.
      if (f.http_given) {
        std::fprintf(stderr, "prelude-coordinator: %s\n", e.what());
        server->Shutdown(std::chrono::system_clock::now());
        jobs.shutdown();
        return 2;
      }
      std::fprintf(stderr, "prelude-coordinator: warning: %s; no metrics (give --http ADDR, or --http '')\n",
                   e.what());
    }
  }
  if (!f.port_file.empty()) write_port_file(f.port_file, port);

  std::unique_ptr<PoolSpawner> pool;
  if (f.spawn_workers > 0) {
    SpawnOptions so;
    so.ranks = f.spawn_workers;
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    so.threads_per_rank = f.worker_threads > 0 ? f.worker_threads : std::max(1, cores / f.spawn_workers);
    so.worker_binary = f.worker_binary.empty() ? default_worker_binary() : f.worker_binary;
    so.coordinator = local_address(f.listen, port);
    so.token_file = pool_token ? pool_token->file() : "";
    so.tls = f.pool_tls;
    so.data_root = f.data_root;
    so.stall_timeout_seconds = f.stall_timeout;
    pool = std::make_unique<PoolSpawner>(so);
  }

  std::unique_ptr<ExecSlurmCli> slurm_cli;
  std::unique_ptr<SlurmDispatcher> slurm;
  if (f.slurm) {
    SlurmOptions so;
    so.partition = f.slurm_partition;
    so.account = f.slurm_account;
    so.max_jobs = f.slurm_max_jobs;
    so.time_limit = f.slurm_time;
    so.coordinator = !f.slurm_address.empty() ? f.slurm_address : local_address(f.listen, port);
    so.worker_binary = std::filesystem::absolute(f.worker_binary.empty() ? default_worker_binary() : f.worker_binary);
    so.token_file = !f.slurm_token_file.empty() ? f.slurm_token_file : f.token_file;
    if (!so.token_file.empty()) so.token_file = std::filesystem::absolute(so.token_file);
    so.data_root = std::filesystem::absolute(f.data_root);
    so.tls = f.pool_tls;
    so.stall_timeout_seconds = f.stall_timeout;
    so.script_dir = std::filesystem::absolute(
        !f.slurm_dir.empty() ? f.slurm_dir : (f.db == ":memory:" ? std::string("prelude") : f.db) + ".slurm");
    so.log = mo.log;
    std::error_code ec;
    std::filesystem::create_directories(so.script_dir, ec);
    if (ec) {
      std::fprintf(stderr, "prelude-coordinator: --slurm-dir: cannot make %s: %s\n", so.script_dir.c_str(),
                   ec.message().c_str());
      server->Shutdown(std::chrono::system_clock::now());
      jobs.shutdown();
      return 2;
    }
    std::fprintf(stderr, "prelude-coordinator: dispatching jobs to Slurm (scripts in %s, workers dial %s)\n",
                 so.script_dir.c_str(), so.coordinator.c_str());
    slurm_cli = std::make_unique<ExecSlurmCli>();
    slurm = std::make_unique<SlurmDispatcher>(jobs, *slurm_cli, so);
    slurm->start();
  }

  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::fprintf(stderr, "prelude-coordinator: %s: shutting down\n", strsignal(sig));
  slurm.reset();
  pool.reset();
  http.reset();
  jobs.shutdown();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return 0;
}
