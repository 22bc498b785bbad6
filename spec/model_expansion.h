// The model presets (internal to spec/; expand_model and describe_layers, which
// turn a model into its layers and its layers into one line, are declared in
// spec/job_spec.h and defined in spec/model_expansion.cc beside these). Defaults
// and validation ask here what a preset name means, so that the names are known
// in one place.
#pragma once

#include <string>

namespace prelude {

// The preset of a model that gives neither a preset nor layers.
inline constexpr const char* kCnnSmall = "cnn-small";

// The depth N of a "plain-N" preset (digits only, no leading zero), 0 for any
// other string. The range is checked by check_preset.
int plain_depth(const std::string& preset);

// Throws a UserError "model.preset: ..." unless `preset` is "cnn-small" or "plain-N"
// with N in range; the message lists the valid presets.
void check_preset(const std::string& preset);

}  // namespace prelude
