#include "client/render.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>

#include "common/job_state.h"
#include "spec/events.h"
#include "spec/job_spec.h"

namespace prelude::client {

namespace v1 = prelude::v1;

namespace {

constexpr int kBarWidth = 20;
constexpr size_t kNameColumnWidth = 24;
constexpr int kLabelWidth = 11;

// Joins the non-empty parts with `separator`.
std::string join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string text;
  for (const auto& p : parts) {
    if (p.empty()) continue;
    if (!text.empty()) text += separator;
    text += p;
  }
  return text;
}

std::string plural(double n, const std::string& one, const std::string& many) {
  return compact(n) + " " + (n == 1 ? one : many);
}

std::string epoch_of(int epoch, const JobShape& shape) {
  return "epoch " + std::to_string(epoch) + "/" + compact(shape.epochs);
}

// "loss 0.4521 acc 0.8412" from whichever of the two are set.
std::string loss_and_accuracy(bool has_loss, double loss, bool has_accuracy, double accuracy) {
  return join({has_loss ? "loss " + fixed(loss, 4) : "", has_accuracy ? "acc " + fixed(accuracy, 4) : ""}, " ");
}

std::string images_per_second(double v) { return compact(std::round(v)) + " img/s"; }

std::string step_of(const v1::TrainingEvent& e) {
  std::string s = std::to_string(e.step());
  if (e.has_total_steps()) s += "/" + std::to_string(e.total_steps());
  return s;
}

// Loss, accuracy, learning rate, speed and ETA of a step event.
std::string step_figures(const v1::TrainingEvent& e, const JobShape& shape, bool with_eta) {
  std::vector<std::string> parts = {
      e.has_loss() ? "loss " + fixed(e.loss(), 4) : "",
      e.has_accuracy() ? "acc " + fixed(e.accuracy(), 4) : "",
      e.has_learning_rate() ? "lr " + compact(e.learning_rate()) : "",
      e.has_images_per_second() ? images_per_second(e.images_per_second()) : "",
  };
  if (with_eta)
    if (const auto eta = eta_seconds(e, shape)) parts.push_back("ETA " + duration(*eta));
  return join(parts, "  ");
}

std::string step_text(const v1::TrainingEvent& e, const JobShape& shape, bool with_eta) {
  return join({"step " + step_of(e), e.has_epoch() ? epoch_of(e.epoch(), shape) : "", step_figures(e, shape, with_eta)},
              "  ");
}

std::string epoch_text(const v1::TrainingEvent& e, const JobShape& shape) {
  const std::string train = loss_and_accuracy(e.has_train_loss(), e.train_loss(), e.has_train_accuracy(),
                                              e.train_accuracy());
  const std::string test = loss_and_accuracy(e.has_test_loss(), e.test_loss(), e.has_test_accuracy(),
                                             e.test_accuracy());
  return join({e.has_epoch() ? epoch_of(e.epoch(), shape) : "epoch", train.empty() ? "" : "train " + train,
               test.empty() ? "" : "test " + test},
              "  ");
}

std::string summary_text(const v1::TrainingEvent& e) {
  const std::string train = loss_and_accuracy(e.has_train_loss(), e.train_loss(), e.has_train_accuracy(),
                                              e.train_accuracy());
  const std::string test = loss_and_accuracy(e.has_test_loss(), e.test_loss(), e.has_test_accuracy(),
                                             e.test_accuracy());
  std::string steps;
  if (e.has_steps()) steps = plural(e.steps(), "step", "steps");
  if (e.has_seconds()) steps = join({steps, "in " + duration(e.seconds())}, " ");
  return join({"summary", test.empty() ? "" : "test " + test, train.empty() ? "" : "train " + train, steps,
               e.has_train_images_per_second() ? images_per_second(e.train_images_per_second()) : ""},
              "  ");
}

// A CSV cell: the number when set, else empty.
std::string cell(bool has, double v) { return has ? exact(v) : ""; }

std::string to_json(const google::protobuf::Message& message, bool proto_names, bool indent,
                    bool all_fields = false) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = proto_names;
  options.add_whitespace = indent;
  options.always_print_primitive_fields = all_fields;
  std::string json;
  const auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) throw std::runtime_error("cannot print " + message.GetTypeName() + " as JSON: " +
                                             std::string(status.message()));
  if (json.empty() || json.back() != '\n') json += '\n';
  return json;
}

