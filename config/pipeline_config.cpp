/// \file
/// Strict pipeline YAML reader: every value is checked for type, range and consistency and
/// every failure is reported as "<file>:<line>:<column>: <key path>: <what is wrong>".

#include "config/pipeline_config.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "config/yaml_util.hpp"

namespace keyflow::config {
namespace {

using list = std::span<const std::string_view>;

constexpr std::array<std::string_view, 5> top_keys = {"pipeline", "source", "dead_letters",
                                                      "operators", "sinks"};
constexpr std::array<std::string_view, 3> operator_chain = {"validate", "aggregate", "score"};
constexpr std::array<std::string_view, 2> sink_types = {"redis", "kafka"};
constexpr std::array<std::string_view, 5> event_fields = {"event_id", "customer_id",
                                                          "event_time_ms", "type", "value"};
constexpr std::array<std::string_view, 4> features = {"count", "sum", "avg", "last_value"};
constexpr std::string_view chain_rule =
    "this version supports exactly the chain validate -> aggregate -> optional score";
constexpr size_t max_topic_length = 249; // Kafka's limit
constexpr size_t max_id_length = 64;

/// "a, b, c" for messages listing what is allowed.
std::string join(list xs) {
  std::string out;
  for (auto x : xs)
    out += (out.empty() ? "" : ", ") + std::string(x);
  return out;
}

/// True if `x` is one of `xs`.
bool contains(list xs, std::string_view x) {
  return std::find(xs.begin(), xs.end(), x) != xs.end();
}

/// A YAML value with the file it came from, its key path and the position to report.
struct field {
  const std::string* file; ///< file name for messages
  YAML::Node node;         ///< the value
  std::string path;        ///< key path, e.g. "operators[2].weights"; "" for the document
  YAML::Mark mark;         ///< where to point at

  /// Throws config_error at this field.
  [[noreturn]] void fail(std::string_view what) const {
    throw config_error(detail::positioned(*file, mark, path.empty() ? "(top level)" : path, what));
  }

  /// The path of a child key.
  std::string child(std::string_view key) const {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }

  /// The same position with another key path (e.g. for a missing or defaulted key).
  field at_path(std::string p) const { return field{file, node, std::move(p), mark}; }
};

/// A YAML map whose keys were checked: scalar, allowed and not repeated.
class map_view {
public:
  /// Checks `self` is a map of allowed keys; `noun` names keys in messages ("key", "feature").
  map_view(field self, list allowed, std::string_view noun = "key") : self_(std::move(self)) {
    if (!self_.node.IsMap())
      self_.fail(fmt::format("expected a map (keys: {}), got {}", join(allowed),
                             detail::describe(self_.node)));
    for (const auto& entry : self_.node) {
      const YAML::Node key = entry.first; // Nodes are handles: copy, never bind to proxies
      const YAML::Node value = entry.second;
      if (!key.IsScalar())
        field{self_.file, key, self_.path, key.Mark()}.fail(
            fmt::format("expected a plain {} name, got {}", noun, detail::describe(key)));
      const std::string name = key.Scalar();
      const field kf{self_.file, key, self_.child(name), key.Mark()};
      if (!contains(allowed, name))
        kf.fail(fmt::format("unknown {} '{}' (allowed: {})", noun, name, join(allowed)));
      if (get(name))
        kf.fail(fmt::format("duplicate {} '{}'", noun, name));
      // A key without value has no useful mark of its own: point at the key.
      const YAML::Mark vm = value.IsNull() ? key.Mark() : value.Mark();
      entries_.emplace_back(name, field{self_.file, value, kf.path, vm});
    }
  }

  /// The value of `key`, if present.
  std::optional<field> get(std::string_view key) const {
    for (const auto& [name, value] : entries_)
      if (name == key)
        return value;
    return std::nullopt;
  }

  /// The value of `key`; a missing key is reported at the map's position.
  field require(std::string_view key) const {
    if (auto f = get(key))
      return *f;
    self_.at_path(self_.child(key)).fail(fmt::format("missing required key '{}'", key));
  }

  /// All entries in file order.
  const std::vector<std::pair<std::string, field>>& entries() const { return entries_; }

