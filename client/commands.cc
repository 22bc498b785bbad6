#include "client/commands.h"

#include <algorithm>
#include <chrono>
#include <iterator>
#include <map>
#include <set>
#include <thread>

#include "client/compare.h"
#include "client/render.h"
#include "client/watch.h"
#include "engine/job_spec.h"
#include "engine/sweep.h"

namespace prelude::client {

namespace v1 = prelude::v1;

namespace {

constexpr size_t kMaxJobBytes = 16u << 20;  // as load_job_file
constexpr int kDefaultListLimit = 50;
constexpr int kMaxPageSize = 1000;          // the coordinator's own limit

// The job file of `submit`; "-" reads standard input. Throws UserError naming the
// file and the place (line and column) of a syntax error.
v1::JobSpec read_job(const std::string& path, std::istream& in) {
  if (path != "-") return load_job_file(path);
  const std::string source = "<stdin>";
  std::string text;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxJobBytes) throw user_error(source, "too large for a job file (more than 16 MiB)");
  }
  if (in.bad()) throw user_error(source, "cannot read standard input");
  return parse_job_json(text, source);
}

// The ID argument of a command.
const std::string& job_id_argument(const CommandLine& line) {
  const std::string& id = line.arguments.at(0);
  if (id.empty()) throw UsageError("ID: must not be empty");
  return id;
}

int submit(Session& session, const CommandLine& line) {
  const v1::JobSpec spec = read_job(line.arguments.at(0), session.console().in);
  const v1::Job job = session.coordinator().submit_job(spec);
  session.console().out << job.job_id() << '\n' << std::flush;
  return line.has("--watch") ? watch_job(session, job.job_id()) : kExitOk;
}

int list(Session& session, const CommandLine& line) {
  const int limit = parse_count("--limit", line.value_or("--limit", std::to_string(kDefaultListLimit)), 1, 1000000);
  v1::ListJobsRequest request;
  if (line.has("--state")) request.set_state(parse_job_state("--state", line.value_or("--state", "")));
  if (line.has("--sweep")) request.set_sweep_id(line.value_or("--sweep", ""));

  std::vector<v1::Job> jobs;
  std::set<std::string> tokens_seen;  // a coordinator that hands out a token twice would loop forever
  while (static_cast<int>(jobs.size()) < limit) {
    request.set_page_size(std::min(kMaxPageSize, limit - static_cast<int>(jobs.size())));
    v1::ListJobsResponse page = session.coordinator().list_jobs(request);
    for (auto& job : *page.mutable_jobs())
      if (static_cast<int>(jobs.size()) < limit) jobs.push_back(std::move(job));
    const std::string& token = page.next_page_token();
    if (token.empty() || !tokens_seen.insert(token).second) break;
    request.set_page_token(token);
  }

  if (jobs.empty()) {
    session.console().err << "no jobs"
                          << (line.has("--state") ? " in state " + state_name(request.state()) : std::string())
                          << '\n';
    return kExitOk;
  }
  session.console().out << jobs_table(jobs, Clock::now());
  return kExitOk;
}

int get(Session& session, const CommandLine& line) {
  const std::string format = parse_choice("--format", line.value_or("--format", "text"), {"text", "json"});
  const v1::Job job = session.coordinator().get_job(job_id_argument(line));
  session.console().out << (format == "json" ? job_json(job) : job_details(job, Clock::now()));
  return kExitOk;
}

int watch(Session& session, const CommandLine& line) { return watch_job(session, job_id_argument(line)); }

int cancel(Session& session, const CommandLine& line) {
  const v1::Job job = session.coordinator().cancel_job(job_id_argument(line));
  std::string text = job.job_id() + " " + state_name(job.state());
  if (job.cancel_requested()) text += ": cancel requested, stopping at its next step";
  session.console().out << text << '\n';
  return kExitOk;
}

int metrics(Session& session, const CommandLine& line) {
  const std::string format = parse_choice("--format", line.value_or("--format", "csv"), {"csv", "json"});
  const v1::GetMetricsResponse response = session.coordinator().get_metrics(job_id_argument(line));
  session.console().out << (format == "csv" ? metrics_csv(response) : metrics_json_lines(response));
  return kExitOk;
}