// The PROGRESS column: "350/2811", the step count of a finished job, or "-".
std::string progress_cell(const v1::Job& job) {
  const auto& latest = job.latest_metrics();
  const auto& progress = job.progress();
  if (event_kind(latest) == v1::TrainingEvent::SUMMARY && latest.has_steps()) {
    std::string s = std::to_string(latest.steps());
    if (progress.has_total_steps()) s += "/" + std::to_string(progress.total_steps());
    return s;
  }
  if (progress.has_step()) return step_of(progress);
  return "-";
}

class Details {
 public:
  void add(const std::string& label, const std::string& value) {
    if (value.empty()) return;
    text_ += label + std::string(std::max<int>(2, kLabelWidth - static_cast<int>(label.size())), ' ') + value + "\n";
  }
  std::string text() const { return text_; }

 private:
  std::string text_;
};

std::string dataset_text(const v1::DatasetSpec& d) {
  std::string text = d.name().empty() ? d.train_images() + ", " + d.test_images() : d.name();
  std::vector<std::string> limits = {
      d.train_limit() > 0 ? "first " + std::to_string(d.train_limit()) + " training images" : "",
      d.test_limit() > 0 ? "first " + std::to_string(d.test_limit()) + " test images" : ""};
  const std::string l = join(limits, ", ");
  return l.empty() ? text : text + " (" + l + ")";
}

std::string training_spec_text(const v1::TrainingSpec& t) {
  std::string lr = "lr " + compact(t.learning_rate());
  switch (t.lr_schedule().kind()) {
    case v1::LrScheduleSpec::STEP: lr += " (step)"; break;
    case v1::LrScheduleSpec::COSINE: lr += " (cosine)"; break;
    default: break;
  }
  return join({plural(t.epochs(), "epoch", "epochs"), "batch " + std::to_string(t.batch_size()), lr,
               "momentum " + compact(t.momentum()), "weight decay " + compact(t.weight_decay()),
               "seed " + std::to_string(t.seed()),
               t.max_steps() > 0 ? "at most " + std::to_string(t.max_steps()) + " steps" : ""},
              ", ");
}

std::string time_with_age(const google::protobuf::Timestamp& t, Clock::time_point now) {
  if (!is_set(t)) return "";
  return timestamp(t) + " (" + age(t, now) + " ago)";
}

// What a running job with its cancel requested is doing (cancel, sweep watch lines).
const std::string kStoppingText = "cancel requested, stopping at its next step";

// Text from the coordinator (reasons, errors) on one line: control characters
// become spaces.
std::string one_line(std::string text) {
  for (auto& c : text)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  return text;
}

// "[#####---------------]" for a fraction done.
std::string bar(double done) {
  const int filled = static_cast<int>(std::lround(std::clamp(done, 0.0, 1.0) * kBarWidth));
  return "[" + std::string(filled, '#') + std::string(kBarWidth - filled, '-') + "]";
}

// "3 succeeded, 1 failed, 2 running": the jobs per state, in the order people ask
// about them (outcomes first); states no job is in are left out.
std::string state_counts(const std::vector<v1::JobState>& states) {
  std::vector<std::string> parts;
  size_t counted = 0;
  for (const v1::JobState state : {v1::SUCCEEDED, v1::FAILED, v1::CANCELLED, v1::RUNNING, v1::QUEUED}) {
    const auto n = static_cast<size_t>(std::count(states.begin(), states.end(), state));
    if (n == 0) continue;
    std::string name = state_name(state);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    parts.push_back(std::to_string(n) + " " + name);
    counted += n;
  }
  if (counted < states.size()) parts.push_back(std::to_string(states.size() - counted) + " in an unknown state");
  return join(parts, ", ");
}

// Each line of `text` indented by two spaces: a table under its heading line.
std::string indented(const std::string& text) {
  std::string out;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    const size_t stop = end == std::string::npos ? text.size() : end + 1;
    out += "  " + text.substr(start, stop - start);
    start = stop;
  }
  return out;
}

