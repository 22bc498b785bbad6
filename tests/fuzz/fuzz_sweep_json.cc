// Fuzz target: a sweep file. The input is the file's text: parse_strict_json into a
// SweepSpec, then expand_sweep, which must keep to its bound on points and give only
// defaulted, valid specs.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "spec/strict_json.h"
#include "spec/sweep.h"

namespace {

// Small, so that a grid at the bound expands quickly (the coordinator's is 1000).
constexpr int kMaxPoints = 32;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  prelude::v1::SweepSpec sweep;
  try {
    prelude::parse_strict_json(text, "sweep.json", &sweep);
  } catch (const prelude::UserError& e) {
    prelude::fuzz::check_message(e, "sweep.json");
    return 0;
  }
  std::vector<prelude::SweepPoint> points;
  try {
    points = prelude::expand_sweep(sweep, kMaxPoints);
  } catch (const prelude::UserError& e) {
    const std::string m = e.what();
    FUZZ_EXPECT(m.find('\n') == std::string::npos && m.size() <= prelude::fuzz::kMaxMessageChars,
                "a short one-line message: '%s'", m.c_str());
    return 0;
  }
  FUZZ_EXPECT(!points.empty() && points.size() <= static_cast<size_t>(kMaxPoints), "1 to %d points, got %zu",
              kMaxPoints, points.size());
  // The first and the last point (all of them would slow the search down).
  FUZZ_EXPECT(prelude::fuzz::check_job(points.front().spec), "the point valid: %s", points.front().label.c_str());
  FUZZ_EXPECT(prelude::fuzz::check_job(points.back().spec), "the point valid: %s", points.back().label.c_str());
  return 0;
}
