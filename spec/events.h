// The kind of a training event (diagnostics, step, epoch, summary), read and set in
// one place. TrainingEvent carries it twice: the `kind` enum, and the `event` name
// that events stored before the enum existed (and producers not yet switched to
// set_event_kind) carry alone. Consumers ask event_kind() and never compare names.
#pragma once

#include "prelude/v1/job.pb.h"

namespace prelude {

using EventKind = prelude::v1::TrainingEvent::Kind;

// The enum when set, else the kind the `event` name gives ("step" -> STEP), else
// KIND_UNSPECIFIED (no kind, or a name this version does not know).
EventKind event_kind(const prelude::v1::TrainingEvent& event);

// Sets the enum and the name together, so old readers and new ones agree.
void set_event_kind(prelude::v1::TrainingEvent* event, EventKind kind);

// "diagnostics", "step", "epoch", "summary"; "" for KIND_UNSPECIFIED.
const char* event_kind_name(EventKind kind);

}  // namespace prelude
