// Checkpoint files: the bytes on disk of a prelude.v1.Checkpoint (the format is
// documented in proto/prelude/v1/checkpoint.proto), written so that a crash never
// leaves a half file under a real name, and read so that nothing damaged, of an
// unknown version or inconsistent is ever loaded. No oneDNN and no gRPC: the worker
// writes and reads them, the coordinator verifies uploads, tools export them.
#pragma once

#include <cstdint>
#include <string>

#include "prelude/v1/checkpoint.pb.h"

namespace prelude {

inline constexpr char kCheckpointMagic[8] = {'P', 'R', 'L', 'D', 'C', 'K', 'P', 'T'};
inline constexpr uint32_t kCheckpointVersion = 1;
inline constexpr size_t kCheckpointHeaderBytes = 52;
// Larger files are refused before anything is allocated for them.
inline constexpr uint64_t kMaxCheckpointBytes = uint64_t{2} << 30;

// The file's bytes: header (magic, version, payload length, SHA-256) and payload.
std::string encode_checkpoint(const prelude::v1::Checkpoint& checkpoint);

// What the header says, once checked against the bytes: the payload's SHA-256 (hex).
struct CheckpointHeader {
  uint32_t version = 0;
  uint64_t payload_bytes = 0;
  std::string sha256_hex;
};

// Checks magic, version, length and checksum without parsing the payload (the
// coordinator verifies uploads with it). Every problem is a UserError starting with
// `source` (the file name), e.g. "step-100.ckpt: checksum mismatch: the file is corrupted".
CheckpointHeader verify_checkpoint_bytes(const std::string& bytes, const std::string& source);

// verify_checkpoint_bytes, then parses the payload and checks that it is consistent:
// the payload's version, every tensor's values (and momentum, if any) matching its
// dims, the progress within its bounds, the model's input and output sizes, and its
// layers within the limits of a job spec (validate_layer). UserErrors start with
// `source`.
prelude::v1::Checkpoint decode_checkpoint(const std::string& bytes, const std::string& source);

// Reads and decodes a checkpoint file. An unreadable file is a UserError naming the
// path and the system's reason.
prelude::v1::Checkpoint read_checkpoint_file(const std::string& path);

// Writes `bytes` to `path` atomically: into a temporary file beside it, flushed to
// disk (fsync), renamed over `path`, and the directory flushed. On failure (a full
// disk, say) the temporary file is removed, `path` is untouched, and a UserError
// names the path and the reason.
void write_file_atomically(const std::string& path, const std::string& bytes);

// Reads a whole file (at most `max_bytes`); UserError naming the path otherwise.
std::string read_whole_file(const std::string& path, uint64_t max_bytes);

// SHA-256 of `bytes` as 64 lowercase hex digits.
std::string sha256_hex(const std::string& bytes);

}  // namespace prelude