  /// The map itself.
  const field& self() const { return self_; }

private:
  field self_;
  std::vector<std::pair<std::string, field>> entries_;
};

/// A scalar as text; maps, lists and empty values are errors.
std::string as_string(const field& f) {
  if (!f.node.IsScalar())
    f.fail("expected a string, got " + detail::describe(f.node));
  return f.node.Scalar();
}

/// Checks a scalar may be read as a number: quoted strings are not numbers.
void require_number_scalar(const field& f, std::string_view expected) {
  if (!f.node.IsScalar())
    f.fail(fmt::format("expected {}, got {}", expected, detail::describe(f.node)));
  if (f.node.Tag() == "!")
    f.fail(fmt::format("expected {}, got the quoted string \"{}\"", expected, f.node.Scalar()));
}

/// An unsigned integer in [lo, hi].
uint32_t as_u32(const field& f, uint32_t lo, uint32_t hi) {
  require_number_scalar(f, "an unsigned integer");
  uint64_t v = 0;
  if (auto err = detail::parse_unsigned(f.node.Scalar(), lo, hi, v); !err.empty())
    f.fail(err);
  return static_cast<uint32_t>(v);
}

/// A finite number.
double as_double(const field& f) {
  require_number_scalar(f, "a number");
  double v = 0;
  if (auto err = detail::parse_finite_double(f.node.Scalar(), v); !err.empty())
    f.fail(err);
  return v;
}

/// The items of a list, each with its path "x[i]".
std::vector<field> as_list(const field& f) {
  if (!f.node.IsSequence())
    f.fail("expected a list, got " + detail::describe(f.node));
  std::vector<field> items;
  for (size_t i = 0; i < f.node.size(); ++i) {
    const YAML::Node item = f.node[i];
    const YAML::Mark m = item.Mark().is_null() ? f.mark : item.Mark();
    items.push_back(field{f.file, item, fmt::format("{}[{}]", f.path, i), m});
  }
  return items;
}

/// Shows a character of a name in a message, printable or as a byte value.
std::string show_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  return std::isprint(u) ? fmt::format("'{}'", c) : fmt::format("byte 0x{:02x}", u);
}

/// True for Kafka's legal topic characters [a-zA-Z0-9._-], also used for ids and names.
bool legal_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
}

/// A non-empty name of legal characters up to `max_len` long (`what` names it).
std::string as_name(const field& f, std::string_view what, size_t max_len) {
  std::string s = as_string(f);
  if (s.empty())
    f.fail(fmt::format("{} must not be empty", what));
  if (s.size() > max_len)
    f.fail(fmt::format("{} '{}...' is {} characters long; at most {} allowed", what,
                       s.substr(0, 40), s.size(), max_len));
  for (char c : s)
    if (!legal_char(c))
      f.fail(fmt::format("{} '{}' contains {}; allowed characters are [a-zA-Z0-9._-]", what, s,
                         show_char(c)));
  return s;
}

/// A legal Kafka topic name.
std::string as_topic(const field& f) {
  std::string t = as_name(f, "topic name", max_topic_length);
  if (t == "." || t == "..")
    f.fail(fmt::format("topic name '{}' is not allowed by Kafka", t));
  return t;
}

/// Ids and topics seen so far: ids are unique in the pipeline and the topics it reads and
/// writes are pairwise distinct.
class uniqueness {
public:
  /// Records an operator id; a repeat is an error naming the first use.
  void id(const field& f, const std::string& id) {
    auto [it, fresh] = ids_.emplace(id, f.path);
    if (!fresh)
      f.fail(fmt::format("duplicate id '{}' (already used by {}); ids must be unique in a "
                         "pipeline because state is matched to operators by id",
                         id, it->second));
  }

  /// Records a topic; a topic used twice would loop records or mix streams.
  void topic(const field& f, const std::string& topic) {
    auto [it, fresh] = topics_.emplace(topic, f.path);
    if (!fresh)
      f.fail(fmt::format("topic '{}' is already used by {}; the source, dead-letter and "
                         "activation topics must all differ",
                         topic, it->second));
  }

private:
  std::map<std::string, std::string> ids_;
  std::map<std::string, std::string> topics_;
};

/// Reads an optional `id` key into `id` (keeping its default) and registers it.
void read_id(const map_view& m, std::string& id, uniqueness& seen) {
  if (auto f = m.get("id")) {
    id = as_name(*f, "id", max_id_length);
    seen.id(*f, id);
  } else {
    seen.id(m.self().at_path(m.self().child("id")), id);
  }
}

/// Finds and checks an item's `type` before its other keys, whose set depends on it.
std::pair<std::string, field> read_type(const field& item, list allowed, std::string_view what) {
  if (!item.node.IsMap())
    item.fail(fmt::format("expected a map with an id and a type ({}), got {}", join(allowed),
                          detail::describe(item.node)));
  for (const auto& entry : item.node) {
    const YAML::Node key = entry.first;
    const YAML::Node value = entry.second;
    if (!key.IsScalar() || key.Scalar() != "type")
      continue;
    const YAML::Mark m = value.IsNull() ? key.Mark() : value.Mark();
    const field tf{item.file, value, item.child("type"), m};
    std::string type = as_string(tf);
    if (!contains(allowed, type))
      tf.fail(fmt::format("unknown {} type '{}' (allowed: {})", what, type, join(allowed)));
    return {type, tf};
  }
  item.at_path(item.child("type"))
      .fail(fmt::format("missing required key 'type' (one of: {})", join(allowed)));
}

