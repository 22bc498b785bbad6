// Parameters to and from the plain layout of checkpoints (engine/param_io.h), and a
// trained model rebuilt from a checkpoint (engine/evaluation.h): the round trip is
// exact whatever blocked layout oneDNN chose, shapes are the documented plain ones,
// another model's checkpoint is refused, and the confusion matrix counts by hand.
#include <gtest/gtest.h>

#include <cmath>

#include "common/errors.h"
#include "engine/evaluation.h"
#include "engine/init.h"
#include "engine/model.h"
#include "engine/param_io.h"
#include "engine/sgd.h"
#include "spec/job_spec.h"
#include "test_util.h"

using namespace prelude;
namespace v1 = prelude::v1;

namespace {

using testutil::user_error_of;

std::vector<v1::LayerSpec> layers_of(const std::string& model_json) {
  return expand_model(testutil::spec_from(R"({"model":)" + model_json + "}").model(), 10);
}

// A network with non-trivial values and momentum: initialised, then a few SGD steps
// on a fixed batch.
std::unique_ptr<Network> trained(const std::vector<v1::LayerSpec>& layers, uint64_t seed) {
  auto net = build_network(layers, {8, 1, 28, 28});
  assign_rectifier_slopes(*net, 0.25);
  InitOptions o;
  o.seed = seed;
  initialize(net->params(), o);
  Sgd sgd(net->params(), {0.9, 5e-4, false});
  std::vector<int32_t> labels{0, 1, 2, 3, 4, 5, 6, 7};
  for (int step = 0; step < 3; ++step) {
    for (int i = 0; i < 8 * 28 * 28; ++i) net->input_data()[i] = std::sin(0.37 * i + step);
    net->forward();
    net->loss(labels.data(), 8, true, 8.0);
    net->backward();
    sgd.step(0.05);
  }
  return net;
}

}  // namespace

TEST(ParamIo, PlainShapesAndAnExactRoundTrip) {
  const auto layers = layers_of(R"({"preset":"cnn-small","activation":{"kind":"PRELU_SHARED"}})");
  auto a = trained(layers, 1);
  v1::Checkpoint c;
  save_params(a->params(), true, &c);
  // conv1 OIHW, fc1 OI with I = 64 channels x 7 x 7 flattened, biases {O}, a shared slope {1}.
  std::map<std::string, std::vector<int64_t>> dims;
  for (const auto& t : c.params()) dims[t.name()] = {t.dims().begin(), t.dims().end()};
  EXPECT_EQ(dims["conv1.weight"], (std::vector<int64_t>{32, 1, 3, 3}));
  EXPECT_EQ(dims["conv2.weight"], (std::vector<int64_t>{32, 32, 3, 3}));
  EXPECT_EQ(dims["fc1.weight"], (std::vector<int64_t>{256, 64 * 7 * 7}));
  EXPECT_EQ(dims["fc1.bias"], (std::vector<int64_t>{256}));
  EXPECT_EQ(dims["conv1.act.slope"], (std::vector<int64_t>{1}));
  EXPECT_EQ(c.params(0).name(), "conv1.weight");  // arena order

  // Into a differently initialised network of the same model: bit for bit, values and momentum.
  auto b = trained(layers, 2);
  load_params(c, "x.ckpt", true, b->params());
  ASSERT_EQ(a->params().total_floats(), b->params().total_floats());
  for (size_t i = 0; i < a->params().total_floats(); ++i) {
    ASSERT_EQ(a->params().values()[i], b->params().values()[i]) << "value " << i;
    ASSERT_EQ(a->params().momentum()[i], b->params().momentum()[i]) << "momentum " << i;
  }
  // A plain value is the logical element: conv1.weight[o=1][i=0][h=2][w=1] read through oneDNN.
  const std::vector<float> plain = to_plain(a->params().params()[0]->data);
  EXPECT_EQ(c.params(0).values(1 * 9 + 2 * 3 + 1), plain[1 * 9 + 2 * 3 + 1]);
}

