#include "common/job_state.h"

namespace prelude {

bool is_final(prelude::v1::JobState state) {
  return state == prelude::v1::SUCCEEDED || state == prelude::v1::FAILED || state == prelude::v1::CANCELLED;
}

}  // namespace prelude