/// `pipeline:` name, version, max_parallelism, mode.
void read_pipeline_section(const field& f, pipeline_config& cfg) {
  static constexpr std::array<std::string_view, 4> keys = {"name", "version", "max_parallelism",
                                                           "mode"};
  static constexpr std::array<std::string_view, 2> modes = {"exactly-once", "at-least-once"};
  const map_view m(f, keys);
  cfg.name = as_name(m.require("name"), "pipeline name", max_id_length);
  if (auto v = m.get("version"))
    cfg.version = as_u32(*v, 1, std::numeric_limits<uint32_t>::max());
  if (auto v = m.get("max_parallelism"))
    cfg.max_parallelism = as_u32(*v, 1, 32768);
  if (auto v = m.get("mode")) {
    cfg.mode = as_string(*v);
    if (!contains(modes, cfg.mode))
      v->fail(fmt::format("mode must be exactly-once or at-least-once, got '{}'", cfg.mode));
  }
}

/// `source:` id, topic, start_offset.
void read_source(const field& f, source_config& src, uniqueness& seen) {
  static constexpr std::array<std::string_view, 3> keys = {"id", "topic", "start_offset"};
  static constexpr std::array<std::string_view, 2> offsets = {"earliest", "latest"};
  const map_view m(f, keys);
  read_id(m, src.id, seen);
  const field topic = m.require("topic");
  src.topic = as_topic(topic);
  seen.topic(topic, src.topic);
  if (auto v = m.get("start_offset")) {
    src.start_offset = as_string(*v);
    if (!contains(offsets, src.start_offset))
      v->fail(fmt::format("start_offset must be earliest or latest, got '{}'", src.start_offset));
  }
}

/// `dead_letters:` topic.
void read_dead_letters(const field& f, pipeline_config& cfg, uniqueness& seen) {
  static constexpr std::array<std::string_view, 1> keys = {"topic"};
  const map_view m(f, keys);
  const field topic = m.require("topic");
  cfg.dead_letter_topic = as_topic(topic);
  seen.topic(topic, cfg.dead_letter_topic);
}

/// A validate operator: id, type, required (event fields).
void read_validate(const field& item, validate_config& op, uniqueness& seen) {
  static constexpr std::array<std::string_view, 3> keys = {"id", "type", "required"};
  const map_view m(item, keys);
  read_id(m, op.id, seen);
  auto required = m.get("required");
  if (!required)
    return;
  op.required.clear();
  for (const field& x : as_list(*required)) {
    std::string name = as_string(x);
    if (!contains(event_fields, name))
      x.fail(fmt::format("unknown event field '{}' (allowed: {})", name, join(event_fields)));
    if (std::find(op.required.begin(), op.required.end(), name) != op.required.end())
      x.fail(fmt::format("field '{}' is listed twice", name));
    op.required.push_back(std::move(name));
  }
}

/// An aggregate operator: id, type, key (only customer_id, which validate must require).
void read_aggregate(const field& item, const validate_config& validate, aggregate_config& op,
                    uniqueness& seen) {
  static constexpr std::array<std::string_view, 3> keys = {"id", "type", "key"};
  const map_view m(item, keys);
  read_id(m, op.id, seen);
  const field key = m.get("key").value_or(item.at_path(item.child("key")));
  if (m.get("key"))
    op.key = as_string(key);
  if (op.key != "customer_id")
    key.fail(fmt::format("unsupported key field '{}'; this version aggregates by customer_id only",
                         op.key));
  const auto& required = validate.required;
  if (std::find(required.begin(), required.end(), op.key) == required.end())
    key.fail(fmt::format("the key field '{}' must be listed in the validate operator's "
                         "'required' (events without a key cannot be aggregated)",
                         op.key));
}