size_t widest_line(const std::string& text) {
  size_t widest = 0, start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    widest = std::max(widest, end - start);
    start = end + 1;
  }
  return widest;
}

// How many classes a summary reports on (0: no class data), and whether its
// confusion matrix is the square of that.
int class_count(const v1::TrainingEvent& e) { return std::max(e.class_accuracy_size(), e.class_names_size()); }
bool has_confusion_matrix(const v1::TrainingEvent& e) {
  const int n = class_count(e);
  return n > 0 && e.confusion_matrix_size() == n * n;
}

// The per-class rows, with the confusion matrix's columns or without them.
std::string class_rows(const v1::TrainingEvent& e, bool with_matrix) {
  const int n = class_count(e);
  std::vector<std::string> header = {"#", "CLASS", "TEST ACC"};
  if (with_matrix)
    for (int predicted = 0; predicted < n; ++predicted) header.push_back(std::to_string(predicted));
  Table table(header);
  for (size_t c = 0; c < header.size(); ++c)
    if (c != 1) table.align_right(c);
  for (int i = 0; i < n; ++i) {
    std::vector<std::string> row = {std::to_string(i), i < e.class_names_size() ? e.class_names(i) : "-",
                                    i < e.class_accuracy_size() ? fixed(e.class_accuracy(i), 4) : "-"};
    if (with_matrix)
      for (int predicted = 0; predicted < n; ++predicted)
        row.push_back(std::to_string(e.confusion_matrix(i * n + predicted)));
    table.add(row);
  }
  return table.render();
}

// The fields of `prelude get` up to the latest metrics, one "Label  value" line each.
std::string job_fields(const v1::Job& job, Clock::time_point now) {
  const v1::JobSpec spec = with_defaults(job.spec());
  const JobShape shape = job_shape(spec);
  Details d;
  d.add("ID", job.job_id());
  d.add("Name", spec.name());
  std::string state = state_name(job.state());
  if (job.cancel_requested()) state += " (cancel requested: stopping at its next step)";
  d.add("State", state);
  if (job.state() == v1::QUEUED && job.queue_position() > 0)
    d.add("Waiting", "#" + std::to_string(job.queue_position()) + " in the queue: " + job.waiting_reason());
  d.add("Error", job.error());
  d.add("Model", model_summary(spec));
  if (spec.model().layers_size() > 0) {
    try {
      d.add("Layers", describe_layers(expand_model(spec.model(), 10)));
    } catch (const std::exception&) {
      // An explicit model the client cannot expand: the summary above says enough.
    }
  }
  d.add("Dataset", dataset_text(spec.dataset()));
  d.add("Training", training_spec_text(spec.training()));
  std::string pool = job.pool_id();
  if (!pool.empty() && job.ranks() > 0) pool += " (" + plural(job.ranks(), "rank", "ranks") + ")";
  d.add("Pool", pool);
  if (spec.resources().has_ranks())
    d.add("Resources", plural(spec.resources().ranks(), "rank", "ranks") + " of " +
                           plural(spec.resources().threads_per_rank(), "thread", "threads"));
  std::string slurm = job.slurm_job_id();
  if (!slurm.empty() && job.slurm_submissions() > 1)
    slurm += " (submission " + std::to_string(job.slurm_submissions()) + ")";
  d.add("Slurm job", slurm);
  d.add("Owner", job.owner());
  d.add("Attempts", job.attempts() > 0 ? std::to_string(job.attempts()) : "");
  d.add("Created", time_with_age(job.create_time(), now));
  d.add("Started", time_with_age(job.start_time(), now));
  std::string ended = time_with_age(job.end_time(), now);
  if (!ended.empty() && is_set(job.start_time()))
    ended += ", ran " + duration(seconds_between(job.start_time(), job.end_time()));
  d.add("Ended", ended);
  if (job.has_progress() && job.progress().has_step())
    d.add("Progress", step_text(job.progress(), shape, job.state() == v1::RUNNING));
  if (job.has_latest_metrics()) d.add("Metrics", training_text(job.latest_metrics(), shape));
  return d.text();
}

