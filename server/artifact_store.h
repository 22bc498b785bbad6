// Where the coordinator keeps trained models: <dir>/<job id>/step-N.ckpt and
// final.ckpt. Files are verified before they are kept (length, header, SHA-256) and
// written atomically, so a file under a real name is always complete; the job
// manager lists a checkpoint only after its file is in place. No gRPC.
#pragma once

#include <string>

#include "prelude/v1/service.pb.h"

namespace prelude::server {

class ArtifactStore {
 public:
  // Creates `dir` if needed; a UserError names it when that fails.
  explicit ArtifactStore(std::string dir);

  const std::string& dir() const { return dir_; }

  // Checks an uploaded checkpoint (the length and SHA-256 the pool announced, the
  // file's own header and checksum) and writes it for `job_id`. Returns what to list:
  // step, epoch, final, bytes, sha256 and the time. UserError (INVALID_ARGUMENT) for
  // a damaged or inconsistent upload; UNAVAILABLE (ServiceError) for a write the
  // coordinator's disk refused (full), which leaves nothing behind.
  prelude::v1::CheckpointInfo put(const std::string& job_id, const prelude::v1::CheckpointInfo& announced,
                                  const std::string& bytes);

  // The file of a listed checkpoint, verified again (a file damaged on disk is an
  // error naming it, never served).
  std::string get(const std::string& job_id, const prelude::v1::CheckpointInfo& info) const;

  // Removes one checkpoint's file, or every file of a job; missing files are fine.
  void remove(const std::string& job_id, const prelude::v1::CheckpointInfo& info) const;
  void remove_job(const std::string& job_id) const;

  std::string path(const std::string& job_id, const prelude::v1::CheckpointInfo& info) const;

 private:
  std::string dir_;
};

}  // namespace prelude::server
