#include "artifacts/resume_check.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>
#include <google/protobuf/text_format.h>

#include "common/errors.h"

namespace prelude {

namespace pb = google::protobuf;

bool may_differ_on_resume(const std::string& path) {
  static const char* const kFree[] = {"name",
                                      "training.epochs",
                                      "training.maxSteps",
                                      "training.logEverySteps",
                                      "training.skipTest",
                                      "training.stallWindowSteps",
                                      "training.checkpoint",
                                      "training.dataParallel"};
  for (const char* f : kFree) {
    const std::string free(f);
    if (path == free || (path.size() > free.size() && path.compare(0, free.size(), free) == 0 &&
                         path[free.size()] == '.'))
      return true;
  }
  return false;
}

namespace {

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

std::string diff(const pb::Message& a, const pb::Message& b, const std::string& prefix,
                 bool (*ignore)(const std::string&)) {
  const pb::Descriptor* d = a.GetDescriptor();
  const pb::Reflection* ra = a.GetReflection();
  const pb::Reflection* rb = b.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const pb::FieldDescriptor* f = d->field(i);
    const std::string path = join(prefix, f->json_name());
    if (ignore && ignore(path)) continue;
    if (f->is_repeated()) {
      const int n = ra->FieldSize(a, f);
      if (n != rb->FieldSize(b, f)) return path;
      for (int j = 0; j < n; ++j) {
        const std::string item = path + "[" + std::to_string(j) + "]";
        if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
          const std::string d2 = diff(ra->GetRepeatedMessage(a, f, j), rb->GetRepeatedMessage(b, f, j), item, ignore);
          if (!d2.empty()) return d2;
        } else {
          std::string x, y;
          pb::TextFormat::PrintFieldValueToString(a, f, j, &x);
          pb::TextFormat::PrintFieldValueToString(b, f, j, &y);
          if (x != y) return item;
        }
      }
      continue;
    }
    if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      const std::string d2 = diff(ra->GetMessage(a, f), rb->GetMessage(b, f), path, ignore);
      if (!d2.empty()) return d2;
      continue;
    }
    if (f->has_presence() && ra->HasField(a, f) != rb->HasField(b, f)) return path;
    std::string x, y;
    pb::TextFormat::PrintFieldValueToString(a, f, -1, &x);
    pb::TextFormat::PrintFieldValueToString(b, f, -1, &y);
    if (x != y) return path;
  }
  return "";
}

// The value at a JSON path, for the message (text format, or "unset").
std::string value_at(const pb::Message& m, const std::string& path) {
  const pb::Message* cur = &m;
  size_t pos = 0;
  while (true) {
    const size_t dot = path.find('.', pos);
    std::string part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    int index = -1;
    if (const size_t br = part.find('['); br != std::string::npos) {
      index = std::stoi(part.substr(br + 1));
      part = part.substr(0, br);
    }
    const pb::FieldDescriptor* f = nullptr;
    for (int i = 0; i < cur->GetDescriptor()->field_count() && !f; ++i)
      if (cur->GetDescriptor()->field(i)->json_name() == part) f = cur->GetDescriptor()->field(i);
    if (!f) return "?";
    const pb::Reflection* r = cur->GetReflection();
    if (f->is_repeated() && index < 0) return std::to_string(r->FieldSize(*cur, f)) + " entries";
    if (f->is_repeated() && index >= r->FieldSize(*cur, f)) return "absent";
    const bool last = dot == std::string::npos;
    if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      const pb::Message& sub = f->is_repeated() ? r->GetRepeatedMessage(*cur, f, index) : r->GetMessage(*cur, f);
      if (last) return sub.ShortDebugString().empty() ? "{}" : "{" + sub.ShortDebugString() + "}";
      cur = &sub;
      pos = dot + 1;
      continue;
    }
    if (f->has_presence() && !r->HasField(*cur, f)) return "unset";
    std::string out;
    pb::TextFormat::PrintFieldValueToString(*cur, f, index, &out);
    return out;
  }
}

}  // namespace

std::string first_difference(const pb::Message& a, const pb::Message& b, bool (*ignore)(const std::string&)) {
  if (a.GetDescriptor() != b.GetDescriptor()) throw std::invalid_argument("first_difference: different types");
  return diff(a, b, "", ignore);
}

void check_resume_compatible(const prelude::v1::JobSpec& job, const std::string& job_source,
                             const prelude::v1::Checkpoint& checkpoint, const std::string& checkpoint_source) {
  const std::string path = first_difference(job, checkpoint.spec(), may_differ_on_resume);
  if (path.empty()) return;
  throw user_error(job_source, path + ": differs from the checkpoint's (" + checkpoint_source + "): " +
                                   value_at(job, path) + " here, " + value_at(checkpoint.spec(), path) +
                                   " there; when resuming, only the name, epochs, maxSteps, logging, "
                                   "checkpointing and data-parallel settings may change");
}

}  // namespace prelude
