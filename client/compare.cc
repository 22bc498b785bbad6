#include "client/compare.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "client/format.h"
#include "spec/events.h"

namespace prelude::client {

namespace v1 = prelude::v1;

namespace {

struct Samples {
  std::vector<double> v;
  Stat stat() const {
    Stat s;
    s.n = static_cast<int>(v.size());
    if (s.n == 0) return s;
    for (double x : v) s.mean += x;
    s.mean /= s.n;
    if (s.n > 1) {
      for (double x : v) s.sd += (x - s.mean) * (x - s.mean);
      s.sd = std::sqrt(s.sd / (s.n - 1));
    }
    return s;
  }
};

std::string num(double v, const char* f) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// "0.9114 +- 0.0021" (text), or the mean alone for one seed, "-" for none.
std::string pm(const Stat& s, const char* f) {
  if (s.n == 0) return "-";
  return s.n == 1 ? num(s.mean, f) : num(s.mean, f) + " +- " + num(s.sd, f);
}

std::string csv_cell(const Stat& s, const char* f) { return s.n ? num(s.mean, f) : ""; }
std::string csv_sd(const Stat& s, const char* f) { return s.n > 1 ? num(s.sd, f) : ""; }

std::string json_stat(const Stat& s) {
  if (s.n == 0) return "null";
  return "{\"n\": " + std::to_string(s.n) + ", \"mean\": " + num(s.mean, "%.6g") + ", \"sd\": " + num(s.sd, "%.6g") +
         "}";
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += num(static_cast<unsigned char>(c), "\\u%04x");
      continue;
    }
    out += c;
  }
  return out + "\"";
}

// Every layer's mean slope; with `brief`, a deep net shows its first three and last
// two layers ("... 24 more ...") so a table row stays readable.
std::string slopes_text(const CompareRow& r, bool brief = false) {
  std::string s;
  const size_t n = r.slopes.size();
  for (size_t i = 0; i < n; ++i) {
    if (brief && n > 6 && i == 3) {
      s += " ... " + std::to_string(n - 5) + " more ...";
      i = n - 3;
      continue;
    }
    s += (s.empty() ? "" : " ") + r.slopes[i].first + "=" + num(r.slopes[i].second.mean, "%.3f");
  }
  return s.empty() ? "-" : s;
}

}  // namespace

std::string point_without_seed(const std::string& point) {
  std::istringstream in(point);
  std::string word, out;
  while (in >> word)
    if (word.rfind("training.seed=", 0) != 0) out += (out.empty() ? "" : " ") + word;
  return out.empty() ? "(base)" : out;
}

std::vector<CompareRow> compare_rows(const v1::SweepStatus& sweep,
                                     const std::map<std::string, v1::GetMetricsResponse>& metrics,
                                     double target_loss) {
  struct Group {
    CompareRow row;
    Samples acc, loss, ips, steps;
    std::vector<std::string> layers;
    std::map<std::string, Samples> slopes;
  };
  std::vector<Group> groups;
  for (const v1::Job& job : sweep.jobs()) {
    const std::string point = point_without_seed(job.sweep_point());
    auto g = std::find_if(groups.begin(), groups.end(), [&](const Group& x) { return x.row.point == point; });
    if (g == groups.end()) {
      groups.emplace_back();
      g = groups.end() - 1;
      g->row.point = point;
    }
    ++g->row.jobs;
    if (job.state() == v1::SUCCEEDED) {
      ++g->row.succeeded;
      const auto& m = job.latest_metrics();
      if (m.has_test_accuracy()) g->acc.v.push_back(m.test_accuracy());
      if (m.has_test_loss()) g->loss.v.push_back(m.test_loss());
      if (m.has_train_images_per_second()) g->ips.v.push_back(m.train_images_per_second());
      for (const auto& a : m.alphas()) {
        if (a.values_size() == 0) continue;
        double sum = 0;
        for (float x : a.values()) sum += x;
        if (!g->slopes.count(a.layer())) g->layers.push_back(a.layer());
        g->slopes[a.layer()].v.push_back(sum / a.values_size());
      }
    } else if (job.state() == v1::FAILED) {
      ++g->row.failed;
      g->row.failures.push_back(job.job_id() + ": " + job.error());
    } else {
      ++g->row.other;
    }
    auto it = metrics.find(job.job_id());
    if (target_loss > 0 && it != metrics.end()) {
      for (const auto& e : it->second.events()) {
        const auto& t = e.training();
        if (event_kind(t) == v1::TrainingEvent::STEP && t.has_loss() && t.loss() <= target_loss) {
          g->steps.v.push_back(t.step());
          break;
        }
      }
    }
  }
  std::vector<CompareRow> rows;
  for (auto& g : groups) {
    g.row.test_accuracy = g.acc.stat();
    g.row.test_loss = g.loss.stat();
    g.row.images_per_second = g.ips.stat();
    g.row.steps_to_target = g.steps.stat();
    for (const auto& layer : g.layers) g.row.slopes.emplace_back(layer, g.slopes[layer].stat());
    rows.push_back(std::move(g.row));
  }
  return rows;
}

