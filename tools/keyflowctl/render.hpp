#pragma once
/// \file
/// Rendering of the admin API's answers for people: aligned tables, sizes, UTC times, short
/// forms of JSON values, and lookups that tolerate missing or differently shaped fields
/// (a newer or older node answers with more or fewer of them).

#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace keyflowctl {

/// A table printed with aligned columns: two spaces between columns, the last column not
/// padded (so lines never end with blanks).
class table {
public:
  /// A table with these column titles (none: no header line).
  explicit table(std::vector<std::string> header) : header_(std::move(header)) {}
  /// Adds a row (missing cells are empty, extra cells are kept).
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  /// True if no row was added.
  bool empty() const { return rows_.empty(); }
  /// Prints the header and the rows to `out`, each line prefixed by `indent`.
  void print(std::FILE* out = stdout, const std::string& indent = "") const;

private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

/// The first of `keys` that `j` (an object) has with a non-null value, or nullptr.
const nlohmann::json* find(const nlohmann::json& j, std::initializer_list<const char*> keys);

/// The first of `keys` as an integer (also from a numeric string), if any.
std::optional<int64_t> integer(const nlohmann::json& j, std::initializer_list<const char*> keys);

/// The first of `keys` as short text (see text()), or `fallback` if none is there.
std::string field(const nlohmann::json& j, std::initializer_list<const char*> keys,
                  const std::string& fallback = "-");

/// A JSON value as short text: strings unquoted, numbers as JSON writes them (a whole
/// floating-point number without ".0"), booleans
/// yes/no, null "-", arrays "a, b", objects "k: v, k: v".
std::string text(const nlohmann::json& v);

/// A JSON value as compact JSON (invalid UTF-8 replaced).
std::string compact(const nlohmann::json& v);

/// A JSON value as compact JSON, strings unquoted; cut to `max` characters ("...") if max > 0.
std::string value_text(const nlohmann::json& v, size_t max = 0);

/// A byte count for people: "512 B", "12.3 KiB", "1.5 GiB".
std::string bytes_text(uint64_t bytes);

/// Milliseconds since the epoch as "YYYY-MM-DD HH:MM:SS" in UTC.
std::string utc_text(int64_t ms);

/// How long ago `ms` (since the epoch) was, for people: "3 s ago", "5 min ago", "2 h ago".
std::string age_text(int64_t ms);

/// The object's members that are arrays of entries under the first of `keys`, or the first
/// array member if none of `keys` is there; an array answer itself. Null if none.
const nlohmann::json* list_of(const nlohmann::json& j, std::initializer_list<const char*> keys);

/// The operators of an answer as (id, details): from an "operators" array of objects (id in
/// "id", "operator" or "name"), an "operators" object keyed by id, or an answer about one
/// operator (with an "operator" string).
std::vector<std::pair<std::string, nlohmann::json>> operators_of(const nlohmann::json& j);

/// A key/value block: "name" padded, then the value; only lines with a value are kept.
class fields {
public:
  /// Adds a line if `value` is not empty.
  void add(const std::string& name, const std::string& value);
  /// Prints the lines to stdout.
  void print() const;

private:
  std::vector<std::pair<std::string, std::string>> lines_;
};

} // namespace keyflowctl
