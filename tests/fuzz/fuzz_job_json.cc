// Fuzz target: a job file as the client reads it and the coordinator checks it.
// The input is the file's text: parse_job_json (the strict JSON reader, then
// protobuf's), then defaults, validation and model expansion (fuzz_util.h).
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "spec/job_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  prelude::v1::JobSpec spec;
  try {
    spec = prelude::parse_job_json(text, "job.json");
  } catch (const prelude::UserError& e) {
    prelude::fuzz::check_message(e, "job.json");
    return 0;
  }
  prelude::fuzz::check_job(spec);
  return 0;
}
