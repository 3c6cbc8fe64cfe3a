#include "pipeline/plan.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include <fmt/format.h>

namespace keyflow::pipeline {

namespace {

using config::config_error;
using config::field_ref;

[[noreturn]] void fail(const std::string& where, const std::string& what) {
  throw config_error(where.empty() ? what : where + ": " + what);
}

bool numeric(value_type t) {
  return t == value_type::int64 || t == value_type::dbl;
}

/// Resolution context: the schema, the names the source decodes, schema errors by name.
struct resolver {
  const plan* p;
  std::map<std::string, std::string> schema_errors;

  /// Slot of `ref` in `in`, or a config_error naming the operator and what is there.
  int slot(const layout& in, const field_ref& ref, const std::string& op_id) const {
    if (auto s = in.slot(ref.name))
      return *s;
    std::string msg = fmt::format("unknown field '{}' in the input of '{}' (fields there: {})",
                                  ref.name, op_id, in.size() == 0 ? "none" : in.names());
    if (auto e = schema_errors.find(ref.name); e != schema_errors.end())
      msg += "; " + e->second;
    fail(ref.where, msg);
  }

  /// Like slot(), and the field must be numeric.
  int numeric_slot(const layout& in, const field_ref& ref, const std::string& op_id,
                   std::string_view use) const {
    int s = slot(in, ref, op_id);
    if (!numeric(in.at(s).type))
      fail(ref.where, fmt::format("field '{}' is a {}; {} needs a number", ref.name,
                                  type_name(in.at(s).type), use));
    return s;
  }
};

/// Names every operator produces (they never come from the schema).
std::set<std::string> produced_names(const config::pipeline_config& cfg) {
  std::set<std::string> out;
  for (const auto& op : cfg.operators) {
    for (const auto& m : op.set)
      out.insert(m.name);
    for (const auto& f : op.fields)
      out.insert(f.name);
    for (const auto& a : op.aggregates)
      out.insert(a.name);
    if (op.type == "score")
      out.insert(op.output);
    if (op.type == "window") {
      out.insert("window_start_ms");
      out.insert("window_end_ms");
    }
  }
  return out;
}

/// Every field name referenced anywhere, with its position (first use).
std::vector<field_ref> referenced(const config::pipeline_config& cfg) {
  // Order matters: it is the source layout's slot order, and max_by / min_by break ties by
  // comparing whole records in slot order. The key comes first, the event time last.
  std::vector<field_ref> out{cfg.source.key};
  auto add = [&](const field_ref& r) {
    if (r.set())
      out.push_back(r);
  };
  for (const auto& op : cfg.operators) {
    for (const auto& r : op.required)
      add(r);
    add(op.field);
    add(op.key);
    for (const auto& m : op.set)
      add(m.field);
    for (const auto& a : op.aggregates) {
      add(a.field);
      add(a.by);
    }
    for (const auto& [r, w] : op.weights)
      add(r);
  }
  for (const auto& s : cfg.sinks) {
    for (const auto& r : s.fields)
      add(r);
    for (const auto& r : s.key_fields)
      add(r);
  }
  out.push_back(cfg.source.event_time);
  return out;
}

value parse_literal(const std::string& text, value_type type, const std::string& where,
                    const std::string& field) {
  if (type == value_type::string)
    return value::of(text);
  if (type == value_type::int64) {
    int64_t x = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), x);
    if (ec != std::errc() || end != text.data() + text.size())
      fail(where,
           fmt::format("value '{}' is not an integer, but field '{}' is an int64", text, field));
    return value::of(x);
  }
  double d = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), d);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(d))
    fail(where, fmt::format("value '{}' is not a number, but field '{}' is a double", text, field));
  return value::of(d);
}

