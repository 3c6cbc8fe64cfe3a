#pragma once
/// \file
/// A field value of a record: 64-bit integer, double or string, or absent. Records carry a
/// vector of values whose meaning (name, type) is fixed at deploy time by a layout
/// (core/layout.hpp), so operators address fields by slot index, never by name.

#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace keyflow {

/// Type of a value; also the declared type of a layout field.
enum class value_type : uint8_t {
  none,   ///< absent (field not on the wire, or not set)
  int64,  ///< integers, booleans and enums (as their number)
  dbl,    ///< floating point
  string, ///< strings and bytes
};

/// Name of a type for messages ("int64", "double", "string", "none").
constexpr std::string_view type_name(value_type t) noexcept {
  switch (t) {
  case value_type::int64:
    return "int64";
  case value_type::dbl:
    return "double";
  case value_type::string:
    return "string";
  default:
    return "none";
  }
}

/// One field value. Plain struct (not a variant) so CAF 0.17 can inspect it.
struct value {
  value_type type = value_type::none; ///< which member holds the value
  int64_t i = 0;                      ///< value when type == int64
  double d = 0;                       ///< value when type == dbl
  std::string s;                      ///< value when type == string

  /// An integer value.
  static value of(int64_t x) {
    value v;
    v.type = value_type::int64;
    v.i = x;
    return v;
  }
  /// A double value.
  static value of(double x) {
    value v;
    v.type = value_type::dbl;
    v.d = x;
    return v;
  }
  /// A string value.
  static value of(std::string x) {
    value v;
    v.type = value_type::string;
    v.s = std::move(x);
    return v;
  }

  /// True unless absent.
  bool present() const noexcept { return type != value_type::none; }

  /// Numeric view: int64 and double as double, strings parsed (0 if not a number), absent 0.
  double as_double() const noexcept {
    switch (type) {
    case value_type::int64:
      return static_cast<double>(i);
    case value_type::dbl:
      return d;
    case value_type::string: {
      try {
        return std::stod(s);
      } catch (...) {
        return 0;
      }
    }
    default:
      return 0;
    }
  }

  /// Integer view: doubles truncated, strings parsed (0 if not a number), absent 0.
  int64_t as_int() const noexcept {
    switch (type) {
    case value_type::int64:
      return i;
    case value_type::dbl:
      return static_cast<int64_t>(d);
    case value_type::string: {
      try {
        return std::stoll(s);
      } catch (...) {
        return 0;
      }
    }
    default:
      return 0;
    }
  }

  /// Text form used by sinks: integers in decimal, doubles with 17 significant digits
  /// (round-trips exactly), strings as they are, absent as "".
  std::string to_string() const {
    switch (type) {
    case value_type::int64:
      return std::to_string(i);
    case value_type::dbl:
      return fmt::format("{:.17g}", d);
    case value_type::string:
      return s;
    default:
      return {};
    }
  }

  /// Equal type and value.
  friend bool operator==(const value& a, const value& b) noexcept {
    if (a.type != b.type)
      return false;
    switch (a.type) {
    case value_type::int64:
      return a.i == b.i;
    case value_type::dbl:
      return a.d == b.d;
    case value_type::string:
      return a.s == b.s;
    default:
      return true;
    }
  }
};

/// Inspects a value (CAF 0.17 inspect protocol).
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, value& x) {
  return f(x.type, x.i, x.d, x.s);
}

} // namespace keyflow
