// Pools declare what they hold and can do (RegisterPoolRequest.capabilities: data sets
// with their files' digests, the CPU's ISA and BF16) and the job manager validates
// submits and schedules by it: an unknown data set is refused with the list, a job
// waits (saying why) for a pool with its data and, in BF16, a CPU that runs it, and
// pools with different files under one name are reported and never mixed in a job.
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "server/job_manager.h"
#include "server/store.h"
#include "server_test_util.h"

namespace prelude::server {
namespace {

using namespace prelude::server::testing;
using namespace std::chrono_literals;
namespace v1 = prelude::v1;

const char* const kFashionFiles[] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                     "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};

std::string digest(char c) { return std::string(64, c); }

// A pool of `ranks` declaring `sets` (each with the four standard file names, every
// digest `hash`, the first file's digest `first_hash` when given) on an ISA.
v1::RegisterPoolRequest declaring(const std::vector<std::string>& sets, const std::string& isa = "avx512_core_bf16",
                                  bool bf16 = true, char hash = 'a', char first_hash = 0, int ranks = 1,
                                  const std::string& host = "host-a") {
  v1::RegisterPoolRequest r = pool_request(ranks, host);
  auto* caps = r.mutable_capabilities();
  caps->set_isa(isa);
  caps->set_bf16(bf16);
  for (const auto& name : sets) {
    auto* d = caps->add_data_sets();
    d->set_name(name);
    bool first = true;
    for (const char* file : kFashionFiles) {
      auto* f = d->add_files();
      f->set_path(name + "/" + file);
      f->set_size(1000);
      f->set_sha256(digest(first && first_hash ? first_hash : hash));
      first = false;
    }
  }
  return r;
}

class PoolCapabilitiesTest : public ::testing::Test {
 protected:
  void SetUp() override { start(); }
  void start() {
    jm_.reset();
    ManagerOptions o;
    o.reaper_thread = false;
    o.now = clock_.fn();
    o.heartbeat_timeout = 1000ms;
    o.max_acquire_wait = 1000ms;
    o.data_root = data_root_;
    o.local_data = local_data_;
    o.log = [this](const std::string& line) { log_.push_back(line); };
    jm_ = std::make_unique<JobManager>(*store_, o);
  }
  std::string reg(const v1::RegisterPoolRequest& r) { return jm_->register_pool(r).pool_id(); }
  std::string submit(const std::string& data_set = "fashion-mnist", bool bf16 = false) {
    v1::JobSpec spec = small_spec();
    spec.mutable_dataset()->set_name(data_set);
    if (bf16) spec.mutable_training()->set_precision(v1::TrainingSpec::BF16);
    return jm_->submit(spec).job_id();
  }
  std::string waiting(const std::string& job) { return jm_->get(job).waiting_reason(); }
  bool logged(const std::vector<std::string>& parts) {
    for (const auto& line : log_) {
      bool all = true;
      for (const auto& p : parts) all = all && contains(line, p);
      if (all) return true;
    }
    return false;
  }

