#include "client/cli.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "client/render.h"
#include "common/token.h"
#include "engine/errors.h"
#include "engine/job_spec.h"
#include "prelude/v1/service.grpc.pb.h"

namespace prelude::client {

namespace v1 = prelude::v1;
using namespace std::chrono_literals;

namespace {

constexpr const char* kUsageText =
    "usage: prelude [--coordinator ADDR] [--token-file F] COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  submit JOB.json [--watch]          queue a job (the JSON form of prelude.v1.JobSpec; - for stdin);\n"
    "                                     prints its id, then watches it with --watch\n"
    "  list [--state STATE] [--limit N]   jobs, newest first (default limit 50)\n"
    "  get ID [--format text|json]        a job: state, error, metrics, learned slopes\n"
    "  watch ID                           follow a job to its end (live progress on a terminal)\n"
    "  cancel ID                          cancel a job (a running one stops at its next step)\n"
    "  metrics ID [--format csv|json]     the job's training history (default csv)\n"
    "\n"
    "  --coordinator ADDR  default $PRELUDE_COORDINATOR or localhost:50051\n"
    "  --token-file F      send 'authorization: Bearer <token>' (default token: $PRELUDE_TOKEN)\n"
    "\n"
    "exit codes: 0 ok, 2 usage error or bad job file, 3 the coordinator refused or failed the\n"
    "call, 4 the watched job ended FAILED or CANCELLED\n";

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A gRPC call that did not succeed: exit 3 with the code name and message.
class CallError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::string code_name(grpc::StatusCode c) {
  static const char* names[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
                                "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
                                "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  return c >= 0 && c <= 16 ? names[c] : "UNKNOWN";
}

struct Args {
  std::string coordinator = "localhost:50051", token, command;
  std::vector<std::string> positional;
  std::map<std::string, std::string> options;  // --format, --state, --limit
  bool watch = false;
};

Args parse_args(int argc, char** argv) {
  Args a;
  if (const char* v = std::getenv("PRELUDE_COORDINATOR")) a.coordinator = v;
  if (const char* v = std::getenv("PRELUDE_TOKEN")) a.token = v;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(s + ": needs a value");
      return argv[++i];
    };
    if (s == "--coordinator") a.coordinator = value();
    else if (s == "--token-file") a.token = read_token_file(value());
    else if (s == "--watch") a.watch = true;
    else if (s == "--format" || s == "--state" || s == "--limit") a.options[s] = value();
    else if (s == "--help" || s == "-h") a.command = "help";
    else if (s.size() > 1 && s[0] == '-') throw UsageError("unknown option '" + s + "'");
    else if (a.command.empty()) a.command = s;
    else a.positional.push_back(s);
  }
  return a;
}

class Client {
 public:
  Client(const Args& args, std::ostream& out, std::ostream& err, bool terminal)
      : args_(args), out_(out), err_(err), terminal_(terminal),
        stub_(v1::JobService::NewStub(grpc::CreateChannel(args.coordinator, grpc::InsecureChannelCredentials()))) {}

  int submit() {
    const std::string path = one_positional("JOB.json");
    v1::JobSpec spec;
    if (path == "-") {
      std::stringstream text;
      text << std::cin.rdbuf();
      spec = parse_job_json(text.str(), "<stdin>");
    } else {
      spec = load_job_file(path);
    }
    v1::SubmitJobRequest req;
    *req.mutable_spec() = spec;
    v1::Job job;
    call("SubmitJob", [&](grpc::ClientContext* c) { return stub_->SubmitJob(c, req, &job); });
    out_ << job.job_id() << std::endl;
    return args_.watch ? watch(job.job_id()) : kOk;
  }

  int list() {
    const int limit = int_option("--limit", 50, 1, 100000);
    v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
    if (args_.options.count("--state") && !v1::JobState_Parse(upper(args_.options.at("--state")), &state))
      throw UsageError("--state: one of QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, got '" +
                       args_.options.at("--state") + "'");
    std::vector<v1::Job> jobs;
    v1::ListJobsRequest req;
    req.set_state(state);
    do {
      req.set_page_size(std::min(1000, limit - static_cast<int>(jobs.size())));
      v1::ListJobsResponse resp;
      call("ListJobs", [&](grpc::ClientContext* c) { return stub_->ListJobs(c, req, &resp); });
      for (const auto& j : resp.jobs()) jobs.push_back(j);
      req.set_page_token(resp.next_page_token());
    } while (!req.page_token().empty() && static_cast<int>(jobs.size()) < limit);
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
        std::chrono::system_clock::now().time_since_epoch()).count();
    out_ << jobs_table(jobs, now);
    return kOk;
  }

  int get() {
    const v1::Job job = get_job(one_positional("ID"));
    const std::string format = option("--format", "text", {"text", "json"});
    out_ << (format == "json" ? to_json_line(job) : job_text(job));
    return kOk;
  }

  int cancel() {
    v1::CancelJobRequest req;
    req.set_job_id(one_positional("ID"));
    v1::Job job;
    call("CancelJob", [&](grpc::ClientContext* c) { return stub_->CancelJob(c, req, &job); });
    out_ << job.job_id() << " " << v1::JobState_Name(job.state())
         << (job.cancel_requested() ? " (cancel requested: it stops at its next step)" : "") << std::endl;
    return kOk;
  }

