// `prelude compare`: a sweep's jobs grouped by grid point (seeds pooled), with the
// mean and spread over seeds of what answers "which rectifier, which init?".
// Pure functions of the messages, tested without a server.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "prelude/v1/service.pb.h"

namespace prelude::client {

// mean and sample standard deviation over the seeds that have the value.
struct Stat {
  int n = 0;
  double mean = 0, sd = 0;
};

struct CompareRow {
  std::string point;  // the grid point without its seed, "(base)" when the grid has no other axis
  int jobs = 0, succeeded = 0, failed = 0, other = 0;
  Stat test_accuracy, test_loss, images_per_second;
  // Steps until a step event's loss first fell to the target (jobs that reached it).
  Stat steps_to_target;
  std::vector<std::string> failures;                // "job-000004: training stalled: ..."
  std::vector<std::pair<std::string, Stat>> slopes;  // per activation layer: mean learned slope
};

// The grid point without "training.seed=N".
std::string point_without_seed(const std::string& point);

// One row per grid point, in grid order. `metrics` holds each job's GetMetrics
// (by job id; a missing one only leaves steps_to_target out); target_loss <= 0:
// steps_to_target is not computed.
std::vector<CompareRow> compare_rows(const prelude::v1::SweepStatus& sweep,
                                     const std::map<std::string, prelude::v1::GetMetricsResponse>& metrics,
                                     double target_loss);

// format: "text" (aligned table), "markdown", "csv" or "json" (one object per row).
std::string render_comparison(const std::vector<CompareRow>& rows, const std::string& format, double target_loss);

}  // namespace prelude::client
