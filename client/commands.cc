#include "client/commands.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <set>

#include "client/compare.h"
#include "client/download.h"
#include "client/render.h"
#include "client/watch.h"
#include "spec/job_spec.h"
#include "spec/sweep.h"

namespace prelude::client {

namespace v1 = prelude::v1;

namespace {

constexpr size_t kMaxJobBytes = 16u << 20;  // as load_job_file
constexpr int kDefaultListLimit = 50;
constexpr int kDefaultAuditLimit = 100;
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
const std::string& id_argument(const CommandLine& line) {
  const std::string& id = line.arguments.at(0);
  if (id.empty()) throw UsageError("ID: must not be empty");
  return id;
}

// get, watch and cancel take a job id or a sweep id; the coordinator names sweeps
// "sweep-000001" and jobs "job-000001".
bool is_sweep_id(const std::string& id) { return id.rfind("sweep-", 0) == 0; }

// What to run on a sweep instead of a command that takes a job id only.
std::string sweep_alternative(const std::string& command, const std::string& sweep_id) {
  if (command == "metrics")
    return "`prelude compare " + sweep_id + "` compares a sweep's jobs, `prelude get " + sweep_id + "` lists them";
  return "`prelude get " + sweep_id + "` lists its jobs";
}

// The ID argument of a command that takes a job id only: a sweep id is a usage error.
const std::string& job_id_argument(const CommandLine& line, const std::string& command) {
  const std::string& id = id_argument(line);
  if (is_sweep_id(id))
    throw UsageError("ID: " + command + " takes a job id, not a sweep id ('" + id + "'); " +
                     sweep_alternative(command, id));
  return id;
}

// The -o of download: a file, or "-" for standard output when that is not a terminal.
std::string output_argument(const CommandLine& line, const Console& console) {
  const std::string path = line.value_or("-o", "");
  if (path.empty()) throw UsageError("-o: needs a file name, or - for standard output");
  if (path == "-" && console.live)
    throw UsageError("-o -: standard output is a terminal; redirect it to a file or a pipe, or give -o FILE");
  return path;
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
  const std::string& id = id_argument(line);
  if (is_sweep_id(id)) {
    const v1::SweepStatus status = session.coordinator().get_sweep(id);
    session.console().out << (format == "json" ? sweep_json(status) : sweep_details(status, Clock::now()));
    return kExitOk;
  }
  const v1::Job job = session.coordinator().get_job(id);
  session.console().out << (format == "json" ? job_json(job) : job_details(job, Clock::now()));
  return kExitOk;
}

int watch(Session& session, const CommandLine& line) {
  const std::string& id = id_argument(line);
  return is_sweep_id(id) ? watch_sweep(session, id) : watch_job(session, id);
}

int cancel(Session& session, const CommandLine& line) {
  const std::string& id = id_argument(line);
  if (is_sweep_id(id)) {
    // CancelSweep answers with the sweep after it; the sweep before tells which jobs
    // this call cancelled and which had ended (or been cancelled) already.
    const v1::SweepStatus before = session.coordinator().get_sweep(id);
    const v1::SweepStatus after = session.coordinator().cancel_sweep(id);
    session.console().out << sweep_cancel_text(before, after);
    return kExitOk;
  }
  session.console().out << cancel_line(session.coordinator().cancel_job(id)) << '\n';
  return kExitOk;
}

int metrics(Session& session, const CommandLine& line) {
  const std::string format = parse_choice("--format", line.value_or("--format", "csv"), {"csv", "json"});
  const std::string which = line.value_or("--attempt", "latest");
  const bool all = which == "all";
  const int attempt = all || which == "latest" ? 0 : parse_count("--attempt", which, 1, 1000000);
  const std::string& id = job_id_argument(line, "metrics");
  const v1::GetMetricsResponse response = session.coordinator().get_metrics(id, attempt, all);
  // A job that trained more than once: say which attempt this is, and how to see the others.
  if (!all && !line.has("--attempt") && response.job().attempts() > 1)
    session.console().err << "prelude: " << id << ": attempt " << response.attempt() << " of "
                          << response.job().attempts() << " (--attempt N or --attempt all for the others)\n";
  session.console().out << (format == "csv" ? metrics_csv(response, all) : metrics_json_lines(response, all));
  return kExitOk;
}

int checkpoints(Session& session, const CommandLine& line) {
  const std::string format = parse_choice("--format", line.value_or("--format", "table"), {"table", "json"});
  const v1::Job job = session.coordinator().get_job(job_id_argument(line, "checkpoints"));
  if (format == "json") {
    session.console().out << checkpoints_json(job);
    return kExitOk;
  }
  if (job.checkpoints_size() == 0) {
    session.console().err << no_checkpoints_line(job) << '\n';
    return kExitOk;
  }
  session.console().out << checkpoints_table(job);
  return kExitOk;
}

int download(Session& session, const CommandLine& line) {
  v1::DownloadModelRequest request;
  request.set_job_id(job_id_argument(line, "download"));
  const std::string path = output_argument(line, session.console());
  // No --checkpoint: the coordinator's default (the final model, else the latest).
  if (line.has("--checkpoint"))
    request.set_checkpoint(parse_checkpoint("--checkpoint", line.value_or("--checkpoint", "")));
  const std::string format = parse_choice("--format", line.value_or("--format", "prelude"), {"prelude", "onnx"});
  request.set_format(format == "onnx" ? v1::DownloadModelRequest::ONNX : v1::DownloadModelRequest::PRELUDE);
  const DownloadedModel model = download_model(session, request, path);
  session.console().err << download_line(path == "-" ? "standard output" : path, request.job_id(), format,
                                         model.checkpoint, model.bytes)
                        << '\n';
  return kExitOk;
}

int logs(Session& session, const CommandLine& line) {
  const std::string& id = job_id_argument(line, "logs");
  v1::StreamLogsRequest request;
  request.set_job_id(id);
  if (line.has("--attempt")) request.set_attempt(parse_count("--attempt", line.value_or("--attempt", ""), 1, 1000000));
  request.set_follow(line.has("--follow"));
  Console& console = session.console();
  auto stream = session.coordinator().stream_logs(request);
  v1::StreamLogsResponse response;
  int attempt = -1;
  while (stream->next(&response)) {
    if (response.attempt() != attempt) {
      attempt = response.attempt();
      if (attempt == 0) {
        console.err << "prelude: " << id << " has not started: no output yet"
                    << (request.follow() ? "; waiting for it" : "") << '\n';
      } else {
        console.err << "prelude: " << id << ", attempt " << attempt << '\n';
      }
      if (response.dropped() > 0)
        console.err << "prelude: (the coordinator no longer keeps the first " << response.dropped()
                    << " lines of this attempt)\n";
    }
    for (const auto& l : response.lines()) console.out << log_line_text(l) << '\n';
    console.out << std::flush;
  }
  const grpc::Status status = stream->finish();
  if (!status.ok()) throw session.coordinator().error(status);
  return kExitOk;
}

int remove_job(Session& session, const CommandLine& line) {
  const std::string& id = job_id_argument(line, "delete");
  session.coordinator().delete_job(id);
  session.console().out << "deleted " << id << '\n';
  return kExitOk;
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

int audit(Session& session, const CommandLine& line) {
  const int limit = parse_count("--limit", line.value_or("--limit", std::to_string(kDefaultAuditLimit)), 1, 1000000);
  const std::string format = parse_choice("--format", line.value_or("--format", "table"), {"table", "json"});
  v1::ListAuditRequest request;
  if (line.has("--user")) request.set_user(line.value_or("--user", ""));
  if (line.has("--action")) request.set_action(line.value_or("--action", ""));
  if (line.has("--since")) *request.mutable_since() = parse_since("--since", line.value_or("--since", ""), Clock::now());

  std::vector<v1::AuditEntry> entries;
  std::set<std::string> tokens_seen;  // a coordinator that hands out a token twice would loop forever
  while (static_cast<int>(entries.size()) < limit) {
    request.set_page_size(std::min(kMaxPageSize, limit - static_cast<int>(entries.size())));
    v1::ListAuditResponse page = session.coordinator().list_audit(request);
    for (auto& e : *page.mutable_entries())
      if (static_cast<int>(entries.size()) < limit) entries.push_back(std::move(e));
    const std::string& token = page.next_page_token();
    if (token.empty() || !tokens_seen.insert(token).second) break;
    request.set_page_token(token);
  }

  if (format == "json") {
    session.console().out << audit_json_lines(entries);
    return kExitOk;
  }
  if (entries.empty()) {
    session.console().err << "no audit entries"
                          << (line.has("--user") || line.has("--action") || line.has("--since") ? " match" : "")
                          << '\n';
    return kExitOk;
  }
  session.console().out << audit_table(entries);
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
       "show a job (state, metrics, learned slopes, checkpoints) or a sweep (its jobs)",
       "ID is a job id (job-000001) or a sweep id (sweep-000001).\n"
       "A job: its state (and error), model, data set, training settings, pool, attempts, times, its\n"
       "latest progress and metrics (test accuracy, losses) and the slopes its PReLU layers learned\n"
       "(per activation layer: the value, or mean, min and max over channels). Once it has ended, the\n"
       "test set by class: each class's accuracy and the confusion matrix (a row per true class, a\n"
       "column per predicted class, numbered as the rows). Then the checkpoints it keeps, as\n"
       "`prelude checkpoints` lists them. --format json prints the Job message in protobuf JSON; its\n"
       "\"spec\" is a valid job file.\n"
       "A sweep: its name, creation time and how many jobs are in each state, then a table of its\n"
       "jobs in grid order (ID, STATE, POINT, PROGRESS, TEST ACC) and the errors of the failed ones;\n"
       "`prelude compare SWEEP_ID` compares its grid points. --format json prints the SweepStatus\n"
       "message (the sweep and every job) in protobuf JSON.",
       {{"--format", "FORMAT", "text (default) or json"}},
       {"prelude get job-000001", "prelude get job-000001 --format json | jq .spec > again.json",
        "prelude get sweep-000001"},
       get},
      {"watch",
       {"ID"},
       "follow a job, or every job of a sweep, to its end",
       "ID is a job id (job-000001) or a sweep id (sweep-000001).\n"
       "A job: prints its history, then its events as they happen, until it ends; then its final state.\n"
       "On a terminal, training steps redraw one live line (state, epoch, progress bar, step, loss,\n"
       "accuracy, images/s, ETA) and epochs and state changes print permanent lines. Otherwise (a\n"
       "pipe, a file) each state change, step, epoch and summary is one plain line starting with its\n"
       "time in UTC. A broken stream (a coordinator restart) is resumed after the last event seen, a\n"
       "few times. Exit 0 if the job SUCCEEDED, 4 if it FAILED or was CANCELLED.\n"
       "A sweep: prints each job's state, then one line whenever a job's state changes, e.g.\n"
       "  job-000003  FAILED  model.preset=plain-22 training.seed=1: diverged at step 60: loss is nan\n"
       "until every job has ended; then how many succeeded. On a terminal, one live line below them\n"
       "shows the whole sweep's progress. A broken stream is resumed a few times, printing only what\n"
       "changed meanwhile. Exit 0 if every job SUCCEEDED, 4 if any FAILED or was CANCELLED.",
       {},
       {"prelude watch job-000001", "prelude watch job-000001 > job-000001.log", "prelude watch sweep-000001"},
       watch},
      {"cancel",
       {"ID"},
       "cancel a job, or every job of a sweep that has not ended",
       "ID is a job id (job-000002) or a sweep id (sweep-000001).\n"
       "A queued job is cancelled at once; a running one stops at its next step on every rank (the\n"
       "printed state is then still RUNNING, with the cancel requested). Cancelling a job that has\n"
       "already ended is FAILED_PRECONDITION (exit 3).\n"
       "A sweep: cancels each of its jobs that has not ended, as above, printing a line for each, then\n"
       "a summary: how many were cancelled, how many are stopping, how many had already ended. A\n"
       "sweep whose jobs have all ended has nothing to cancel (exit 0).",
       {},
       {"prelude cancel job-000002", "prelude cancel sweep-000001"},
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
       "lines `prelude-worker run` prints.\n"
       "A job requeued after losing its pool trains again (from its checkpoint, or from the start):\n"
       "by default only its latest attempt is printed (stderr says which, when there were several);\n"
       "--attempt N prints attempt N, --attempt all every attempt, with a first column (csv) or\n"
       "field (json) `attempt`. The history is fetched in pages, however long it is.",
       {{"--format", "FORMAT", "csv (default) or json"},
        {"--attempt", "N|all", "which attempt: a number, or all (default: the latest)"}},
       {"prelude metrics job-000001 > curves.csv", "prelude metrics job-000001 --format json | jq -c .alphas",
        "prelude metrics job-000001 --attempt all"},
       metrics},
      {"checkpoints",
       {"ID"},
       "list the checkpoints kept of a job",
       "The checkpoints the coordinator keeps of job ID, complete and verified, oldest first: the latest\n"
       "few and the final model. A table: STEP (optimizer steps done), EPOCHS (epochs completed), FINAL\n"
       "(the model after the last step), SIZE, SHA256 (its first 12 hex digits) and CREATED (UTC).\n"
       "--format json prints them as a JSON array of CheckpointInfo in protobuf JSON, one a line, every\n"
       "field present. A job without any says so on stderr (exit 0). `prelude download` fetches one.",
       {{"--format", "FORMAT", "table (default) or json"}},
       {"prelude checkpoints job-000001", "prelude checkpoints job-000001 --format json | jq -r '.[].sha256'"},
       checkpoints},
      {"download",
       {"ID"},
       "download a job's trained model, as a Prelude checkpoint or as ONNX",
       "Fetches a kept checkpoint of job ID (DownloadModel) and writes it to FILE: by default the final\n"
       "model, or the latest checkpoint while there is none. --format prelude (default) is the\n"
       "checkpoint file itself, which `prelude-worker run --resume` continues from and\n"
       "`prelude-worker export/eval/predict` read; --format onnx is the model as ONNX (opset 13),\n"
       "converted by the coordinator. The bytes go to a temporary file beside FILE (.FILE.tmp-PID),\n"
       "which becomes FILE only once its length and SHA-256 match what the coordinator announced\n"
       "(FILE is replaced if it exists); otherwise it is removed, FILE is left as it was, and the\n"
       "command fails with DATA_LOSS, or the stream's own error if it broke (exit 3). `-o -` writes to\n"
       "stdout (not a terminal), once the whole model has arrived and checked out. Prints what it\n"
       "wrote on stderr: the file, the checkpoint's step, the format and the size. An unknown job or\n"
       "checkpoint is NOT_FOUND; the coordinator's message lists the checkpoints it keeps.",
       {{"--checkpoint", "WHICH", "final, latest or a step number (default: final if the job has one, else latest)"},
        {"--format", "FORMAT", "prelude (default) or onnx"},
        {"-o", "FILE", "where to write it (required); - for stdout"}},
       {"prelude download job-000001 -o fmnist.ckpt", "prelude download job-000001 --format onnx -o fmnist.onnx",
        "prelude download job-000001 --checkpoint 1200 -o step-1200.ckpt",
        "prelude download job-000001 -o - | sha256sum"},
       download,
       {"-o"}},
      {"logs",
       {"ID"},
       "print a job's worker output: every rank's progress, warnings and errors",
       "The lines the pool's ranks wrote while training job ID, as the coordinator keeps them: one\n"
       "line each, `TIME rank R  TEXT` (UTC, milliseconds). By default the latest attempt (stderr\n"
       "says which); --attempt N for attempt N. Rank 0's lines arrive while the job runs (within a\n"
       "heartbeat, ~2 s); the other ranks' when the attempt ends. The coordinator keeps the newest\n"
       "lines of each attempt (--max-log-lines, 10000); stderr says how many earlier ones it dropped.\n"
       "With --follow, waits for new lines until the job ends, going on to the next attempt when the\n"
       "job is requeued (unless --attempt is given).",
       {{"--attempt", "N", "which attempt (default: the latest)"},
        {"--follow", "", "keep printing new lines until the job ends"}},
       {"prelude logs job-000001", "prelude logs job-000001 --follow", "prelude logs job-000001 --attempt 1"},
       logs},
      {"delete",
       {"ID"},
       "delete an ended job: its record, events and checkpoints",
       "Removes job ID from the coordinator: its record, its event history and every checkpoint it\n"
       "keeps, for good; prints `deleted ID`. Only a job that has ended can be deleted: a queued or\n"
       "running one is FAILED_PRECONDITION (exit 3); cancel it first. Download its model first if you\n"
       "want to keep it.",
       {},
       {"prelude delete job-000001"},
       remove_job},
      {"sweep",
       {"SWEEP.json"},
       "queue a sweep: one job per grid point; prints its id",
       "Reads SWEEP.json (the JSON form of prelude.v1.SweepSpec: a base job spec, a grid over its\n"
       "fields and seeds), submits it and prints the sweep id on stdout and each job and its grid\n"
       "point on stderr. The coordinator refuses the whole sweep if any point is invalid, naming the\n"
       "axis, value or point. With --watch, then follows the sweep like `prelude watch SWEEP_ID` and\n"
       "exits as it does (4 if any job failed or was cancelled).",
       {{"--watch", "", "follow the sweep's jobs to their end (exit 4 if any fails or is cancelled)"}},
       {"prelude sweep examples/experiments/rectifiers.json --watch",
        "id=$(prelude sweep examples/experiments/slopes.json) && prelude watch \"$id\""},
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
      {"audit",
       {},
       "show the coordinator's audit trail, newest first (admins only)",
       "Who changed what, and who was refused: every submit, cancel and delete (and the other calls\n"
       "that change something) and every refused token or permission, newest first, as the\n"
       "coordinator recorded them (ListAudit; only a caller with the admin role may read it, others\n"
       "get PERMISSION_DENIED, exit 3). A table: TIME (UTC), USER, ROLE, PEER (where the call came\n"
       "from), ACTION, TARGET (the job, sweep or pool id) and OUTCOME (ok, or the status code and\n"
       "message the caller got), and DETAIL when an entry has one. Refusals over 20 a second are\n"
       "not recorded one by one: one entry counts them and names the peers (\"1234 more refusals\n"
       "from ipv4:10.0.0.5 (1200), ...\"). The coordinator keeps its newest --audit-keep entries.\n"
       "--format json prints one AuditEntry a line in protobuf JSON, every field present.\n"
       "--since takes a time ago (90s, 30m, 2h, 7d, 2w, 1h30m), a date (2026-01-02, midnight UTC) or\n"
       "a time (2026-01-02T03:04:05Z). Fetches as many pages as --limit needs.",
       {{"--user", "USER", "only this user's entries"},
        {"--action", "ACTION", "only this action's: submit, cancel, delete, token-refused, ..."},
        {"--since", "WHEN", "only entries at or after WHEN: 2h, 7d, 2026-01-02, 2026-01-02T03:04:05Z"},
        {"--limit", "N", "at most N entries (default 100)"},
        {"--format", "FORMAT", "table (default) or json"}},
       {"prelude audit", "prelude audit --action token-refused --since 1h",
        "prelude audit --user alice --limit 1000 --format json | jq -r .target"},
       audit},
  };
  return all;
}

const CommandSpec* find_command(const std::string& name) {
  for (const auto& c : commands())
    if (c.name == name) return &c;
  return nullptr;
}

}  // namespace prelude::client
