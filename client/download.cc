#include "client/download.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>

#include "common/errors.h"

namespace prelude::client {

namespace v1 = prelude::v1;
namespace fs = std::filesystem;

namespace {

std::string system_error() { return std::strerror(errno); }

// SHA-256 of bytes as they arrive. (prelude::sha256_hex in artifacts/ hashes bytes
// held whole; a model is hashed chunk by chunk instead, never held in memory.)
class Sha256 {
 public:
  Sha256() : context_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
    if (!context_ || EVP_DigestInit_ex(context_.get(), EVP_sha256(), nullptr) != 1)
      throw std::runtime_error("SHA-256 failed (OpenSSL)");
  }

  void update(const std::string& data) {
    if (EVP_DigestUpdate(context_.get(), data.data(), data.size()) != 1)
      throw std::runtime_error("SHA-256 failed (OpenSSL)");
  }

  // The digest as 64 lowercase hex digits; call once, at the end.
  std::string hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_DigestFinal_ex(context_.get(), digest, &length) != 1) throw std::runtime_error("SHA-256 failed (OpenSSL)");
    static const char* const digits = "0123456789abcdef";
    std::string text;
    for (unsigned int i = 0; i < length; ++i) text += {digits[digest[i] >> 4], digits[digest[i] & 15]};
    return text;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context_;
};

// Where the bytes go while they arrive, until they are known to be whole.
class ModelSink {
 public:
  virtual ~ModelSink() = default;
  virtual void write(const std::string& data) = 0;
  // Everything arrived and matches: make it visible where it was asked for.
  virtual void commit() = 0;
};

// A temporary file beside the target, renamed over it by commit(); removed when the
// sink goes away uncommitted, so nothing half-written is ever left under either name.
class FileSink : public ModelSink {
 public:
  explicit FileSink(const std::string& path) : path_(path) {
    if (fs::is_directory(path)) throw user_error(path, "is a directory; give the file to write");
    const fs::path target(path);
    const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
    temporary_ = (dir / ("." + target.filename().string() + ".tmp-" + std::to_string(::getpid()))).string();
    fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) throw user_error(path_, "cannot write: " + system_error());
  }

  ~FileSink() override {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(temporary_.c_str());
  }

  void write(const std::string& data) override {
    for (size_t done = 0; done < data.size();) {
      const ssize_t n = ::write(fd_, data.data() + done, data.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw user_error(path_, "cannot write: " + (n < 0 ? system_error() : std::string("no progress")));
      done += static_cast<size_t>(n);
    }
  }

  void commit() override {
    // On disk before it takes the name: a crash right after leaves the whole file or none.
    if (::fsync(fd_) != 0) throw user_error(path_, "cannot write: " + system_error());
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw user_error(path_, "cannot write: " + system_error());
    if (::rename(temporary_.c_str(), path_.c_str()) != 0) throw user_error(path_, "cannot write: " + system_error());
    committed_ = true;
    // The rename is durable only once the directory is.
    const fs::path target(path_);
    const std::string dir = target.has_parent_path() ? target.parent_path().string() : ".";
    const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0) {
      ::fsync(dir_fd);
      ::close(dir_fd);
    }
  }

 private:
  std::string path_, temporary_;
  int fd_ = -1;
  bool committed_ = false;
};

// A stream (standard output): the bytes are held until commit(), so that a pipe
// never reads a model that turns out short or damaged.
class StreamSink : public ModelSink {
 public:
  explicit StreamSink(std::ostream& out) : out_(out) {}
  void write(const std::string& data) override { held_ += data; }
  void commit() override {
    out_.write(held_.data(), static_cast<std::streamsize>(held_.size()));
    out_.flush();
    if (!out_) throw UserError("standard output: cannot write the model");
  }

 private:
  std::ostream& out_;
  std::string held_;
};

// What the first chunk says is coming.
struct Announcement {
  v1::CheckpointInfo checkpoint;
  int64_t total_bytes = 0;
  std::string sha256;  // lowercase hex
};

bool is_sha256_hex(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isxdigit(c); });
}

// Reads the stream into `sink`, holding it to the first chunk's announcement, and
// commits the sink only when everything matches.
class ModelReceiver {
 public:
  ModelReceiver(Coordinator& coordinator, std::string job_id, std::string target)
      : coordinator_(coordinator), job_id_(std::move(job_id)), target_(std::move(target)) {}

  DownloadedModel receive(Coordinator::ModelStream& stream, ModelSink& sink) {
    v1::DownloadModelChunk chunk;
    while (stream.next(&chunk)) {
      if (!announced_) announced_ = announcement(chunk);
      const auto size = static_cast<int64_t>(chunk.data().size());
      if (received_ + size > announced_->total_bytes)
        throw lost("arrived longer than the " + std::to_string(announced_->total_bytes) + " bytes announced");
      sha256_.update(chunk.data());
      sink.write(chunk.data());
      received_ += size;
    }
    check_end(stream.finish());
    const std::string digest = sha256_.hex();
    if (digest != announced_->sha256)
      throw lost("arrived damaged: its SHA-256 is " + digest + ", the coordinator announced " + announced_->sha256);
    sink.commit();
    return {announced_->checkpoint, received_, digest};
  }

 private:
  // A download that went wrong after the coordinator accepted it.
  CallError lost(const std::string& what) const {
    return CallError(grpc::StatusCode::DATA_LOSS,
                     "the model of " + job_id_ + " " + what + "; nothing was written to " + target_);
  }

  Announcement announcement(const v1::DownloadModelChunk& first) const {
    Announcement a;
    a.checkpoint = first.checkpoint();
    a.total_bytes = first.total_bytes();
    a.sha256 = first.sha256();
    for (auto& c : a.sha256) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (a.total_bytes < 0 || !is_sha256_hex(a.sha256))
      throw lost("cannot be checked: the coordinator announced " + std::to_string(a.total_bytes) +
                 " bytes and the SHA-256 '" + first.sha256() + "'");
    return a;
  }

  // How the stream ended: a refusal before any chunk is the coordinator's answer as
  // it gave it; after some, a broken download.
  void check_end(const grpc::Status& status) const {
    if (!status.ok() && !announced_) throw coordinator_.error(status);
    const std::string of_total = std::to_string(received_) + " of " +
                                 (announced_ ? std::to_string(announced_->total_bytes) : std::string("?")) + " bytes";
    if (!status.ok())
      throw CallError(status.error_code(), "the model stream of " + job_id_ + " broke after " + of_total + " (" +
                                               status.error_message() + "); nothing was written to " + target_);
    if (!announced_) throw lost("did not come: the coordinator ended the stream without a chunk");
    if (received_ < announced_->total_bytes) throw lost("arrived short: the stream ended after " + of_total);
  }

  Coordinator& coordinator_;
  std::string job_id_, target_;
  std::optional<Announcement> announced_;
  int64_t received_ = 0;
  Sha256 sha256_;
};

}  // namespace

DownloadedModel download_model(Session& session, const v1::DownloadModelRequest& request, const std::string& path) {
  const bool to_console = path == "-";
  // The file first: one that cannot be written is found before anything is asked for.
  std::unique_ptr<ModelSink> sink;
  if (to_console) sink = std::make_unique<StreamSink>(session.console().out);
  else sink = std::make_unique<FileSink>(path);
  ModelReceiver receiver(session.coordinator(), request.job_id(), to_console ? "standard output" : path);
  const auto stream = session.coordinator().download_model(request);
  return receiver.receive(*stream, *sink);
}

}  // namespace prelude::client
