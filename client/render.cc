#include "client/render.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace prelude::client {

namespace v1 = prelude::v1;

namespace {

template <typename... Args>
std::string fmt(const char* f, Args... args) {
  char buf[1024];
  std::snprintf(buf, sizeof buf, f, args...);
  return buf;
}

std::string short_kind(v1::ActivationSpec::Kind k) {
  switch (k) {
    case v1::ActivationSpec::RELU: return "relu";
    case v1::ActivationSpec::LEAKY_RELU: return "leaky";
    case v1::ActivationSpec::PRELU_SHARED: return "prelu-shared";
    case v1::ActivationSpec::PRELU_CHANNELWISE: return "prelu-cw";
    default: return "?";
  }
}

std::string short_init(const v1::InitSpec& i) {
  std::string s;
  switch (i.scheme()) {
    case v1::InitSpec::XAVIER_UNIFORM: s = "xavier-u"; break;
    case v1::InitSpec::XAVIER_NORMAL: s = "xavier-n"; break;
    case v1::InitSpec::KAIMING_NORMAL: s = "kaiming-n"; break;
    case v1::InitSpec::KAIMING_UNIFORM: s = "kaiming-u"; break;
    default: s = "?";
  }
  if (i.mode() == v1::InitSpec::FAN_OUT) s += "/out";
  if (i.kaiming_factor() == v1::InitSpec::ONE_PLUS_A) s += "/(1+a)";
  return s;
}

std::string time_text(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  return google::protobuf::util::TimeUtil::ToString(t).substr(0, 19) + "Z";
}

std::string num(bool has, double v, const char* f = "%.6g") { return has ? fmt(f, v) : ""; }

}  // namespace

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const long t = std::lround(s);
  if (t >= 3600) return fmt("%ldh%02ldm", t / 3600, (t % 3600) / 60);
  if (t >= 60) return fmt("%ldm%02lds", t / 60, t % 60);
  return fmt("%lds", t);
}

std::string describe_model(const v1::JobSpec& spec) {
  const auto& m = spec.model();
  std::string preset = m.preset().empty() ? fmt("%d layers", m.layers_size()) : m.preset();
  std::string act = short_kind(m.activation().kind());
  if (m.activation().kind() != v1::ActivationSpec::RELU && m.activation().has_alpha_init())
    act += fmt("(%g)", m.activation().alpha_init());
  return preset + " " + act + " " + short_init(m.init());
}

std::string jobs_table(const std::vector<v1::Job>& jobs, int64_t now) {
  std::vector<std::vector<std::string>> rows{{"ID", "STATE", "NAME", "MODEL", "PROGRESS", "TEST ACC", "POOL", "AGE"}};
  for (const auto& j : jobs) {
    std::string progress = "-";
    if (j.progress().has_step())
      progress = fmt("%d/%d", j.progress().step(), j.progress().total_steps());
    const auto& lm = j.latest_metrics();
    rows.push_back({j.job_id(), v1::JobState_Name(j.state()), j.spec().name().empty() ? "-" : j.spec().name(),
                    describe_model(j.spec()), progress, lm.has_test_accuracy() ? fmt("%.4f", lm.test_accuracy()) : "-",
                    j.pool_id().empty() ? "-" : j.pool_id(),
                    format_duration(static_cast<double>(now - j.create_time().seconds()))});
  }
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& r : rows)
    for (size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], r[c].size());
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t c = 0; c < r.size(); ++c) line += r[c] + (c + 1 < r.size() ? std::string(width[c] - r[c].size() + 2, ' ') : "");
    out += line + "\n";
  }
  return out;
}

