// Sweeps: a base JobSpec and a grid over its fields, expanded into one defaulted,
// validated JobSpec per grid point (see SweepSpec in job.proto).
#pragma once

#include <string>
#include <vector>

#include "prelude/v1/job.pb.h"

namespace prelude {

struct SweepPoint {
  // "model.activation.kind=RELU training.seed=2": the point's values, in axis order.
  std::string label;
  prelude::v1::JobSpec spec;  // defaulted and validated; its name is "<sweep name> <label>"
};

// The cartesian product of the axes (the first axis varies slowest, seeds
// fastest). Every problem is a UserError naming its place: "grid[1].field:
// 'training.lerningRate': training has no field 'lerningRate'", "grid[0].values[2]:
// model.activation.kind: unknown value 'RELUX'", "seeds: also given as grid[2]",
// or, for a point whose spec is invalid, "grid point model.init.mode=FAN_OUT
// training.learningRate=-1: training.learningRate: must be positive, got -1".
// At most `max_points` points (a larger grid is an error saying how large).
std::vector<SweepPoint> expand_sweep(const prelude::v1::SweepSpec& sweep, int max_points = 1000);

// Reads a sweep file (the JSON form of SweepSpec) as strictly as a job file
// (parse_strict_json): unreadable files, malformed JSON, keys given twice and JSON
// that is not a SweepSpec are UserErrors starting with the path and naming the
// line and column or the field, e.g. "sweep.json:3:5: malformed JSON: trailing
// comma before ']'" or "sweep.json: grid[0].feild: unknown field (did you mean
// field?)". The grid's values may be any JSON value; expand_sweep checks them.
prelude::v1::SweepSpec load_sweep_file(const std::string& path);

}  // namespace prelude
