// Weight initialisers: Xavier (Glorot) and Kaiming (He), normal and uniform.
//
// Kaiming: Var[W] = 2 / ((1 + a^2) n), n = fan-in (k*k*c_in) or fan-out (k*k*c_out),
// a = the negative slope of the rectifier the layer feeds at initialisation.
// Xavier:  Var[W] = 2 / (fan_in + fan_out). Uniform variants draw U(-b, b) with
// b = sqrt(3 Var). Biases start at 0, PReLU slopes at their alpha_init.
#pragma once

#include <cstdint>

#include "engine/network.h"

namespace prelude {

enum class InitScheme { kXavierUniform, kXavierNormal, kKaimingNormal, kKaimingUniform };
enum class FanMode { kFanIn, kFanOut };

struct InitOptions {
  InitScheme scheme = InitScheme::kKaimingNormal;
  FanMode mode = FanMode::kFanIn;
  // The (1 + a) slip of one source document instead of (1 + a^2): for demonstrations only.
  bool one_plus_a_slip = false;
  uint64_t seed = 1;
};

// The variance a weight parameter is drawn with.
double init_variance(const Param& weight, const InitOptions& opt);

// Sets every weight layer's `rectifier_slope`: the slope of the first activation after
// it (before the next weight layer); for a layer with none (the classifier), the last
// one before it; `default_slope` if the network has no activation at all.
void assign_rectifier_slopes(Network& net, double default_slope);

// Draws all weights, zeroes biases, sets slopes to their initial values. Each
// parameter has its own random stream derived from (seed, its name), so the values
// depend neither on the order of drawing nor on which other parameters exist (a
// ReLU and a PReLU network of the same shape start from the same weights).
// Momentum is reset to zero.
void initialize(ParamStore& params, const InitOptions& opt);

}  // namespace prelude
