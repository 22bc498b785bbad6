// Fuzz target: a job spec or a sweep as the coordinator receives them in SubmitJob
// and SubmitSweep: protobuf binary, parsed by gRPC, then the coordinator's own logic
// (JobManager::submit and submit_sweep): unknown fields dropped, the size capped,
// defaults, validation, model expansion, sweep expansion.
// The first byte of the input is the harness's: bit 0 chooses a JobSpec (0) or a
// SweepSpec (1); the rest is the message's bytes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "proto_mutator.h"
#include "spec/sweep.h"

namespace {

constexpr size_t kMaxSpecBytes = 256 << 10;  // as JobManager's
constexpr int kMaxPoints = 32;                // small, for speed (the coordinator's is 1000)

}  // namespace

// Mutated as messages too, mostly (proto_mutator.h).
extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned seed) {
  return prelude::fuzz::mutate_input(data, size, max_size, seed, [](uint8_t mode) {
    return std::unique_ptr<google::protobuf::Message>(mode & 1 ? static_cast<google::protobuf::Message*>(
                                                                     new prelude::v1::SweepSpec)
                                                               : new prelude::v1::JobSpec);
  });
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool sweep = data[0] & 1;
  const uint8_t* bytes = data + 1;
  const int n = static_cast<int>(size - 1);

  if (!sweep) {
    prelude::v1::JobSpec spec;
    if (!spec.ParseFromArray(bytes, n)) return 0;  // gRPC refuses it before the coordinator sees it
    spec.DiscardUnknownFields();
    if (spec.ByteSizeLong() > kMaxSpecBytes) return 0;
    prelude::fuzz::check_job(spec);
    return 0;
  }
  prelude::v1::SweepSpec spec;
  if (!spec.ParseFromArray(bytes, n)) return 0;
  spec.DiscardUnknownFields();
  if (spec.ByteSizeLong() > kMaxSpecBytes) return 0;
  std::vector<prelude::SweepPoint> points;
  try {
    points = prelude::expand_sweep(spec, kMaxPoints);
  } catch (const prelude::UserError& e) {
    const std::string m = e.what();
    FUZZ_EXPECT(m.find('\n') == std::string::npos && m.size() <= prelude::fuzz::kMaxMessageChars,
                "a short one-line message: '%s'", m.c_str());
    return 0;
  }
  FUZZ_EXPECT(!points.empty() && points.size() <= static_cast<size_t>(kMaxPoints), "1 to %d points, got %zu",
              kMaxPoints, points.size());
  FUZZ_EXPECT(prelude::fuzz::check_job(points.front().spec), "the point valid: %s", points.front().label.c_str());
  FUZZ_EXPECT(prelude::fuzz::check_job(points.back().spec), "the point valid: %s", points.back().label.c_str());
  return 0;
}
