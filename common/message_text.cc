#include "common/message_text.h"

#include <string>
#include <vector>

#include "common/text.h"

namespace prelude {

namespace pb = google::protobuf;

int escape_strings(pb::Message* message, bool keep_layout) {
  const pb::Reflection* reflection = message->GetReflection();
  std::vector<const pb::FieldDescriptor*> fields;
  reflection->ListFields(*message, &fields);  // the set ones only: cheap on sparse events
  int changed = 0;
  std::string scratch;
  for (const pb::FieldDescriptor* field : fields) {
    if (field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      if (field->is_repeated()) {
        for (int i = 0, n = reflection->FieldSize(*message, field); i < n; ++i)
          changed += escape_strings(reflection->MutableRepeatedMessage(message, field, i), keep_layout);
      } else {
        changed += escape_strings(reflection->MutableMessage(message, field), keep_layout);
      }
      continue;
    }
    if (field->type() != pb::FieldDescriptor::TYPE_STRING) continue;  // bytes are data, not text
    if (field->is_repeated()) {
      for (int i = 0, n = reflection->FieldSize(*message, field); i < n; ++i) {
        const std::string& text = reflection->GetRepeatedStringReference(*message, field, i, &scratch);
        if (is_printable(text, keep_layout)) continue;
        reflection->SetRepeatedString(message, field, i, escape_control(text, keep_layout));
        ++changed;
      }
    } else {
      const std::string& text = reflection->GetStringReference(*message, field, &scratch);
      if (is_printable(text, keep_layout)) continue;
      reflection->SetString(message, field, escape_control(text, keep_layout));
      ++changed;
    }
  }
  return changed;
}

}  // namespace prelude