/// A score operator: id, type, bias, weights (feature -> number), threshold in [0, 1].
void read_score(const field& item, score_config& op, uniqueness& seen) {
  static constexpr std::array<std::string_view, 5> keys = {"id", "type", "bias", "weights",
                                                           "threshold"};
  const map_view m(item, keys);
  read_id(m, op.id, seen);
  if (auto v = m.get("bias"))
    op.bias = as_double(*v);
  if (auto v = m.get("weights")) {
    const map_view w(*v, features, "feature");
    for (const auto& [feature, weight] : w.entries())
      op.weights[feature] = as_double(weight);
  }
  if (auto v = m.get("threshold")) {
    op.threshold = as_double(*v);
    if (op.threshold < 0.0 || op.threshold > 1.0)
      v->fail(fmt::format("threshold must be in [0, 1], got {}", v->node.Scalar()));
  }
}

/// `operators:` exactly validate -> aggregate -> optional score, in this order.
void read_operators(const field& f, pipeline_config& cfg, uniqueness& seen) {
  const std::vector<field> items = as_list(f);
  for (size_t i = 0; i < items.size(); ++i) {
    const auto [type, type_field] = read_type(items[i], operator_chain, "operator");
    if (i >= operator_chain.size())
      items[i].fail(
          fmt::format("unexpected operator of type '{}' after 'score'; {}", type, chain_rule));
    if (type != operator_chain[i])
      type_field.fail(fmt::format("expected an operator of type '{}' here, got '{}'; {}",
                                  operator_chain[i], type, chain_rule));
    if (type == "validate")
      read_validate(items[i], cfg.validate, seen);
    else if (type == "aggregate")
      read_aggregate(items[i], cfg.validate, cfg.aggregate, seen);
    else
      read_score(items[i], cfg.score.emplace(), seen);
  }
  if (items.size() < 2)
    f.fail(fmt::format("missing the '{}' operator; {}", operator_chain[items.size()], chain_rule));
}

/// `sinks:` at most one redis and one kafka sink; kafka needs a score operator.
void read_sinks(const field& f, pipeline_config& cfg, uniqueness& seen) {
  static constexpr std::array<std::string_view, 3> redis_keys = {"id", "type", "key_prefix"};
  static constexpr std::array<std::string_view, 4> kafka_keys = {"id", "type", "topic", "delivery"};
  static constexpr std::array<std::string_view, 2> deliveries = {"at-least-once", "exactly-once"};
  std::map<std::string, std::string> first_of_type;
  for (const field& item : as_list(f)) {
    const auto [type, type_field] = read_type(item, sink_types, "sink");
    if (auto it = first_of_type.find(type); it != first_of_type.end())
      type_field.fail(
          fmt::format("only one '{}' sink is allowed (the first is {})", type, it->second));
    first_of_type.emplace(type, item.path);
    if (type == "redis") {
      const map_view m(item, redis_keys);
      auto& sink = cfg.redis_sink.emplace();
      read_id(m, sink.id, seen);
      if (auto v = m.get("key_prefix"))
        sink.key_prefix = as_string(*v);
      continue;
    }
    const map_view m(item, kafka_keys);
    auto& sink = cfg.kafka_sink.emplace();
    read_id(m, sink.id, seen);
    const field topic = m.require("topic");
    sink.topic = as_topic(topic);
    seen.topic(topic, sink.topic);
    if (auto v = m.get("delivery")) {
      sink.delivery = as_string(*v);
      if (!contains(deliveries, sink.delivery))
        v->fail(
            fmt::format("delivery must be at-least-once or exactly-once, got '{}'", sink.delivery));
    }
    if (!cfg.score)
      item.fail("a kafka sink writes activations (score >= threshold) and needs a 'score' "
                "operator; add one after 'aggregate' or remove this sink");
  }
}

/// Reads a whole pipeline document.
pipeline_config read_pipeline(const YAML::Node& root, const std::string& file) {
  pipeline_config cfg;
  cfg.file = file;
  const map_view top(field{&file, root, "", root.Mark()}, top_keys);
  uniqueness seen;
  read_pipeline_section(top.require("pipeline"), cfg);
  read_source(top.require("source"), cfg.source, seen);
  read_dead_letters(top.require("dead_letters"), cfg, seen);
  read_operators(top.require("operators"), cfg, seen);
  if (auto sinks = top.get("sinks"))
    read_sinks(*sinks, cfg, seen);
  return cfg;
}

} // namespace

pipeline_config parse_pipeline(const std::string& yaml_text, const std::string& file) {
  const YAML::Node root = detail::load_document(yaml_text, file);
  try {
    return read_pipeline(root, file);
  } catch (const YAML::Exception& e) {
    // Not expected: the reader only uses non-throwing accessors. Still name the file.
    throw config_error(detail::positioned(file, e.mark, "(yaml)", e.msg));
  }
}

pipeline_config load_pipeline_file(const std::string& path) {
  return parse_pipeline(detail::read_text_file(path, "pipeline file"), path);
}

} // namespace keyflow::config
