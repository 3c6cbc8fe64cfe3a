/// \file
/// Unit tests of the tables docs/configuration.md is generated from: the node options
/// exported by node_option_docs() are exactly the options keyflowd accepts (command line,
/// node YAML file, --help), and the pipeline keys of pipeline_keys() are exactly the keys
/// the pipeline reader accepts: a sample pipeline using every documented key parses, and an
/// unknown key in every documented map is rejected with file:line, its key path and the
/// table's keys. The exact text of the committed document is checked by the ctest
/// docs.configuration.

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "config/node_options.hpp"
#include "config/pipeline_config.hpp"
#include "config/pipeline_keys.hpp"
#include "pipeline_util.hpp"

namespace {

using keyflow::config::allowed_pipeline_keys;
using keyflow::config::node_option_docs;
using keyflow::config::parse_pipeline;
using keyflow::config::pipeline_key;
using keyflow::config::pipeline_key_applies_to;
using keyflow::config::pipeline_key_path;
using keyflow::config::pipeline_keys;

using keyflow::test::config_error_of;
using keyflow::test::source_path;
using keyflow::test::write_file;

/// The words of a space-separated list; an empty text gives one empty word (no type).
std::vector<std::string> words(std::string_view text) {
  std::vector<std::string> out;
  std::istringstream in{std::string(text)};
  for (std::string w; in >> w;)
    out.push_back(w);
  if (out.empty())
    out.emplace_back();
  return out;
}

/// "a, b, c", as the readers list allowed values.
template <class Strings>
std::string join(const Strings& xs) {
  std::string out;
  for (const auto& x : xs)
    out += (out.empty() ? "" : ", ") + std::string(x);
  return out;
}

/// The text of "(allowed: ...)" at the end of an error message, or "" without it.
std::string allowed_in(const std::string& msg) {
  const std::string tag = "(allowed: ";
  const auto at = msg.rfind(tag);
  if (at == std::string::npos || msg.back() != ')')
    return {};
  return msg.substr(at + tag.size(), msg.size() - at - tag.size() - 1);
}

// --- node options --------------------------------------------------------------------------

/// Parses keyflowd arguments (argv[0] is added).
keyflow::config::node_options parse_node(std::vector<std::string> args) {
  args.insert(args.begin(), "keyflowd");
  std::vector<const char*> argv;
  for (const auto& a : args)
    argv.push_back(a.c_str());
  return keyflow::config::parse_node_options(static_cast<int>(argv.size()), argv.data());
}

/// A node YAML file of this test (replaced on each call).
std::string node_file(const std::string& text) {
  const std::string path = std::string(KEYFLOW_BINARY_DIR) + "/config_reference_test_node.yaml";
  write_file(path, text);
  return path;
}

TEST(NodeOptionDocs, OneRowPerOptionWithTypeDefaultAndHelp) {
  const auto docs = node_option_docs();
  ASSERT_GE(docs.size(), 40u);
  std::set<std::string> names;
  for (const auto& d : docs) {
    SCOPED_TRACE(d.name);
    EXPECT_TRUE(names.insert(d.name).second) << "listed twice";
    EXPECT_FALSE(d.help.empty());
    EXPECT_TRUE(d.type == "string" || d.type == "integer" || d.type == "flag") << d.type;
    if (d.type == "flag") {
      EXPECT_TRUE(d.default_value == "false" || d.default_value == "true") << d.default_value;
    }
    if (d.type == "integer") {
      EXPECT_FALSE(d.default_value.empty());
    } else {
      EXPECT_EQ(d.min, 0u);
    }
  }
  // Defaults come from node_options' initializers.
  const keyflow::config::node_options defaults;
  auto row = [&](std::string_view name) {
    for (const auto& d : docs)
      if (d.name == name)
        return d;
    ADD_FAILURE() << "no option " << name;
    return keyflow::config::node_option_doc{};
  };
  EXPECT_EQ(row("state-dir").default_value, defaults.state_dir);
  EXPECT_EQ(row("state-dir").type, "string");
  EXPECT_EQ(row("batch-size").default_value, std::to_string(defaults.batch_size));
  EXPECT_EQ(row("batch-size").type, "integer");
  EXPECT_EQ(row("batch-size").min, 1u);
  EXPECT_EQ(row("heartbeat-ms").min, 10u);
  EXPECT_EQ(row("embedded-kafka").type, "flag");
  EXPECT_EQ(row("embedded-kafka").default_value, "false");
  EXPECT_EQ(row("redis").default_value, "");
  EXPECT_EQ(row("log-format").default_value, defaults.log_format);
  EXPECT_TRUE(row("config").cli_only);
  EXPECT_FALSE(row("pipeline").cli_only);
}

TEST(NodeOptionDocs, SameOptionsAsTheHelp) {
  std::set<std::string> documented, in_help;
  for (const auto& d : node_option_docs())
    documented.insert(d.name);
  const std::string help = keyflow::config::node_options_help();
  for (size_t at = help.find("--"); at != std::string::npos; at = help.find("--", at + 2)) {
    if (at > 0 && !std::isspace(static_cast<unsigned char>(help[at - 1])) && help[at - 1] != ',')
      continue; // "--" inside a word or a help text ("sender->receiver")
    size_t end = at + 2;
    while (end < help.size() &&
           (std::isalnum(static_cast<unsigned char>(help[end])) || help[end] == '-'))
      ++end;
    if (end > at + 2)
      in_help.insert(help.substr(at + 2, end - at - 2));
  }
  in_help.erase("help");
  // Help texts mention other options ("required unless --embedded-kafka"): all are real.
  EXPECT_EQ(documented, in_help);
}

TEST(NodeOptionDocs, SameKeysAsTheNodeFileAccepts) {
  std::vector<std::string> file_keys;
  for (const auto& d : node_option_docs())
    if (!d.cli_only)
      file_keys.push_back(d.name);
  const auto msg = config_error_of([] {
    parse_node({"--config", node_file("no-such-option: 1\n")});
  });
  EXPECT_NE(msg.find("no-such-option: unknown key 'no-such-option'"), std::string::npos) << msg;
  EXPECT_EQ(allowed_in(msg), join(file_keys)) << msg;
  const auto cli = config_error_of([] { parse_node({"--no-such-option", "1"}); });
  EXPECT_NE(cli.find("--no-such-option"), std::string::npos) << cli;
}

TEST(NodeOptionDocs, EveryOptionAcceptsItsDefaultOnTheCommandLineAndInTheFile) {
  for (const auto& d : node_option_docs()) {
    SCOPED_TRACE(d.name);
    if (d.type != "flag" && d.default_value.empty())
      continue; // an empty value is not always valid (--pipeline, --config)
    std::vector<std::string> args = {"--pipeline", "p.yaml"};
    if (d.name != "embedded-kafka")
      args.push_back("--embedded-kafka");
    if (d.type == "flag") {
      args.push_back("--" + d.name);
    } else {
      args.push_back("--" + d.name);
      args.push_back(d.default_value);
    }
    try {
      parse_node(args);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "command line: " << e.what();
    }
    if (d.cli_only)
      continue;
    std::string yaml = d.name == "pipeline" ? "" : "pipeline: p.yaml\n";
    if (d.name != "embedded-kafka")
      yaml += "embedded-kafka: true\n";
    yaml += d.name + ": " +
            (d.type == "flag"     ? "true"
             : d.type == "string" ? "\"" + d.default_value + "\""
                                  : d.default_value) +
            "\n";
    try {
      parse_node({"--config", node_file(yaml)});
    } catch (const std::exception& e) {
      ADD_FAILURE() << "node file: " << e.what();
    }
  }
}

TEST(NodeOptionDocs, IntegerMinimumsAreEnforced) {
  for (const auto& d : node_option_docs()) {
    if (d.type != "integer" || d.min == 0)
      continue;
    SCOPED_TRACE(d.name);
    const auto msg = config_error_of([&] {
      parse_node(
          {"--pipeline", "p.yaml", "--embedded-kafka", "--" + d.name, std::to_string(d.min - 1)});
    });
    EXPECT_NE(msg.find("--" + d.name + ": must be at least " + std::to_string(d.min)),
              std::string::npos)
        << msg;
  }
}

// --- pipeline keys -------------------------------------------------------------------------

/// A pipeline that uses every key of the table at least once, for every type that takes it.
constexpr const char* every_key =
    R"(pipeline: {name: every-key, version: 2, max_parallelism: 64, mode: at-least-once}
schema: {proto: event.proto, message: keyflow.proto.Event}
source:
  id: src
  topic: events
  start_offset: latest
  key: customer_id
  event_time: event_time_ms
  watermark: {max_out_of_orderness_ms: 100, idle_timeout_ms: 0}
  partitioned_by_key: true
dead_letters: {topic: dlq}
operators:
  - {id: v, type: validate, required: [event_id]}
  - {id: f0, type: filter, field: value, op: ge, value: 1, once_per_key: true}
  - {id: f, type: filter, input: v, field: value, op: mod_eq, value: 1, modulus: 2}
  - {id: m, type: map, set: {eur: {field: value, multiply: 0.9, add: 1}}}
  - {id: d, type: dedup, field: event_id, ttl_ms: 1000}
  - id: e
    type: enrich
    key: customer_id
    key_prefix: customer_
    fields: {tier: {hash_field: t, type: int64, default: 0}}
    on_missing: dead_letter
    cache_entries: 10
    cache_ttl_ms: 10
    batch_size: 10
    max_delay_ms: 1
    timeout_ms: 10
    retries: 1
  - {id: a, type: aggregate, aggregates: {n: {fn: count}, top: {fn: max_by, field: value, by: value}}, ttl_ms: 1000}
  - {id: t, type: window, input: e, kind: sliding, size_ms: 1000, slide_ms: 500, allowed_lateness_ms: 10, aggregates: {hi: {fn: min_by, field: value, by: value}}, late_topic: late}
  - {id: g, type: window, kind: session, gap_ms: 100, aggregates: {c: {fn: count}}}
  - {id: s, type: score, input: a, bias: 1, weights: {n: 0.5}, output: p}
  - {id: k, type: key_by, key: p}
sinks:
  - {id: r, type: redis, from: s, fields: [p, count: n], key_prefix: profile_, key_fields: [n]}
  - {id: o, type: kafka, from: g, fields: [c], topic: out, delivery: exactly-once}
)";

