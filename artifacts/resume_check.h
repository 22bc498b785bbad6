// Whether a job may continue from a checkpoint: only what changes neither the model,
// nor the data, nor their order, nor the optimisation may differ between the job's
// spec and the spec the checkpoint was trained with (Determined's rule for
// continuing a trial: same model and hyperparameters, a longer budget).
#pragma once

#include <string>

#include "prelude/v1/checkpoint.pb.h"
#include "prelude/v1/job.pb.h"

namespace prelude {

// Fields (JSON paths) that may differ when resuming: the name, the length of the
// run (training.epochs, training.maxSteps: they may grow), what is reported
// (logEverySteps, skipTest, stallWindowSteps), checkpointing and the data-parallel
// mechanics (bucketBytes, checkEverySteps), which change no value.
bool may_differ_on_resume(const std::string& json_path);

// The first field, in JSON path form ("training.learningRate",
// "model.layers[2].conv.outChannels"), whose value differs between two specs, or ""
// when they are equal. Fields for which `ignore(path)` is true are skipped.
std::string first_difference(const google::protobuf::Message& a, const google::protobuf::Message& b,
                             bool (*ignore)(const std::string&) = nullptr);

// Throws a UserError when `job` (defaulted) may not continue from `checkpoint`:
// "<job_source>: training.learningRate: differs from the checkpoint's (<ckpt_source>):
// 0.02 here, 0.01 there; when resuming only the name, epochs, maxSteps, logging and
// checkpointing may change".
void check_resume_compatible(const prelude::v1::JobSpec& job, const std::string& job_source,
                             const prelude::v1::Checkpoint& checkpoint, const std::string& checkpoint_source);

}  // namespace prelude
