// Shared by the fuzz targets: what a parser of untrusted input owes its caller
// beyond not crashing (which the sanitizers check).
//   - A UserError is the only way to refuse input; any other exception escapes the
//     target, and libFuzzer reports it as a crash ("deadly signal").
//   - The message of a UserError is one line, starts with the source it was told
//     (the file name) and stays short, whatever the input: it goes to logs and
//     to a client's terminal.
//   - What is accepted behaves: defaults are idempotent, a valid spec expands, and
//     a spec printed as JSON reads back as the same spec.
#pragma once

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "common/errors.h"
#include "spec/job_spec.h"

namespace prelude::fuzz {

// Like assert, but also in release builds, and saying what broke.
#define FUZZ_EXPECT(cond, ...)                                                    \
  do {                                                                            \
    if (!(cond)) {                                                                \
      std::fprintf(stderr, "fuzz: %s:%d: expected %s: ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                                          \
      std::fprintf(stderr, "\n");                                                 \
      std::abort();                                                               \
    }                                                                             \
  } while (0)

// protobuf logs every string field with invalid UTF-8 that it refuses; the fuzzer
// makes many, and the log would bury what matters.
inline const bool kProtobufQuiet = [] {
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel, const char*, int, const std::string&) {});
  return true;
}();

// Long enough for any honest message (a field path, a reason, a list of enum names,
// an echo of at most 64 characters), short of echoing the input back.
constexpr size_t kMaxMessageChars = 1024;

inline void check_message(const UserError& e, const std::string& source) {
  const std::string m = e.what();
  FUZZ_EXPECT(m.compare(0, source.size(), source) == 0, "a message starting with '%s', got '%s'", source.c_str(),
              m.c_str());
  FUZZ_EXPECT(m.find('\n') == std::string::npos && m.find('\r') == std::string::npos, "one line, got '%s'", m.c_str());
  FUZZ_EXPECT(m.size() <= kMaxMessageChars, "at most %zu characters, got %zu: '%.200s...'", kMaxMessageChars,
              m.size(), m.c_str());
}

// Equal as bytes (deterministic serialization): unlike MessageDifferencer, a NaN
// equals itself.
inline std::string bytes_of(const google::protobuf::Message& m) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    FUZZ_EXPECT(m.SerializeToCodedStream(&coded), "a message to serialize");
  }  // the stream's destructor trims `out` to what was written
  return out;
}

// -0.0 as 0.0 in every double and float field: JSON reads "-0" back as 0, the same value.
inline void zero_signs(google::protobuf::Message* m) {
  using F = google::protobuf::FieldDescriptor;
  const auto* r = m->GetReflection();
  std::vector<const F*> fields;
  r->ListFields(*m, &fields);
  for (const F* f : fields) {
    const int n = f->is_repeated() ? r->FieldSize(*m, f) : 1;
    for (int i = 0; i < n; ++i) {
      if (f->cpp_type() == F::CPPTYPE_MESSAGE) {
        zero_signs(f->is_repeated() ? r->MutableRepeatedMessage(m, f, i) : r->MutableMessage(m, f));
      } else if (f->cpp_type() == F::CPPTYPE_DOUBLE) {
        const double v = f->is_repeated() ? r->GetRepeatedDouble(*m, f, i) : r->GetDouble(*m, f);
        if (v == 0) f->is_repeated() ? r->SetRepeatedDouble(m, f, i, 0.0) : r->SetDouble(m, f, 0.0);
      } else if (f->cpp_type() == F::CPPTYPE_FLOAT) {
        const float v = f->is_repeated() ? r->GetRepeatedFloat(*m, f, i) : r->GetFloat(*m, f);
        if (v == 0) f->is_repeated() ? r->SetRepeatedFloat(m, f, i, 0.0f) : r->SetFloat(m, f, 0.0f);
      }
    }
  }
}

inline bool same(const google::protobuf::Message& a, const google::protobuf::Message& b) {
  return bytes_of(a) == bytes_of(b);
}

// The same but for the sign of zeros.
inline bool same_value(const google::protobuf::Message& a, const google::protobuf::Message& b) {
  std::unique_ptr<google::protobuf::Message> x(a.New()), y(b.New());
  x->CopyFrom(a);
  y->CopyFrom(b);
  zero_signs(x.get());
  zero_signs(y.get());
  return same(*x, *y);
}

// The path of a job through the coordinator and the worker once it is read:
// defaults, validation, expansion. Returns whether the spec is valid.
inline bool check_job(prelude::v1::JobSpec spec) {
  apply_defaults(&spec);
  prelude::v1::JobSpec again = spec;
  apply_defaults(&again);
  FUZZ_EXPECT(same(spec, again), "apply_defaults to be idempotent:\n%s\nthen\n%s", spec.DebugString().c_str(),
              again.DebugString().c_str());
  try {
    validate_job_spec(spec);
  } catch (const UserError& e) {
    const std::string m = e.what();
    FUZZ_EXPECT(m.find('\n') == std::string::npos && m.size() <= kMaxMessageChars, "a short one-line message: '%s'",
                m.c_str());
    return false;
  }
  const auto layers = expand_model(spec.model(), 10);
  FUZZ_EXPECT(!layers.empty(), "a valid model to have layers");
  describe_layers(layers);

  // What the client shows of a job (its spec as JSON) is a job file that reads back.
  std::string json;
  FUZZ_EXPECT(google::protobuf::util::MessageToJsonString(spec, &json).ok(), "a valid spec to print as JSON");
  prelude::v1::JobSpec read_back;
  try {
    read_back = parse_job_json(json, "printed");
  } catch (const UserError& e) {
    FUZZ_EXPECT(false, "a printed valid spec to read back, got '%s' for\n%s", e.what(), json.c_str());
  }
  FUZZ_EXPECT(same_value(spec, read_back), "the spec printed as JSON to read back as itself:\n%s", json.c_str());
  return true;
}

}  // namespace prelude::fuzz
