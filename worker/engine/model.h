// From the job spec's layer list (proto) to a Network of engine layers.
#pragma once

#include <memory>
#include <vector>

#include "engine/conv_layer.h"
#include "engine/init.h"
#include "engine/network.h"
#include "prelude/v1/job.pb.h"

namespace prelude {

// Builds the layers for input {N, C, H, W}, each by the factory its layer file
// registered (engine/layer_registry.h) and named by its kind's rule: conv1.., fc1..,
// pool1.., and "<weight layer>.act" for the activation that follows a weight layer.
// The layer specs must be complete (see expand_model). Shape problems are UserErrors
// naming the layer. Every convolution gets `conv_algorithm` (the engine's default is
// direct; a job's, training.convAlgorithm, is AUTO).
std::unique_ptr<Network> build_network(const std::vector<prelude::v1::LayerSpec>& layers,
                                       const dims_t& input_dims, Precision precision = Precision::kF32,
                                       ConvAlgorithm conv_algorithm = ConvAlgorithm::kDirect);

// training.precision (defaulted) as the engine's Precision.
Precision precision_from(prelude::v1::TrainingSpec::Precision p);
// training.convAlgorithm (defaulted: UNSPECIFIED is AUTO) as the engine's ConvAlgorithm.
ConvAlgorithm conv_algorithm_from(prelude::v1::TrainingSpec::ConvAlgorithm a);
// One line per convolution of a built network: what setup() chose for each pass.
std::vector<std::string> conv_algorithm_choices(const Network& net);

InitOptions init_options_from(const prelude::v1::InitSpec& spec, uint64_t seed);

}  // namespace prelude
