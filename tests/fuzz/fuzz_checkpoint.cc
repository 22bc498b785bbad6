// Fuzz target: a checkpoint, as the coordinator receives it from a pool (it verifies
// the header and exports it to ONNX on request) and as a worker resumes from it.
// The first byte of the input is the harness's, not the file's:
//   bit 0   0: the rest is the file as it is (header and payload): magic, version,
//           length and checksum are checked;
//           1: the rest is the payload, and a correct header is put before it, so
//           that the fuzzer gets past the checksum to the payload's own checks
// Each checkpoint that decodes is exported to ONNX, compared with a job spec as
// when resuming, and encoded again, which must decode to the same checkpoint.
#include <cstddef>
#include <cstdint>
#include <string>

#include "artifacts/checkpoint_file.h"
#include "artifacts/onnx_export.h"
#include "artifacts/resume_check.h"
#include "fuzz_util.h"
#include "proto_mutator.h"

namespace {

std::string with_header(const std::string& payload) {
  std::string out(prelude::kCheckpointMagic, sizeof prelude::kCheckpointMagic);
  const auto put_le = [&out](uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  put_le(prelude::kCheckpointVersion, 4);
  put_le(payload.size(), 8);
  const std::string hex = prelude::sha256_hex(payload);
  for (size_t i = 0; i < 64; i += 2) out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out + payload;
}

}  // namespace

// Payloads (first byte odd) are mutated as messages too (proto_mutator.h).
extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned seed) {
  return prelude::fuzz::mutate_input(data, size, max_size, seed, [](uint8_t mode) {
    return std::unique_ptr<google::protobuf::Message>(mode & 1 ? new prelude::v1::Checkpoint : nullptr);
  });
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 1) bytes = with_header(bytes);

  prelude::v1::Checkpoint c;
  try {
    c = prelude::decode_checkpoint(bytes, "step-1.ckpt");
  } catch (const prelude::UserError& e) {
    prelude::fuzz::check_message(e, "step-1.ckpt");
    return 0;
  }
  FUZZ_EXPECT(prelude::verify_checkpoint_bytes(bytes, "step-1.ckpt").payload_bytes ==
                  bytes.size() - prelude::kCheckpointHeaderBytes,
              "the header of a decoded checkpoint to verify");

  try {
    const std::string onnx = prelude::export_onnx(c, "step-1.ckpt");
    FUZZ_EXPECT(!onnx.empty(), "an ONNX model");
  } catch (const prelude::UserError& e) {
    prelude::fuzz::check_message(e, "step-1.ckpt");
  }

  prelude::v1::JobSpec job;
  prelude::apply_defaults(&job);
  try {
    prelude::check_resume_compatible(job, "job.json", c, "step-1.ckpt");
  } catch (const prelude::UserError& e) {
    const std::string m = e.what();
    FUZZ_EXPECT(m.rfind("job.json: ", 0) == 0, "a message naming the job file, got '%s'", m.c_str());
  }

  const prelude::v1::Checkpoint again = prelude::decode_checkpoint(prelude::encode_checkpoint(c), "again.ckpt");
  FUZZ_EXPECT(prelude::fuzz::same(c, again), "a decoded checkpoint to encode and decode as itself");
  return 0;
}
