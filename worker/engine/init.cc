#include "engine/init.h"

#include <algorithm>
#include <cmath>

#include "engine/rng.h"

namespace prelude {

double init_variance(const Param& w, const InitOptions& opt) {
  switch (opt.scheme) {
    case InitScheme::kXavierUniform:
    case InitScheme::kXavierNormal:
      return 2.0 / static_cast<double>(w.fan_in + w.fan_out);
    case InitScheme::kKaimingNormal:
    case InitScheme::kKaimingUniform: {
      const double a = w.rectifier_slope;
      const double factor = opt.one_plus_a_slip ? 1.0 + a : 1.0 + a * a;
      const double n = static_cast<double>(opt.mode == FanMode::kFanIn ? w.fan_in : w.fan_out);
      return 2.0 / (factor * n);
    }
  }
  return 0;
}

void assign_rectifier_slopes(Network& net, double default_slope) {
  const auto& layers = net.layers();
  double previous = default_slope;
  bool seen_any = false;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (auto* a = dynamic_cast<ActivationLayer*>(layers[i].get())) {
      previous = a->kind() == ActKind::kRelu ? 0.0 : a->initial_slope();
      seen_any = true;
    }
    if (!layers[i]->is_weight_layer()) continue;
    double slope = seen_any ? previous : default_slope;
    for (size_t j = i + 1; j < layers.size() && !layers[j]->is_weight_layer(); ++j) {
      if (auto* a = dynamic_cast<ActivationLayer*>(layers[j].get())) {
        slope = a->kind() == ActKind::kRelu ? 0.0 : a->initial_slope();
        break;
      }
    }
    for (auto& p : net.params().params())
      if (p->kind == ParamKind::kWeight && p->name == layers[i]->name() + ".weight")
        p->rectifier_slope = slope;
  }
}

void initialize(ParamStore& params, const InitOptions& opt) {
  const auto& ps = params.params();
  std::fill(params.momentum(), params.momentum() + params.total_floats(), 0.f);
  for (size_t i = 0; i < ps.size(); ++i) {
    Param& p = *ps[i];
    std::vector<float> v(logical_size(p.md), static_cast<float>(p.init_value));
    if (p.kind == ParamKind::kWeight) {
      // FNV-1a of the name: a layer's weights depend on the seed and its name only,
      // so ReLU and PReLU networks of the same shape start from the same weights.
      uint64_t h = 0xcbf29ce484222325ULL;
      for (unsigned char ch : p.name) h = (h ^ ch) * 0x100000001b3ULL;
      uint64_t s = h ^ splitmix64(h) ^ (opt.seed * 0x9e3779b97f4a7c15ULL);
      Rng rng(splitmix64(s));
      const double var = init_variance(p, opt);
      const bool uniform = opt.scheme == InitScheme::kXavierUniform || opt.scheme == InitScheme::kKaimingUniform;
      const double bound = std::sqrt(3.0 * var), sd = std::sqrt(var);
      for (auto& x : v) x = static_cast<float>(uniform ? rng.uniform(-bound, bound) : sd * rng.normal());
    }
    from_plain(v, p.data);
  }
}

}  // namespace prelude
