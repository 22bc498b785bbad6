#include "engine/model.h"

#include <stdexcept>
#include <string>

#include "common/errors.h"
#include "engine/layer_registry.h"

namespace prelude {

namespace v1 = prelude::v1;

namespace {

// "conv, activation, pool or fc": the members of LayerSpec's oneof, in proto order.
std::string layer_choices() {
  const auto* oneof = v1::LayerSpec::descriptor()->FindOneofByName("layer");
  std::string out;
  for (int i = 0; i < oneof->field_count(); ++i) {
    if (i > 0) out += i + 1 == oneof->field_count() ? " or " : ", ";
    out += oneof->field(i)->name();
  }
  return out;
}

}  // namespace

std::unique_ptr<Network> build_network(const std::vector<v1::LayerSpec>& specs, const dims_t& input_dims,
                                       Precision precision, ConvAlgorithm conv_algorithm) {
  std::vector<std::unique_ptr<Layer>> layers;
  LayerNamer namer;
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto& s = specs[i];
    const std::string where = "model.layers[" + std::to_string(i) + "]";
    if (s.layer_case() == v1::LayerSpec::LAYER_NOT_SET)
      throw user_error(where, "empty layer (give " + layer_choices() + ")");
    const LayerKind* kind = LayerRegistry::get().find(s.layer_case());
    if (!kind)  // a proto layer without an engine class; tests/test_layer_registry.cc catches it
      throw std::logic_error(where + ": no engine layer is registered for LayerSpec." +
                             v1::LayerSpec::descriptor()->FindFieldByNumber(s.layer_case())->name());
    layers.push_back(kind->make(s, namer.next(*kind)));
    if (auto* conv = dynamic_cast<ConvLayer*>(layers.back().get())) conv->set_algorithm(conv_algorithm);
  }
  try {
    return std::make_unique<Network>(std::move(layers), input_dims, precision);
  } catch (const UserError& e) {
    const std::string what = e.what();
    // About the CPU or the algorithm asked for, not the model.
    if (what.rfind("training.precision", 0) == 0 || what.rfind("training.convAlgorithm", 0) == 0) throw;
    throw UserError("model: " + what);
  }
}

Precision precision_from(v1::TrainingSpec::Precision p) {
  return p == v1::TrainingSpec::BF16 ? Precision::kBf16 : Precision::kF32;
}

ConvAlgorithm conv_algorithm_from(v1::TrainingSpec::ConvAlgorithm a) {
  switch (a) {
    case v1::TrainingSpec::DIRECT: return ConvAlgorithm::kDirect;
    case v1::TrainingSpec::WINOGRAD: return ConvAlgorithm::kWinograd;
    default: return ConvAlgorithm::kAuto;
  }
}

std::vector<std::string> conv_algorithm_choices(const Network& net) {
  std::vector<std::string> out;
  for (const auto& l : net.layers())
    if (const auto* conv = dynamic_cast<const ConvLayer*>(l.get())) out.push_back(conv->algorithm_choice());
  return out;
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