  FakeClock clock_;
  std::string data_root_ = "/nonexistent-prelude-data-root";
  bool local_data_ = false;
  std::vector<std::string> log_;
  std::unique_ptr<Store> store_ = std::make_unique<Store>(":memory:");
  std::unique_ptr<JobManager> jm_;
};

TEST_F(PoolCapabilitiesTest, UnknownDataSetIsRefusedNamingTheFieldAndListingTheAvailableOnes) {
  reg(declaring({"mnist"}));
  reg(declaring({"fashion-mnist", "mnist"}));
  EXPECT_SERVICE_ERROR(submit("cifar"), ErrorCode::kInvalidArgument,
                       "spec.dataset.name: no worker pool holds data set \"cifar\"; available: fashion-mnist, mnist");
  // The ones held are taken.
  EXPECT_EQ(jm_->get(submit("mnist")).state(), v1::QUEUED);
  // An explicit path no pool declares is named by its field.
  v1::JobSpec spec = small_spec();
  spec.mutable_dataset()->set_test_images("fashion-mnist/other-images-idx3-ubyte");
  EXPECT_SERVICE_ERROR(jm_->submit(spec), ErrorCode::kInvalidArgument,
                       "spec.dataset.testImages: no worker pool holds the file \"fashion-mnist/other-images");
  // A path out of the data root is refused as one (validation), pools or not.
  spec.mutable_dataset()->set_test_images("../../etc/passwd");
  EXPECT_SERVICE_ERROR(jm_->submit(spec), ErrorCode::kInvalidArgument,
                       "spec.dataset.testImages: must stay inside the data root");
  spec.mutable_dataset()->set_test_images("/etc/passwd");
  EXPECT_SERVICE_ERROR(jm_->submit(spec), ErrorCode::kInvalidArgument, "spec.dataset.testImages: must be relative to the data root");
  // One it does declare matches.
  spec.mutable_dataset()->set_test_images("fashion-mnist/t10k-images-idx3-ubyte.gz");
  EXPECT_EQ(jm_->submit(spec).state(), v1::QUEUED);
}

TEST_F(PoolCapabilitiesTest, WithoutPoolsOrLocalDataAJobIsAcceptedAndWaits) {
  const std::string job = submit("cifar");  // a pool with it may come
  EXPECT_TRUE(contains(waiting(job), "waiting for a worker pool: none is registered")) << waiting(job);
}

TEST_F(PoolCapabilitiesTest, LocalDataCountsForTheCoordinatorsOwnPools) {
  TempDir root;
  std::filesystem::create_directories(root.path() / "mnist");
  for (const char* f : kFashionFiles) {  // IDX files: their magic number says so
    std::ofstream out(root.path() / "mnist" / std::string(f).substr(0, std::string(f).size() - 3), std::ios::binary);
    out.write("\0\0\x08\x01\0\0\0\0", 8);
  }
  data_root_ = root.path().string();
  local_data_ = true;
  start();
  reg(declaring({"fashion-mnist"}));
  EXPECT_EQ(jm_->get(submit("mnist")).state(), v1::QUEUED);          // under the data root
  EXPECT_EQ(jm_->get(submit("fashion-mnist")).state(), v1::QUEUED);  // declared by the pool
  EXPECT_SERVICE_ERROR(submit("cifar"), ErrorCode::kInvalidArgument,
                       "no worker pool holds data set \"cifar\"; available: fashion-mnist, mnist");
}

TEST_F(PoolCapabilitiesTest, AJobWaitsForAPoolWithItsDataSetAndGoesToIt) {
  const std::string job = submit("fashion-mnist");
  const std::string without = reg(declaring({}));
  const std::string other = reg(declaring({"mnist"}));
  EXPECT_FALSE(jm_->acquire(without, 0ms).has_value());
  EXPECT_FALSE(jm_->acquire(other, 0ms).has_value());
  EXPECT_EQ(waiting(job), "no pool with its data set fashion-mnist (registered pools hold mnist); it waits for one");
  const std::string with = reg(declaring({"fashion-mnist"}));
  EXPECT_FALSE(jm_->acquire(without, 0ms).has_value());
  auto taken = jm_->acquire(with, 0ms);
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(taken->job_id(), job);
  // The files it trains on are the job's from now on.
  ASSERT_EQ(taken->data_files_size(), 4);
  EXPECT_EQ(taken->data_files(0).path(), "fashion-mnist/train-images-idx3-ubyte.gz");
  EXPECT_EQ(taken->data_files(0).sha256(), digest('a'));
}

TEST_F(PoolCapabilitiesTest, ABf16JobSkipsAPoolWithoutBf16AndSaysWhy) {
  const std::string avx2 = reg(declaring({"fashion-mnist"}, "avx2", false));
  const std::string bf16_job = submit("fashion-mnist", /*bf16=*/true);
  const std::string fp32_job = submit("fashion-mnist");
  // The avx2 pool passes the BF16 job over and takes the FP32 one behind it.
  auto taken = jm_->acquire(avx2, 0ms);
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(taken->job_id(), fp32_job);
  EXPECT_EQ(jm_->get(bf16_job).state(), v1::QUEUED);
  EXPECT_EQ(waiting(bf16_job), "no pool whose CPU runs BF16 (registered pools: avx2); it waits for one");
  reg(declaring({"fashion-mnist"}, "avx512_core", false, 'a', 0, 1, "host-b"));
  EXPECT_EQ(waiting(bf16_job), "no pool whose CPU runs BF16 (registered pools: avx2, avx512_core); it waits for one");
  const std::string zen5 = reg(declaring({"fashion-mnist"}, "avx512_core_bf16", true, 'a', 0, 1, "host-c"));
  taken = jm_->acquire(zen5, 0ms);
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(taken->job_id(), bf16_job);
}

TEST_F(PoolCapabilitiesTest, DifferentFilesAreReportedAndNeverMixedInOneJob) {
  const std::string a = reg(declaring({"fashion-mnist"}, "avx2", false, 'a', 0, 1, "host-a"));
  const std::string b = reg(declaring({"fashion-mnist"}, "avx2", false, 'a', 'b', 1, "host-b"));
  // Said at B's registration: both pools, the file and both digests.
  EXPECT_TRUE(logged({"warning", a, b, "fashion-mnist/train-images-idx3-ubyte.gz", digest('a'), digest('b')}))
      << (log_.empty() ? "" : log_.back());
  const std::string job = submit();
  auto taken = jm_->acquire(a, 0ms);
  ASSERT_TRUE(taken.has_value());
  // Its history says that B holds other files and will not be given it.
  const std::string started = jm_->get(job).state() == v1::RUNNING ? "" : "not running";
  EXPECT_EQ(started, "");
  bool noted = false;
  bool ended = false;
  for (const auto& e : jm_->wait_events(job, 0, SteadyClock::now(), &ended))
    if (e.has_state_change() && e.state_change().state() == v1::RUNNING)
      noted = contains(e.state_change().reason(), "pool " + b + " holds other files of data set fashion-mnist");
  EXPECT_TRUE(noted);
  // A loses its job (its rank hung): requeued, and B is not given it.
  jm_->pool_hung(held(*jm_, a), job, "a rank stopped");
  ASSERT_EQ(jm_->get(job).state(), v1::QUEUED);
  EXPECT_FALSE(jm_->acquire(b, 0ms).has_value());
  EXPECT_TRUE(contains(waiting(job), "no pool with the files of data set fashion-mnist its first attempt trained on "
                                     "(fashion-mnist/train-images-idx3-ubyte.gz (sha256 aaaaaaaaaaaa... trained on, "
                                     "bbbbbbbbbbbb... on " + b))
      << waiting(job);
  // A pool with the same files as the first attempt's takes it.
  const std::string c = reg(declaring({"fashion-mnist"}, "avx2", false, 'a', 0, 1, "host-c"));
  taken = jm_->acquire(c, 0ms);
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(taken->job_id(), job);
  EXPECT_EQ(taken->attempts(), 2);
}

TEST_F(PoolCapabilitiesTest, AMalformedDeclarationIsRefusedNamingTheField) {
  v1::RegisterPoolRequest r = declaring({"fashion-mnist"});
  r.mutable_capabilities()->mutable_data_sets(0)->mutable_files(2)->set_sha256("xyz");
  EXPECT_SERVICE_ERROR(reg(r), ErrorCode::kInvalidArgument, "capabilities.dataSets[0].files[2].sha256");
}

TEST_F(PoolCapabilitiesTest, APoolThatDeclaresNothingIsMatchedAsBefore) {
  const std::string old = reg(pool_request(1));  // an older worker
  const std::string job = submit("fashion-mnist", /*bf16=*/true);
  auto taken = jm_->acquire(old, 0ms);
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(taken->job_id(), job);
}

}  // namespace
}  // namespace prelude::server
