// Shared helpers of the coordinator tests: a temporary directory, a fake clock for
// heartbeats, small job specs and training events, and a condition-based wait.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "artifacts/checkpoint_file.h"
#include "prelude/v1/checkpoint.pb.h"
#include "prelude/v1/service.pb.h"
#include "common/status.h"
#include "server/job_manager.h"
#include "spec/events.h"

namespace prelude::server::testing {

namespace v1 = prelude::v1;
namespace fs = std::filesystem;

// A fresh directory under the system's temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "prelude-srvtest-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// A steady clock that only moves when the test says so (safe across threads).
class FakeClock {
 public:
  SteadyClock::time_point now() const { return base_ + std::chrono::milliseconds(offset_ms_->load()); }
  void advance(std::chrono::milliseconds d) { offset_ms_->fetch_add(d.count()); }
  // For ManagerOptions::now; shares the offset, so it stays valid if the FakeClock moves.
  std::function<SteadyClock::time_point()> fn() const {
    auto offset = offset_ms_;
    auto base = base_;
    return [offset, base] { return base + std::chrono::milliseconds(offset->load()); };
  }

 private:
  SteadyClock::time_point base_ = SteadyClock::now();
  std::shared_ptr<std::atomic<int64_t>> offset_ms_ = std::make_shared<std::atomic<int64_t>>(0);
};

// A small valid checkpoint at `step` (of 100): one fc1.weight of 2 x fc_inputs floats
// 0, 1, 2, ... for a 1x2x2 input of 2 classes, as the store and the downloads see it.
inline v1::Checkpoint tiny_checkpoint(int64_t step, int fc_inputs = 4) {
  v1::Checkpoint c;
  c.set_format_version(kCheckpointVersion);
  c.mutable_io()->set_channels(1), c.mutable_io()->set_height(2), c.mutable_io()->set_width(2);
  c.mutable_io()->set_num_classes(2);
  auto* t = c.add_params();
  t->set_name("fc1.weight"), t->set_kind(v1::Tensor::WEIGHT), t->add_dims(2), t->add_dims(fc_inputs);
  for (int i = 0; i < 2 * fc_inputs; ++i) t->add_values(static_cast<float>(i));
  c.mutable_progress()->set_step(step), c.mutable_progress()->set_total_steps(100);
  return c;
}

// The smallest valid spec: fashion-mnist (installed under the default data root),
// everything else defaulted, the given batch when > 0.
inline v1::JobSpec small_spec(const std::string& name = "test", int batch = 0) {
  v1::JobSpec spec;
  spec.set_name(name);
  spec.mutable_dataset()->set_name("fashion-mnist");
  spec.mutable_training()->set_max_steps(10);
  if (batch > 0) spec.mutable_training()->set_batch_size(batch);
  return spec;
}

// A pool's call about the job it holds, as its pool makes it: its id, the lease its
// current job came with, and the token that registered it. An unknown pool: no lease.
inline PoolCall held(const JobManager& jm, const std::string& pool_id) {
  for (const PoolInfo& p : jm.pools())
    if (p.pool_id == pool_id) return {pool_id, p.lease, Caller{p.owner, Role::kPool}};
  return {pool_id, "", Caller{}};
}

// A pool id as register_pool gives it: "pool-<boot>.<n>" (`readable`), '-' and 16
// random hex digits.
inline bool is_pool_id(const std::string& id, const std::string& readable) {
  if (id.size() != readable.size() + 17 || id.compare(0, readable.size(), readable) != 0 || id[readable.size()] != '-')
    return false;
  for (size_t i = readable.size() + 1; i < id.size(); ++i)
    if (!std::isxdigit(static_cast<unsigned char>(id[i])) || std::isupper(static_cast<unsigned char>(id[i])))
      return false;
  return true;
}

inline v1::TrainingEvent step_event(int step, double loss) {
  v1::TrainingEvent t;
  set_event_kind(&t, v1::TrainingEvent::STEP);
  t.set_step(step);
  t.set_loss(loss);
  return t;
}

inline v1::TrainingEvent epoch_event(int epoch, double test_accuracy) {
  v1::TrainingEvent t;
  set_event_kind(&t, v1::TrainingEvent::EPOCH);
  t.set_epoch(epoch);
  t.set_test_accuracy(test_accuracy);
  auto* a = t.add_alphas();
  a->set_layer("act1");
  a->add_values(0.25f);
  return t;
}

inline v1::TrainingEvent summary_event(int steps, double test_accuracy) {
  v1::TrainingEvent t;
  set_event_kind(&t, v1::TrainingEvent::SUMMARY);
  t.set_steps(steps);
  t.set_test_accuracy(test_accuracy);
  return t;
}

// The event with its kind given by name only: as the trainer still sends them, and
// as every event stored before TrainingEvent.kind existed reads back.
inline v1::TrainingEvent name_only(v1::TrainingEvent t) {
  t.clear_kind();
  return t;
}

inline v1::RegisterPoolRequest pool_request(int ranks, const std::string& host = "host-a") {
  v1::RegisterPoolRequest r;
  r.set_ranks(ranks);
  r.set_host(host);
  r.set_threads_per_rank(1);
  return r;
}

// Polls `cond` until it holds or `timeout` passes; returns its last value.
inline bool wait_for(const std::function<bool()>& cond,
                     std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return cond();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// Milliseconds since t0 on the steady clock (prints readably in failures).
inline int64_t ms_since(SteadyClock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - t0).count();
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace prelude::server::testing

// Expects `statement` to throw a ServiceError with `code` whose message contains `needle`.
#define EXPECT_SERVICE_ERROR(statement, expected_code, needle)                                            \
  do {                                                                                                    \
    try {                                                                                                 \
      statement;                                                                                          \
      ADD_FAILURE() << "no ServiceError from " #statement;                                                \
    } catch (const ::prelude::ServiceError& e_) {                                                         \
      EXPECT_EQ(static_cast<int>(e_.code()), static_cast<int>(expected_code)) << "message: " << e_.what(); \
      EXPECT_NE(std::string(e_.what()).find(needle), std::string::npos)                                   \
          << "message '" << e_.what() << "' does not contain '" << needle << "'";                       \
    }                                                                                                     \
  } while (0)
