// A job whose data or setup cannot be had fails as a job (a UserError, which a pool
// reports as "bad input: ...", or a SetupError), never as a crash or an allocation
// that the OOM killer ends: data announcing more than this rank's memory budget,
// a gzip bomb read only as far as dataset.trainLimit, and out-of-memory or other
// failures while setting up.
#include <gtest/gtest.h>

#include <chrono>
#include <new>
#include <stdexcept>

#include "common/errors.h"
#include "engine/memory_budget.h"
#include "engine/trainer.h"
#include "idx_fixtures.h"
#include "test_util.h"

using namespace prelude;
using testutil::idx_bytes;
using testutil::TempDir;
using testutil::write_gzip_bomb;
using testutil::write_raw;

namespace {

// A job on files under `root`: 28x28 images, a small model, one step.
prelude::v1::JobSpec job(const std::string& images, const std::string& labels, int train_limit) {
  return testutil::spec_from(R"({"name":"setup","dataset":{"trainImages":")" + images + R"(","trainLabels":")" +
                             labels + R"(","trainLimit":)" + std::to_string(train_limit) +
                             R"(},"model":{"layers":[{"fc":{"outFeatures":10}}]},
      "training":{"batchSize":16,"maxSteps":1,"skipTest":true,"logEverySteps":1}})");
}

// 10^6 images of 28x28 (784 MB of zeros, under 1 MB of gzip) with their labels.
void write_bomb_data(const TempDir& root) {
  write_gzip_bomb(root / "images.gz", {1000000, 28, 28});
  write_gzip_bomb(root / "labels.gz", {1000000});
}

}  // namespace

TEST(SetupErrors, DataLargerThanTheBudgetIsAUserErrorNamingFileAndBudget) {
  TempDir root;
  // 60000 images of 65535x65535: 257 TB of pixels, announced in 16 bytes.
  write_raw(root / "images", idx_bytes({60000, 65535, 65535}));
  write_raw(root / "labels", idx_bytes({60000}, std::vector<uint8_t>(60000, 0)));
  testutil::Recorder rec;
  RunOptions opt;
  opt.data_root = root.path();
  const std::string msg = testutil::user_error_of([&] { run_training(job("images", "labels", 0), opt, rec); });
  EXPECT_NE(msg.find(root / "images"), std::string::npos) << msg;
  EXPECT_NE(msg.find("60000 images of 65535x65535 need"), std::string::npos) << msg;
  EXPECT_NE(msg.find("more than this rank's budget of"), std::string::npos) << msg;
  EXPECT_NE(msg.find("dataset.trainLimit"), std::string::npos) << msg;
}

TEST(SetupErrors, GzipBombUnderATrainLimitTrainsOnItsPrefix) {
  TempDir root;
  write_bomb_data(root);
  testutil::Recorder rec;
  RunOptions opt;
  opt.data_root = root.path();
  const auto t0 = std::chrono::steady_clock::now();
  const auto summary = run_training(job("images.gz", "labels.gz", 64), opt, rec);
  EXPECT_EQ(summary.steps(), 1);
  // 64 images inflated, not 784 MB.
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
}

TEST(SetupErrors, OutOfMemoryWhileSettingUpIsAUserError) {
  TempDir root;
  write_bomb_data(root);
  testutil::Recorder rec;
  RunOptions opt;
  opt.data_root = root.path();
  // The checkpoint is fetched while setting up, after the data and the network.
  opt.resume_from = []() -> prelude::v1::Checkpoint { throw std::bad_alloc(); };
  std::string msg = testutil::user_error_of([&] { run_training(job("images.gz", "labels.gz", 64), opt, rec); });
  EXPECT_NE(msg.find("out of memory setting up the job"), std::string::npos) << msg;
  EXPECT_NE(msg.find("this rank's share"), std::string::npos) << msg;

  opt.resume_from = []() -> prelude::v1::Checkpoint { throw std::length_error("vector::_M_default_append"); };
  msg = testutil::user_error_of([&] { run_training(job("images.gz", "labels.gz", 64), opt, rec); });
  EXPECT_NE(msg.find("a size too large to allocate setting up the job (vector::_M_default_append)"),
            std::string::npos)
      << msg;
}

TEST(SetupErrors, OtherSetupFailuresAreASetupError) {
  TempDir root;
  write_bomb_data(root);
  testutil::Recorder rec;
  RunOptions opt;
  opt.data_root = root.path();
  opt.resume_from = []() -> prelude::v1::Checkpoint { throw std::runtime_error("the disk is on fire"); };
  try {
    run_training(job("images.gz", "labels.gz", 64), opt, rec);
    FAIL() << "expected a SetupError";
  } catch (const UserError& e) {
    FAIL() << "not bad input: " << e.what();
  } catch (const SetupError& e) {
    EXPECT_STREQ(e.what(), "the disk is on fire");
  }
}
