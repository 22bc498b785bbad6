// Job files: parse_job_json, read_spec_file, load_job_file and load_and_check_job of
// spec/job_spec.h. The parts of a spec's life live beside it: the strict JSON reader
// (strict_json.cc, errors translated by proto_json_errors.cc), defaults.cc,
// validate.cc and model_expansion.cc.
#include "spec/job_spec.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/errors.h"
#include "spec/strict_json.h"

namespace prelude {

namespace {

constexpr size_t kMaxJobFileBytes = 16 << 20;

}  // namespace

v1::JobSpec parse_job_json(const std::string& json, const std::string& source) {
  v1::JobSpec spec;
  parse_strict_json(json, source.empty() ? "job" : source, &spec);
  return spec;
}

std::string read_spec_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) throw user_error(path, std::string("cannot read: ") + std::strerror(errno));
  std::string text;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
    text.append(buf, n);
    if (text.size() > kMaxJobFileBytes) {
      std::fclose(f);
      throw user_error(path, "too large for a job file (more than " + std::to_string(kMaxJobFileBytes >> 20) + " MiB)");
    }
  }
  const int read_errno = std::ferror(f) ? errno : 0;  // e.g. EISDIR for a directory
  std::fclose(f);
  if (read_errno != 0) throw user_error(path, std::string("cannot read: ") + std::strerror(read_errno));
  return text;
}

v1::JobSpec load_job_file(const std::string& path) { return parse_job_json(read_spec_file(path), path); }

v1::JobSpec load_and_check_job(const std::string& path) {
  v1::JobSpec spec = load_job_file(path);
  apply_defaults(&spec);
  try {
    validate_job_spec(spec);
  } catch (const UserError& e) {
    throw UserError(path + ": " + e.what());
  }
  return spec;
}

}  // namespace prelude