/// A key of a sample pipeline: the map it is in (as a table map path), its name and the
/// type of the operators[] / sinks[] item around it ("" outside of one).
struct key_use {
  std::string map;
  std::string name;
  std::string item_type;
};

/// A map of a sample pipeline that the table describes, with its concrete key path
/// ("operators[4].fields.tier") and a handle on it.
struct map_use {
  std::string map;
  std::string item_type;
  std::string path;
  YAML::Node node;
};

/// True if the table has keys for the map path `map`.
bool has_keys(std::string_view map) {
  const auto keys = pipeline_keys();
  return std::any_of(keys.begin(), keys.end(), [&](const auto& k) { return k.map == map; });
}

/// Collects the keys and described maps under `node`, a map at table path `map`.
void walk(const YAML::Node& node, const std::string& map, const std::string& path,
          const std::string& item_type, std::vector<key_use>& keys, std::vector<map_use>& maps) {
  maps.push_back(map_use{map, item_type, path, node});
  for (const auto& entry : node) {
    const YAML::Node key = entry.first; // Nodes are handles: copy, never bind to proxies
    const YAML::Node value = entry.second;
    const std::string name = key.Scalar();
    keys.push_back(key_use{map, name, item_type});
    const std::string child = map.empty() ? name : map + "." + name;
    const std::string child_path = path.empty() ? name : path + "." + name;
    if (value.IsMap() && has_keys(child)) {
      walk(value, child, child_path, item_type, keys, maps);
    } else if (value.IsMap() && has_keys(child + ".<name>")) {
      for (const auto& e : value) {
        const YAML::Node k = e.first;
        const YAML::Node v = e.second;
        if (v.IsMap())
          walk(v, child + ".<name>", child_path + "." + k.Scalar(), item_type, keys, maps);
      }
    } else if (value.IsSequence() && has_keys(child + "[]")) {
      for (size_t i = 0; i < value.size(); ++i) {
        const YAML::Node item = value[i];
        const YAML::Node type = item["type"];
        walk(item, child + "[]", child_path + "[" + std::to_string(i) + "]", type.Scalar(), keys,
             maps);
      }
    }
  }
}

