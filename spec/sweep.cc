#include "spec/sweep.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>

#include <cmath>
#include <limits>

#include "common/errors.h"
#include "spec/job_spec.h"
#include "spec/spec_text.h"
#include "spec/strict_json.h"

namespace prelude {

namespace pb = google::protobuf;

namespace {

// The field a dotted JSON path names: its message (inside `root`) and descriptor.
struct FieldRef {
  std::vector<const pb::FieldDescriptor*> path;  // messages on the way, then the field
  std::string name;                              // the path in camelCase
};

FieldRef resolve(const std::string& dotted, const std::string& where) {
  if (dotted.empty()) throw user_error(where, "must name a field, e.g. \"model.activation.kind\"");
  const std::string shown = "'" + echo(dotted) + "'";  // what the user wrote, on one line
  FieldRef ref;
  const pb::Descriptor* d = v1::JobSpec::descriptor();
  std::string prefix;
  size_t start = 0;
  for (;;) {
    const size_t dot = dotted.find('.', start);
    const std::string part = dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    const pb::FieldDescriptor* f = d->FindFieldByName(part);
    if (!f) f = d->FindFieldByCamelcaseName(part);
    const std::string owner = prefix.empty() ? "the job spec" : prefix;
    if (!f) throw user_error(where, shown + ": " + owner + " has no field '" + echo(part) + "'");
    if (f->is_repeated())
      throw user_error(where, shown + ": " + f->json_name() + " is a list; sweep over single values");
    prefix += (prefix.empty() ? "" : ".") + f->json_name();
    ref.path.push_back(f);
    if (dot == std::string::npos) {
      if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE)
        throw user_error(where, shown + " is a message; name one of its fields");
      ref.name = prefix;
      return ref;
    }
    if (f->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE)
      throw user_error(where, shown + ": " + prefix + " has no fields");
    d = f->message_type();
    start = dot + 1;
  }
}

std::string value_text(const pb::Value& v) {
  switch (v.kind_case()) {
    case pb::Value::kStringValue: return v.string_value();
    case pb::Value::kBoolValue: return v.bool_value() ? "true" : "false";
    case pb::Value::kNumberValue: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.10g", v.number_value());
      return buf;
    }
    default: return "?";
  }
}

// Sets the field to the value, or throws a UserError (without a place).
void set_value(v1::JobSpec* spec, const FieldRef& ref, const pb::Value& v) {
  pb::Message* m = spec;
  for (size_t i = 0; i + 1 < ref.path.size(); ++i) m = m->GetReflection()->MutableMessage(m, ref.path[i]);
  const pb::FieldDescriptor* f = ref.path.back();
  const pb::Reflection* r = m->GetReflection();
  auto need = [&](pb::Value::KindCase k, const char* what) {
    if (v.kind_case() != k) throw UserError(ref.name + ": needs " + what + ", got '" + echo(value_text(v)) + "'");
  };
  auto integer = [&](double lo, double hi) {
    need(pb::Value::kNumberValue, "a whole number");
    const double x = v.number_value();
    if (x != std::floor(x) || x < lo || x > hi)
      throw UserError(ref.name + ": needs a whole number in range, got " + value_text(v));
    return x;
  };
  switch (f->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_INT32:
      r->SetInt32(m, f, static_cast<int32_t>(integer(std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max())));
      break;
    case pb::FieldDescriptor::CPPTYPE_INT64:
      r->SetInt64(m, f, static_cast<int64_t>(integer(-9.007199254740992e15, 9.007199254740992e15)));
      break;
    case pb::FieldDescriptor::CPPTYPE_DOUBLE:
      need(pb::Value::kNumberValue, "a number");
      r->SetDouble(m, f, v.number_value());
      break;
    case pb::FieldDescriptor::CPPTYPE_FLOAT:
      need(pb::Value::kNumberValue, "a number");
      r->SetFloat(m, f, static_cast<float>(v.number_value()));
      break;
    case pb::FieldDescriptor::CPPTYPE_BOOL:
      need(pb::Value::kBoolValue, "true or false");
      r->SetBool(m, f, v.bool_value());
      break;
    case pb::FieldDescriptor::CPPTYPE_STRING:
      need(pb::Value::kStringValue, "a string");
      r->SetString(m, f, v.string_value());
      break;
    case pb::FieldDescriptor::CPPTYPE_ENUM: {
      need(pb::Value::kStringValue, "a value name");
      const pb::EnumValueDescriptor* e = f->enum_type()->FindValueByName(v.string_value());
      if (!e || e->number() == 0)
        throw UserError(ref.name + ": unknown value '" + echo(v.string_value()) + "' (one of " +
                        enum_value_names(f->enum_type()) + ")");
      r->SetEnum(m, f, e);
      break;
    }
    default:
      throw UserError(ref.name + ": cannot be swept");
  }
}

}  // namespace

