#include "spec/spec_text.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace prelude {

namespace pb = google::protobuf;

std::string format_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buf[32];
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

std::string echo(const std::string& s, bool json_quotes, size_t max_chars) {
  std::string out;
  size_t chars = 0;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c & 0xC0) != 0x80 && ++chars > max_chars) return out + "...";
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04X", c);
      out += buf;
    } else {
      if (json_quotes && (c == '"' || c == '\\')) out += '\\';
      out += ch;
    }
  }
  return out;
}

std::string quoted(const std::string& s) { return "\"" + echo(s, true) + "\""; }

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

std::string join_path(const std::string& base, const std::string& name) {
  return base.empty() ? name : base + "." + name;
}

std::string indexed(const std::string& path, int index) {
  return path + "[" + std::to_string(index) + "]";
}

std::string to_json_name(const std::string& name) {
  std::string out;
  bool upper_next = false;
  for (const char c : name) {
    if (c == '_') {
      upper_next = true;
    } else if (upper_next) {
      out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      upper_next = false;
    } else {
      out += c;
    }
  }
  return out;
}

const pb::FieldDescriptor* find_field(const pb::Descriptor* message, const std::string& name) {
  if (message == nullptr) return nullptr;
  if (const auto* f = message->FindFieldByName(name)) return f;
  for (int i = 0; i < message->field_count(); ++i)
    if (message->field(i)->json_name() == name) return message->field(i);
  return nullptr;
}

std::string enum_value_names(const pb::EnumDescriptor* e) {
  std::string out;
  for (int i = 0; i < e->value_count(); ++i) {
    if (e->value(i)->number() == 0) continue;
    if (!out.empty()) out += ", ";
    out += e->value(i)->name();
  }
  return out;
}

}  // namespace prelude
