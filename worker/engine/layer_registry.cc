#include "engine/layer_registry.h"

#include <stdexcept>

namespace prelude {

namespace v1 = prelude::v1;

LayerRegistry& LayerRegistry::get() {
  static LayerRegistry registry;
  return registry;
}

void LayerRegistry::add(v1::LayerSpec::LayerCase layer_case, LayerKind kind) {
  if (!kinds_.emplace(layer_case, std::move(kind)).second)
    throw std::logic_error("LayerRegistry: LayerSpec case " + std::to_string(layer_case) + " registered twice");
}

const LayerKind* LayerRegistry::find(v1::LayerSpec::LayerCase layer_case) const {
  const auto it = kinds_.find(layer_case);
  return it == kinds_.end() ? nullptr : &it->second;
}

LayerRegistration::LayerRegistration(v1::LayerSpec::LayerCase layer_case, LayerNaming naming, std::string prefix,
                                     LayerFactory make) {
  LayerRegistry::get().add(layer_case, {naming, std::move(prefix), std::move(make)});
}

std::string LayerNamer::next(const LayerKind& kind) {
  // Every layer advances its kind's count, even one named after a weight layer.
  const std::string counted = kind.prefix + std::to_string(++counts_[kind.prefix]);
  switch (kind.naming) {
    case LayerNaming::kCounted: return counted;
    case LayerNaming::kWeight: return last_weight_ = counted;
    case LayerNaming::kAfterWeight: return last_weight_.empty() ? counted : last_weight_ + "." + kind.prefix;
  }
  throw std::logic_error("LayerNamer: unknown naming rule");
}

}  // namespace prelude