// Polls the sweep until every job has ended, printing each job's state changes.
int watch_sweep(Session& session, const std::string& sweep_id) {
  std::map<std::string, v1::JobState> seen;
  for (;;) {
    const v1::SweepStatus st = session.coordinator().get_sweep(sweep_id);
    int open = 0, bad = 0;
    for (const auto& j : st.jobs()) {
      if (seen[j.job_id()] != j.state()) {
        seen[j.job_id()] = j.state();
        std::string line = j.job_id() + "  " + state_name(j.state()) + "  " + j.sweep_point();
        if (!j.error().empty()) line += ": " + j.error();
        session.console().out << line << '\n' << std::flush;
      }
      const bool ended = j.state() == v1::SUCCEEDED || j.state() == v1::FAILED || j.state() == v1::CANCELLED;
      open += ended ? 0 : 1;
      bad += ended && j.state() != v1::SUCCEEDED ? 1 : 0;
    }
    if (open == 0) {
      session.console().out << sweep_id << ": " << st.jobs_size() - bad << " of " << st.jobs_size()
                            << " jobs succeeded; `prelude compare " << sweep_id << "` compares them\n";
      return bad ? kExitJobFailed : kExitOk;
    }
    std::this_thread::sleep_for(std::chrono::seconds(2));
  }
}

int sweep(Session& session, const CommandLine& line) {
  const v1::SweepSpec spec = load_sweep_file(line.arguments.at(0));
  const v1::SweepStatus st = session.coordinator().submit_sweep(spec);
  session.console().out << st.sweep().sweep_id() << '\n' << std::flush;
  for (const auto& j : st.jobs()) session.console().err << j.job_id() << "  " << j.sweep_point() << '\n';
  return line.has("--watch") ? watch_sweep(session, st.sweep().sweep_id()) : kExitOk;
}

int compare(Session& session, const CommandLine& line) {
  const std::string format =
      parse_choice("--format", line.value_or("--format", "text"), {"text", "markdown", "csv", "json"});
  double target = 0;
  if (line.has("--target-loss")) {
    const std::string v = line.value_or("--target-loss", "");
    char* end = nullptr;
    target = std::strtod(v.c_str(), &end);
    if (v.empty() || *end || !(target > 0)) throw UsageError("--target-loss: must be a positive number, got '" + v + "'");
  }
  const v1::SweepStatus st = session.coordinator().get_sweep(line.arguments.at(0));
  std::map<std::string, v1::GetMetricsResponse> metrics;
  if (target > 0)
    for (const auto& j : st.jobs()) metrics[j.job_id()] = session.coordinator().get_metrics(j.job_id());
  session.console().out << render_comparison(compare_rows(st, metrics, target), format, target);
  return kExitOk;
}

}  // namespace

