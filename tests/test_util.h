// Helpers shared by the engine's and the spec library's tests.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "common/errors.h"
#include "engine/trainer.h"
#include "spec/job_spec.h"

namespace prelude::testutil {

inline const char* kDataRoot = "/usr/share/datasets";

// Debian's dataset-fashion-mnist is installed (tests that train skip without it).
inline bool have_fashion_mnist() {
  return std::filesystem::exists(std::string(kDataRoot) + "/fashion-mnist/train-images-idx3-ubyte.gz");
}

// A job spec from JSON text, defaulted and validated.
inline prelude::v1::JobSpec spec_from(const std::string& json) {
  auto spec = parse_job_json(json, "test");
  apply_defaults(&spec);
  validate_job_spec(spec);
  return spec;
}

// The message of the UserError `f` throws, "" when it throws none.
inline std::string user_error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

// Keeps every event a run sends.
struct Recorder : EventSink {
  std::vector<prelude::v1::TrainingEvent> events;
  void on_event(const prelude::v1::TrainingEvent& e) override { events.push_back(e); }
  // The events named `kind` ("step", "epoch", ...), in order.
  std::vector<prelude::v1::TrainingEvent> of(const std::string& kind) const {
    std::vector<prelude::v1::TrainingEvent> out;
    for (const auto& e : events)
      if (e.event() == kind) out.push_back(e);
    return out;
  }
};

}  // namespace prelude::testutil
