// Model expansion: the presets (spec/model_expansion.h), expand_model, which turns
// a model into its explicit layer list, and describe_layers, which writes a layer
// list on one line (both declared in spec/job_spec.h).
#include "spec/model_expansion.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <stdexcept>

#include "common/errors.h"
#include "spec/defaults.h"
#include "spec/job_spec.h"
#include "spec/spec_text.h"

namespace prelude {

namespace {

constexpr const char* kPlainPrefix = "plain-";
constexpr int kMinPlainDepth = 3;
constexpr int kMaxPlainDepth = 200;

v1::LayerSpec conv3x3(int channels) {
  v1::LayerSpec layer;
  auto* c = layer.mutable_conv();
  c->set_out_channels(channels);
  c->set_kernel(3);
  c->set_padding(1);
  c->set_stride(1);
  return layer;
}

v1::LayerSpec activation(const v1::ActivationSpec& spec) {
  v1::LayerSpec layer;
  *layer.mutable_activation() = spec;
  return layer;
}

v1::LayerSpec pool(v1::PoolLayerSpec::Kind kind) {
  v1::LayerSpec layer;
  auto* p = layer.mutable_pool();
  p->set_kind(kind);
  if (kind != v1::PoolLayerSpec::GLOBAL_AVG) {
    p->set_kernel(2);
    p->set_stride(2);
  }
  return layer;
}

v1::LayerSpec fc(int features) {
  v1::LayerSpec layer;
  layer.mutable_fc()->set_out_features(features);
  return layer;
}

}  // namespace

int plain_depth(const std::string& preset) {
  if (!starts_with(preset, kPlainPrefix)) return 0;
  const std::string digits = preset.substr(std::strlen(kPlainPrefix));
  if (digits.empty() || digits.size() > 4 || digits[0] == '0') return 0;
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
    return 0;
  return std::stoi(digits);
}

void check_preset(const std::string& preset) {
  if (preset == kCnnSmall) return;
  const int depth = plain_depth(preset);
  const std::string range = std::to_string(kMinPlainDepth) + " to " + std::to_string(kMaxPlainDepth);
  if (depth == 0)
    throw user_error("model.preset",
                     "unknown preset " + quoted(preset) + "; valid: cnn-small, plain-N (N from " + range + ")");
  if (depth < kMinPlainDepth || depth > kMaxPlainDepth)
    throw user_error("model.preset", "plain-N needs N from " + range + ", got " + quoted(preset));
}

std::vector<v1::LayerSpec> expand_model(const v1::ModelSpec& model, int num_classes) {
  if (num_classes < 1) throw std::invalid_argument("expand_model: num_classes must be positive");
  v1::ModelSpec m = model;
  default_model(&m);  // a no-op for a defaulted spec
  if (m.layers_size() > 0) return {m.layers().begin(), m.layers().end()};

  check_preset(m.preset());
  const v1::ActivationSpec& a = m.activation();
  std::vector<v1::LayerSpec> layers;
  if (m.preset() == kCnnSmall) {
    layers = {conv3x3(32), activation(a), conv3x3(32), activation(a), pool(v1::PoolLayerSpec::MAX),
              conv3x3(64), activation(a), conv3x3(64), activation(a), pool(v1::PoolLayerSpec::MAX),
              fc(256),     activation(a), fc(num_classes)};
    return layers;
  }
  // plain-N, as torch_baseline.py's plain(): N-1 convolutions, then the classifier.
  const int depth = plain_depth(m.preset());
  for (int i = 0; i < depth - 1; ++i) {
    layers.push_back(conv3x3(m.width()));
    layers.push_back(activation(a));
    if (i == depth / 3 || i == 2 * depth / 3) layers.push_back(pool(v1::PoolLayerSpec::MAX));
  }
  layers.push_back(pool(v1::PoolLayerSpec::GLOBAL_AVG));
  layers.push_back(fc(num_classes));
  return layers;
}

std::string describe_layers(const std::vector<v1::LayerSpec>& layers) {
  std::string out;
  for (const auto& layer : layers) {
    std::string item;
    switch (layer.layer_case()) {
      case v1::LayerSpec::kConv: {
        const auto& c = layer.conv();
        const int padding = c.has_padding() ? c.padding() : c.kernel() / 2;
        item = "conv" + std::to_string(c.kernel()) + "x" + std::to_string(c.kernel()) + "(" +
               std::to_string(c.out_channels());
        if (c.stride() > 1) item += ",s" + std::to_string(c.stride());
        if (padding != c.kernel() / 2) item += ",p" + std::to_string(padding);
        item += ")";
        break;
      }
      case v1::LayerSpec::kActivation: {
        const auto& a = layer.activation();
        switch (a.kind()) {
          case v1::ActivationSpec::RELU: item = "relu"; break;
          case v1::ActivationSpec::LEAKY_RELU: item = "leaky"; break;
          case v1::ActivationSpec::PRELU_SHARED: item = "prelu-shared"; break;
          case v1::ActivationSpec::PRELU_CHANNELWISE: item = "prelu-cw"; break;
          default: item = "activation"; break;
        }
        if (a.has_alpha_init() && a.alpha_init() != default_alpha(a.kind()))
          item += "(a=" + format_number(a.alpha_init()) + ")";
        break;
      }
      case v1::LayerSpec::kPool: {
        const auto& p = layer.pool();
        if (p.kind() == v1::PoolLayerSpec::GLOBAL_AVG) {
          item = "globalavgpool";
          break;
        }
        item = (p.kind() == v1::PoolLayerSpec::AVG ? "avgpool" : "maxpool") + std::to_string(p.kernel());
        if (p.stride() != p.kernel()) item += "(s" + std::to_string(p.stride()) + ")";
        break;
      }
      case v1::LayerSpec::kFc:
        item = "fc" + std::to_string(layer.fc().out_features());
        break;
      default:
        item = "?";
        break;
    }
    if (!out.empty()) out += ' ';
    out += item;
  }
  return out;
}

}  // namespace prelude
