// Real training runs on the installed Fashion-MNIST: the loss falls, the events
// carry what the issue promises, and runs are reproducible from the seed.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "common/errors.h"
#include "spec/job_spec.h"
#include "engine/trainer.h"
#include "test_util.h"

using namespace prelude;
namespace v1 = prelude::v1;

namespace {

using testutil::have_fashion_mnist;
using testutil::kDataRoot;
using testutil::Recorder;
using testutil::spec_from;

}  // namespace

TEST(Training, ShortRunLossFallsAndEventsAreComplete) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "Fashion-MNIST not installed";
  const auto spec = spec_from(R"({"name":"short","dataset":{"name":"fashion-mnist","trainLimit":9600,"testLimit":2000},
      "model":{"preset":"cnn-small","activation":{"kind":"PRELU_CHANNELWISE"}},
      "training":{"epochs":2,"batchSize":64,"learningRate":0.01,"logEverySteps":25}})");
  Recorder rec;
  RunOptions opt;
  opt.data_root = kDataRoot;
  const auto summary = run_training(spec, opt, rec);

  const auto steps = rec.of("step");
  ASSERT_GE(steps.size(), 10u);  // 300 steps, every 25
  EXPECT_GT(steps.front().loss(), 1.0);             // near ln(10) = 2.30 at the start
  EXPECT_LT(steps.back().loss(), 0.75 * steps.front().loss());
  EXPECT_EQ(steps.back().step(), 300);

  const auto diags = rec.of("diagnostics");
  ASSERT_EQ(diags.size(), 3u);  // at init and after each of 2 epochs
  ASSERT_EQ(diags[0].layers_size(), 6);  // 4 conv + 2 fc
  EXPECT_EQ(diags[0].layers(0), "conv1");
  for (int i = 0; i < 6; ++i) {
    EXPECT_GT(diags[0].activation_std(i), 0.0);
    EXPECT_GT(diags[0].gradient_std(i), 0.0);
  }

  const auto epochs = rec.of("epoch");
  ASSERT_EQ(epochs.size(), 2u);
  EXPECT_GT(epochs[1].test_accuracy(), 0.70);
  EXPECT_LT(epochs[1].train_loss(), epochs[0].train_loss());

  EXPECT_EQ(rec.events.back().event(), "summary");
  EXPECT_EQ(summary.steps(), 300);
  EXPECT_EQ(summary.test_accuracy(), epochs[1].test_accuracy());
  EXPECT_GT(summary.train_images_per_second(), 0.0);
  // Five activation layers; channel-wise slopes have one value per channel, and they moved.
  ASSERT_EQ(summary.alphas_size(), 5);
  EXPECT_EQ(summary.alphas(0).layer(), "conv1.act");
  // The test set by class: Fashion-MNIST's names, and a confusion matrix over all
  // 2000 test images whose diagonal is the accuracy, row by row and in all.
  ASSERT_EQ(summary.class_names_size(), 10);
  EXPECT_EQ(summary.class_names(0), "T-shirt/top");
  EXPECT_EQ(summary.class_names(9), "Ankle boot");
  ASSERT_EQ(summary.confusion_matrix_size(), 100);
  ASSERT_EQ(summary.class_accuracy_size(), 10);
  int64_t total = 0, diagonal = 0;
  for (int i = 0; i < 10; ++i) {
    int64_t row = 0;
    for (int j = 0; j < 10; ++j) row += summary.confusion_matrix(i * 10 + j);
    total += row;
    diagonal += summary.confusion_matrix(i * 11);
    EXPECT_DOUBLE_EQ(summary.class_accuracy(i), row ? static_cast<double>(summary.confusion_matrix(i * 11)) / row : 0);
  }
  EXPECT_EQ(total, 2000);
  EXPECT_NEAR(static_cast<double>(diagonal) / total, summary.test_accuracy(), 1.0 / 2000);  // argmax ties aside
  EXPECT_EQ(summary.alphas(0).values_size(), 32);
  EXPECT_EQ(summary.alphas(4).values_size(), 256);
  double moved = 0;
  for (float a : summary.alphas(0).values()) moved += std::fabs(a - 0.25f);
  EXPECT_GT(moved, 1e-3);

  // The JSON line uses the proto field names the issue lists.
  const std::string json = event_to_json(summary);
  for (const char* key : {"\"event\":\"summary\"", "\"test_accuracy\"", "\"test_loss\"", "\"train_loss\"",
                          "\"steps\"", "\"train_images_per_second\"", "\"alphas\"", "\"seconds\""})
    EXPECT_NE(json.find(key), std::string::npos) << key << " in " << json;
}

