// The coordinator's artifact store: what it keeps, where, and what it refuses.
#include <gtest/gtest.h>

#include <fstream>

#include "artifacts/checkpoint_file.h"
#include "common/errors.h"
#include "server/artifact_store.h"
#include "server_test_util.h"

namespace prelude::server {
namespace {

using namespace prelude::server::testing;
namespace v1 = prelude::v1;

v1::CheckpointInfo announced(const std::string& bytes, int64_t step, bool final = false) {
  v1::CheckpointInfo i;
  i.set_step(step), i.set_final(final), i.set_bytes(static_cast<int64_t>(bytes.size()));
  i.set_sha256(sha256_hex(bytes));
  return i;
}

TEST(ArtifactStore, KeepsVerifiedFilesUnderTheJobAndServesThemBack) {
  TempDir dir;
  ArtifactStore store(dir.file("models"));
  const std::string bytes = encode_checkpoint(tiny_checkpoint(5));
  const v1::CheckpointInfo info = store.put("job-000001", announced(bytes, 5), bytes);
  EXPECT_EQ(store.path("job-000001", info), dir.file("models") + "/job-000001/step-5.ckpt");
  EXPECT_TRUE(info.has_create_time());
  EXPECT_EQ(store.get("job-000001", info), bytes);
  const v1::CheckpointInfo final = store.put("job-000001", announced(bytes, 5, true), bytes);
  EXPECT_EQ(store.path("job-000001", final), dir.file("models") + "/job-000001/final.ckpt");
  store.remove("job-000001", info);
  EXPECT_FALSE(fs::exists(store.path("job-000001", info)));
  EXPECT_EQ(store.get("job-000001", final), bytes);
  store.remove_job("job-000001");
  EXPECT_FALSE(fs::exists(dir.file("models") + "/job-000001"));
}

TEST(ArtifactStore, RefusesWhatDoesNotMatchItsAnnouncementOrItsOwnChecksum) {
  TempDir dir;
  ArtifactStore store(dir.file("models"));
  const std::string bytes = encode_checkpoint(tiny_checkpoint(5));
  v1::CheckpointInfo wrong = announced(bytes, 5);
  wrong.set_bytes(wrong.bytes() + 1);
  EXPECT_THROW(store.put("job-000001", wrong, bytes), UserError);
  wrong = announced(bytes, 5);
  wrong.set_sha256(sha256_hex("other"));
  EXPECT_THROW(store.put("job-000001", wrong, bytes), UserError);
  std::string damaged = bytes;
  damaged.back() ^= 1;
  EXPECT_THROW(store.put("job-000001", announced(damaged, 5), damaged), UserError);
  EXPECT_FALSE(fs::exists(dir.file("models") + "/job-000001/step-5.ckpt"));
  // A file damaged on disk after it was kept is never served.
  const v1::CheckpointInfo info = store.put("job-000001", announced(bytes, 5), bytes);
  std::ofstream(store.path("job-000001", info), std::ios::binary | std::ios::app) << "x";
  EXPECT_THROW(store.get("job-000001", info), std::exception);
}

TEST(ArtifactStore, RemovesTemporaryFilesOfInterruptedUploadsAtStart) {
  TempDir dir;
  fs::create_directories(dir.file("models/job-000002"));
  std::ofstream(dir.file("models/job-000002/.step-40.ckpt.tmp-1234")) << "half";
  std::ofstream(dir.file("models/job-000002/step-20.ckpt")) << "kept";
  ArtifactStore store(dir.file("models"));
  EXPECT_FALSE(fs::exists(dir.file("models/job-000002/.step-40.ckpt.tmp-1234")));
  EXPECT_TRUE(fs::exists(dir.file("models/job-000002/step-20.ckpt")));
}

}  // namespace
}  // namespace prelude::server