std::vector<SweepPoint> expand_sweep(const v1::SweepSpec& sweep, int max_points) {
  struct Axis {
    FieldRef ref;
    std::vector<pb::Value> values;
  };
  std::vector<Axis> axes;
  double count = 1;
  for (int a = 0; a < sweep.grid_size(); ++a) {
    const auto& g = sweep.grid(a);
    const std::string where = "grid[" + std::to_string(a) + "]";
    Axis axis{resolve(g.field(), where + ".field"), {g.values().begin(), g.values().end()}};
    if (axis.values.empty()) throw user_error(where + ".values", "must list at least one value");
    for (const auto& other : axes)
      if (other.ref.name == axis.ref.name) throw user_error(where + ".field", axis.ref.name + " is already an axis");
    // Check every value on its own, so the error names the value, not a point.
    for (size_t i = 0; i < axis.values.size(); ++i) {
      v1::JobSpec probe;
      try {
        set_value(&probe, axis.ref, axis.values[i]);
      } catch (const UserError& e) {
        throw user_error(where + ".values[" + std::to_string(i) + "]", e.what());
      }
    }
    count *= static_cast<double>(axis.values.size());
    axes.push_back(std::move(axis));
  }
  if (sweep.seeds_size() > 0) {
    Axis seeds{resolve("training.seed", "seeds"), {}};
    for (size_t a = 0; a < axes.size(); ++a)
      if (axes[a].ref.name == seeds.ref.name) throw user_error("seeds", "also given as grid[" + std::to_string(a) + "]");
    for (int64_t s : sweep.seeds()) {
      pb::Value v;
      v.set_number_value(static_cast<double>(s));
      seeds.values.push_back(v);
    }
    count *= static_cast<double>(seeds.values.size());
    axes.push_back(std::move(seeds));
  }
  if (count > max_points)
    throw user_error("grid", "has " + std::to_string(static_cast<long long>(count)) + " points; at most " +
                                 std::to_string(max_points) + " are allowed");

  std::vector<SweepPoint> points;
  std::vector<size_t> index(axes.size(), 0);
  for (;;) {
    SweepPoint p;
    p.spec = sweep.base();
    for (size_t a = 0; a < axes.size(); ++a) {
      const pb::Value& v = axes[a].values[index[a]];
      set_value(&p.spec, axes[a].ref, v);
      p.label += (p.label.empty() ? "" : " ") + axes[a].ref.name + "=" + value_text(v);
    }
    const std::string base_name = sweep.name().empty() ? sweep.base().name() : sweep.name();
    p.spec.set_name(base_name.empty() ? p.label : base_name + " " + p.label);
    try {
      apply_defaults(&p.spec);
      validate_job_spec(p.spec);
    } catch (const UserError& e) {
      // The label holds the values as given: one that is not valid may hold anything.
      throw UserError("grid point " + (p.label.empty() ? std::string("(the base)") : echo(p.label, false, 256)) +
                      ": " + e.what());
    }
    points.push_back(std::move(p));
    // Next index, the last axis fastest.
    size_t a = axes.size();
    while (a > 0 && ++index[a - 1] == axes[a - 1].values.size()) index[--a] = 0;
    if (a == 0) break;
  }
  return points;
}

v1::SweepSpec load_sweep_file(const std::string& path) {
  v1::SweepSpec sweep;
  parse_strict_json(read_spec_file(path), path, &sweep);
  return sweep;
}

}  // namespace prelude