std::string render_comparison(const std::vector<CompareRow>& rows, const std::string& format, double target_loss) {
  const std::string target = target_loss > 0 ? num(target_loss, "%g") : "";
  std::ostringstream o;
  if (format == "json") {
    for (const auto& r : rows) {
      o << "{\"point\": " << json_string(r.point) << ", \"jobs\": " << r.jobs << ", \"succeeded\": " << r.succeeded
        << ", \"failed\": " << r.failed << ", \"test_accuracy\": " << json_stat(r.test_accuracy)
        << ", \"test_loss\": " << json_stat(r.test_loss) << ", \"images_per_second\": "
        << json_stat(r.images_per_second) << ", \"steps_to_target\": " << json_stat(r.steps_to_target)
        << ", \"slopes\": {";
      for (size_t i = 0; i < r.slopes.size(); ++i)
        o << (i ? ", " : "") << json_string(r.slopes[i].first) << ": " << json_stat(r.slopes[i].second);
      o << "}, \"failures\": [";
      for (size_t i = 0; i < r.failures.size(); ++i) o << (i ? ", " : "") << json_string(r.failures[i]);
      o << "]}\n";
    }
    return o.str();
  }
  if (format == "csv") {
    o << "point,jobs,succeeded,failed,test_accuracy,test_accuracy_sd,test_loss,test_loss_sd,images_per_second,"
         "steps_to_loss" << target << ",slopes\n";
    for (const auto& r : rows)
      o << "\"" << r.point << "\"," << r.jobs << "," << r.succeeded << "," << r.failed << ","
        << csv_cell(r.test_accuracy, "%.4f") << "," << csv_sd(r.test_accuracy, "%.4f") << ","
        << csv_cell(r.test_loss, "%.4f") << "," << csv_sd(r.test_loss, "%.4f") << ","
        << csv_cell(r.images_per_second, "%.0f") << "," << csv_cell(r.steps_to_target, "%.0f") << ",\""
        << slopes_text(r) << "\"\n";
    return o.str();
  }
  // Steps to the target loss only when one was asked for (--target-loss).
  const bool steps = !target.empty();
  std::vector<std::string> header{"POINT", "OK/JOBS", "TEST ACC", "TEST LOSS", "IMG/S"};
  if (steps) header.push_back("STEPS TO " + target);
  header.push_back("SLOPES (mean per layer)");
  auto cells = [&](const CompareRow& r) {
    std::vector<std::string> row{r.point, std::to_string(r.succeeded) + "/" + std::to_string(r.jobs),
                                 pm(r.test_accuracy, "%.4f"), pm(r.test_loss, "%.4f"),
                                 pm(r.images_per_second, "%.0f")};
    if (steps) row.push_back(pm(r.steps_to_target, "%.0f"));
    row.push_back(slopes_text(r, /*brief=*/true));
    return row;
  };
  if (format == "markdown") {
    auto line = [&](const std::vector<std::string>& row) {
      o << "|";
      for (const auto& c : row) o << " " << c << " |";
      o << "\n";
    };
    line(header);
    o << "|";
    for (size_t c = 0; c < header.size(); ++c) o << "---|";
    o << "\n";
    for (const auto& r : rows) line(cells(r));
  } else {
    Table table(header);
    for (const auto& r : rows) table.add(cells(r));
    o << table.render();
  }
  // After the table; markdown needs a blank line before its list.
  bool first = true;
  for (const auto& r : rows)
    for (const auto& f : r.failures) {
      if (first && format == "markdown") o << "\n";
      first = false;
      o << (format == "markdown" ? "- failed: " : "failed: ") << f << "\n";
    }
  return o.str();
}

}  // namespace prelude::client
