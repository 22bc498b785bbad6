// Job specs: reading, defaulting, validating and expanding prelude.v1.JobSpec.
//
// A job file is the protobuf JSON mapping of JobSpec (see proto/prelude/v1/job.proto).
// The life of a spec is
//
//   parse_job_json / load_job_file  ->  apply_defaults  ->  validate_job_spec  ->  expand_model
//
// (load_and_check_job does the first three), each step in its own file: the strict
// JSON reader in strict_json.cc, which reads sweep files too (protobuf's errors
// translated in proto_json_errors.cc), defaults.cc, validate.cc and
// model_expansion.cc. Every problem with what the user wrote is a UserError whose
// one-line message names the place: the source and line for JSON syntax
// ("job.json:3:14: malformed JSON: ..."), the field in JSON camelCase path form for
// everything else ("training.batchSize: must be positive, got 0").
#pragma once

#include <string>
#include <vector>

#include "prelude/v1/job.pb.h"

namespace prelude {

// Parses protobuf-JSON text into a JobSpec. Field names may be camelCase or
// snake_case; enum values are given by name. The text must be strict JSON with an
// object at the top level: no trailing commas, no field given twice (also not as
// both "batch_size" and "batchSize"). Unknown fields, unknown enum values (by name
// or number), values of the wrong type and malformed JSON are UserErrors whose
// message starts with `source` (usually the file name) and names the field or the
// line and column: parse_strict_json (spec/strict_json.h) for a JobSpec. Only the
// form is checked here; see validate_job_spec.
prelude::v1::JobSpec parse_job_json(const std::string& json, const std::string& source);

// The text of a job or sweep file (at most 16 MiB). An unreadable or too large
// file is a UserError naming the path and the reason.
std::string read_spec_file(const std::string& path);

// Reads and parses a job file (at most 16 MiB). An unreadable file is a UserError
// naming the path and the system's reason, e.g. "x.json: cannot read: No such file
// or directory".
prelude::v1::JobSpec load_job_file(const std::string& path);

// Fills in every default documented in job.proto, so that consumers never have to
// know them. Only absent values are replaced (for proto3 scalars without `optional`,
// the zero value counts as absent); explicit values are left for validate_job_spec.
//   dataset   name "fashion-mnist" when neither a name nor any file path is given;
//             mean/std from the named data set (fashion-mnist 0.2860/0.3530,
//             mnist 0.1307/0.3081), else 0/1.
//   model     preset "cnn-small" when neither preset nor layers are given; width 16
//             for plain-N; activation PRELU_CHANNELWISE; alpha_init 0.25 for PReLU,
//             0.01 for LEAKY_RELU, 0 for RELU; init KAIMING_NORMAL, FAN_IN,
//             ONE_PLUS_A_SQUARED.
//   layers    conv kernel 3, padding kernel/2, stride 1; pool MAX, kernel 2,
//             stride = kernel (GLOBAL_AVG pools take neither). An activation layer
//             takes the model's kind when it gives none, and its alpha_init from the
//             model when the kinds agree, else the default for its kind.
//   training  epochs 1, batch 64, learning rate 0.01, momentum 0.9, weight decay
//             5e-4, seed 1, log every 50 steps; schedule CONSTANT (STEP: gamma 0.1,
//             every 1 epoch).
// Idempotent.
void apply_defaults(prelude::v1::JobSpec* spec);

// Checks a defaulted spec and throws a UserError for the first problem, naming the
// field in JSON path form, e.g. "model.layers[3].conv.outChannels: must be between 1
// and 4096, got 0". Absurd sizes are rejected here so that they are never attempted.
// Shape checks that need the input size (a spatial size shrinking to 0, the class
// count of the last layer) are left to the network builder.
void validate_job_spec(const prelude::v1::JobSpec& spec);

// Checks one layer of a defaulted model as validate_job_spec does (sizes within the
// limits, an activation kind, enum values that exist), naming the field below
// `where`: "layers[2].pool.stride: must be between 1 and 8, got 0" for where =
// "layers[2]", "pool.stride: ..." for "". Checkpoints carry their expanded layers,
// which are checked with it when read.
void validate_layer(const prelude::v1::LayerSpec& layer, const std::string& where);

// load_job_file + apply_defaults + validate_job_spec. Validation errors are prefixed
// with the path too ("x.json: training.batchSize: must be positive, got 0").
prelude::v1::JobSpec load_and_check_job(const std::string& path);

// Expands the model into an explicit layer list with every field filled in, each
// activation layer carrying its own complete ActivationSpec:
//   "cnn-small"  conv3x3(32) A conv3x3(32) A maxpool2 conv3x3(64) A conv3x3(64) A
//                maxpool2 fc256 A fc(num_classes)             (conv padding 1)
//   "plain-N"    for i in 0..N-2: conv3x3(width) A, plus maxpool2 after it when
//                i == N/3 or i == 2N/3 (integer division); then a GLOBAL_AVG pool
//                and fc(num_classes): N weight layers, as torch_baseline.py's plain()
// Explicit layers are returned as given, with defaults applied. Expects the model of
// a defaulted and validated spec; num_classes < 1 is std::invalid_argument.
std::vector<prelude::v1::LayerSpec> expand_model(const prelude::v1::ModelSpec& model, int num_classes);

// One line, layers separated by spaces, e.g.
// "conv3x3(32) prelu-cw conv3x3(32) prelu-cw maxpool2 ... fc256 prelu-cw fc10".
// Non-default settings appear in parentheses: "conv5x5(64,s2,p0)", "leaky(a=0.2)",
// "maxpool3(s2)"; a global average pool is "globalavgpool".
std::string describe_layers(const std::vector<prelude::v1::LayerSpec>& layers);

}  // namespace prelude
