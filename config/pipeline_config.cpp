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

#include "config/pipeline_keys.hpp"
#include "config/yaml_util.hpp"

namespace keyflow::config {
namespace {

using list = std::span<const std::string_view>;

// The keys allowed in each map come from the table in pipeline_keys.cpp
// (allowed_pipeline_keys), the one place they are defined and documented. The allowed values
// below stay here; tests/unit/config_reference_test.cpp checks that the operator and sink
// types are the ones the table documents keys for.
constexpr std::array<std::string_view, 9> operator_types = {
    "validate", "filter", "map", "dedup", "enrich", "aggregate", "window", "score", "key_by"};
constexpr std::array<std::string_view, 2> sink_types = {"redis", "kafka"};
constexpr std::array<std::string_view, 9> agg_fns = {"count", "sum",  "min",    "max",   "avg",
                                                     "first", "last", "max_by", "min_by"};
constexpr std::array<std::string_view, 7> filter_ops = {"eq", "ne", "lt",    "le",
                                                        "gt", "ge", "mod_eq"};
constexpr std::array<std::string_view, 3> window_kinds = {"tumbling", "sliding", "session"};
constexpr std::array<std::string_view, 3> value_types = {"string", "int64", "double"};
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

/// A non-negative integer (milliseconds, sizes) up to `hi`.
int64_t as_i64(const field& f, int64_t lo = 0, int64_t hi = std::numeric_limits<int64_t>::max()) {
  require_number_scalar(f, "an integer");
  const std::string& t = f.node.Scalar();
  if (!t.empty() && t.front() == '-') {
    uint64_t v = 0;
    if (auto err = detail::parse_unsigned(std::string_view(t).substr(1), 0,
                                          std::numeric_limits<int64_t>::max(), v);
        !err.empty())
      f.fail("expected an integer, got '" + t + "'");
    auto x = -static_cast<int64_t>(v);
    if (x < lo)
      f.fail(fmt::format("must be at least {}, got {}", lo, t));
    return x;
  }
  uint64_t v = 0;
  if (auto err = detail::parse_unsigned(t, static_cast<uint64_t>(std::max<int64_t>(lo, 0)),
                                        static_cast<uint64_t>(hi), v);
      !err.empty())
    f.fail(err);
  return static_cast<int64_t>(v);
}

/// A boolean.
bool as_bool(const field& f) {
  if (!f.node.IsScalar())
    f.fail("expected true or false, got " + detail::describe(f.node));
  bool v = false;
  if (auto err = detail::parse_bool(f.node.Scalar(), v); !err.empty())
    f.fail(err);
  return v;
}

/// "<file>:<line>:<column>: <path>" of a field, for messages raised after parsing.
std::string where(const field& f) {
  std::string s = detail::positioned(*f.file, f.mark, f.path.empty() ? "(top level)" : f.path, "");
  s.resize(s.size() - 2); // drop the ": " before the (empty) message
  return s;
}

/// A field reference (non-empty text) with its position.
field_ref as_field_ref(const field& f) {
  std::string name = as_string(f);
  if (name.empty())
    f.fail("field name must not be empty");
  return field_ref{std::move(name), where(f)};
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
  static constexpr std::array<std::string_view, 2> modes = {"exactly-once", "at-least-once"};
  const map_view m(f, allowed_pipeline_keys("pipeline"));
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

/// `schema:` proto, message.
void read_schema(const field& f, pipeline_config& cfg) {
  const map_view m(f, allowed_pipeline_keys("schema"));
  cfg.schema.where = where(f);
  cfg.schema.proto = as_string(m.require("proto"));
  if (cfg.schema.proto.empty())
    m.require("proto").fail("proto file path must not be empty");
  cfg.schema.message = as_string(m.require("message"));
  if (cfg.schema.message.empty())
    m.require("message").fail("message type must not be empty");
}

/// `source:` id, topic, start_offset, key, event_time, watermark, partitioned_by_key.
void read_source(const field& f, source_config& src, uniqueness& seen) {
  static constexpr std::array<std::string_view, 2> offsets = {"earliest", "latest"};
  const map_view m(f, allowed_pipeline_keys("source"));
  read_id(m, src.id, seen);
  const field topic = m.require("topic");
  src.topic = as_topic(topic);
  seen.topic(topic, src.topic);
  if (auto v = m.get("start_offset")) {
    src.start_offset = as_string(*v);
    if (!contains(offsets, src.start_offset))
      v->fail(fmt::format("start_offset must be earliest or latest, got '{}'", src.start_offset));
  }
  src.key = m.get("key") ? as_field_ref(*m.get("key"))
                         : field_ref{"customer_id", where(f.at_path(f.child("key")))};
  src.event_time = m.get("event_time")
                       ? as_field_ref(*m.get("event_time"))
                       : field_ref{"event_time_ms", where(f.at_path(f.child("event_time")))};
  if (auto w = m.get("watermark")) {
    const map_view wm(*w, allowed_pipeline_keys("source.watermark"));
    if (auto v = wm.get("max_out_of_orderness_ms"))
      src.watermark.max_out_of_orderness_ms = as_i64(*v);
    if (auto v = wm.get("idle_timeout_ms"))
      src.watermark.idle_timeout_ms = as_i64(*v);
  }
  if (auto v = m.get("partitioned_by_key"))
    src.partitioned_by_key = as_bool(*v);
}

/// `dead_letters:` topic.
void read_dead_letters(const field& f, pipeline_config& cfg, uniqueness& seen) {
  const map_view m(f, allowed_pipeline_keys("dead_letters"));
  const field topic = m.require("topic");
  cfg.dead_letter_topic = as_topic(topic);
  seen.topic(topic, cfg.dead_letter_topic);
}

/// A list of field references.
std::vector<field_ref> as_field_list(const field& f) {
  std::vector<field_ref> out;
  for (const field& x : as_list(f)) {
    auto r = as_field_ref(x);
    for (const auto& o : out)
      if (o.name == r.name)
        x.fail(fmt::format("field '{}' is listed twice", r.name));
    out.push_back(std::move(r));
  }
  return out;
}

/// `aggregates:` name -> {fn, field, by}.
std::vector<aggregate_def> read_aggregates(const field& f) {
  const std::vector<std::string_view> keys = allowed_pipeline_keys("operators[].aggregates.<name>");
  if (!f.node.IsMap() || f.node.size() == 0)
    f.fail("expected a map of output name -> {fn, field}, with at least one aggregate");
  std::vector<aggregate_def> out;
  for (const auto& entry : f.node) {
    const YAML::Node key = entry.first;
    const YAML::Node value = entry.second;
    const std::string name = key.IsScalar() ? key.Scalar() : "";
    const field kf{f.file, key, f.child(name), key.Mark()};
    if (!key.IsScalar() || name.empty())
      kf.fail("expected an output field name");
    for (const auto& o : out)
      if (o.name == name)
        kf.fail(fmt::format("duplicate aggregate '{}'", name));
    const map_view m(field{f.file, value, kf.path, value.IsNull() ? key.Mark() : value.Mark()},
                     keys);
    aggregate_def a;
    a.name = name;
    a.where = where(kf);
    const field fn = m.require("fn");
    a.fn = as_string(fn);
    if (!contains(agg_fns, a.fn))
      fn.fail(fmt::format("unknown aggregate function '{}' (allowed: {})", a.fn, join(agg_fns)));
    if (auto v = m.get("field"))
      a.field = as_field_ref(*v);
    else if (a.fn != "count")
      m.self()
          .at_path(m.self().child("field"))
          .fail(fmt::format("missing required key 'field' (the input of {})", a.fn));
    if (auto v = m.get("by")) {
      if (a.fn != "max_by" && a.fn != "min_by")
        v->fail("'by' is only used by max_by and min_by");
      a.by = as_field_ref(*v);
    } else if (a.fn == "max_by" || a.fn == "min_by") {
      m.self()
          .at_path(m.self().child("by"))
          .fail(fmt::format("missing required key 'by' (the field {} compares)", a.fn));
    }
    out.push_back(std::move(a));
  }
  return out;
}

/// A positive duration in ms that must be given.
int64_t require_ms(const map_view& m, std::string_view key, std::string_view why) {
  if (!m.get(key))
    m.self()
        .at_path(m.self().child(key))
        .fail(fmt::format("missing required key '{}' ({})", key, why));
  return as_i64(*m.get(key), 1);
}

/// One operator of any type.
operator_config read_operator(const field& item, const std::string& type, uniqueness& seen,
                              const pipeline_config& cfg) {
  const map_view m(item, allowed_pipeline_keys("operators[]", type));
  operator_config op;
  op.type = type;
  op.where = where(item);
  const field idf = m.require("id");
  op.id = as_name(idf, "id", max_id_length);
  seen.id(idf, op.id);
  if (auto v = m.get("input")) {
    op.input = as_string(*v);
    if (op.input != cfg.source.id && cfg.find_operator(op.input) == nullptr)
      v->fail(fmt::format("unknown input '{}': the input must be the source ('{}') or an "
                          "operator listed before this one",
                          op.input, cfg.source.id));
  } else if (!cfg.operators.empty()) {
    op.input = cfg.operators.back().id;
  } else {
    op.input = cfg.source.id;
  }
  if (type == "validate") {
    if (auto v = m.get("required"))
      op.required = as_field_list(*v);
  } else if (type == "filter") {
    op.field = as_field_ref(m.require("field"));
    if (auto v = m.get("op")) {
      op.op = as_string(*v);
      if (!contains(filter_ops, op.op))
        v->fail(fmt::format("unknown comparison '{}' (allowed: {})", op.op, join(filter_ops)));
    }
    op.value = as_string(m.require("value"));
    if (op.op == "mod_eq") {
      if (!m.get("modulus"))
        m.self().at_path(m.self().child("modulus")).fail("mod_eq needs a 'modulus' (> 0)");
      op.modulus = as_i64(*m.get("modulus"), 1);
    } else if (auto v = m.get("modulus")) {
      v->fail("'modulus' is only used with op: mod_eq");
    }
    if (auto v = m.get("once_per_key"))
      op.once_per_key = as_bool(*v);
  } else if (type == "map") {
    const std::vector<std::string_view> set_keys = allowed_pipeline_keys("operators[].set.<name>");
    const field set = m.require("set");
    if (!set.node.IsMap() || set.node.size() == 0)
      set.fail("expected a map of output name -> {field, multiply, add}");
    for (const auto& entry : set.node) {
      const YAML::Node key = entry.first;
      const YAML::Node value = entry.second;
      const field kf{set.file, key, set.child(key.IsScalar() ? key.Scalar() : "?"), key.Mark()};
      if (!key.IsScalar() || key.Scalar().empty())
        kf.fail("expected an output field name");
      const map_view d(field{set.file, value, kf.path, value.IsNull() ? key.Mark() : value.Mark()},
                       set_keys);
      map_def def;
      def.name = key.Scalar();
      def.field = as_field_ref(d.require("field"));
      if (auto v = d.get("multiply"))
        def.multiply = as_double(*v);
      if (auto v = d.get("add"))
        def.add = as_double(*v);
      op.set.push_back(std::move(def));
    }
  } else if (type == "dedup") {
    op.field = as_field_ref(m.require("field"));
    op.ttl_ms = require_ms(m, "ttl_ms", "how long an event id is remembered");
  } else if (type == "enrich") {
    const std::vector<std::string_view> fkeys = allowed_pipeline_keys("operators[].fields.<name>");
    static constexpr std::array<std::string_view, 2> policies = {"defaults", "dead_letter"};
    op.key = as_field_ref(m.require("key"));
    op.key_prefix = as_string(m.require("key_prefix"));
    const field fields = m.require("fields");
    if (!fields.node.IsMap() || fields.node.size() == 0)
      fields.fail("expected a map of output name -> {hash_field, type, default}");
    for (const auto& entry : fields.node) {
      const YAML::Node key = entry.first;
      const YAML::Node value = entry.second;
      const field kf{fields.file, key, fields.child(key.IsScalar() ? key.Scalar() : "?"),
                     key.Mark()};
      if (!key.IsScalar() || key.Scalar().empty())
        kf.fail("expected an output field name");
      enrich_field_def d;
      d.name = key.Scalar();
      d.hash_field = d.name;
      d.where = where(kf);
      if (!value.IsNull()) {
        const map_view fm(field{fields.file, value, kf.path, value.Mark()}, fkeys);
        if (auto v = fm.get("hash_field"))
          d.hash_field = as_string(*v);
        if (auto v = fm.get("type")) {
          d.type = as_string(*v);
          if (!contains(value_types, d.type))
            v->fail(fmt::format("unknown type '{}' (allowed: {})", d.type, join(value_types)));
        }
        if (auto v = fm.get("default")) {
          d.default_value = as_string(*v);
          double x = 0;
          if (d.type != "string" && !detail::parse_finite_double(d.default_value, x).empty())
            v->fail(fmt::format("default '{}' is not a number (type {})", d.default_value, d.type));
        }
      }
      op.fields.push_back(std::move(d));
    }
    if (auto v = m.get("on_missing")) {
      op.on_missing = as_string(*v);
      if (!contains(policies, op.on_missing))
        v->fail(fmt::format("on_missing must be defaults or dead_letter, got '{}'", op.on_missing));
    }
    if (auto v = m.get("cache_entries"))
      op.cache_entries = as_u32(*v, 1, 100'000'000);
    if (auto v = m.get("cache_ttl_ms"))
      op.cache_ttl_ms = as_i64(*v, 1);
    if (auto v = m.get("batch_size"))
      op.batch_size = as_u32(*v, 1, 100'000);
    if (auto v = m.get("max_delay_ms"))
      op.max_delay_ms = as_i64(*v, 0, 60'000);
    if (auto v = m.get("timeout_ms"))
      op.timeout_ms = as_i64(*v, 1, 600'000);
    if (auto v = m.get("retries"))
      op.retries = as_u32(*v, 0, 100);
  } else if (type == "aggregate") {
    op.aggregates = read_aggregates(m.require("aggregates"));
    if (auto v = m.get("ttl_ms"))
      op.ttl_ms = as_i64(*v, 1);
  } else if (type == "window") {
    const field kind = m.require("kind");
    op.kind = as_string(kind);
    if (!contains(window_kinds, op.kind))
      kind.fail(fmt::format("unknown window kind '{}' (allowed: {})", op.kind, join(window_kinds)));
    auto only = [&](std::string_view key, bool ok) {
      if (auto v = m.get(key); v && !ok)
        v->fail(fmt::format("'{}' does not apply to {} windows", key, op.kind));
    };
    only("size_ms", op.kind != "session");
    only("slide_ms", op.kind == "sliding");
    only("gap_ms", op.kind == "session");
    if (op.kind == "session") {
      op.gap_ms = require_ms(m, "gap_ms", "the inactivity gap that ends a session");
    } else {
      op.size_ms = require_ms(m, "size_ms", "the window length");
      if (op.kind == "sliding") {
        op.slide_ms = require_ms(m, "slide_ms", "the distance between window starts");
        if (op.slide_ms > op.size_ms)
          m.get("slide_ms")
              ->fail(fmt::format("slide_ms {} is larger than size_ms {}: records "
                                 "between windows would be lost",
                                 op.slide_ms, op.size_ms));
        if (op.size_ms % op.slide_ms != 0)
          m.get("slide_ms")
              ->fail(fmt::format("size_ms {} must be a multiple of slide_ms {}", op.size_ms,
                                 op.slide_ms));
      }
    }
    if (auto v = m.get("allowed_lateness_ms"))
      op.allowed_lateness_ms = as_i64(*v);
    op.aggregates = read_aggregates(m.require("aggregates"));
    if (auto v = m.get("late_topic")) {
      op.late_topic = as_topic(*v);
      seen.topic(*v, op.late_topic);
    }
  } else if (type == "score") {
    if (auto v = m.get("bias"))
      op.bias = as_double(*v);
    const field w = m.require("weights");
    if (!w.node.IsMap() || w.node.size() == 0)
      w.fail("expected a map of feature field -> weight, with at least one feature");
    for (const auto& entry : w.node) {
      const YAML::Node key = entry.first;
      const YAML::Node value = entry.second;
      const field kf{w.file, key, w.child(key.IsScalar() ? key.Scalar() : "?"), key.Mark()};
      if (!key.IsScalar() || key.Scalar().empty())
        kf.fail("expected a feature field name");
      const field vf{w.file, value, kf.path, value.IsNull() ? key.Mark() : value.Mark()};
      op.weights.emplace_back(field_ref{key.Scalar(), where(kf)}, as_double(vf));
    }
    if (auto v = m.get("output"))
      op.output = as_name(*v, "output field", max_id_length);
  } else { // key_by
    op.key = as_field_ref(m.require("key"));
  }
  return op;
}

/// `operators:` a list of operators; each reads from its `input` (default: the previous).
void read_operators(const field& f, pipeline_config& cfg, uniqueness& seen) {
  const std::vector<field> items = as_list(f);
  if (items.empty())
    f.fail("a pipeline needs at least one operator");
  for (const auto& item : items) {
    const auto [type, type_field] = read_type(item, operator_types, "operator");
    cfg.operators.push_back(read_operator(item, type, seen, cfg));
  }
}

/// `sinks:` redis and kafka sinks, each writing one operator's output.
void read_sinks(const field& f, pipeline_config& cfg, uniqueness& seen) {
  static constexpr std::array<std::string_view, 2> deliveries = {"at-least-once", "exactly-once"};
  for (const field& item : as_list(f)) {
    const auto [type, type_field] = read_type(item, sink_types, "sink");
    const map_view m(item, allowed_pipeline_keys("sinks[]", type));
    sink_config sink;
    sink.type = type;
    sink.where = where(item);
    const field idf = m.require("id");
    sink.id = as_name(idf, "id", max_id_length);
    seen.id(idf, sink.id);
    const field from = m.require("from");
    sink.from = as_string(from);
    if (cfg.find_operator(sink.from) == nullptr)
      from.fail(fmt::format("unknown operator '{}' (operators: {})", sink.from, [&] {
        std::string ids;
        for (const auto& op : cfg.operators)
          ids += (ids.empty() ? "" : ", ") + op.id;
        return ids;
      }()));
    if (auto v = m.get("fields")) {
      for (const field& x : as_list(*v)) {
        std::string out_name;
        field_ref ref;
        if (x.node.IsMap() && x.node.size() == 1) { // out_name: field
          const YAML::Node key = x.node.begin()->first;
          const YAML::Node value = x.node.begin()->second;
          out_name = key.IsScalar() ? key.Scalar() : "";
          ref = as_field_ref(
              field{x.file, value, x.child(out_name), value.IsNull() ? key.Mark() : value.Mark()});
        } else {
          ref = as_field_ref(x);
          out_name = ref.name;
        }
        if (out_name.empty())
          x.fail("expected a field name or 'output_name: field'");
        for (const auto& n : sink.field_names)
          if (n == out_name)
            x.fail(fmt::format("output field '{}' is listed twice", out_name));
        sink.fields.push_back(std::move(ref));
        sink.field_names.push_back(std::move(out_name));
      }
    }
    if (type == "redis") {
      sink.key_prefix = as_string(m.require("key_prefix"));
      if (auto v = m.get("key_fields"))
        sink.key_fields = as_field_list(*v);
    } else {
      const field topic = m.require("topic");
      sink.topic = as_topic(topic);
      seen.topic(topic, sink.topic);
      if (auto v = m.get("delivery")) {
        sink.delivery = as_string(*v);
        if (!contains(deliveries, sink.delivery))
          v->fail(fmt::format("delivery must be at-least-once or exactly-once, got '{}'",
                              sink.delivery));
      }
    }
    cfg.sinks.push_back(std::move(sink));
  }
}

/// Reads a whole pipeline document.
pipeline_config read_pipeline(const YAML::Node& root, const std::string& file) {
  pipeline_config cfg;
  cfg.file = file;
  const map_view top(field{&file, root, "", root.Mark()}, allowed_pipeline_keys(""));
  uniqueness seen;
  read_pipeline_section(top.require("pipeline"), cfg);
  read_schema(top.require("schema"), cfg);
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
