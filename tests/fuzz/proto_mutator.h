// A small structure-aware mutator for the fuzz targets whose input is a protobuf
// message (a checkpoint's payload, a job spec or sweep as the coordinator receives
// them). libFuzzer's byte mutations rarely keep such input parseable, and rarely
// turn one field into a telling value (a stride of 0, a dimension of 2^31): this
// changes one field at a time through reflection, so the message stays well formed
// and the search reaches the checks behind the parser. (libprotobuf-mutator does
// this fully; Debian does not package it.)
#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/reflection.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

// libFuzzer's own mutation, for custom mutators to fall back on.
extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace prelude::fuzz {

class ProtoMutator {
 public:
  explicit ProtoMutator(uint64_t seed) : rng_(seed) {}

  // Changes one field somewhere in `m`: sets it to a boundary or random value, clears
  // it, creates an absent message, or adds, removes or copies list elements.
  void mutate(google::protobuf::Message* m) {
    slots_.clear();
    collect(m, 0);
    if (slots_.empty()) return;
    const Slot s = slots_[pick(slots_.size())];
    if (s.field->is_repeated())
      mutate_list(s.message, s.field);
    else
      mutate_single(s.message, s.field);
  }

  size_t pick(size_t n) { return n == 0 ? 0 : static_cast<size_t>(rng_() % n); }

 private:
  using Message = google::protobuf::Message;
  using Field = google::protobuf::FieldDescriptor;

  struct Slot {
    Message* message;
    const Field* field;
  };

  // Every field of every message present, to a bounded depth (a sweep's values are
  // google.protobuf.Value trees).
  void collect(Message* m, int depth) {
    if (depth > 8 || slots_.size() > 4096) return;
    const auto* d = m->GetDescriptor();
    const auto* r = m->GetReflection();
    for (int i = 0; i < d->field_count(); ++i) {
      const Field* f = d->field(i);
      slots_.push_back({m, f});
      if (f->cpp_type() != Field::CPPTYPE_MESSAGE) continue;
      if (f->is_repeated()) {
        for (int j = 0; j < r->FieldSize(*m, f); ++j) collect(r->MutableRepeatedMessage(m, f, j), depth + 1);
      } else if (r->HasField(*m, f)) {
        collect(r->MutableMessage(m, f), depth + 1);
      }
    }
  }

  // Wrapping arithmetic in uint64_t: the mutator itself must not overflow.
  int64_t some_integer(int64_t now, int64_t lo, int64_t hi) {
    const uint64_t u = static_cast<uint64_t>(now);
    switch (pick(12)) {
      case 0: return 0;
      case 1: return 1;
      case 2: return -1;
      case 3: return lo;
      case 4: return hi;
      case 5: return static_cast<int64_t>(u + 1);
      case 6: return static_cast<int64_t>(u - 1);
      case 7: return static_cast<int64_t>(u * 2);
      case 8: return static_cast<int64_t>(uint64_t{1} << pick(64));
      case 9: return static_cast<int64_t>(0 - (uint64_t{1} << pick(64)));
      case 10: return static_cast<int64_t>(pick(20));
      default: return static_cast<int64_t>(rng_());
    }
  }

  // A double as a float without undefined behaviour: out of range is infinite.
  static float to_float(double v) {
    if (std::isnan(v)) return std::numeric_limits<float>::quiet_NaN();
    if (v > std::numeric_limits<float>::max()) return std::numeric_limits<float>::infinity();
    if (v < -std::numeric_limits<float>::max()) return -std::numeric_limits<float>::infinity();
    return static_cast<float>(v);
  }

  double some_double(double now) {
    switch (pick(12)) {
      case 0: return 0;
      case 1: return -0.0;
      case 2: return 1;
      case 3: return -1;
      case 4: return std::numeric_limits<double>::quiet_NaN();
      case 5: return std::numeric_limits<double>::infinity();
      case 6: return -std::numeric_limits<double>::infinity();
      case 7: return std::numeric_limits<double>::max();
      case 8: return std::numeric_limits<double>::denorm_min();
      case 9: return now * 2;
      case 10: return 1e10;
      default: return static_cast<double>(rng_() % 2001) / 1000.0 - 1.0;
    }
  }

  std::string some_string(const std::string& now) {
    switch (pick(8)) {
      case 0: return "";
      case 1: return now + now;
      case 2: return now.substr(0, pick(now.size() + 1));
      case 3: return "..";
      case 4: return std::string(300, 'x');
      case 5: return now + static_cast<char>(pick(256));
      case 6: return "plain-" + std::to_string(pick(300));
      default: {
        std::string s = now;
        if (!s.empty()) s[pick(s.size())] = static_cast<char>(pick(256));
        return s;
      }
    }
  }

  int some_enum(const Field* f) {
    const auto* e = f->enum_type();
    if (pick(8) == 0) return static_cast<int>(pick(100)) - 50;  // a number the enum does not have
    return e->value(static_cast<int>(pick(e->value_count())))->number();
  }

  void mutate_single(Message* m, const Field* f) {
    const auto* r = m->GetReflection();
    if (pick(10) == 0) {
      r->ClearField(m, f);
      return;
    }
    switch (f->cpp_type()) {
      case Field::CPPTYPE_INT32:
        r->SetInt32(m, f, static_cast<int32_t>(some_integer(r->GetInt32(*m, f), INT32_MIN, INT32_MAX)));
        break;
      case Field::CPPTYPE_INT64:
        r->SetInt64(m, f, some_integer(r->GetInt64(*m, f), INT64_MIN, INT64_MAX));
        break;
      case Field::CPPTYPE_UINT32:
        r->SetUInt32(m, f, static_cast<uint32_t>(some_integer(r->GetUInt32(*m, f), 0, UINT32_MAX)));
        break;
      case Field::CPPTYPE_UINT64:
        r->SetUInt64(m, f, static_cast<uint64_t>(some_integer(static_cast<int64_t>(r->GetUInt64(*m, f)), 0, -1)));
        break;
      case Field::CPPTYPE_DOUBLE: r->SetDouble(m, f, some_double(r->GetDouble(*m, f))); break;
      case Field::CPPTYPE_FLOAT:
        r->SetFloat(m, f, to_float(some_double(r->GetFloat(*m, f))));
        break;
      case Field::CPPTYPE_BOOL: r->SetBool(m, f, !r->GetBool(*m, f)); break;
      case Field::CPPTYPE_ENUM: r->SetEnumValue(m, f, some_enum(f)); break;
      case Field::CPPTYPE_STRING: r->SetString(m, f, some_string(r->GetString(*m, f))); break;
      case Field::CPPTYPE_MESSAGE: {
        Message* sub = r->MutableMessage(m, f);  // creates it when absent
        if (pick(2) == 0) mutate(sub);
        break;
      }
    }
  }

  void mutate_list(Message* m, const Field* f) {
    const auto* r = m->GetReflection();
    const int n = r->FieldSize(*m, f);
    switch (n == 0 ? 0 : pick(5)) {
      case 0:  // add one: a copy of an element, or a new one
        if (f->cpp_type() == Field::CPPTYPE_MESSAGE) {
          Message* added = r->AddMessage(m, f);
          if (n > 0) added->CopyFrom(r->GetRepeatedMessage(*m, f, static_cast<int>(pick(n))));
        } else {
          add_scalar(m, f);
        }
        return;
      case 1: r->RemoveLast(m, f); return;
      case 2: r->SwapElements(m, f, static_cast<int>(pick(n)), static_cast<int>(pick(n))); return;
      case 3: r->ClearField(m, f); return;
      default: set_element(m, f, static_cast<int>(pick(n))); return;
    }
  }

  void add_scalar(Message* m, const Field* f) {
    const auto* r = m->GetReflection();
    switch (f->cpp_type()) {
      case Field::CPPTYPE_INT32: r->AddInt32(m, f, static_cast<int32_t>(some_integer(0, INT32_MIN, INT32_MAX))); break;
      case Field::CPPTYPE_INT64: r->AddInt64(m, f, some_integer(0, INT64_MIN, INT64_MAX)); break;
      case Field::CPPTYPE_UINT32: r->AddUInt32(m, f, static_cast<uint32_t>(some_integer(0, 0, UINT32_MAX))); break;
      case Field::CPPTYPE_UINT64: r->AddUInt64(m, f, static_cast<uint64_t>(some_integer(0, 0, -1))); break;
      case Field::CPPTYPE_DOUBLE: r->AddDouble(m, f, some_double(1)); break;
      case Field::CPPTYPE_FLOAT: r->AddFloat(m, f, to_float(some_double(1))); break;
      case Field::CPPTYPE_BOOL: r->AddBool(m, f, pick(2)); break;
      case Field::CPPTYPE_ENUM: r->AddEnumValue(m, f, some_enum(f)); break;
      case Field::CPPTYPE_STRING: r->AddString(m, f, some_string("")); break;
      case Field::CPPTYPE_MESSAGE: break;
    }
  }

  void set_element(Message* m, const Field* f, int i) {
    const auto* r = m->GetReflection();
    switch (f->cpp_type()) {
      case Field::CPPTYPE_INT32:
        r->SetRepeatedInt32(m, f, i, static_cast<int32_t>(some_integer(r->GetRepeatedInt32(*m, f, i), INT32_MIN,
                                                                       INT32_MAX)));
        break;
      case Field::CPPTYPE_INT64:
        r->SetRepeatedInt64(m, f, i, some_integer(r->GetRepeatedInt64(*m, f, i), INT64_MIN, INT64_MAX));
        break;
      case Field::CPPTYPE_UINT32:
        r->SetRepeatedUInt32(m, f, i, static_cast<uint32_t>(some_integer(r->GetRepeatedUInt32(*m, f, i), 0,
                                                                         UINT32_MAX)));
        break;
      case Field::CPPTYPE_UINT64:
        r->SetRepeatedUInt64(
            m, f, i, static_cast<uint64_t>(some_integer(static_cast<int64_t>(r->GetRepeatedUInt64(*m, f, i)), 0, -1)));
        break;
      case Field::CPPTYPE_DOUBLE: r->SetRepeatedDouble(m, f, i, some_double(r->GetRepeatedDouble(*m, f, i))); break;
      case Field::CPPTYPE_FLOAT:
        r->SetRepeatedFloat(m, f, i, to_float(some_double(r->GetRepeatedFloat(*m, f, i))));
        break;
      case Field::CPPTYPE_BOOL: r->SetRepeatedBool(m, f, i, !r->GetRepeatedBool(*m, f, i)); break;
      case Field::CPPTYPE_ENUM: r->SetRepeatedEnumValue(m, f, i, some_enum(f)); break;
      case Field::CPPTYPE_STRING: r->SetRepeatedString(m, f, i, some_string(r->GetRepeatedString(*m, f, i))); break;
      case Field::CPPTYPE_MESSAGE: mutate(r->MutableRepeatedMessage(m, f, i)); break;
    }
  }

  std::mt19937_64 rng_;
  std::vector<Slot> slots_;
};

// The body of LLVMFuzzerCustomMutator for an input that is one harness byte and then
// a message of type `Message`, when `structured(first byte)`: a third of the time,
// or when the rest does not parse, libFuzzer's own byte mutation; otherwise one to
// three field mutations.
template <typename MakeMessage>
size_t mutate_input(uint8_t* data, size_t size, size_t max_size, unsigned seed, MakeMessage make_message) {
  ProtoMutator mutator(seed);
  if (size < 1 || mutator.pick(3) == 0) return LLVMFuzzerMutate(data, size, max_size);
  auto message = make_message(data[0]);
  if (!message || !message->ParseFromArray(data + 1, static_cast<int>(size - 1)))
    return LLVMFuzzerMutate(data, size, max_size);
  for (size_t i = 0, n = 1 + mutator.pick(3); i < n; ++i) mutator.mutate(message.get());
  std::string bytes;
  if (!message->SerializeToString(&bytes) || 1 + bytes.size() > max_size)
    return LLVMFuzzerMutate(data, size, max_size);
  std::memcpy(data + 1, bytes.data(), bytes.size());
  return 1 + bytes.size();
}

}  // namespace prelude::fuzz