ops::agg_fn to_fn(const std::string& name) {
  static const std::map<std::string, ops::agg_fn> fns = {
      {"count", ops::agg_fn::count},  {"sum", ops::agg_fn::sum},
      {"min", ops::agg_fn::min},      {"max", ops::agg_fn::max},
      {"avg", ops::agg_fn::avg},      {"first", ops::agg_fn::first},
      {"last", ops::agg_fn::last},    {"max_by", ops::agg_fn::max_by},
      {"min_by", ops::agg_fn::min_by}};
  return fns.at(name);
}

std::vector<ops::agg_spec> resolve_aggregates(const resolver& r, const layout& in,
                                              const config::operator_config& op) {
  std::vector<ops::agg_spec> out;
  for (const auto& a : op.aggregates) {
    ops::agg_spec s;
    s.name = a.name;
    s.fn = to_fn(a.fn);
    if (s.fn != ops::agg_fn::count) {
      bool needs_number = s.fn == ops::agg_fn::sum || s.fn == ops::agg_fn::avg ||
                          s.fn == ops::agg_fn::min || s.fn == ops::agg_fn::max;
      s.input_slot =
          needs_number ? r.numeric_slot(in, a.field, op.id, a.fn) : r.slot(in, a.field, op.id);
      s.input_type = in.at(s.input_slot).type;
    }
    if (a.by.set())
      s.by_slot = r.numeric_slot(in, a.by, op.id, a.fn);
    out.push_back(std::move(s));
  }
  return out;
}

} // namespace

std::vector<std::string> plan::column_families() const {
  std::vector<std::string> out;
  for (const auto& op : ops)
    if (op.stateful)
      out.push_back(op.cfg->id);
  return out;
}

std::vector<const op_plan*> plan::source_ops() const {
  std::vector<const op_plan*> out;
  for (const auto& op : ops)
    if (op.at_source)
      out.push_back(&op);
  return out;
}

int plan::key_by_into(int s) const {
  for (size_t i = 0; i < ops.size(); ++i)
    if (ops[i].cfg->type == "key_by" && ops[i].stage == s - 1)
      return static_cast<int>(i);
  return -1;
}

