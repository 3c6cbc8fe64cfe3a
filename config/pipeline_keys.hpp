#pragma once
/// \file
/// The one table of pipeline YAML keys. Each key a pipeline file may contain is defined here
/// once (where it goes, for which operator or sink types, its type, default and meaning).
/// The pipeline reader (pipeline_config.cpp) takes the allowed keys of every map from this
/// table, so it accepts no key the table lacks, and docs/configuration.md is generated from
/// it by keyflow-config-reference.

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace keyflow::config {

/// One key of a pipeline YAML file.
struct pipeline_key {
  /// Path of the map holding the key: "" (top level), "pipeline", "source.watermark",
  /// "operators[]" (an item of the operators list), "operators[].aggregates.<name>" (the
  /// value of one entry of a map of output names), ...
  std::string_view map;
  std::string_view name; ///< the key itself
  /// Types of the operators[] / sinks[] items that take the key, separated by spaces (for
  /// maps nested in such items: the types those maps belong to); "" = every item.
  std::string_view types;
  std::string_view type; ///< value: string, integer, number, boolean, field, list, map
  /// Default as markdown text (literal values in backticks); "" = none.
  std::string_view default_value;
  bool required;            ///< must be given (conditions are in `meaning`)
  std::string_view meaning; ///< what it does, with allowed values and ranges (markdown)
};

/// Every pipeline key, grouped by map and, inside operators[] and sinks[], by type; the order
/// of the keys of one map is the order the reader lists them in messages.
std::span<const pipeline_key> pipeline_keys();

/// The full key path of a row, e.g. "source.watermark.idle_timeout_ms", "operators[].ttl_ms".
std::string pipeline_key_path(const pipeline_key& key);

/// True if the row applies to an item of type `item_type` (an empty `item_type`, or a row
/// without types, always matches).
bool pipeline_key_applies_to(const pipeline_key& key, std::string_view item_type);

/// The names of the keys allowed in a map at `map` (for items of operators[] and sinks[]:
/// of type `item_type`), in table order without repeats. Throws std::logic_error if the
/// table has no keys for `map`, so a misspelled map path cannot silently accept nothing.
std::vector<std::string_view> allowed_pipeline_keys(std::string_view map,
                                                    std::string_view item_type = {});

} // namespace keyflow::config
