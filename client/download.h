// `prelude download`: a job's model streamed from the coordinator (DownloadModel)
// into a file that takes its name only once the bytes are known to be whole.
#pragma once

#include <cstdint>
#include <string>

#include "client/session.h"
#include "prelude/v1/service.pb.h"

namespace prelude::client {

// What arrived and was written.
struct DownloadedModel {
  prelude::v1::CheckpointInfo checkpoint;  // the checkpoint sent (or converted to ONNX)
  int64_t bytes = 0;
  std::string sha256;  // 64 lowercase hex digits
};

// Downloads the model `request` names to `path`, or to the console's output for "-".
// A file is written as a temporary file beside it (".NAME.tmp-PID"), flushed to
// disk and renamed to `path` only once the length and SHA-256 of what arrived match
// what the first chunk announced; on any failure the temporary file is removed and
// `path` is left as it was. The console's output gets the bytes only once they have
// all arrived and match, so a pipe never reads a model that turns out wrong.
// Throws UserError (exit 2) when `path` cannot be written, CallError (exit 3) when
// the coordinator refuses the call (its code and message), when the stream breaks
// (its code) or when the bytes do not match (DATA_LOSS); the messages of the last two
// say that nothing was written.
DownloadedModel download_model(Session& session, const prelude::v1::DownloadModelRequest& request,
                               const std::string& path);

}  // namespace prelude::client
