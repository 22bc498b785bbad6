#include "server/artifact_store.h"

#include <google/protobuf/util/time_util.h>

#include <filesystem>

#include "artifacts/checkpoint_file.h"
#include "common/errors.h"
#include "common/status.h"

namespace prelude::server {

namespace v1 = prelude::v1;
namespace fs = std::filesystem;

ArtifactStore::ArtifactStore(std::string dir) : dir_(std::move(dir)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw user_error(dir_, "cannot create the artifact directory: " + ec.message());
  // Temporary files of uploads that a crash interrupted: never listed, now removed.
  for (auto it = fs::recursive_directory_iterator(dir_, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (it->is_regular_file() && name.size() > 1 && name[0] == '.' && name.find(".tmp-") != std::string::npos)
      fs::remove(it->path(), ec);
  }
}

std::string ArtifactStore::path(const std::string& job_id, const v1::CheckpointInfo& info) const {
  return (fs::path(dir_) / job_id / (info.final() ? "final.ckpt" : "step-" + std::to_string(info.step()) + ".ckpt"))
      .string();
}

v1::CheckpointInfo ArtifactStore::put(const std::string& job_id, const v1::CheckpointInfo& announced,
                                      const std::string& bytes) {
  const std::string what = "checkpoint of step " + std::to_string(announced.step());
  if (static_cast<int64_t>(bytes.size()) != announced.bytes())
    throw UserError(what + ": " + std::to_string(bytes.size()) + " bytes arrived, " +
                    std::to_string(announced.bytes()) + " were announced");
  verify_checkpoint_bytes(bytes, what);
  const std::string sha = sha256_hex(bytes);
  if (sha != announced.sha256()) throw UserError(what + ": the SHA-256 of what arrived differs from the one announced");
  v1::CheckpointInfo info = announced;
  info.set_bytes(static_cast<int64_t>(bytes.size()));
  *info.mutable_create_time() = google::protobuf::util::TimeUtil::GetCurrentTime();
  const std::string file = path(job_id, info);
  std::error_code ec;
  fs::create_directories(fs::path(file).parent_path(), ec);
  try {
    write_file_atomically(file, bytes);
  } catch (const UserError& e) {
    // The coordinator's disk, not the pool's upload, is at fault (full, say): UNAVAILABLE,
    // which the pool may retry later; nothing of the file is left, and the job goes on.
    throw unavailable(std::string("the coordinator cannot keep the checkpoint: ") + e.what());
  }
  return info;
}

std::string ArtifactStore::get(const std::string& job_id, const v1::CheckpointInfo& info) const {
  const std::string file = path(job_id, info);
  std::string bytes = read_whole_file(file, kMaxCheckpointBytes);
  verify_checkpoint_bytes(bytes, file);
  if (sha256_hex(bytes) != info.sha256()) throw std::runtime_error(file + ": its SHA-256 is not the one recorded");
  return bytes;
}

void ArtifactStore::remove(const std::string& job_id, const v1::CheckpointInfo& info) const {
  std::error_code ec;
  fs::remove(path(job_id, info), ec);
}

void ArtifactStore::remove_job(const std::string& job_id) const {
  std::error_code ec;
  fs::remove_all(fs::path(dir_) / job_id, ec);
}

}  // namespace prelude::server
