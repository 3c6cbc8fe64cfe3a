#pragma once
/// \file
/// Deploy-time resolution of a pipeline: the schema is loaded, every field an operator or
/// sink names is resolved to a slot of the layout on its input edge (or to a protobuf path of
/// the source message), operators are cut into stages at key_by, and the leading validate /
/// filter operators are placed in the sources. Any name that does not resolve is a
/// config_error naming the file, line, operator and field.

#include <memory>
#include <string>
#include <vector>

#include "config/pipeline_config.hpp"
#include "core/layout.hpp"
#include "operators/enrich.hpp"
#include "operators/operator.hpp"
#include "operators/window.hpp"
#include "schema/schema.hpp"

namespace keyflow::pipeline {

/// A comparison of a filter operator, resolved.
struct filter_spec {
  int slot = -1;             ///< field compared
  std::string op;            ///< eq ne lt le gt ge mod_eq
  value literal;             ///< right-hand side, typed like the field
  int64_t modulus = 0;       ///< mod_eq
  bool once_per_key = false; ///< keyed: first match per key only
};

/// One computed field of a map operator, resolved.
struct map_spec {
  int in_slot = -1;    ///< numeric input
  int out_slot = -1;   ///< output (double)
  double multiply = 1; ///< factor
  double add = 0;      ///< offset
};

/// A score operator, resolved.
struct score_spec {
  double bias = 0;                             ///< intercept
  std::vector<std::pair<int, double>> weights; ///< (slot, weight)
  int out_slot = -1;                           ///< output field (double)
};

/// One operator with its place in the pipeline and its resolved settings.
struct op_plan {
  const config::operator_config* cfg = nullptr; ///< its config
  int input = -1;                               ///< index of the input operator; -1 = the source
  int stage = 0;                   ///< stage (0 = keyed by the source key; +1 after each key_by)
  bool at_source = false;          ///< runs in the source actors (leading validate / filter)
  layout in;                       ///< layout of its input records
  layout out;                      ///< layout of its output records
  std::vector<int> required_slots; ///< validate
  filter_spec filter;              ///< filter
  std::vector<map_spec> maps;      ///< map
  int dedup_slot = -1;             ///< dedup: event id field
  ops::enrich_spec enrich;         ///< enrich
  ops::window_spec window;         ///< aggregate (global kind) and window
  score_spec score;                ///< score
  int key_slot = -1;               ///< key_by: new key field
  bool stateful = false;           ///< keeps keyed state (column family = id)
};

/// One sink with the operator it writes.
struct sink_plan {
  const config::sink_config* cfg = nullptr; ///< its config
  int from = -1;                            ///< operator index
  int stage = 0;                            ///< stage of that operator
  layout in;                                ///< layout of the records it writes
  std::vector<int> slots;                   ///< fields written, in order
  std::vector<std::string> names;           ///< output name of each written field
  std::vector<int> key_slots;               ///< redis: fields appended to the hash key
};

/// A resolved pipeline.
struct plan {
  config::pipeline_config cfg;                          ///< the config (owned)
  std::shared_ptr<const schema::message_schema> schema; ///< source message type
  std::vector<schema::field_path> source_paths;         ///< decoded fields, slot order
  layout source_layout;                                 ///< layout of decoded records
  int key_slot = -1;                                    ///< source key field
  int event_time_slot = -1;                             ///< source event time field
  std::vector<op_plan> ops;                             ///< in config order
  std::vector<sink_plan> sinks;                         ///< in config order
  int stages = 1;                                       ///< number of keyed stages
  bool keep_raw = false; ///< an operator after the source may dead-letter records

  /// Column families of all stateful operators.
  std::vector<std::string> column_families() const;
  /// Operators that run in the source, in order.
  std::vector<const op_plan*> source_ops() const;
  /// Index of the key_by operator that feeds stage `s` (s >= 1).
  int key_by_into(int s) const;
};

/// Resolves a loaded pipeline; throws config::config_error naming the position at fault.
std::shared_ptr<const plan> make_plan(config::pipeline_config cfg);

/// Loads, validates and resolves a pipeline file.
std::shared_ptr<const plan> load_plan(const std::string& path);

} // namespace keyflow::pipeline
