// Exact resume: a run stopped at any step and continued from its checkpoint ends
// with bit-identical parameters and momentum, and the same events (values, not
// timings), as a run never interrupted. Checkpoints mid-epoch, at an epoch's end
// and after a stop are each resumed; a job that may not continue is refused.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "artifacts/checkpoint_file.h"
#include "common/errors.h"
#include "engine/params.h"
#include "engine/trainer.h"
#include "spec/job_spec.h"
#include "test_util.h"

using namespace prelude;
namespace v1 = prelude::v1;

namespace {

using testutil::user_error_of;

using testutil::have_fashion_mnist;
using testutil::kDataRoot;
using testutil::Recorder;

// 1280 images, batch 64: 20 steps an epoch, 2 epochs, a checkpoint every 7 steps
// (7, 14, 21, 28, 35) besides the epoch ends (20, 40). A step schedule and a step
// event every 6 steps make the schedule and the event windows matter.
v1::JobSpec job(int epochs = 2, const std::string& extra_training = "") {
  auto spec = parse_job_json(R"({"name":"resume","dataset":{"name":"fashion-mnist","trainLimit":1280,"testLimit":300},
      "model":{"preset":"cnn-small","activation":{"kind":"PRELU_CHANNELWISE"}},
      "training":{"epochs":)" + std::to_string(epochs) + R"(,"batchSize":64,"logEverySteps":6,
                  "lrSchedule":{"kind":"STEP","stepEpochs":1,"gamma":0.5},
                  "checkpoint":{"everySteps":7})" + extra_training + "}}",
                             "test");
  apply_defaults(&spec);
  validate_job_spec(spec);
  return spec;
}

struct Outcome {
  std::vector<v1::TrainingEvent> events;
  std::map<int64_t, v1::Checkpoint> checkpoints;  // by step; the final one under -1
  std::map<int64_t, size_t> events_before;        // events emitted when each was taken
  std::vector<float> values, momentum;
};

Outcome train(const v1::JobSpec& spec, const v1::Checkpoint* resume = nullptr,
              const std::function<bool()>& should_stop = nullptr) {
  Outcome out;
  Recorder rec;
  RunOptions opt;
  opt.data_root = kDataRoot;
  opt.should_stop = should_stop;
  if (resume) opt.resume_from = [resume] { return *resume; };
  opt.resume_source = "test.ckpt";
  opt.on_checkpoint = [&](const v1::Checkpoint& c, bool final) {
    const int64_t key = final ? -1 : c.progress().step();
    // Through the file format, as a real resume would read it.
    out.checkpoints[key] = decode_checkpoint(encode_checkpoint(c), "mem");
    out.events_before[key] = rec.events.size();
  };
  opt.on_finish = [&](const ParamStore& p) {
    out.values.assign(p.values(), p.values() + p.total_floats());
    out.momentum.assign(p.momentum(), p.momentum() + p.total_floats());
  };
  run_training(spec, opt, rec);
  out.events = rec.events;
  return out;
}

// The event without its measurements of time.
std::string values_of(v1::TrainingEvent e) {
  e.clear_images_per_second();
  e.clear_train_images_per_second();
  e.clear_seconds();
  e.clear_allreduce_seconds();
  return e.ShortDebugString();
}

// Resumed from the uninterrupted run's checkpoint at `step`: a "resumed" event, then
// exactly the events the uninterrupted run emitted after taking that checkpoint, and
// bit-identical parameters and momentum at the end.
void expect_exact_resume(const v1::JobSpec& spec, const Outcome& full, int64_t step) {
  SCOPED_TRACE("resumed from step " + std::to_string(step));
  ASSERT_TRUE(full.checkpoints.count(step));
  const Outcome resumed = train(spec, &full.checkpoints.at(step));
  ASSERT_FALSE(resumed.events.empty());
  EXPECT_EQ(resumed.events[0].event(), "resumed");
  EXPECT_EQ(resumed.events[0].step(), step);
  std::vector<std::string> want, got;
  for (size_t i = full.events_before.at(step); i < full.events.size(); ++i) want.push_back(values_of(full.events[i]));
  for (size_t i = 1; i < resumed.events.size(); ++i) got.push_back(values_of(resumed.events[i]));
  EXPECT_EQ(got, want);
  ASSERT_EQ(resumed.values.size(), full.values.size());
  size_t value_diffs = 0, momentum_diffs = 0;
  for (size_t i = 0; i < full.values.size(); ++i) {
    value_diffs += resumed.values[i] != full.values[i];
    momentum_diffs += resumed.momentum[i] != full.momentum[i];
  }
  EXPECT_EQ(value_diffs, 0u);
  EXPECT_EQ(momentum_diffs, 0u);
  // The final checkpoints agree too, but for when they were written.
  v1::Checkpoint a = full.checkpoints.at(-1), b = resumed.checkpoints.at(-1);
  for (auto* c : {&a, &b}) {
    c->clear_created_unix_ms();
    c->mutable_progress()->clear_train_seconds();
    c->mutable_progress()->clear_allreduce_seconds();
    c->mutable_progress()->mutable_window()->clear_seconds();
  }
  EXPECT_TRUE(a.SerializeAsString() == b.SerializeAsString());
}

}  // namespace

