#include "spec/events.h"

#include <string>

namespace prelude {

namespace {

constexpr EventKind kKinds[] = {v1::TrainingEvent::DIAGNOSTICS, v1::TrainingEvent::STEP, v1::TrainingEvent::EPOCH,
                                v1::TrainingEvent::SUMMARY, v1::TrainingEvent::RESUMED};

}  // namespace

const char* event_kind_name(EventKind kind) {
  switch (kind) {
    case v1::TrainingEvent::DIAGNOSTICS: return "diagnostics";
    case v1::TrainingEvent::STEP: return "step";
    case v1::TrainingEvent::EPOCH: return "epoch";
    case v1::TrainingEvent::SUMMARY: return "summary";
    case v1::TrainingEvent::RESUMED: return "resumed";
    default: return "";
  }
}

EventKind event_kind(const v1::TrainingEvent& event) {
  if (event.kind() != v1::TrainingEvent::KIND_UNSPECIFIED) return event.kind();
  for (EventKind kind : kKinds)
    if (event.event() == event_kind_name(kind)) return kind;
  return v1::TrainingEvent::KIND_UNSPECIFIED;
}

void set_event_kind(v1::TrainingEvent* event, EventKind kind) {
  event->set_kind(kind);
  event->set_event(event_kind_name(kind));
}

}  // namespace prelude
