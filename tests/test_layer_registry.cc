// The model builder: layer names and parameter order as the service has always
// given them (they name checkpoints' parameters, slopes and statistics), and the
// layer registry it asks. This file deliberately names no layer class: every layer
// here is reached only through the registry, as in the worker, so a layer whose
// self-registration the linker dropped fails here.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/errors.h"
#include "engine/layer_registry.h"
#include "engine/model.h"

using namespace prelude;
namespace v1 = prelude::v1;

namespace {

v1::LayerSpec conv(int out_channels, int stride = 1) {
  v1::LayerSpec s;
  auto* c = s.mutable_conv();
  c->set_out_channels(out_channels);
  c->set_kernel(3);
  c->set_padding(1);
  c->set_stride(stride);
  return s;
}

v1::LayerSpec act(v1::ActivationSpec::Kind kind = v1::ActivationSpec::PRELU_CHANNELWISE) {
  v1::LayerSpec s;
  s.mutable_activation()->set_kind(kind);
  s.mutable_activation()->set_alpha_init(0.25);
  return s;
}

v1::LayerSpec pool(v1::PoolLayerSpec::Kind kind = v1::PoolLayerSpec::MAX) {
  v1::LayerSpec s;
  s.mutable_pool()->set_kind(kind);
  s.mutable_pool()->set_kernel(2);
  s.mutable_pool()->set_stride(2);
  return s;
}

v1::LayerSpec fc(int out_features) {
  v1::LayerSpec s;
  s.mutable_fc()->set_out_features(out_features);
  return s;
}

std::vector<std::string> layer_names(const Network& net) {
  std::vector<std::string> out;
  for (auto& l : net.layers()) out.push_back(l->name() + ":" + l->type());
  return out;
}

std::vector<std::string> param_names(const Network& net) {
  std::vector<std::string> out;
  for (auto& p : net.params().params()) out.push_back(p->name);
  return out;
}

}  // namespace

// A new field in LayerSpec's `layer` oneof must come with an engine layer that
// registers itself for it (see engine/layer_registry.h).
TEST(LayerRegistry, EveryLayerSpecCaseHasARegisteredLayer) {
  const auto* oneof = v1::LayerSpec::descriptor()->FindOneofByName("layer");
  ASSERT_NE(oneof, nullptr);
  ASSERT_GT(oneof->field_count(), 0);
  for (int i = 0; i < oneof->field_count(); ++i) {
    const auto* field = oneof->field(i);
    // A oneof's case enumerators are its fields' numbers.
    const auto layer_case = static_cast<v1::LayerSpec::LayerCase>(field->number());
    const LayerKind* kind = LayerRegistry::get().find(layer_case);
    EXPECT_NE(kind, nullptr) << "LayerSpec." << field->name() << " has no engine layer registered for it";
    if (kind) {
      EXPECT_FALSE(kind->prefix.empty()) << "LayerSpec." << field->name();
      EXPECT_TRUE(kind->make) << "LayerSpec." << field->name();
    }
  }
}

// The names of cnn-small (as spec/ expands it), and the order its parameters take in the arena.
TEST(BuildNetwork, NamesLayersAndParametersAsBefore) {
  const auto net = build_network({conv(16), act(), conv(16), act(), pool(), conv(32), act(), conv(32), act(), pool(),
                                  fc(32), act(), fc(10)},
                                 {2, 1, 12, 12});
  EXPECT_EQ(layer_names(*net),
            (std::vector<std::string>{"conv1:conv", "conv1.act:prelu_channelwise", "conv2:conv",
                                      "conv2.act:prelu_channelwise", "pool1:maxpool", "conv3:conv",
                                      "conv3.act:prelu_channelwise", "conv4:conv", "conv4.act:prelu_channelwise",
                                      "pool2:maxpool", "fc1:fc", "fc1.act:prelu_channelwise", "fc2:fc"}));
  EXPECT_EQ(param_names(*net),
            (std::vector<std::string>{"conv1.weight", "conv1.bias", "conv1.act.slope", "conv2.weight",
                                      "conv2.bias", "conv2.act.slope", "conv3.weight", "conv3.bias",
                                      "conv3.act.slope", "conv4.weight", "conv4.bias", "conv4.act.slope",
                                      "fc1.weight", "fc1.bias", "fc1.act.slope", "fc2.weight", "fc2.bias"}));
}

// The corners of the naming rule: activations before any weight layer are act1,
// act2, ...; one after a pool is still named after the last weight layer (names
// need not be unique); each kind counts on its own.
TEST(BuildNetwork, NamingCorners) {
  const auto net = build_network({act(v1::ActivationSpec::RELU), act(v1::ActivationSpec::RELU), conv(4, 2),
                                  act(v1::ActivationSpec::LEAKY_RELU),
                                  pool(v1::PoolLayerSpec::AVG), act(v1::ActivationSpec::PRELU_SHARED),
                                  pool(v1::PoolLayerSpec::GLOBAL_AVG), fc(6), act(v1::ActivationSpec::RELU), fc(3)},
                                 {2, 3, 9, 9});
  EXPECT_EQ(layer_names(*net),
            (std::vector<std::string>{"act1:relu", "act2:relu", "conv1:conv", "conv1.act:leaky_relu", "pool1:avgpool",
                                      "conv1.act:prelu_shared", "pool2:global_avgpool", "fc1:fc", "fc1.act:relu",
                                      "fc2:fc"}));
  EXPECT_EQ(param_names(*net), (std::vector<std::string>{"conv1.weight", "conv1.bias", "conv1.act.slope",
                                                         "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}));
}

TEST(BuildNetwork, RefusesAnEmptyLayer) {
  try {
    build_network({conv(4), v1::LayerSpec(), fc(3)}, {1, 1, 4, 4});
    FAIL() << "no error";
  } catch (const UserError& e) {
    EXPECT_STREQ(e.what(), "model.layers[1]: empty layer (give conv, activation, pool or fc)");
  }
}