TEST(Training, SameSeedSameRunOtherSeedOtherRun) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "Fashion-MNIST not installed";
  auto run = [](int seed) {
    const auto spec = spec_from(R"({"dataset":{"name":"fashion-mnist","trainLimit":1280},
        "model":{"preset":"cnn-small","activation":{"kind":"PRELU_SHARED"}},
        "training":{"maxSteps":10,"batchSize":32,"skipTest":true,"logEverySteps":1,"seed":)" +
                                std::to_string(seed) + "}}");
    Recorder rec;
    RunOptions opt;
    opt.data_root = kDataRoot;
    run_training(spec, opt, rec);
    std::vector<double> losses;
    for (auto& e : rec.of("step")) losses.push_back(e.loss());
    return losses;
  };
  const auto a = run(7), b = run(7), c = run(8);
  ASSERT_EQ(a.size(), 10u);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(Training, StopRequestEndsTheRunEarly) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "Fashion-MNIST not installed";
  const auto spec = spec_from(R"({"dataset":{"name":"fashion-mnist","trainLimit":3200},
      "training":{"batchSize":32,"skipTest":true}})");
  Recorder rec;
  RunOptions opt;
  opt.data_root = kDataRoot;
  int polls = 0;
  opt.should_stop = [&] { return ++polls > 7; };  // polled after each step
  const auto summary = run_training(spec, opt, rec);
  EXPECT_EQ(summary.steps(), 8);
  EXPECT_EQ(rec.of("step").back().step(), 8);
}

TEST(Training, MissingDataIsAUserErrorNamingTheFile) {
  const auto spec = spec_from(R"({"dataset":{"name":"fashion-mnist"}})");
  Recorder rec;
  RunOptions opt;
  opt.data_root = "/nonexistent-prelude-root";
  try {
    run_training(spec, opt, rec);
    FAIL() << "expected a UserError";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("fashion-mnist"), std::string::npos) << e.what();
  }
}

TEST(Training, BatchLargerThanTheDataIsAUserError) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "Fashion-MNIST not installed";
  const auto spec = spec_from(R"({"dataset":{"name":"fashion-mnist","trainLimit":100},"training":{"batchSize":128}})");
  Recorder rec;
  RunOptions opt;
  opt.data_root = kDataRoot;
  EXPECT_THROW(run_training(spec, opt, rec), UserError);
}

TEST(Training, LossThatStopsImprovingEndsTheRunAsStalled) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "Fashion-MNIST not installed";
  // A learning rate far too small to move the loss: window means differ only by
  // which images they saw, so within a few windows one fails to beat the best by 1%.
  const auto spec = spec_from(R"({"dataset":{"name":"fashion-mnist","trainLimit":2048},
      "training":{"batchSize":32,"learningRate":1e-9,"maxSteps":200,"skipTest":true,"stallWindowSteps":10}})");
  Recorder rec;
  RunOptions opt;
  opt.data_root = kDataRoot;
  int64_t last_step = 0;
  opt.after_step = [&](int64_t step, ParamStore&) { last_step = step; };
  try {
    run_training(spec, opt, rec);
    FAIL() << "expected a StalledError";
  } catch (const StalledError& e) {
    // "... over steps A-B is not 1% below the best earlier window's L (steps C-D)"
    long long a = 0, b = 0, c = 0, d = 0;
    double mean = 0, best = 0;
    ASSERT_EQ(std::sscanf(e.what(), "training stalled: mean loss %lf over steps %lld-%lld is not 1%% below the best "
                          "earlier window's %lf (steps %lld-%lld)", &mean, &a, &b, &best, &c, &d), 6) << e.what();
    EXPECT_EQ(b % 10, 0) << e.what();
    EXPECT_EQ(a, b - 9);
    EXPECT_LT(d, b) << "the best window is an earlier one";
    EXPECT_GE(mean, 0.99 * best) << "it did not improve by 1%";
    EXPECT_EQ(last_step, b - 1) << "the run stops at the end of that window";
    EXPECT_LT(b, 200) << "an unmoving loss stalls well before the end";
  }
}

TEST(Training, LossThatFallsIsNotStalled) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "Fashion-MNIST not installed";
  const auto spec = spec_from(R"({"dataset":{"name":"fashion-mnist","trainLimit":2048},
      "training":{"batchSize":32,"learningRate":0.01,"maxSteps":30,"skipTest":true,"stallWindowSteps":10}})");
  Recorder rec;
  RunOptions opt;
  opt.data_root = kDataRoot;
  EXPECT_EQ(run_training(spec, opt, rec).steps(), 30);
}