// The learned slopes, one aligned line per activation layer under their heading.
std::string slopes_section(const v1::TrainingEvent& latest) {
  if (latest.alphas_size() == 0) return "";
  const bool summary = event_kind(latest) == v1::TrainingEvent::SUMMARY;
  const std::string when = summary              ? "at the end"
                           : latest.has_epoch() ? "after epoch " + std::to_string(latest.epoch())
                                                : "latest";
  Details d;
  d.add("Slopes", "learned per activation layer, " + when + ":");
  size_t width = 0;
  for (const auto& layer : latest.alphas()) width = std::max(width, layer.layer().size());
  std::string lines;
  for (const auto& layer : latest.alphas())
    lines += "  " + layer.layer() + std::string(width - layer.layer().size() + 2, ' ') + slopes_text(layer) + "\n";
  return d.text() + lines;
}

// A summary's results by class under their heading.
std::string classes_section(const v1::TrainingEvent& latest) {
  if (event_kind(latest) != v1::TrainingEvent::SUMMARY || class_count(latest) == 0) return "";
  Details d;
  d.add("By class", has_confusion_matrix(latest)
                        ? "test set at the end: accuracy, confusion matrix (rows: true class, columns: predicted)"
                        : "test set at the end:");
  return d.text() + indented(class_table(latest));
}

// The kept checkpoints under their heading, with how to download one.
std::string checkpoints_section(const v1::Job& job) {
  if (job.checkpoints_size() == 0) return "";
  const bool has_final = std::any_of(job.checkpoints().begin(), job.checkpoints().end(),
                                     [](const v1::CheckpointInfo& c) { return c.final(); });
  Details d;
  d.add("Kept", plural(job.checkpoints_size(), "checkpoint", "checkpoints") + "; `prelude download " + job.job_id() +
                    " -o FILE` gets the " + (has_final ? "final model" : "latest checkpoint"));
  return d.text() + indented(checkpoints_table(job));
}

// The data set's files as the pool of the job's first attempt declared them (later
// attempts go only to pools with the same digests), under their heading.
std::string data_files_section(const v1::Job& job) {
  if (job.data_files_size() == 0) return "";
  Details d;
  d.add("Files", "of the data set as its first attempt trained on them (later attempts only where they are the same):");
  Table table({"FILE", "SIZE", "SHA256"});
  table.align_right(1);
  for (const auto& f : job.data_files()) table.add({f.path(), byte_size(f.size()), f.sha256()});
  return d.text() + indented(table.render());
}

}  // namespace

JobShape job_shape(const v1::JobSpec& spec) {
  const v1::TrainingSpec t = with_defaults(spec).training();
  JobShape shape;
  if (t.has_epochs() && t.epochs() > 0) shape.epochs = t.epochs();
  if (t.has_batch_size() && t.batch_size() > 0) shape.batch_size = t.batch_size();
  return shape;
}

// ---- list / get

std::string jobs_table(const std::vector<v1::Job>& jobs, Clock::time_point now) {
  Table table({"ID", "STATE", "NAME", "MODEL", "PROGRESS", "TEST ACC", "POOL", "AGE"});
  for (const auto& job : jobs) {
    const auto& latest = job.latest_metrics();
    std::string state = state_name(job.state());
    if (job.state() == v1::QUEUED && job.queue_position() > 0) state += " #" + std::to_string(job.queue_position());
    table.add({job.job_id(), state,
               job.spec().name().empty() ? "-" : truncate(job.spec().name(), kNameColumnWidth),
               model_summary(job.spec()), progress_cell(job),
               latest.has_test_accuracy() ? fixed(latest.test_accuracy(), 4) : "-",
               job.pool_id().empty() ? "-" : job.pool_id(), age(job.create_time(), now)});
  }
  return table.render();
}

std::string job_details(const v1::Job& job, Clock::time_point now) {
  const auto& latest = job.latest_metrics();
  return job_fields(job, now) + data_files_section(job) + slopes_section(latest) + classes_section(latest) +
         checkpoints_section(job);
}