std::shared_ptr<const plan> make_plan(config::pipeline_config cfg) {
  auto p = std::make_shared<plan>();
  p->cfg = std::move(cfg);
  const auto& c = p->cfg;

  // The schema, relative to the pipeline file.
  std::filesystem::path proto{c.schema.proto};
  if (proto.is_relative() && c.file != "<string>")
    proto = std::filesystem::path{c.file}.parent_path() / proto;
  try {
    p->schema = schema::message_schema::load(proto.lexically_normal().string(), c.schema.message);
  } catch (const schema::schema_error& e) {
    fail(c.schema.where, e.what());
  }

  // Source projection: every referenced name the schema knows. A name an operator also
  // produces (e.g. `dwell_ms: {fn: sum, field: dwell_ms}`) is still read from the schema
  // when it is there: the operator's output replaces it downstream only.
  resolver r{p.get(), {}};
  const auto produced = produced_names(c);
  std::set<std::string> not_in_schema; // produced names the schema does not know
  for (const auto& ref : referenced(c)) {
    if (p->source_layout.slot(ref.name) || r.schema_errors.count(ref.name) ||
        not_in_schema.count(ref.name))
      continue;
    try {
      auto path = p->schema->resolve(ref.name);
      p->source_layout.add(ref.name, path.type);
      p->source_paths.push_back(std::move(path));
    } catch (const schema::schema_error& e) {
      if (produced.count(ref.name))
        not_in_schema.insert(ref.name);
      else
        r.schema_errors.emplace(ref.name, e.what());
    }
  }
  p->key_slot = r.slot(p->source_layout, c.source.key, c.source.id);
  p->event_time_slot = r.slot(p->source_layout, c.source.event_time, c.source.id);
  if (p->source_layout.at(p->event_time_slot).type != value_type::int64)
    fail(c.source.event_time.where,
         fmt::format("event time field '{}' is a {}; it must be an integer (ms since the epoch)",
                     c.source.event_time.name,
                     type_name(p->source_layout.at(p->event_time_slot).type)));

  // Operators: inputs, stages, layouts and resolved settings.
  std::map<std::string, int> index;
  for (size_t i = 0; i < c.operators.size(); ++i)
    index[c.operators[i].id] = static_cast<int>(i);
  p->ops.resize(c.operators.size());
  for (size_t i = 0; i < c.operators.size(); ++i) {
    const auto& oc = c.operators[i];
    auto& op = p->ops[i];
    op.cfg = &oc;
    op.input = oc.input == c.source.id ? -1 : index.at(oc.input);
    if (op.input >= 0) {
      const auto& parent = p->ops[static_cast<size_t>(op.input)];
      op.stage = parent.stage + (parent.cfg->type == "key_by" ? 1 : 0);
      op.in = parent.out;
    } else {
      op.in = p->source_layout;
    }
    op.out = op.in;
    const auto& in = op.in;
    const auto& t = oc.type;
    if (t == "validate") {
      for (const auto& f : oc.required)
        op.required_slots.push_back(r.slot(in, f, oc.id));
    } else if (t == "filter") {
      op.filter.slot = r.slot(in, oc.field, oc.id);
      op.filter.op = oc.op;
      auto ft = in.at(op.filter.slot).type;
      if (oc.op == "mod_eq" && ft != value_type::int64)
        fail(oc.field.where, fmt::format("mod_eq needs an integer field; '{}' is a {}",
                                         oc.field.name, type_name(ft)));
      if (oc.op != "eq" && oc.op != "ne" && ft == value_type::string)
        fail(oc.field.where, fmt::format("'{}' compares numbers; '{}' is a string (use eq or ne)",
                                         oc.op, oc.field.name));
      op.filter.literal = parse_literal(oc.value, ft, oc.where, oc.field.name);
      op.filter.modulus = oc.modulus;
      op.filter.once_per_key = oc.once_per_key;
      op.stateful = oc.once_per_key;
    } else if (t == "map") {
      for (const auto& m : oc.set) {
        map_spec s;
        s.in_slot = r.numeric_slot(in, m.field, oc.id, "map");
        s.multiply = m.multiply;
        s.add = m.add;
        s.out_slot = op.out.add(m.name, value_type::dbl);
        op.maps.push_back(s);
      }
    } else if (t == "dedup") {
      op.dedup_slot = r.slot(in, oc.field, oc.id);
      op.stateful = true;
    } else if (t == "enrich") {
      auto& e = op.enrich;
      e.id = oc.id;
      e.key_slot = r.slot(in, oc.key, oc.id);
      e.key_prefix = oc.key_prefix;
      e.on_missing = oc.on_missing == "dead_letter" ? ops::missing_policy::dead_letter
                                                    : ops::missing_policy::defaults;
      e.cache_entries = oc.cache_entries;
      e.cache_ttl_ms = oc.cache_ttl_ms;
      for (const auto& f : oc.fields) {
        ops::enrich_field ef;
        ef.name = f.name;
        ef.hash_field = f.hash_field;
        ef.type = f.type == "int64"    ? value_type::int64
                  : f.type == "double" ? value_type::dbl
                                       : value_type::string;
        ef.default_value =
            f.type == "string" ? value::of(f.default_value)
            : f.type == "int64"
                ? value::of(static_cast<int64_t>(
                      f.default_value.empty() ? 0 : std::stod(f.default_value)))
                : value::of(f.default_value.empty() ? 0.0 : std::stod(f.default_value));
        ef.out_slot = op.out.add(f.name, ef.type);
        e.fields.push_back(std::move(ef));
      }
      e.key_field = oc.key.name;
      e.output_fields = op.out.size();
    } else if (t == "aggregate" || t == "window") {
      auto& w = op.window;
      w.id = oc.id;
      w.kind = t == "aggregate"        ? ops::window_kind::global
               : oc.kind == "tumbling" ? ops::window_kind::tumbling
               : oc.kind == "sliding"  ? ops::window_kind::sliding
                                       : ops::window_kind::session;
      w.size_ms = oc.size_ms;
      w.slide_ms = oc.slide_ms;
      w.gap_ms = oc.gap_ms;
      w.allowed_lateness_ms = oc.allowed_lateness_ms;
      w.late_topic = oc.late_topic;
      w.ttl_ms = t == "aggregate" ? oc.ttl_ms : 0;
      w.aggregates = resolve_aggregates(r, in, oc);
      op.out = ops::window_output_layout(w);
      op.stateful = true;
    } else if (t == "score") {
      op.score.bias = oc.bias;
      for (const auto& [f, weight] : oc.weights)
        op.score.weights.emplace_back(r.numeric_slot(in, f, oc.id, "a score feature"), weight);
      op.score.out_slot = op.out.add(oc.output, value_type::dbl);
    } else if (t == "key_by") {
      op.key_slot = r.slot(in, oc.key, oc.id);
    }
    p->stages = std::max(p->stages, op.stage + 1 + (t == "key_by" ? 1 : 0));
  }

  // Sinks.
  for (const auto& sc : c.sinks) {
    sink_plan s;
    s.cfg = &sc;
    s.from = index.at(sc.from);
    const auto& from = p->ops[static_cast<size_t>(s.from)];
    if (from.cfg->type == "key_by")
      fail(sc.where, fmt::format("sink '{}' reads from key_by operator '{}', which only re-keys "
                                 "records; read from the operator before or after it",
                                 sc.id, sc.from));
    s.stage = from.stage;
    s.in = from.out;
    if (sc.fields.empty())
      for (size_t i = 0; i < s.in.size(); ++i) {
        s.slots.push_back(static_cast<int>(i));
        s.names.push_back(s.in.at(static_cast<int>(i)).name);
      }
    for (size_t i = 0; i < sc.fields.size(); ++i) {
      s.slots.push_back(r.slot(s.in, sc.fields[i], sc.id));
      s.names.push_back(sc.field_names[i]);
    }
    for (const auto& f : sc.key_fields)
      s.key_slots.push_back(r.slot(s.in, f, sc.id));
    p->sinks.push_back(std::move(s));
  }

  // Leading validate / plain filter operators that form a chain run in the sources.
  std::vector<int> readers(p->ops.size(), 0); // operators and sinks reading each operator
  int source_readers = 0; // operators reading the source itself: all get what the sources emit
  for (const auto& op : p->ops)
    if (op.input >= 0)
      ++readers[static_cast<size_t>(op.input)];
    else
      ++source_readers;
  std::vector<bool> tapped(p->ops.size(), false);
  for (const auto& s : p->sinks)
    tapped[static_cast<size_t>(s.from)] = true;
  for (size_t i = 0; i < p->ops.size(); ++i) {
    auto& op = p->ops[i];
    const auto& t = op.cfg->type;
    bool chain = i == 0 ? op.input == -1 && source_readers == 1
                        : (p->ops[i - 1].at_source && op.input == static_cast<int>(i) - 1 &&
                           readers[i - 1] == 1);
    if (!chain || tapped[i] || !(t == "validate" || (t == "filter" && !op.filter.once_per_key)))
      break;
    op.at_source = true;
  }
  // The partition actors cannot run a validate operator (its dead letters need the raw
  // bytes): one that cannot run in the sources is a configuration error.
  for (const auto& op : p->ops)
    if (op.cfg->type == "validate" && !op.at_source)
      fail(op.cfg->where,
           fmt::format("validate operator '{}' must run in the sources: it must read the source "
                       "(or only validate and stateless filter operators before it), be the only "
                       "operator reading its input, and not be written by a sink",
                       op.cfg->id));

  for (const auto& op : p->ops)
    if (op.cfg->type == "enrich" || op.cfg->type == "window")
      p->keep_raw = true;
  return p;
}

std::shared_ptr<const plan> load_plan(const std::string& path) {
  return make_plan(config::load_pipeline_file(path));
}

} // namespace keyflow::pipeline