/// The rows (with one type each) a key use matches.
bool documented(const key_use& u) {
  for (const auto& k : pipeline_keys())
    if (k.map == u.map && k.name == u.name && pipeline_key_applies_to(k, u.item_type))
      return true;
  return false;
}

/// The types of operators[] or sinks[] items named in the table, in order of first use.
std::vector<std::string> table_item_types(std::string_view list) {
  std::vector<std::string> out;
  for (const auto& k : pipeline_keys())
    if (k.map == list)
      for (const auto& t : words(k.types))
        if (!t.empty() && std::find(out.begin(), out.end(), t) == out.end())
          out.push_back(t);
  return out;
}

TEST(PipelineKeys, TableIsWellFormed) {
  const std::set<std::string_view> value_types = {"string", "integer", "number", "boolean",
                                                  "field",  "list",    "map"};
  const auto keys = pipeline_keys();
  ASSERT_GE(keys.size(), 60u);
  for (const auto& k : keys) {
    const std::string path = pipeline_key_path(k);
    SCOPED_TRACE(path + " (" + std::string(k.types) + ")");
    EXPECT_FALSE(k.name.empty());
    EXPECT_EQ(k.name.find_first_of(". []<>"), std::string_view::npos);
    EXPECT_TRUE(value_types.count(k.type)) << k.type;
    EXPECT_FALSE(k.meaning.empty());
    EXPECT_EQ(k.meaning.back(), '.') << "a meaning is one or more sentences";
    if (k.required) {
      EXPECT_TRUE(k.default_value.empty()) << "a required key has no default";
    }
    // No two rows give the same key for the same item type.
    for (const auto& o : keys) {
      if (&o == &k || o.map != k.map || o.name != k.name)
        continue;
      for (const auto& t : words(k.types)) {
        EXPECT_FALSE(t.empty() || pipeline_key_applies_to(o, t)) << "twice for '" << t << "'";
      }
    }
    // A nested map or list has its parent row, taking every type the nested row names.
    if (k.map.empty())
      continue;
    std::string parent(k.map);
    std::string_view parent_type = "map";
    if (parent.ends_with(".<name>")) {
      parent.resize(parent.size() - 7);
    } else if (parent.ends_with("[]")) {
      parent.resize(parent.size() - 2);
      parent_type = "list";
    }
    for (const auto& t : words(k.types)) {
      const bool found = std::any_of(keys.begin(), keys.end(), [&](const pipeline_key& p) {
        return pipeline_key_path(p) == parent && p.type == parent_type &&
               (k.map.ends_with("[]") || pipeline_key_applies_to(p, t));
      });
      EXPECT_TRUE(found) << "no " << parent_type << " row " << parent << " for '" << t << "'";
    }
  }
}