const std::vector<CommandSpec>& commands() {
  static const std::vector<CommandSpec> all = {
      {"submit",
       {"JOB.json"},
       "queue a training job; prints its id",
       "Reads JOB.json (the JSON form of prelude.v1.JobSpec, as `prelude-worker run` takes; `-` reads\n"
       "standard input), checks its syntax locally (errors name the file, line and column, and nothing\n"
       "is sent), submits it and prints the new job's id alone on stdout. The coordinator fills in the\n"
       "defaults and validates the spec: a bad field is INVALID_ARGUMENT naming it (exit 3).\n"
       "With --watch, then follows the job like `prelude watch` and exits as it does.",
       {{"--watch", "", "follow the job to its end (exit 4 if it fails or is cancelled)"}},
       {"prelude submit examples/jobs/fmnist-prelu.json", "id=$(prelude submit job.json) && prelude watch \"$id\"",
        "prelude submit examples/jobs/quick.json --watch"},
       submit},
      {"list",
       {},
       "list jobs, newest first",
       "A table of jobs, newest first: ID, STATE, NAME, MODEL (preset, activation, init scheme),\n"
       "PROGRESS (steps done/total), TEST ACC (latest), POOL and AGE. Fetches as many pages as --limit\n"
       "needs.",
       {{"--state", "STATE", "only jobs in STATE: queued, running, succeeded, failed or cancelled"},
        {"--sweep", "SWEEP_ID", "only the jobs of this sweep"},
        {"--limit", "N", "at most N jobs (default 50)"}},
       {"prelude list", "prelude list --state running", "prelude list --limit 500"},
       list},
      {"get",
       {"ID"},
       "show a job: state, error, metrics, learned slopes",
       "The job's state (and error), model, data set, training settings, pool, attempts, times, its\n"
       "latest progress and metrics (test accuracy, losses) and the slopes its PReLU layers learned\n"
       "(per activation layer: the value, or mean, min and max over channels). --format json prints\n"
       "the Job message in protobuf JSON; its \"spec\" is a valid job file.",
       {{"--format", "FORMAT", "text (default) or json"}},
       {"prelude get job-000001", "prelude get job-000001 --format json | jq .spec > again.json"},
       get},
      {"watch",
       {"ID"},
       "follow a job to its end",
       "Prints the job's history, then its events as they happen, until it ends; then its final state.\n"
       "On a terminal, training steps redraw one live line (state, epoch, progress bar, step, loss,\n"
       "accuracy, images/s, ETA) and epochs and state changes print permanent lines. Otherwise (a\n"
       "pipe, a file) each state change, step, epoch and summary is one plain line starting with its\n"
       "time in UTC. A broken stream (a coordinator restart) is resumed after the last event seen, a\n"
       "few times. Exit 0 if the job SUCCEEDED, 4 if it FAILED or was CANCELLED.",
       {},
       {"prelude watch job-000001", "prelude watch job-000001 > job-000001.log"},
       watch},
      {"cancel",
       {"ID"},
       "cancel a job",
       "A queued job is cancelled at once; a running one stops at its next step on every rank (the\n"
       "printed state is then still RUNNING, with the cancel requested). Cancelling a job that has\n"
       "already ended is FAILED_PRECONDITION (exit 3).",
       {},
       {"prelude cancel job-000002"},
       cancel},
      {"metrics",
       {"ID"},
       "print a job's training history as CSV or JSON lines",
       "csv (default): a header, then one row per step, epoch and summary event with the columns\n"
       "  event,epoch,step,loss,accuracy,learning_rate,train_loss,train_accuracy,test_loss,\n"
       "  test_accuracy,images_per_second\n"
       "(an empty cell where the event has no value; a summary row gives its step count as step and\n"
       "its training images/s as images_per_second). json: every training event, diagnostics and\n"
       "learned slopes (alphas) included, one JSON object per line with proto field names: the\n"
       "lines `prelude-worker run` prints.",
       {{"--format", "FORMAT", "csv (default) or json"}},
       {"prelude metrics job-000001 > curves.csv", "prelude metrics job-000001 --format json | jq -c .alphas"},
       metrics},
      {"sweep",
       {"SWEEP.json"},
       "queue a sweep: one job per grid point; prints its id",
       "Reads SWEEP.json (the JSON form of prelude.v1.SweepSpec: a base job spec, a grid over its\n"
       "fields and seeds), submits it and prints the sweep id on stdout and each job and its grid\n"
       "point on stderr. The coordinator refuses the whole sweep if any point is invalid, naming the\n"
       "axis, value or point. With --watch, follows every job to its end (exit 4 if any failed).",
       {{"--watch", "", "follow the sweep's jobs to their end"}},
       {"prelude sweep examples/experiments/rectifiers.json --watch"},
       sweep},
      {"compare",
       {"SWEEP_ID"},
       "compare a sweep's grid points: accuracy, loss, speed, learned slopes",
       "One row per grid point, seeds pooled: jobs that succeeded, mean +- standard deviation over\n"
       "seeds of the final test accuracy and loss, training images/s, the steps until the training\n"
       "loss first reached --target-loss, and the mean learned slope per activation layer. Failed\n"
       "jobs (diverged, stalled) are listed with their reasons.",
       {{"--format", "FORMAT", "text (default), markdown, csv or json"},
        {"--target-loss", "LOSS", "also report the steps to reach this training loss"}},
       {"prelude compare sweep-000001", "prelude compare sweep-000001 --format markdown --target-loss 0.5"},
       compare},
  };
  return all;
}

const CommandSpec* find_command(const std::string& name) {
  for (const auto& c : commands())
    if (c.name == name) return &c;
  return nullptr;
}

}  // namespace prelude::client
