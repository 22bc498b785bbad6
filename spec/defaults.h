// The defaults model expansion needs too (internal to spec/; apply_defaults, which
// fills in every default of a JobSpec, is declared in spec/job_spec.h and defined in
// spec/defaults.cc beside these). Expansion reuses them so that a model expands the
// same whether or not its spec was defaulted first, and so that describe_layers can
// leave out the slopes that are only the default.
#pragma once

#include "prelude/v1/job.pb.h"

namespace prelude {

// The starting slope of an activation kind when none is given: 0.25 for PReLU,
// 0.01 for LEAKY_RELU, 0 for RELU (whose slope is 0).
double default_alpha(prelude::v1::ActivationSpec::Kind kind);

// The model part of apply_defaults: preset, width, activation, init and every
// explicit layer's settings. Idempotent.
void default_model(prelude::v1::ModelSpec* m);

}  // namespace prelude
