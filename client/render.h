// How the client shows jobs and metrics: pure functions of the messages, so they
// are tested without a server.
#pragma once

#include <string>
#include <vector>

#include "prelude/v1/service.pb.h"

namespace prelude::client {

// "PRELU_CHANNELWISE" -> "prelu-cw", etc.; the model column of `prelude list`.
std::string describe_model(const prelude::v1::JobSpec& spec);

// `prelude list`: a header and one aligned row per job.
std::string jobs_table(const std::vector<prelude::v1::Job>& jobs, int64_t now_unix_seconds);

// `prelude get`: the job, readably: state, error, pool, attempts, times, metrics
// and the learned slopes per activation layer (mean, min and max).
std::string job_text(const prelude::v1::Job& job);

// `prelude metrics --format csv`: a header and one row per step, epoch or summary
// event; unset values are empty cells.
std::string metrics_csv(const std::vector<prelude::v1::JobEvent>& events);

// One JSON object per line (proto field names).
std::string to_json_line(const google::protobuf::Message& m);

// `prelude watch`: one plain line for an event (no control characters), or "" for
// events not worth a line (diagnostics).
std::string event_line(const prelude::v1::JobEvent& e);

// The live progress line of `prelude watch` on a terminal, for the latest step
// event: epoch e/E, a bar, step s/total, loss, accuracy, images/s and ETA.
std::string progress_line(const prelude::v1::TrainingEvent& step, const prelude::v1::JobSpec& spec, int width = 24);

// "1h02m", "3m05s", "42s".
std::string format_duration(double seconds);

}  // namespace prelude::client
