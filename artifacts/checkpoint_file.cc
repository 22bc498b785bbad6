#include "artifacts/checkpoint_file.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <tuple>

#include "common/errors.h"
#include "common/text.h"
#include "spec/job_spec.h"

namespace prelude {

namespace fs = std::filesystem;

namespace {

void put_le(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t get_le(const std::string& in, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(in[at + i])) << (8 * i);
  return v;
}

std::string sha256_raw(const char* data, size_t n) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data, n, digest, &len, EVP_sha256(), nullptr) != 1 || len != 32)
    throw std::runtime_error("SHA-256 failed (OpenSSL)");
  return std::string(reinterpret_cast<char*>(digest), len);
}

std::string to_hex(const std::string& raw) {
  static const char* digits = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : raw) hex += {digits[c >> 4], digits[c & 15]};
  return hex;
}

int64_t product(const google::protobuf::RepeatedField<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d <= 0 || d > (int64_t{1} << 31)) return -1;
    n *= d;
    if (n > (int64_t{1} << 40)) return -1;
  }
  return n;
}

std::string system_error() { return std::strerror(errno); }

// Bounds of a model's input and output beyond any data set (MNIST: 1 x 28 x 28, 10).
constexpr int32_t kMaxInputChannels = 4096;
constexpr int32_t kMaxInputSide = 65536;
constexpr int32_t kMaxClasses = 65536;

}  // namespace

std::string sha256_hex(const std::string& bytes) { return to_hex(sha256_raw(bytes.data(), bytes.size())); }

std::string encode_checkpoint(const v1::Checkpoint& checkpoint) {
  std::string payload;
  if (!checkpoint.SerializeToString(&payload)) throw std::runtime_error("cannot serialize the checkpoint");
  std::string out(kCheckpointMagic, sizeof kCheckpointMagic);
  put_le(&out, kCheckpointVersion, 4);
  put_le(&out, payload.size(), 8);
  out += sha256_raw(payload.data(), payload.size());
  out += payload;
  return out;
}

CheckpointHeader verify_checkpoint_bytes(const std::string& bytes, const std::string& source) {
  if (bytes.size() < kCheckpointHeaderBytes || bytes.compare(0, 8, kCheckpointMagic, 8) != 0)
    throw user_error(source, "not a Prelude checkpoint (no PRLDCKPT header)");
  CheckpointHeader h;
  h.version = static_cast<uint32_t>(get_le(bytes, 8, 4));
  if (h.version != kCheckpointVersion)
    throw user_error(source, "checkpoint format version " + std::to_string(h.version) + ", but this Prelude reads " +
                                 "version " + std::to_string(kCheckpointVersion) +
                                 (h.version > kCheckpointVersion ? " (written by a newer Prelude)" : ""));
  h.payload_bytes = get_le(bytes, 12, 8);
  const uint64_t have = bytes.size() - kCheckpointHeaderBytes;
  if (h.payload_bytes != have)
    throw user_error(source, "truncated or extended: the header announces " + std::to_string(h.payload_bytes) +
                                 " bytes of payload, the file has " + std::to_string(have));
  const std::string digest = sha256_raw(bytes.data() + kCheckpointHeaderBytes, have);
  if (bytes.compare(20, 32, digest) != 0) throw user_error(source, "checksum mismatch: the file is corrupted");
  h.sha256_hex = to_hex(digest);
  return h;
}

v1::Checkpoint decode_checkpoint(const std::string& bytes, const std::string& source) {
  verify_checkpoint_bytes(bytes, source);
  v1::Checkpoint c;
  if (!c.ParseFromArray(bytes.data() + kCheckpointHeaderBytes, static_cast<int>(bytes.size() - kCheckpointHeaderBytes)))
    throw user_error(source, "the payload is not a prelude.v1.Checkpoint");
  if (c.format_version() != kCheckpointVersion)
    throw user_error(source, "the payload says format version " + std::to_string(c.format_version()) +
                                 ", the header " + std::to_string(kCheckpointVersion));
  if (c.params_size() == 0) throw user_error(source, "holds no parameters");
  for (const auto& t : c.params()) {
    const int64_t n = product(t.dims());
    if (t.name().empty() || t.dims_size() == 0 || n < 0)
      throw user_error(source, "parameter " + echoed(t.name()) + " has no name or an impossible shape");
    if (t.values_size() != n)
      throw user_error(source, "parameter " + echoed(t.name()) + " has " + std::to_string(t.values_size()) +
                                   " values for a shape of " + std::to_string(n));
    if (t.momentum_size() != 0 && t.momentum_size() != n)
      throw user_error(source, "parameter " + echoed(t.name()) + " has " + std::to_string(t.momentum_size()) +
                                   " momentum values for a shape of " + std::to_string(n));
  }
  const auto& p = c.progress();
  if (p.step() < 0 || p.epoch() < 0 || p.step_in_epoch() < 0 || p.step() > p.total_steps())
    throw user_error(source, "its training progress is inconsistent (step " + std::to_string(p.step()) + " of " +
                                 std::to_string(p.total_steps()) + ")");
  if (c.io().num_classes() < 1 || c.io().channels() < 1 || c.io().height() < 1 || c.io().width() < 1)
    throw user_error(source, "its model input and output sizes are missing");
  // Sizes no data set has, which would overflow the shapes computed from them.
  for (const auto& [name, value, max] : {std::tuple{"io.channels", c.io().channels(), kMaxInputChannels},
                                         std::tuple{"io.height", c.io().height(), kMaxInputSide},
                                         std::tuple{"io.width", c.io().width(), kMaxInputSide},
                                         std::tuple{"io.numClasses", c.io().num_classes(), kMaxClasses}})
    if (value > max)
      throw user_error(source, std::string(name) + ": must be between 1 and " + std::to_string(max) + ", got " +
                                   std::to_string(value));
  // The layers as a job spec's: whoever builds or exports the model divides by strides.
  for (int i = 0; i < c.layers_size(); ++i) {
    try {
      validate_layer(c.layers(i), "layers[" + std::to_string(i) + "]");
    } catch (const UserError& e) {
      throw user_error(source, e.what());
    }
  }
  return c;
}

std::string read_whole_file(const std::string& path, uint64_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw user_error(path, "cannot read: " + system_error());
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string why = system_error();
      ::close(fd);
      throw user_error(path, "cannot read: " + why);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_bytes) {
      ::close(fd);
      throw user_error(path, "larger than " + std::to_string(max_bytes >> 20) + " MiB");
    }
  }
  ::close(fd);
  return out;
}

v1::Checkpoint read_checkpoint_file(const std::string& path) {
  return decode_checkpoint(read_whole_file(path, kMaxCheckpointBytes), path);
}

void write_file_atomically(const std::string& path, const std::string& bytes) {
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const std::string tmp = (dir / ("." + target.filename().string() + ".tmp-" + std::to_string(::getpid()))).string();
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw user_error(path, "cannot write: " + system_error());
  auto fail = [&](const std::string& why) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw user_error(path, "cannot write: " + why);
  };
  for (size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail(n < 0 ? system_error() : "no progress");
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) fail(system_error());
  if (::close(fd) != 0) {
    const std::string why = system_error();
    ::unlink(tmp.c_str());
    throw user_error(path, "cannot write: " + why);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = system_error();
    ::unlink(tmp.c_str());
    throw user_error(path, "cannot write: " + why);
  }
  // The rename is durable only once the directory is.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace prelude