std::string class_table(const v1::TrainingEvent& summary) {
  if (class_count(summary) == 0) return "";
  if (!has_confusion_matrix(summary)) return class_rows(summary, /*with_matrix=*/false);
  const std::string full = class_rows(summary, /*with_matrix=*/true);
  if (widest_line(full) <= kMaxClassTableWidth) return full;
  const std::string n = std::to_string(class_count(summary));
  return class_rows(summary, /*with_matrix=*/false) + "(the " + n + " x " + n +
         " confusion matrix is too wide to show here: see --format json, latestMetrics.confusionMatrix)\n";
}

std::string job_json(const v1::Job& job) { return to_json(job, /*proto_names=*/false, /*indent=*/true); }

std::string slopes_text(const v1::LayerSlopes& slopes) {
  const auto& v = slopes.values();
  if (v.empty()) return "-";
  if (v.size() <= 4) {
    std::vector<std::string> values;
    for (float x : v) values.push_back(fixed(x, 4));
    return join(values, " ");
  }
  double sum = 0;
  for (float x : v) sum += x;
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  return std::to_string(v.size()) + " channels: mean " + fixed(sum / v.size(), 4) + ", min " + fixed(*lo, 4) +
         ", max " + fixed(*hi, 4);
}

// ---- checkpoints and models

std::string checkpoints_table(const v1::Job& job) {
  constexpr size_t kShaDigits = 12;  // enough to tell checkpoints apart and to match them by eye
  Table table({"STEP", "EPOCHS", "FINAL", "SIZE", "SHA256", "CREATED"});
  for (size_t c : {0, 1, 3}) table.align_right(c);
  for (const auto& c : job.checkpoints())
    // CheckpointInfo.epoch is the epoch in progress (or next), 0-based: the epochs completed.
    table.add({std::to_string(c.step()), std::to_string(c.epoch()), c.final() ? "yes" : "-", byte_size(c.bytes()),
               c.sha256().substr(0, kShaDigits), timestamp(c.create_time())});
  return table.render();
}

std::string checkpoints_json(const v1::Job& job) {
  if (job.checkpoints_size() == 0) return "[]\n";
  // One checkpoint per line: a short list reads as a table, and greps as one.
  std::string json = "[\n";
  for (int i = 0; i < job.checkpoints_size(); ++i) {
    std::string object = to_json(job.checkpoints(i), /*proto_names=*/false, /*indent=*/false, /*all_fields=*/true);
    object.pop_back();  // the newline: a comma may follow
    json += "  " + object + (i + 1 < job.checkpoints_size() ? ",\n" : "\n");
  }
  return json + "]\n";
}

std::string audit_table(const std::vector<v1::AuditEntry>& entries) {
  const bool details =
      std::any_of(entries.begin(), entries.end(), [](const v1::AuditEntry& e) { return !e.detail().empty(); });
  std::vector<std::string> header = {"TIME", "USER", "ROLE", "PEER", "ACTION", "TARGET", "OUTCOME"};
  if (details) header.push_back("DETAIL");
  Table table(header);
  const auto or_dash = [](const std::string& s) { return s.empty() ? std::string("-") : s; };
  for (const auto& e : entries) {
    std::vector<std::string> row = {timestamp(e.time()), or_dash(e.user()),   or_dash(e.role()),
                                    or_dash(e.peer()),   or_dash(e.action()), or_dash(e.target()),
                                    or_dash(truncate(e.outcome(), kMaxAuditCellChars))};
    if (details) row.push_back(or_dash(truncate(e.detail(), kMaxAuditCellChars)));
    table.add(std::move(row));
  }
  return table.render();
}

std::string audit_json_lines(const std::vector<v1::AuditEntry>& entries) {
  std::string out;
  for (const auto& e : entries) out += to_json(e, /*proto_names=*/true, /*indent=*/false, /*all_fields=*/true);
  return out;
}

std::string no_checkpoints_line(const v1::Job& job) {
  return job.job_id() + " has no checkpoints" + (is_final(job.state()) ? "" : " yet");
}

std::string download_line(const std::string& written_to, const std::string& job_id, const std::string& format,
                          const v1::CheckpointInfo& checkpoint, int64_t bytes) {
  const std::string as = format == "onnx" ? "ONNX" : "a Prelude checkpoint";
  return "wrote " + written_to + ": " + job_id + " step " + std::to_string(checkpoint.step()) +
         (checkpoint.final() ? " (final)" : "") + " as " + as + ", " + byte_size(bytes) + " (" +
         std::to_string(bytes) + " bytes)";
}

