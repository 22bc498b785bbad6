// Parameters in and out of the plain layout of checkpoints: the arena holds each
// parameter in the layout its primitive prefers (OIhw16i16o, nChw16c, ...), a
// checkpoint holds it in a layout that no CPU chose (OIHW, OI, {C}); see
// proto/prelude/v1/checkpoint.proto. Reorders between the two are exact copies,
// so values and momentum survive a round trip bit for bit.
#pragma once

#include <string>

#include "engine/params.h"
#include "prelude/v1/checkpoint.pb.h"

namespace prelude {

// Appends every parameter of the arena, in arena order, with its SGD momentum
// (`with_momentum`) to `out->params`.
void save_params(const ParamStore& params, bool with_momentum, prelude::v1::Checkpoint* out);

// Loads values (and momentum, when `with_momentum`; the checkpoint must then hold
// it) into the arena. The checkpoint's parameters must be the arena's: the same
// names in the same order with the same shapes; anything else is a UserError
// starting with `source` and naming the parameter.
void load_params(const prelude::v1::Checkpoint& checkpoint, const std::string& source, bool with_momentum,
                 ParamStore& params);

}  // namespace prelude