TEST(PipelineKeys, AllowedKeysOfAMap) {
  using names = std::vector<std::string_view>;
  EXPECT_EQ(allowed_pipeline_keys("source.watermark"),
            (names{"max_out_of_orderness_ms", "idle_timeout_ms"}));
  EXPECT_EQ(allowed_pipeline_keys("operators[]", "dedup"),
            (names{"id", "type", "input", "field", "ttl_ms"}));
  EXPECT_EQ(allowed_pipeline_keys("operators[]", "aggregate"),
            (names{"id", "type", "input", "aggregates", "ttl_ms"}));
  EXPECT_EQ(allowed_pipeline_keys("sinks[]", "kafka"),
            (names{"id", "type", "from", "fields", "topic", "delivery"}));
  EXPECT_EQ(allowed_pipeline_keys("operators[].aggregates.<name>"), (names{"fn", "field", "by"}));
  EXPECT_THROW(allowed_pipeline_keys("no.such.map"), std::logic_error);
}

TEST(PipelineKeys, OperatorAndSinkTypesAreThoseTheReaderAccepts) {
  const std::string head = "pipeline: {name: t}\nschema: {proto: e.proto, message: M}\n"
                           "source: {topic: events}\ndead_letters: {topic: dlq}\n";
  const auto op = config_error_of(
      [&] { parse_pipeline(head + "operators:\n  - {id: x, type: no_such_type}\n"); });
  EXPECT_NE(op.find("operators[0].type: unknown operator type 'no_such_type'"), std::string::npos)
      << op;
  EXPECT_EQ(allowed_in(op), join(table_item_types("operators[]"))) << op;
  const auto sink = config_error_of([&] {
    parse_pipeline(head + "operators:\n  - {id: x, type: key_by, key: k}\n"
                          "sinks:\n  - {id: y, type: no_such_type, from: x}\n");
  });
  EXPECT_NE(sink.find("sinks[0].type: unknown sink type 'no_such_type'"), std::string::npos)
      << sink;
  EXPECT_EQ(allowed_in(sink), join(table_item_types("sinks[]"))) << sink;
}