TEST(Resume, FromAnyStepIsBitIdenticalToAnUninterruptedRun) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "Fashion-MNIST not installed";
  const auto spec = job();
  const Outcome full = train(spec);
  // Checkpoints every 7 steps, at each epoch's end (20, 40), and the final one.
  std::vector<int64_t> steps;
  for (const auto& [step, c] : full.checkpoints) steps.push_back(step);
  EXPECT_EQ(steps, (std::vector<int64_t>{-1, 7, 14, 20, 21, 28, 35, 40}));
  EXPECT_TRUE(full.checkpoints.at(-1).progress().finished());
  EXPECT_EQ(full.checkpoints.at(7).progress().step_in_epoch(), 7);
  EXPECT_EQ(full.checkpoints.at(20).progress().epoch(), 1);  // after epoch 1's report
  EXPECT_EQ(full.checkpoints.at(20).progress().step_in_epoch(), 0);
  // Mid-epoch (between step events and inside an lr period), at an epoch's end, late.
  for (int64_t step : {7, 20, 35}) expect_exact_resume(spec, full, step);
}

TEST(Resume, AfterAStopContinuesAsIfNeverStopped) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "Fashion-MNIST not installed";
  const auto spec = job();
  const Outcome full = train(spec);
  // Stopped (a cancelled attempt) after step 11: its last checkpoint is that step's.
  int polls = 0;
  const Outcome stopped = train(spec, nullptr, [&] { return ++polls == 11; });
  ASSERT_TRUE(stopped.checkpoints.count(11));
  EXPECT_FALSE(stopped.checkpoints.count(-1));  // no final model for a stopped run
  const Outcome resumed = train(spec, &stopped.checkpoints.at(11));
  for (size_t i = 0; i < full.values.size(); ++i) ASSERT_EQ(resumed.values[i], full.values[i]) << i;
  EXPECT_EQ(values_of(resumed.events.back()), values_of(full.events.back()));  // the summary
}

TEST(Resume, LongerRunsMayContinueOtherJobsMayNot) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "Fashion-MNIST not installed";
  const Outcome full = train(job());
  const v1::Checkpoint& last = full.checkpoints.at(-1);
  // One more epoch from the final model: 20 more steps.
  const Outcome longer = train(job(3), &last);
  EXPECT_EQ(longer.events.back().steps(), 60);
  EXPECT_EQ(user_error_of([&] { train(job(2, R"(,"learningRate":0.02)"), &last); }),
            "the job: training.learningRate: differs from the checkpoint's (test.ckpt): 0.02 here, 0.01 there; "
            "when resuming, only the name, epochs, maxSteps, logging, checkpointing and data-parallel settings may "
            "change");
  EXPECT_EQ(user_error_of([&] { train(job(2, R"(,"maxSteps":30)"), &last); }),
            "training.maxSteps: the run would end at step 30, before the checkpoint's step 40 (when resuming, epochs "
            "and maxSteps may grow, not shrink)");
}

TEST(Resume, TheStallWatchContinuesToo) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "Fashion-MNIST not installed";
  // Windows of 3 steps on this short, noisy run: it stalls somewhere after step 7.
  const auto spec = job(2, R"(,"stallWindowSteps":3)");
  Outcome full;
  std::string full_error;
  try {
    full = train(spec);
  } catch (const StalledError& e) {
    full_error = e.what();
  }
  ASSERT_NE(full_error, "") << "the run was expected to stall; make the window shorter";
  // "... over steps A-B ...": it must stall after the checkpoint resumed from.
  const size_t at = full_error.find("over steps ");
  ASSERT_NE(at, std::string::npos) << full_error;
  ASSERT_GT(std::stoi(full_error.substr(at + 11)), 7) << full_error;
  std::string resumed_error;
  try {
    // train() keeps its checkpoints only when it returns: take step 7's from a run
    // stopped there (a stop, like a kill, leaves the last checkpoint behind).
    int polls = 0;
    const Outcome stopped = train(spec, nullptr, [&] { return ++polls == 7; });
    ASSERT_TRUE(stopped.checkpoints.count(7));
    train(spec, &stopped.checkpoints.at(7));
  } catch (const StalledError& e) {
    resumed_error = e.what();
  }
  EXPECT_EQ(resumed_error, full_error);
}

TEST(WarmStart, StartsFromAnotherRunsWeightsAtStepZero) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "Fashion-MNIST not installed";
  const Outcome first = train(job());
  const v1::Checkpoint& final = first.checkpoints.at(-1);
  // Fine-tuning at another learning rate: allowed (only the model must match).
  const auto spec = job(1, R"(,"learningRate":0.002)");
  Recorder rec;
  RunOptions opt;
  opt.data_root = kDataRoot;
  opt.init_from = [&] { return final; };
  opt.init_source = "first.ckpt";
  run_training(spec, opt, rec);
  // The first step window's loss is that of a trained model, far below ln(10) = 2.30,
  // where the same job from scratch starts.
  std::vector<v1::TrainingEvent> steps;
  for (const auto& e : rec.events)
    if (e.event() == "step") steps.push_back(e);
  ASSERT_FALSE(steps.empty());
  EXPECT_EQ(steps[0].step(), 6);
  EXPECT_LT(steps[0].loss(), 1.0);
  const Outcome scratch = train(job(1, R"(,"learningRate":0.002)"));
  double scratch_first = 0;
  for (const auto& e : scratch.events)
    if (e.event() == "step") {
      scratch_first = e.loss();
      break;
    }
  EXPECT_GT(scratch_first, 1.5);
  // Another model's checkpoint is refused naming it.
  auto relu = parse_job_json(R"({"dataset":{"name":"fashion-mnist","trainLimit":1280,"testLimit":300},
      "model":{"preset":"cnn-small","activation":{"kind":"RELU"}},"training":{"epochs":1}})", "test");
  apply_defaults(&relu);
  validate_job_spec(relu);
  EXPECT_EQ(user_error_of([&] { run_training(relu, opt, rec); }),
            "first.ckpt: holds 17 parameters, the model has 12: it is another model");
}