  int metrics() {
    v1::GetMetricsRequest req;
    req.set_job_id(one_positional("ID"));
    v1::GetMetricsResponse resp;
    call("GetMetrics", [&](grpc::ClientContext* c) { return stub_->GetMetrics(c, req, &resp); });
    const std::string format = option("--format", "csv", {"csv", "json"});
    if (format == "csv") {
      out_ << metrics_csv({resp.events().begin(), resp.events().end()});
    } else {
      for (const auto& e : resp.events()) out_ << to_json_line(e.training());
    }
    return kOk;
  }

  // Follows the job to its end, resuming after a broken stream (a coordinator
  // restart) from the last event seen.
  int watch(const std::string& id) {
    const v1::Job job = get_job(id);
    int64_t after = 0;
    bool live_line = false;
    for (int retries = 0;; ++retries) {
      v1::WatchJobRequest req;
      req.set_job_id(id);
      req.set_after_seq(after);
      grpc::ClientContext ctx;
      add_token(&ctx);
      auto reader = stub_->WatchJob(&ctx, req);
      v1::JobEvent e;
      while (reader->Read(&e)) {
        after = e.seq();
        retries = 0;
        if (terminal_ && e.has_training() && e.training().event() == "step") {
          out_ << "\r\033[K" << id << " " << progress_line(e.training(), job.spec()) << std::flush;
          live_line = true;
          continue;
        }
        const std::string line = event_line(e);
        if (line.empty()) continue;
        if (live_line) out_ << "\r\033[K";
        live_line = false;
        out_ << id << " " << line << std::endl;
      }
      const grpc::Status s = reader->Finish();
      if (live_line) out_ << std::endl;
      live_line = false;
      if (s.ok()) break;
      const bool transient = s.error_code() == grpc::StatusCode::UNAVAILABLE;
      if (!transient || retries >= 30) throw CallError(code_name(s.error_code()) + ": " + s.error_message());
      if (retries == 0) err_ << "prelude: lost the coordinator (" << s.error_message() << "); reconnecting" << std::endl;
      std::this_thread::sleep_for(1s);
    }
    const v1::Job end = get_job(id);
    if (end.state() == v1::SUCCEEDED) return kOk;
    err_ << "prelude: job " << id << " " << v1::JobState_Name(end.state())
         << (end.error().empty() ? "" : ": " + end.error()) << std::endl;
    return kJobFailed;
  }

  int watch() { return watch(one_positional("ID")); }

 private:
  static std::string upper(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
  }
  std::string one_positional(const char* what) const {
    if (args_.positional.empty()) throw UsageError(args_.command + ": missing " + what);
    if (args_.positional.size() > 1) throw UsageError(args_.command + ": unexpected argument '" + args_.positional[1] + "'");
    return args_.positional[0];
  }
  std::string option(const std::string& name, const std::string& def, const std::vector<std::string>& allowed) const {
    auto it = args_.options.find(name);
    if (it == args_.options.end()) return def;
    for (const auto& a : allowed)
      if (a == it->second) return a;
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : "|") + a;
    throw UsageError(name + ": must be " + list + ", got '" + it->second + "'");
  }
  int int_option(const std::string& name, int def, int lo, int hi) const {
    auto it = args_.options.find(name);
    if (it == args_.options.end()) return def;
    char* end = nullptr;
    const long v = std::strtol(it->second.c_str(), &end, 10);
    if (it->second.empty() || *end || v < lo || v > hi)
      throw UsageError(name + ": must be a whole number from " + std::to_string(lo) + " to " + std::to_string(hi) +
                       ", got '" + it->second + "'");
    return static_cast<int>(v);
  }
  void add_token(grpc::ClientContext* c) const {
    if (!args_.token.empty()) c->AddMetadata("authorization", "Bearer " + args_.token);
  }
  template <typename F>
  void call(const char* method, F f) const {
    grpc::ClientContext ctx;
    add_token(&ctx);
    ctx.set_deadline(std::chrono::system_clock::now() + 30s);
    const grpc::Status s = f(&ctx);
    if (s.ok()) return;
    std::string msg = code_name(s.error_code()) + ": " + s.error_message();
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE)
      msg += " (cannot reach the coordinator at " + args_.coordinator + " for " + method + ")";
    throw CallError(msg);
  }
  v1::Job get_job(const std::string& id) const {
    v1::GetJobRequest req;
    req.set_job_id(id);
    v1::Job job;
    call("GetJob", [&](grpc::ClientContext* c) { return stub_->GetJob(c, req, &job); });
    return job;
  }

  const Args& args_;
  std::ostream& out_;
  std::ostream& err_;
  const bool terminal_;
  std::unique_ptr<v1::JobService::Stub> stub_;
};

}  // namespace

int run_cli(int argc, char** argv, std::ostream& out, std::ostream& err, bool terminal) {
  try {
    const Args args = parse_args(argc, argv);
    if (args.command == "help") {
      out << kUsageText;
      return kOk;
    }
    if (args.command.empty()) throw UsageError("missing command");
    Client client(args, out, err, terminal);
    if (args.command == "submit") return client.submit();
    if (args.command == "list") return client.list();
    if (args.command == "get") return client.get();
    if (args.command == "watch") return client.watch();
    if (args.command == "cancel") return client.cancel();
    if (args.command == "metrics") return client.metrics();
    throw UsageError("unknown command '" + args.command + "'");
  } catch (const UsageError& e) {
    err << "prelude: " << e.what() << "\n" << kUsageText;
    return kUsage;
  } catch (const UserError& e) {  // a bad job file or token file
    err << "prelude: " << e.what() << std::endl;
    return kUsage;
  } catch (const CallError& e) {
    err << "prelude: " << e.what() << std::endl;
    return kServerError;
  }
}

}  // namespace prelude::client