// ---- metrics

const char* const kMetricsCsvHeader =
    "event,epoch,step,loss,accuracy,learning_rate,train_loss,train_accuracy,test_loss,test_accuracy,"
    "images_per_second";

std::string metrics_csv(const v1::GetMetricsResponse& metrics, bool with_attempt) {
  std::string csv = (with_attempt ? "attempt," : "") + std::string(kMetricsCsvHeader) + "\n";
  for (const auto& event : metrics.events()) {
    if (!event.has_training()) continue;
    const auto& e = event.training();
    const EventKind kind = event_kind(e);
    if (kind != v1::TrainingEvent::STEP && kind != v1::TrainingEvent::EPOCH && kind != v1::TrainingEvent::SUMMARY)
      continue;
    const bool summary = kind == v1::TrainingEvent::SUMMARY;
    const bool has_step = e.has_step() || (summary && e.has_steps());
    const int step = e.has_step() ? e.step() : e.steps();
    const bool has_speed = e.has_images_per_second() || (summary && e.has_train_images_per_second());
    const double speed = e.has_images_per_second() ? e.images_per_second() : e.train_images_per_second();
    const std::vector<std::string> row = {
        event_kind_name(kind),
        e.has_epoch() ? std::to_string(e.epoch()) : "",
        has_step ? std::to_string(step) : "",
        cell(e.has_loss(), e.loss()),
        cell(e.has_accuracy(), e.accuracy()),
        cell(e.has_learning_rate(), e.learning_rate()),
        cell(e.has_train_loss(), e.train_loss()),
        cell(e.has_train_accuracy(), e.train_accuracy()),
        cell(e.has_test_loss(), e.test_loss()),
        cell(e.has_test_accuracy(), e.test_accuracy()),
        cell(has_speed, speed),
    };
    std::string line = with_attempt ? std::to_string(event.attempt()) + "," : "";
    for (size_t i = 0; i < row.size(); ++i) line += (i ? "," : "") + row[i];
    csv += line + "\n";
  }
  return csv;
}

std::string metrics_json_lines(const v1::GetMetricsResponse& metrics, bool with_attempt) {
  std::string lines;
  for (const auto& event : metrics.events()) {
    if (!event.has_training()) continue;
    std::string line = to_json(event.training(), /*proto_names=*/true, /*indent=*/false);
    if (with_attempt && line.rfind("{", 0) == 0) {
      const bool empty = line.compare(0, 2, "{}") == 0;
      line = "{\"attempt\":" + std::to_string(event.attempt()) + (empty ? "" : ",") + line.substr(1);
    }
    lines += line;
  }
  return lines;
}

// ---- watch

std::optional<double> eta_seconds(const v1::TrainingEvent& step, const JobShape& shape) {
  if (!step.has_step() || !step.has_total_steps() || !step.has_images_per_second()) return std::nullopt;
  if (!(step.images_per_second() > 0) || step.total_steps() < step.step()) return std::nullopt;
  return static_cast<double>(step.total_steps() - step.step()) * shape.batch_size / step.images_per_second();
}

std::string training_text(const v1::TrainingEvent& event, const JobShape& shape) {
  switch (event_kind(event)) {
    case v1::TrainingEvent::STEP: return step_text(event, shape, /*with_eta=*/true);
    case v1::TrainingEvent::EPOCH: return epoch_text(event, shape);
    case v1::TrainingEvent::SUMMARY: return summary_text(event);
    case v1::TrainingEvent::RESUMED: return "resumed from the checkpoint of step " + std::to_string(event.step());
    default: return "";  // diagnostics: for `metrics --format json`, not for lines
  }
}

std::string state_change_text(const v1::StateChange& change) {
  // "<STATE> <reason>", as the coordinator logs it; the final "done" says nothing.
  std::string text = state_name(change.state());
  if (!change.reason().empty() && change.state() != v1::SUCCEEDED) text += " " + change.reason();
  if (change.state() == v1::RUNNING) {
    if (change.reason().empty() && !change.pool_id().empty()) text += " on pool " + change.pool_id();
    if (change.attempt() > 0) text += "; attempt " + std::to_string(change.attempt());
  }
  return text;
}