std::string job_text(const v1::Job& j) {
  std::ostringstream o;
  o << "job        " << j.job_id() << (j.spec().name().empty() ? "" : "  (" + j.spec().name() + ")") << "\n";
  o << "state      " << v1::JobState_Name(j.state()) << (j.cancel_requested() ? " (cancel requested)" : "") << "\n";
  if (!j.error().empty()) o << "error      " << j.error() << "\n";
  o << "model      " << describe_model(j.spec()) << "\n";
  const auto& t = j.spec().training();
  o << fmt("training   %g epochs, batch %d, lr %g, momentum %g, weight decay %g, seed %lld\n", t.epochs(),
           t.batch_size(), t.learning_rate(), t.momentum(), t.weight_decay(), static_cast<long long>(t.seed()));
  if (!j.pool_id().empty()) o << "pool       " << j.pool_id() << fmt(" (%d ranks), attempt %d\n", j.ranks(), j.attempts());
  o << "created    " << time_text(j.create_time()) << "\n";
  o << "started    " << time_text(j.start_time()) << "\n";
  o << "ended      " << time_text(j.end_time()) << "\n";
  const auto& p = j.progress();
  if (p.has_step())
    o << fmt("progress   step %d/%d, loss %.4f, accuracy %.4f\n", p.step(), p.total_steps(), p.loss(), p.accuracy());
  const auto& m = j.latest_metrics();
  if (m.has_train_loss()) {
    o << fmt("metrics    (%s) train loss %.4f acc %.4f", m.event().c_str(), m.train_loss(), m.train_accuracy());
    if (m.has_test_accuracy()) o << fmt(", test loss %.4f acc %.4f", m.test_loss(), m.test_accuracy());
    if (m.has_train_images_per_second()) o << fmt(", %.0f images/s", m.train_images_per_second());
    o << "\n";
  }
  if (m.alphas_size() > 0) {
    o << "slopes     layer          mean      min      max  (channels)\n";
    for (const auto& a : m.alphas()) {
      if (a.values_size() == 0) continue;
      double sum = 0, lo = a.values(0), hi = a.values(0);
      for (float v : a.values()) sum += v, lo = std::min<double>(lo, v), hi = std::max<double>(hi, v);
      o << fmt("           %-12s %8.4f %8.4f %8.4f  (%d)\n", a.layer().c_str(), sum / a.values_size(), lo, hi,
               a.values_size());
    }
  }
  return o.str();
}

std::string metrics_csv(const std::vector<v1::JobEvent>& events) {
  std::string out =
      "event,epoch,step,loss,accuracy,learning_rate,train_loss,train_accuracy,test_loss,test_accuracy,"
      "images_per_second\n";
  for (const auto& e : events) {
    if (!e.has_training()) continue;
    const auto& t = e.training();
    if (t.event() != "step" && t.event() != "epoch" && t.event() != "summary") continue;
    const bool has_ips = t.has_images_per_second() || t.has_train_images_per_second();
    const double ips = t.has_images_per_second() ? t.images_per_second() : t.train_images_per_second();
    out += t.event() + "," + (t.has_epoch() ? std::to_string(t.epoch()) : "") + "," +
           (t.has_step() ? std::to_string(t.step()) : t.has_steps() ? std::to_string(t.steps()) : "") + "," +
           num(t.has_loss(), t.loss()) + "," + num(t.has_accuracy(), t.accuracy()) + "," +
           num(t.has_learning_rate(), t.learning_rate()) + "," + num(t.has_train_loss(), t.train_loss()) + "," +
           num(t.has_train_accuracy(), t.train_accuracy()) + "," + num(t.has_test_loss(), t.test_loss()) + "," +
           num(t.has_test_accuracy(), t.test_accuracy()) + "," + num(has_ips, ips, "%.1f") + "\n";
  }
  return out;
}

std::string to_json_line(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions opt;
  opt.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, opt);
  return out + "\n";
}

std::string event_line(const v1::JobEvent& e) {
  if (e.has_state_change()) {
    const auto& s = e.state_change();
    return fmt("%s %s", v1::JobState_Name(s.state()).c_str(), s.reason().c_str());
  }
  const auto& t = e.training();
  if (t.event() == "step")
    return fmt("step %d/%d epoch %d loss %.4f acc %.4f lr %.4g %.0f img/s", t.step(), t.total_steps(), t.epoch(),
               t.loss(), t.accuracy(), t.learning_rate(), t.images_per_second());
  if (t.event() == "epoch")
    return fmt("epoch %d: train loss %.4f acc %.4f, test loss %.4f acc %.4f", t.epoch(), t.train_loss(),
               t.train_accuracy(), t.test_loss(), t.test_accuracy());
  if (t.event() == "summary")
    return fmt("summary: %d steps, test loss %.4f acc %.4f, %.0f img/s on %d rank(s), %s", t.steps(), t.test_loss(),
               t.test_accuracy(), t.train_images_per_second(), t.ranks(), format_duration(t.seconds()).c_str());
  return "";
}

std::string progress_line(const v1::TrainingEvent& t, const v1::JobSpec& spec, int width) {
  const double total = std::max(1, t.total_steps());
  const double frac = std::min(1.0, t.step() / total);
  const int filled = static_cast<int>(std::lround(frac * width));
  const std::string bar = std::string(filled, '#') + std::string(width - filled, '.');
  const double epochs = spec.training().epochs();
  std::string eta = "?";
  if (t.images_per_second() > 0)
    eta = format_duration((total - t.step()) * spec.training().batch_size() / t.images_per_second());
  return fmt("epoch %d/%g [%s] step %d/%d loss %.4f acc %.3f %.0f img/s ETA %s", t.epoch(), std::ceil(epochs),
             bar.c_str(), t.step(), t.total_steps(), t.loss(), t.accuracy(), t.images_per_second(), eta.c_str());
}

}  // namespace prelude::client