TEST(ParamIo, AnotherModelIsRefusedNamingTheParameter) {
  v1::Checkpoint c;
  save_params(trained(layers_of(R"({"preset":"cnn-small","activation":{"kind":"PRELU_CHANNELWISE"}})"), 1)->params(),
              true, &c);
  auto relu = build_network(layers_of(R"({"preset":"cnn-small","activation":{"kind":"RELU"}})"), {8, 1, 28, 28});
  EXPECT_EQ(user_error_of([&] { load_params(c, "cw.ckpt", true, relu->params()); }),
            "cw.ckpt: holds 17 parameters, the model has 12: it is another model");
  auto shared = build_network(layers_of(R"({"preset":"cnn-small","activation":{"kind":"PRELU_SHARED"}})"),
                              {8, 1, 28, 28});
  EXPECT_EQ(user_error_of([&] { load_params(c, "cw.ckpt", true, shared->params()); }),
            "cw.ckpt: parameter 2 is 'conv1.act.slope' 32, the model's is 'conv1.act.slope' 1: it is another model");
  for (auto& t : *c.mutable_params()) t.clear_momentum();
  auto cw = build_network(layers_of(R"({"preset":"cnn-small","activation":{"kind":"PRELU_CHANNELWISE"}})"),
                          {8, 1, 28, 28});
  EXPECT_NE(user_error_of([&] { load_params(c, "cw.ckpt", true, cw->params()); }).find("no optimizer state"),
            std::string::npos);
  load_params(c, "cw.ckpt", false, cw->params());  // values alone are enough for inference
}

TEST(TrainedModel, GivesTheTrainedNetworksLogitsAtAnyBatch) {
  const auto layers = layers_of(R"({"preset":"cnn-small"})");
  auto net = trained(layers, 3);
  v1::Checkpoint c;
  save_params(net->params(), false, &c);
  *c.mutable_layers() = {layers.begin(), layers.end()};
  c.mutable_io()->set_channels(1);
  c.mutable_io()->set_height(28);
  c.mutable_io()->set_width(28);
  c.mutable_io()->set_num_classes(10);
  std::vector<float> images(8 * 28 * 28);
  for (size_t i = 0; i < images.size(); ++i) images[i] = std::cos(0.11 * i);
  std::copy(images.begin(), images.end(), net->input_data());
  net->forward();
  const std::vector<float> want = to_plain(net->logits().data);
  for (int batch : {8, 5, 3}) {  // whole batches, a padded last batch
    TrainedModel m(c, "x.ckpt", batch);
    for (int start = 0; start < 8; start += batch) {
      const int count = std::min(batch, 8 - start);
      const std::vector<float> got = m.logits(images.data() + start * 28 * 28, count);
      ASSERT_EQ(got.size(), static_cast<size_t>(count) * 10);
      for (int i = 0; i < count * 10; ++i)
        EXPECT_NEAR(got[i], want[start * 10 + i], 1e-4 * (1 + std::fabs(want[start * 10 + i])))
            << "batch " << batch << " image " << start + i / 10;
    }
  }
}

TEST(ConfusionMatrix, CountsAndLossByHand) {
  ConfusionMatrix cm(3);
  // Three rows: predicted 0 (true 0), predicted 2 (true 1), predicted 1 (true 1).
  const float logits[] = {2, 0, 0, 0, 0, 1, 0, 3, 0};
  const int32_t labels[] = {0, 1, 1};
  cm.add(logits, labels, 3);
  EXPECT_EQ(cm.counts, (std::vector<int64_t>{1, 0, 0, 0, 1, 1, 0, 0, 0}));
  EXPECT_EQ(cm.total(), 3);
  EXPECT_EQ(cm.correct(), 2);
  EXPECT_DOUBLE_EQ(cm.accuracy(), 2.0 / 3);
  EXPECT_EQ(cm.per_class_accuracy(), (std::vector<double>{1.0, 0.5, 0.0}));
  // -log softmax by hand: row 1: log(e^2 + 2) - 2; row 2: log(2 + e) - 0; row 3: log(2 + e^3) - 3.
  const double e = std::exp(1.0);
  const double want = (std::log(e * e + 2) - 2) + std::log(2 + e) + (std::log(2 + e * e * e) - 3);
  EXPECT_NEAR(cm.loss_sum, want, 1e-9);
}