TEST(PipelineKeys, EveryDocumentedKeyIsAcceptedByTheReader) {
  const auto cfg = parse_pipeline(every_key, "every_key.yaml");
  ASSERT_EQ(cfg.operators.size(), 11u);
  ASSERT_EQ(cfg.sinks.size(), 2u);
  EXPECT_EQ(cfg.source.watermark.max_out_of_orderness_ms, 100);
  EXPECT_EQ(cfg.operators[2].input, "v");
  EXPECT_EQ(cfg.operators[7].slide_ms, 500);
  EXPECT_EQ(cfg.sinks[1].delivery, "exactly-once");

  std::vector<key_use> used;
  std::vector<map_use> maps;
  walk(YAML::Load(every_key), "", "", "", used, maps);
  for (const auto& u : used)
    EXPECT_TRUE(documented(u)) << u.map << " " << u.name << " (" << u.item_type << ")";
  // Each row, for each type it names, is used by the sample (so the reader accepted it).
  for (const auto& k : pipeline_keys())
    for (const auto& t : words(k.types)) {
      const bool covered = std::any_of(used.begin(), used.end(), [&](const key_use& u) {
        return u.map == k.map && u.name == k.name && (t.empty() || u.item_type == t);
      });
      EXPECT_TRUE(covered) << pipeline_key_path(k) << " (" << t
                           << ") is not in the sample pipeline";
    }
}