std::string event_line(const v1::JobEvent& event, const JobShape& shape) {
  std::string text;
  if (event.has_state_change()) text = state_change_text(event.state_change());
  else if (event.has_training()) text = training_text(event.training(), shape);
  if (text.empty()) return "";
  // Reasons come from the coordinator: keep a line one line.
  text = one_line(text);
  return is_set(event.time()) ? timestamp(event.time()) + "  " + text : text;
}

std::string progress_line(v1::JobState state, const v1::TrainingEvent& step, const JobShape& shape, int columns) {
  const std::string step_bar =
      step.has_total_steps() && step.total_steps() > 0 ? bar(static_cast<double>(step.step()) / step.total_steps()) : "";
  const auto eta = eta_seconds(step, shape);
  // The parts in display order, each with its rank: on a narrow terminal the parts
  // of the highest rank go first (learning rate, then accuracy, ...), never mid-word.
  std::vector<std::pair<std::string, int>> parts = {
      {state_name(state), 0},
      {step.has_epoch() ? epoch_of(step.epoch(), shape) : "", 3},
      {step_bar, 4},
      {step_of(step), 0},
      {step.has_loss() ? "loss " + fixed(step.loss(), 4) : "", 2},
      {step.has_accuracy() ? "acc " + fixed(step.accuracy(), 4) : "", 6},
      {step.has_learning_rate() ? "lr " + compact(step.learning_rate()) : "", 7},
      {step.has_images_per_second() ? images_per_second(step.images_per_second()) : "", 5},
      {eta ? "ETA " + duration(*eta) : "", 1},
  };
  auto text = [&] {
    std::vector<std::string> shown;
    for (const auto& p : parts) shown.push_back(p.first);
    return join(shown, "  ");
  };
  std::string line = text();
  const size_t width = columns > 1 ? static_cast<size_t>(columns - 1) : 0;
  for (int rank = 7; width > 0 && line.size() > width && rank > 0; --rank) {
    for (auto& p : parts)
      if (p.second == rank) p.first.clear();
    line = text();
  }
  if (width > 0 && line.size() > width) line.resize(width);
  return line;
}

std::string final_line(const std::string& job_id, v1::JobState state, const std::string& reason) {
  std::string line = "job " + job_id + " " + state_name(state);
  if (state != v1::SUCCEEDED && !reason.empty()) line += ": " + reason;
  return line;
}

std::string cancel_line(const v1::Job& job) {
  std::string line = job.job_id() + " " + state_name(job.state());
  if (stopping(job)) line += ": " + kStoppingText;
  return line;
}

// ---- sweeps

std::string sweep_counts(const v1::SweepStatus& status) {
  std::vector<v1::JobState> states;
  for (const auto& job : status.jobs()) states.push_back(job.state());
  const std::string counts = state_counts(states);
  return plural(status.jobs_size(), "job", "jobs") + (counts.empty() ? "" : ": " + counts);
}

std::string sweep_details(const v1::SweepStatus& status, Clock::time_point now) {
  const std::string& id = status.sweep().sweep_id();
  Details d;
  d.add("ID", id);
  d.add("Name", status.sweep().spec().name());
  d.add("Created", time_with_age(status.sweep().create_time(), now));
  d.add("Jobs", sweep_counts(status));

  Table table({"ID", "STATE", "POINT", "PROGRESS", "TEST ACC"});
  std::string failures;
  for (const auto& job : status.jobs()) {
    const auto& latest = job.latest_metrics();
    table.add({job.job_id(), state_name(job.state()) + (stopping(job) ? " (stopping)" : ""),
               job.sweep_point().empty() ? "-" : job.sweep_point(), progress_cell(job),
               latest.has_test_accuracy() ? fixed(latest.test_accuracy(), 4) : "-"});
    if (job.state() == v1::FAILED) failures += "  " + job.job_id() + "  " + one_line(job.error()) + "\n";
  }
  std::string text = d.text() + "\n" + table.render();
  if (!failures.empty()) text += "\nFailed:\n" + failures;
  // The per-point view (seeds pooled) is what a sweep is for.
  return text + "\nCompare its grid points: prelude compare " + id + "\n";
}

