// The kind of a training event (spec/events.h): the enum when set, else the name
// that events stored before the enum existed carry alone; the setter writes both.
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include "spec/events.h"

namespace prelude {
namespace {

namespace v1 = prelude::v1;

constexpr EventKind kAllKinds[] = {v1::TrainingEvent::DIAGNOSTICS, v1::TrainingEvent::STEP,
                                   v1::TrainingEvent::EPOCH, v1::TrainingEvent::SUMMARY};

TEST(EventKind, TheSetterWritesTheEnumAndTheName) {
  for (EventKind kind : kAllKinds) {
    v1::TrainingEvent e;
    set_event_kind(&e, kind);
    EXPECT_EQ(e.kind(), kind);
    EXPECT_EQ(e.event(), event_kind_name(kind));
    EXPECT_EQ(event_kind(e), kind);
  }
  v1::TrainingEvent e;
  set_event_kind(&e, v1::TrainingEvent::STEP);
  EXPECT_EQ(e.event(), "step");
  set_event_kind(&e, v1::TrainingEvent::SUMMARY);  // a second call replaces both
  EXPECT_EQ(e.event(), "summary");
  EXPECT_EQ(e.kind(), v1::TrainingEvent::SUMMARY);
}

TEST(EventKind, NamesAreThoseOfTheEventStream) {
  EXPECT_STREQ(event_kind_name(v1::TrainingEvent::DIAGNOSTICS), "diagnostics");
  EXPECT_STREQ(event_kind_name(v1::TrainingEvent::STEP), "step");
  EXPECT_STREQ(event_kind_name(v1::TrainingEvent::EPOCH), "epoch");
  EXPECT_STREQ(event_kind_name(v1::TrainingEvent::SUMMARY), "summary");
  EXPECT_STREQ(event_kind_name(v1::TrainingEvent::KIND_UNSPECIFIED), "");
}

TEST(EventKind, AnEventWithOnlyItsNameHasTheKindTheNameGives) {
  for (EventKind kind : kAllKinds) {
    v1::TrainingEvent e;
    e.set_event(event_kind_name(kind));
    EXPECT_EQ(event_kind(e), kind) << e.event();
  }
  // A JSON line of the event stream from before the enum existed.
  v1::TrainingEvent old;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(R"({"event": "epoch", "epoch": 1})", &old).ok());
  EXPECT_EQ(old.kind(), v1::TrainingEvent::KIND_UNSPECIFIED);
  EXPECT_EQ(event_kind(old), v1::TrainingEvent::EPOCH);
}

TEST(EventKind, TheEnumWinsOverTheName) {
  v1::TrainingEvent e;
  e.set_event("step");
  e.set_kind(v1::TrainingEvent::SUMMARY);
  EXPECT_EQ(event_kind(e), v1::TrainingEvent::SUMMARY);
}

TEST(EventKind, NoKindOrAnUnknownNameIsUnspecified) {
  v1::TrainingEvent e;
  EXPECT_EQ(event_kind(e), v1::TrainingEvent::KIND_UNSPECIFIED);
  for (const char* name : {"Step", "STEP", "steps", " step", "checkpoint"}) {
    e.set_event(name);
    EXPECT_EQ(event_kind(e), v1::TrainingEvent::KIND_UNSPECIFIED) << name;
  }
}

}  // namespace
}  // namespace prelude