TEST(PipelineKeys, UnknownKeyInEveryMapIsRejectedWithTheTablesKeys) {
  // One case per described map (and operator or sink type) of the sample.
  std::vector<key_use> used;
  std::vector<map_use> maps;
  walk(YAML::Load(every_key), "", "", "", used, maps);
  std::vector<std::pair<std::string, std::string>> cases;
  for (const auto& m : maps)
    if (std::find(cases.begin(), cases.end(), std::pair(m.map, m.item_type)) == cases.end())
      cases.emplace_back(m.map, m.item_type);
  // Every map of the table and every operator and sink type is among them.
  for (const auto& k : pipeline_keys())
    for (const auto& t : words(k.types)) {
      const bool found = std::any_of(cases.begin(), cases.end(), [&](const auto& c) {
        return c.first == k.map && (t.empty() || c.second == t);
      });
      EXPECT_TRUE(found) << k.map << " (" << t << ")";
    }
  for (const auto& [map, type] : cases) {
    SCOPED_TRACE("map '" + map + "' type '" + type + "'");
    const YAML::Node root = YAML::Load(every_key);
    std::vector<key_use> u;
    std::vector<map_use> m;
    walk(root, "", "", "", u, m);
    const auto it = std::find_if(
        m.begin(), m.end(), [&](const map_use& x) { return x.map == map && x.item_type == type; });
    ASSERT_NE(it, m.end());
    YAML::Node target = it->node;
    target["no_such_key"] = 1;
    const std::string text = YAML::Dump(root);
    const auto msg = config_error_of([&] { parse_pipeline(text, "p.yaml"); });
    // "p.yaml:LINE:COL: <path>.no_such_key: unknown key 'no_such_key' (allowed: ...)"
    const std::string rest = (it->path.empty() ? "" : it->path + ".") +
                             "no_such_key: unknown key 'no_such_key' (allowed: " +
                             join(allowed_pipeline_keys(map, type)) + ")";
    ASSERT_EQ(msg.rfind("p.yaml:", 0), 0u) << msg;
    size_t at = 7;
    for (int part = 0; part < 2; ++part) {
      const size_t digits = at;
      while (at < msg.size() && std::isdigit(static_cast<unsigned char>(msg[at])))
        ++at;
      EXPECT_GT(at, digits) << msg;
      EXPECT_EQ(msg.substr(at, 1), ":") << msg;
      ++at;
    }
    EXPECT_EQ(msg.substr(at), " " + rest) << text;
  }
}

TEST(PipelineKeys, RequiredKeysAreRequiredAndOthersAreNot) {
  // Optional keys that other values make required (documented in their meaning); the sample
  // uses them where they are.
  const std::set<std::string> conditional = {"operators[].modulus",
                                             "operators[].size_ms",
                                             "operators[].slide_ms",
                                             "operators[].gap_ms",
                                             "operators[].aggregates.<name>.field",
                                             "operators[].aggregates.<name>.by"};
  for (const auto& k : pipeline_keys()) {
    const std::string path = pipeline_key_path(k);
    if (conditional.count(path)) {
      EXPECT_FALSE(k.required) << path;
      EXPECT_NE(k.meaning.find("required"), std::string_view::npos) << path;
      continue;
    }
    for (const auto& t : words(k.types)) {
      SCOPED_TRACE(path + " (" + t + ")");
      // Remove the key from its first use in the sample.
      const YAML::Node root = YAML::Load(every_key);
      std::vector<key_use> u;
      std::vector<map_use> m;
      walk(root, "", "", "", u, m);
      const auto it = std::find_if(m.begin(), m.end(), [&](const map_use& x) {
        return x.map == k.map && (t.empty() || x.item_type == t) && x.node[std::string(k.name)];
      });
      ASSERT_NE(it, m.end());
      YAML::Node target = it->node;
      target.remove(std::string(k.name));
      const std::string text = YAML::Dump(root);
      if (k.required) {
        const auto msg = config_error_of([&] { parse_pipeline(text, "p.yaml"); });
        EXPECT_NE(msg.find("missing required key '" + std::string(k.name) + "'"), std::string::npos)
            << msg;
      } else {
        try {
          parse_pipeline(text, "p.yaml");
        } catch (const std::exception& e) {
          ADD_FAILURE() << "optional, but without it: " << e.what();
        }
      }
    }
  }
}

// --- the committed document -----------------------------------------------------------------

TEST(ConfigurationDoc, NamesEveryOptionAndKey) {
  std::ifstream in{source_path("docs/configuration.md")};
  ASSERT_TRUE(in) << "docs/configuration.md is missing: run tools/gen-docs.sh";
  const std::string doc{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  for (const auto& d : node_option_docs())
    EXPECT_NE(doc.find("| `--" + d.name + "` |"), std::string::npos)
        << "--" << d.name << ": run tools/gen-docs.sh";
  for (const auto& k : pipeline_keys())
    EXPECT_NE(doc.find("| `" + pipeline_key_path(k) + "`"), std::string::npos)
        << pipeline_key_path(k) << ": run tools/gen-docs.sh";
}

} // namespace