std::string sweep_json(const v1::SweepStatus& status) { return to_json(status, /*proto_names=*/false, /*indent=*/true); }

std::string sweep_job_line(const v1::Job& job) {
  std::string line = join({job.job_id(), state_name(job.state()), job.sweep_point()}, "  ");
  const std::string detail = stopping(job) ? kStoppingText : job.error();
  if (!detail.empty()) line += ": " + detail;
  return one_line(line);
}

std::string sweep_progress_line(const v1::SweepStatus& status, int columns) {
  // Ended jobs count whole, running ones by the steps they have done.
  double done = 0;
  for (const auto& job : status.jobs()) {
    const auto& p = job.progress();
    if (is_final(job.state())) done += 1;
    else if (job.state() == v1::RUNNING && p.has_total_steps() && p.total_steps() > 0)
      done += std::clamp(static_cast<double>(p.step()) / p.total_steps(), 0.0, 1.0);
  }
  const double fraction = status.jobs_size() > 0 ? done / status.jobs_size() : 1.0;
  const std::string percent = std::to_string(static_cast<int>(std::floor(fraction * 100))) + "%";
  const std::string& id = status.sweep().sweep_id();
  std::string line = join({id, bar(fraction), percent, sweep_counts(status)}, "  ");
  const size_t width = columns > 1 ? static_cast<size_t>(columns - 1) : 0;
  if (width > 0 && line.size() > width) line = join({id, percent, sweep_counts(status)}, "  ");
  if (width > 0 && line.size() > width) line.resize(width);
  return line;
}

std::string sweep_final_line(const v1::SweepStatus& status) {
  const std::string& id = status.sweep().sweep_id();
  const auto succeeded = std::count_if(status.jobs().begin(), status.jobs().end(),
                                       [](const v1::Job& j) { return j.state() == v1::SUCCEEDED; });
  return id + ": " + std::to_string(succeeded) + " of " + std::to_string(status.jobs_size()) +
         " jobs succeeded; `prelude compare " + id + "` compares them";
}

std::string sweep_cancel_text(const v1::SweepStatus& before, const v1::SweepStatus& after) {
  std::map<std::string, v1::JobState> earlier;
  for (const auto& job : before.jobs()) earlier[job.job_id()] = job.state();
  std::string lines;
  int cancelled = 0, asked_to_stop = 0, untouched = 0;
  std::vector<v1::JobState> ended;  // by themselves: before the call, or while it ran
  for (const auto& job : after.jobs()) {
    const auto it = earlier.find(job.job_id());
    const bool ended_before = it != earlier.end() && is_final(it->second);
    if (job.state() == v1::CANCELLED && !ended_before) ++cancelled;
    else if (is_final(job.state())) {
      ended.push_back(job.state());
      continue;
    } else if (stopping(job)) ++asked_to_stop;
    else ++untouched;  // a coordinator that left a job alone: show it rather than hide it
    lines += cancel_line(job) + "\n";
  }
  const std::string& id = after.sweep().sweep_id();
  if (after.jobs_size() == 0) return id + ": nothing to cancel; it has no jobs\n";
  const std::string outcomes = "(" + state_counts(ended) + ")";
  if (cancelled + asked_to_stop + untouched == 0)
    return id + ": nothing to cancel; all " + std::to_string(ended.size()) + " jobs had already ended " + outcomes + "\n";
  std::vector<std::string> parts = {
      cancelled > 0 ? std::to_string(cancelled) + " cancelled" : "",
      asked_to_stop > 0 ? std::to_string(asked_to_stop) + " stopping at " +
                              (asked_to_stop == 1 ? "its" : "their") + " next step"
                        : "",
      untouched > 0 ? std::to_string(untouched) + " not cancelled" : "",
      ended.empty() ? "" : std::to_string(ended.size()) + " had already ended " + outcomes};
  return lines + id + ": " + join(parts, ", ") + "\n";
}

}  // namespace prelude::client
