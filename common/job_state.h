// Job states (prelude.v1.JobState) as the coordinator and the client both read them.
#pragma once

#include "prelude/v1/service.pb.h"

namespace prelude {

// SUCCEEDED, FAILED or CANCELLED: the job will not change again.
bool is_final(prelude::v1::JobState state);

}  // namespace prelude
