#include "engine/model.h"

#include <string>

#include "engine/conv_layer.h"
#include "common/errors.h"
#include "engine/fc_layer.h"
#include "engine/pool_layer.h"

namespace prelude {

namespace v1 = prelude::v1;

ActKind act_kind_from(const v1::ActivationSpec& spec) {
  switch (spec.kind()) {
    case v1::ActivationSpec::RELU: return ActKind::kRelu;
    case v1::ActivationSpec::LEAKY_RELU: return ActKind::kLeakyRelu;
    case v1::ActivationSpec::PRELU_SHARED: return ActKind::kPreluShared;
    case v1::ActivationSpec::PRELU_CHANNELWISE: return ActKind::kPreluChannelwise;
    default: throw user_error("model.activation.kind", "must be set");
  }
}

std::unique_ptr<Network> build_network(const std::vector<v1::LayerSpec>& specs, const dims_t& input_dims) {
  std::vector<std::unique_ptr<Layer>> layers;
  int convs = 0, fcs = 0, pools = 0, acts = 0;
  std::string last_weight;
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto& s = specs[i];
    switch (s.layer_case()) {
      case v1::LayerSpec::kConv: {
        const auto& c = s.conv();
        last_weight = "conv" + std::to_string(++convs);
        layers.push_back(std::make_unique<ConvLayer>(last_weight, c.out_channels(), c.kernel(),
                                                     c.padding(), c.stride()));
        break;
      }
      case v1::LayerSpec::kFc:
        last_weight = "fc" + std::to_string(++fcs);
        layers.push_back(std::make_unique<FcLayer>(last_weight, s.fc().out_features()));
        break;
      case v1::LayerSpec::kPool: {
        const auto& p = s.pool();
        const PoolKind kind = p.kind() == v1::PoolLayerSpec::AVG          ? PoolKind::kAvg
                              : p.kind() == v1::PoolLayerSpec::GLOBAL_AVG ? PoolKind::kGlobalAvg
                                                                          : PoolKind::kMax;
        layers.push_back(std::make_unique<PoolLayer>("pool" + std::to_string(++pools), kind,
                                                     p.kernel(), p.stride()));
        break;
      }
      case v1::LayerSpec::kActivation: {
        ++acts;
        const std::string name = last_weight.empty() ? "act" + std::to_string(acts) : last_weight + ".act";
        const auto& a = s.activation();
        layers.push_back(std::make_unique<ActivationLayer>(name, act_kind_from(a), a.alpha_init()));
        break;
      }
      default:
        throw user_error("model.layers[" + std::to_string(i) + "]", "empty layer (give conv, activation, pool or fc)");
    }
  }
  try {
    return std::make_unique<Network>(std::move(layers), input_dims);
  } catch (const UserError& e) {
    throw UserError(std::string("model: ") + e.what());
  }
}

InitOptions init_options_from(const v1::InitSpec& spec, uint64_t seed) {
  InitOptions o;
  switch (spec.scheme()) {
    case v1::InitSpec::XAVIER_UNIFORM: o.scheme = InitScheme::kXavierUniform; break;
    case v1::InitSpec::XAVIER_NORMAL: o.scheme = InitScheme::kXavierNormal; break;
    case v1::InitSpec::KAIMING_UNIFORM: o.scheme = InitScheme::kKaimingUniform; break;
    default: o.scheme = InitScheme::kKaimingNormal; break;
  }
  o.mode = spec.mode() == v1::InitSpec::FAN_OUT ? FanMode::kFanOut : FanMode::kFanIn;
  o.one_plus_a_slip = spec.kaiming_factor() == v1::InitSpec::ONE_PLUS_A;
  o.seed = seed;
  return o;
}

}  // namespace prelude
