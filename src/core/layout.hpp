#pragma once
/// \file
/// The fields of the records on one edge of a pipeline: names and types, resolved at deploy
/// time. A record's `fields[i]` holds the value of layout field i.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/value.hpp"

namespace keyflow {

/// One named, typed field.
struct field_def {
  std::string name; ///< e.g. "value", "bid.price", "segment", "count"
  value_type type;  ///< declared type
};

/// Ordered field names and types.
class layout {
public:
  /// Appends a field; returns its slot. A name already present is replaced in place.
  int add(std::string name, value_type type) {
    if (auto s = slot(name)) {
      fields_[static_cast<size_t>(*s)].type = type;
      return *s;
    }
    fields_.push_back({std::move(name), type});
    return static_cast<int>(fields_.size() - 1);
  }

  /// Slot of `name`, if present.
  std::optional<int> slot(std::string_view name) const {
    for (size_t i = 0; i < fields_.size(); ++i)
      if (fields_[i].name == name)
        return static_cast<int>(i);
    return std::nullopt;
  }

  /// Field at a slot.
  const field_def& at(int slot) const { return fields_.at(static_cast<size_t>(slot)); }

  /// Number of fields.
  size_t size() const noexcept { return fields_.size(); }

  /// All fields in slot order.
  const std::vector<field_def>& fields() const noexcept { return fields_; }

  /// "a, b, c" for messages.
  std::string names() const {
    std::string out;
    for (const auto& f : fields_)
      out += (out.empty() ? "" : ", ") + f.name;
    return out;
  }

private:
  std::vector<field_def> fields_;
};

} // namespace keyflow
