// keyflowctl's snapshot commands: snapshot, snapshots, inspect, diff, restore, export, import
// (/snapshots, /snapshots/{name}/state, /diff, /restore, /export, /import of
// docs/admin-api.md).

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>

#include "keyflowctl.hpp"
#include "render.hpp"

namespace keyflowctl {
namespace {

/// Longest value shown in a listing (--key or --output json show it whole).
constexpr size_t max_value_chars = 100;

/// `path` made absolute against the current directory (paths are the node's; a relative one
/// only makes sense for a node on this machine), without trailing "/".
std::string absolute_dir(const std::string& path) {
  std::error_code ec;
  auto p = std::filesystem::absolute(path, ec).lexically_normal().string();
  if (ec)
    p = path;
  while (p.size() > 1 && p.back() == '/')
    p.pop_back();
  return p;
}

/// "#42" or "" of an answer's "id".
std::string id_text(const nlohmann::json& j) {
  auto id = field(j, {"id"}, "");
  return id.empty() ? "" : " (#" + id + ")";
}

/// `keyflowctl snapshot`.
int run_snapshot(const global_options& g, const std::string& name) {
  admin_client c{g};
  auto r = c.post("/snapshots",
                  name.empty() ? nlohmann::json::object() : nlohmann::json{{"name", name}});
  if (g.json()) {
    print_json(c.last_body());
    return exit_ok;
  }
  auto size = integer(r, {"size_bytes"});
  auto dir = field(r, {"dir"}, "");
  std::printf("%s\n",
              fmt::format("snapshot {}{} complete{}{}", field(r, {"name"}, name), id_text(r),
                          size ? ": " + bytes_text(*size) : "", dir.empty() ? "" : " in " + dir)
                  .c_str());
  return exit_ok;
}

/// `keyflowctl snapshots`.
int run_snapshots(const global_options& g) {
  admin_client c{g};
  auto r = c.get("/snapshots");
  if (g.json()) {
    print_json(c.last_body());
    return exit_ok;
  }
  const auto* list = list_of(r, {"snapshots"});
  if (list == nullptr || list->empty()) {
    std::printf("no snapshots or retained checkpoints yet (take one: keyflowctl snapshot --name "
                "NAME)\n");
    return exit_ok;
  }
  table t{{"NAME", "ID", "CREATED (UTC)", "SIZE", "PIPELINE", "VERSION", "OPERATORS"}};
  size_t checkpoints = 0;
  for (const auto& s : *list) {
    auto name = field(s, {"name"});
    auto kind = field(s, {"kind", "type"}, "");
    if (kind == "checkpoint" || (kind.empty() && name.rfind("chk-", 0) == 0))
      ++checkpoints;
    auto created = integer(s, {"created_at_ms", "created_ms"});
    auto size = integer(s, {"size_bytes"});
    std::string ops = "-";
    if (const auto* o = find(s, {"operators"}))
      ops = o->is_structured() ? std::to_string(o->size()) : text(*o);
    auto id = field(s, {"id"});
    if (const auto* parts = find(s, {"parts"}); parts != nullptr && parts->is_array()) {
      // A cluster snapshot: one part per region.
      id = fmt::format("{} part(s)", parts->size());
      if (const auto* complete = find(s, {"complete"}); complete != nullptr && *complete == false)
        id += ", incomplete";
    }
    t.add({name, id, created ? utc_text(*created) : "-",
           size ? bytes_text(static_cast<uint64_t>(*size)) : "-", field(s, {"pipeline"}),
           field(s, {"version", "pipeline_version"}), ops});
  }
  t.print();
  std::printf("\n%zu named snapshot(s), %zu retained checkpoint(s), newest first\n",
              list->size() - checkpoints, checkpoints);
  return exit_ok;
}

/// One key of an operator's state as inspect shows it.
struct entry {
  std::string key;      ///< the key
  nlohmann::json value; ///< its value (null if the answer gives none)
  std::string note;     ///< "event e-1", "expires ... UTC" or ""
};

/// The keys and values an operator's state answer lists: "entries" (or "keys", "values",
/// "state", "sample") as [{key, value, event_id, expires_at_ms}], [[key, value]], [key] or
/// {key: value}.
std::vector<entry> entries_of(const nlohmann::json& o) {
  std::vector<entry> out;
  const nlohmann::json* e = nullptr;
  for (const char* k : {"entries", "keys", "values", "state", "sample"})
    if (const auto* v = find(o, {k}); v != nullptr && v->is_structured()) {
      e = v;
      break;
    }
  if (e == nullptr)
    return out;
  if (e->is_object()) {
    for (const auto& [k, v] : e->items())
      out.push_back({k, v, ""});
    return out;
  }
  for (const auto& item : *e) {
    if (item.is_object() && item.contains("key")) {
      entry en{text(item["key"]), nullptr, ""};
      if (item.contains("value")) {
        en.value = item["value"];
      } else {
        en.value = item;
        for (const char* k : {"key", "key_group", "event_id", "expires_at_ms"})
          en.value.erase(k);
      }
      if (const auto* id = find(item, {"event_id"}))
        en.note = "event " + text(*id);
      if (auto exp = integer(item, {"expires_at_ms"}))
        en.note += (en.note.empty() ? "" : ", ") + fmt::format("expires {} UTC", utc_text(*exp));
      out.push_back(std::move(en));
    } else if (item.is_array() && item.size() == 2) {
      out.push_back({text(item[0]), item[1], ""});
    } else {
      out.push_back({text(item), nullptr, ""});
    }
  }
  return out;
}

/// Prints `rows` (first cells, values, notes) as a table with `header`, adding the NOTE
/// column only if a row has a note.
void print_entries(std::vector<std::string> header,
                   const std::vector<std::pair<std::string, entry>>& rows, size_t max_chars,
                   const std::string& indent) {
  bool notes = false;
  for (const auto& [first, en] : rows)
    notes = notes || !en.note.empty();
  if (notes)
    header.emplace_back("NOTE");
  table t{header};
  for (const auto& [first, en] : rows) {
    std::vector<std::string> row{first, en.value.is_null() ? "-" : value_text(en.value, max_chars)};
    if (notes)
      row.push_back(en.note);
    t.add(std::move(row));
  }
  t.print(stdout, indent);
}

/// "snapshot nightly (#42), pipeline cdp v2" of a state or diff answer's header fields.
std::string snapshot_header(const nlohmann::json& r, const std::string& name) {
  auto pipeline = field(r, {"pipeline"}, "");
  auto version = field(r, {"version", "pipeline_version"}, "");
  return fmt::format(
      "snapshot {}{}{}", field(r, {"snapshot", "name"}, name), id_text(r),
      pipeline.empty() ? "" : ", pipeline " + pipeline + (version.empty() ? "" : " v" + version));
}

/// Options of `keyflowctl inspect`.
struct inspect_options {
  std::string snapshot;    ///< snapshot name or chk-<id>
  std::string operator_id; ///< only this operator
  std::string key;         ///< only this key
  int limit = 0;           ///< at most this many keys per operator (0: the node's default)
};

/// `keyflowctl inspect`.
int run_inspect(const global_options& g, const inspect_options& o) {
  admin_client c{g};
  auto r = c.get("/snapshots/" + url_encode(o.snapshot) + "/state" +
                 query({{"operator", o.operator_id},
                        {"key", o.key},
                        {"limit", o.limit > 0 ? std::to_string(o.limit) : ""}}));
  if (g.json()) {
    print_json(c.last_body());
    return exit_ok;
  }
  std::printf("%s\n", snapshot_header(r, o.snapshot).c_str());
  auto ops = operators_of(r);
  if (!o.key.empty()) {
    std::printf("key %s\n\n", o.key.c_str());
    std::vector<std::pair<std::string, entry>> rows;
    for (const auto& [id, op] : ops) {
      size_t before = rows.size();
      if (const auto* v = find(op, {"value"}))
        rows.push_back({id, {o.key, *v, ""}});
      for (auto& en : entries_of(op))
        if (en.key == o.key)
          rows.push_back({id, std::move(en)});
      if (rows.size() == before)
        rows.push_back({id, {o.key, "(no value)", ""}});
    }
    if (ops.empty()) {
      if (const auto* vs = find(r, {"values"}); vs != nullptr && vs->is_object())
        for (const auto& [id, v] : vs->items())
          rows.push_back({id, {o.key, v, ""}});
      else if (const auto* v = find(r, {"value"}))
        rows.push_back({o.operator_id.empty() ? "-" : o.operator_id, {o.key, *v, ""}});
    }
    if (rows.empty())
      std::printf("no operator has a value for this key\n");
    else
      print_entries({"OPERATOR", "VALUE"}, rows, 0, "");
    return exit_ok;
  }
  bool cut = false;
  for (const auto& [id, op] : ops) {
    auto entries = entries_of(op);
    auto count = integer(op, {"key_count", "keys", "count", "total_keys"});
    auto state_type = field(op, {"state_type"}, "");
    std::string shown;
    if (count && static_cast<size_t>(*count) > entries.size()) {
      shown = fmt::format(", first {} shown", entries.size());
      cut = true;
    }
    std::printf("%s\n",
                fmt::format("\noperator {}{}: {} key(s){}", id,
                            state_type.empty() ? "" : " (" + state_type + ")",
                            count ? std::to_string(*count) : std::to_string(entries.size()), shown)
                    .c_str());
    if (entries.empty())
      continue;
    std::vector<std::pair<std::string, entry>> rows;
    for (auto& en : entries)
      rows.emplace_back(en.key, std::move(en));
    print_entries({"KEY", "VALUE"}, rows, max_value_chars, "  ");
  }
  if (ops.empty())
    std::printf("\nno operator with state%s\n",
                o.operator_id.empty() ? "" : (" named '" + o.operator_id + "'").c_str());
  if (cut)
    std::printf("\n--limit N shows more keys, --key K one key's whole value, --output json "
                "everything\n");
  return exit_ok;
}

/// Keys added, removed or changed in one operator: how many and some examples.
struct change_set {
  int64_t count = 0;                   ///< how many keys
  std::vector<nlohmann::json> samples; ///< examples (keys, or {key, value...})
};

/// The `kind` ("added", "removed", "changed") changes of an operator's diff: a count, a list
/// of examples, or {count, examples|keys}; also "<kind>_count" and "counts": {<kind>: n}.
change_set changes_of(const nlohmann::json& op, const std::string& kind) {
  change_set c;
  if (const auto* v = find(op, {kind.c_str()})) {
    if (v->is_number()) {
      c.count = integer(op, {kind.c_str()}).value_or(0);
    } else if (v->is_array()) {
      c.samples.assign(v->begin(), v->end());
    } else if (v->is_object()) {
      c.count = integer(*v, {"count", "total"}).value_or(0);
      const auto* ex = find(*v, {"examples", "keys", "entries", "sample"});
      if (ex != nullptr && ex->is_array())
        c.samples.assign(ex->begin(), ex->end());
      else if (ex != nullptr && ex->is_object())
        for (const auto& [k, e] : ex->items())
          c.samples.push_back(nlohmann::json{{"key", k}, {"value", e}});
    }
  }
  if (c.samples.empty())
    if (const auto* ex = find(op, {"examples"}); ex != nullptr && ex->is_object())
      if (const auto* list = find(*ex, {kind.c_str()}); list != nullptr && list->is_array())
        c.samples.assign(list->begin(), list->end());
  const std::string counted = kind + "_count";
  if (auto n = integer(op, {counted.c_str()}))
    c.count = *n;
  if (const auto* counts = find(op, {"counts"}))
    if (auto n = integer(*counts, {kind.c_str()}))
      c.count = *n;
  c.count = std::max<int64_t>(c.count, static_cast<int64_t>(c.samples.size()));
  return c;
}

/// One example of a diff: its key and value(s), "before -> after" for a changed key.
std::pair<std::string, std::string> example_text(const nlohmann::json& e, bool changed) {
  if (!e.is_object())
    return {text(e), ""};
  auto key = field(e, {"key"}, "?");
  constexpr size_t half = max_value_chars / 2;
  if (changed) {
    const auto* before = find(e, {"a", "before", "old", "from"});
    const auto* after = find(e, {"b", "after", "new", "to"});
    if (before != nullptr || after != nullptr)
      return {key, (before == nullptr ? "-" : value_text(*before, half)) + " -> " +
                       (after == nullptr ? "-" : value_text(*after, half))};
  }
  const auto* v = find(e, {"value", "a", "b"});
  return {key, v == nullptr ? "" : value_text(*v, max_value_chars)};
}

/// Options of `keyflowctl diff`.
struct diff_options {
  std::string a;           ///< older snapshot
  std::string b;           ///< newer snapshot
  std::string operator_id; ///< only this operator
  int limit = 0;           ///< examples per kind of change (0: the node's default)
};

/// `keyflowctl diff`.
int run_diff(const global_options& g, const diff_options& o) {
  admin_client c{g};
  auto r = c.get("/diff" + query({{"a", o.a},
                                  {"b", o.b},
                                  {"operator", o.operator_id},
                                  {"limit", o.limit > 0 ? std::to_string(o.limit) : ""}}));
  if (g.json()) {
    print_json(c.last_body());
    return exit_ok;
  }
  std::printf("diff %s -> %s (keys added, removed and changed per operator)\n\n", o.a.c_str(),
              o.b.c_str());
  const char* kinds[] = {"added", "removed", "changed"};
  const char signs[] = {'+', '-', '~'};
  table summary{{"OPERATOR", "ADDED", "REMOVED", "CHANGED"}};
  int64_t total = 0;
  /// One operator's changes: added, removed, changed.
  struct details {
    std::string id;     ///< operator id
    change_set sets[3]; ///< by kind, as `kinds`
  };
  std::vector<details> all;
  for (const auto& [id, op] : operators_of(r)) {
    details d{id, {}};
    for (int k = 0; k < 3; ++k) {
      d.sets[k] = changes_of(op, kinds[k]);
      total += d.sets[k].count;
    }
    summary.add({id, std::to_string(d.sets[0].count), std::to_string(d.sets[1].count),
                 std::to_string(d.sets[2].count)});
    all.push_back(std::move(d));
  }
  if (summary.empty()) {
    std::printf("no stateful operator%s to compare\n",
                o.operator_id.empty() ? "" : (" named '" + o.operator_id + "'").c_str());
    return exit_ok;
  }
  summary.print();
  bool cut = false;
  for (const auto& d : all) {
    table t{{}};
    for (int k = 0; k < 3; ++k) {
      for (const auto& e : d.sets[k].samples) {
        auto [key, value] = example_text(e, k == 2);
        t.add({std::string(1, signs[k]), key, value});
      }
      cut = cut || d.sets[k].count > static_cast<int64_t>(d.sets[k].samples.size());
    }
    if (t.empty())
      continue;
    std::printf("\n%s:\n", d.id.c_str());
    t.print(stdout, "  ");
  }
  if (total == 0)
    std::printf("\nno differences\n");
  else if (cut)
    std::printf("\nonly some examples shown: --limit N for more, --operator ID for one "
                "operator\n");
  return exit_ok;
}

/// `keyflowctl restore`.
int run_restore(const global_options& g, const std::string& name) {
  admin_client c{g};
  auto r = c.post("/restore", nlohmann::json{{"snapshot", name}});
  if (g.json()) {
    print_json(c.last_body());
    return exit_ok;
  }
  auto epoch = field(r, {"epoch"}, "");
  std::printf("%s\n", fmt::format("restored snapshot {}{}: the job runs again from its state and "
                                  "source offsets{}",
                                  field(r, {"restored", "snapshot"}, name), id_text(r),
                                  epoch.empty() ? "" : " (epoch " + epoch + ")")
                          .c_str());
  return exit_ok;
}

/// `keyflowctl export`.
int run_export(const global_options& g, const std::string& name, const std::string& dir) {
  admin_client c{g};
  auto target = absolute_dir(dir);
  auto r = c.post("/export", nlohmann::json{{"snapshot", name}, {"dir", target}});
  if (g.json()) {
    print_json(c.last_body());
    return exit_ok;
  }
  auto size = integer(r, {"size_bytes"});
  auto where = field(r, {"exported_to", "path", "dir"}, target + "/" + name);
  std::printf("%s\n",
              fmt::format("exported snapshot {}{} to {} on the node{}\nanother region imports it "
                          "with: keyflowctl import {}",
                          name, id_text(r), where, size ? " (" + bytes_text(*size) + ")" : "",
                          where)
                  .c_str());
  return exit_ok;
}

/// `keyflowctl import`.
int run_import(const global_options& g, const std::string& dir) {
  admin_client c{g};
  auto source = absolute_dir(dir);
  auto r = c.post("/import", nlohmann::json{{"dir", source}});
  if (g.json()) {
    print_json(c.last_body());
    return exit_ok;
  }
  auto name = field(r, {"name", "snapshot"}, std::filesystem::path{source}.filename().string());
  std::printf("%s\n", fmt::format("imported snapshot {}{} from {}\nstart the job from it with: "
                                  "keyflowctl restore {}",
                                  name, id_text(r), source, name)
                          .c_str());
  return exit_ok;
}

/// A CLI11 check that a directory's last component is a valid snapshot name.
CLI::Validator snapshot_dir_check() {
  return CLI::Validator(
      [](std::string& v) -> std::string {
        auto p = v;
        while (p.size() > 1 && p.back() == '/')
          p.pop_back();
        auto problem = snapshot_name_problem(std::filesystem::path{p}.filename().string());
        return problem.empty() ? "" : "the directory must be named after the snapshot: " + problem;
      },
      "", "");
}

} // namespace

void add_snapshot_commands(CLI::App& app, global_options& g, std::vector<command>& out) {
  const std::string names = "a name, or chk-<id> for a retained checkpoint";

  auto name = std::make_shared<std::string>();
  auto* snapshot = app.add_subcommand(
      "snapshot", "Take a named snapshot of the running job now\n\n"
                  "The node takes an aligned checkpoint of the running job and keeps it as a\n"
                  "named snapshot (POST /snapshots); keyflowctl returns once it is complete.\n"
                  "Without --name it is called snap-<UTC time>. A name that exists is refused\n"
                  "(exit 4).");
  snapshot->footer("Example:\n  keyflowctl snapshot --name before-upgrade");
  snapshot->add_option("--name", *name, "Name of the snapshot (1-64 of A-Z a-z 0-9 . _ -)")
      ->type_name("NAME")
      ->check(snapshot_name_check());
  add_global_options(*snapshot, g);
  out.push_back({snapshot, [&g, name] { return run_snapshot(g, *name); }});

  auto* snapshots = app.add_subcommand(
      "snapshots", "List named snapshots and retained checkpoints\n\n"
                   "Lists the node's named snapshots and retained periodic checkpoints\n"
                   "(chk-<id>), newest first (GET /snapshots): name, checkpoint id, when it was\n"
                   "taken (UTC), size, pipeline and pipeline version, number of operators.");
  snapshots->footer("Example:\n  keyflowctl snapshots\n  keyflowctl snapshots --output json | jq "
                    "'.snapshots[].name'");
  add_global_options(*snapshots, g);
  out.push_back({snapshots, [&g] { return run_snapshots(g); }});

  auto io = std::make_shared<inspect_options>();
  auto* inspect = app.add_subcommand(
      "inspect", "Show the state in a snapshot: keys and values per operator\n\n"
                 "Reads the state a snapshot (or retained checkpoint) holds (GET\n"
                 "/snapshots/SNAPSHOT/state): per stateful operator its state type, key count and\n"
                 "up to --limit keys with their values (an aggregate's named outputs, a window's\n"
                 "open windows, `true` for a dedup marker). With --key, that key's value in each\n"
                 "operator (or in --operator).");
  inspect->footer("Examples:\n  keyflowctl inspect nightly\n"
                  "  keyflowctl inspect nightly --operator profile --key c-000042\n"
                  "  keyflowctl inspect chk-57 --operator dedup --limit 10");
  inspect->add_option("SNAPSHOT", io->snapshot, "Snapshot to read (" + names + ")")
      ->required()
      ->check(snapshot_name_check());
  inspect->add_option("--operator", io->operator_id, "Only this operator (its id)")
      ->type_name("ID");
  inspect->add_option("--key", io->key, "Only this key (e.g. a customer id)")->type_name("K");
  inspect->add_option("--limit", io->limit, "At most N keys per operator (node's default: 100)")
      ->type_name("N")
      ->check(CLI::Validator(CLI::Range(1, 1000000)).description(""));
  add_global_options(*inspect, g);
  out.push_back({inspect, [&g, io] { return run_inspect(g, *io); }});

  auto dopt = std::make_shared<diff_options>();
  auto* diff = app.add_subcommand(
      "diff", "Compare the state of two snapshots: keys added, removed, changed\n\n"
              "Compares snapshot A with snapshot B (either may be a retained checkpoint\n"
              "chk-<id>) per stateful operator (GET /diff): how many keys B added, removed and\n"
              "changed, with up to --limit examples of each (a changed key with its value in A\n"
              "and in B).");
  diff->footer("Example:\n  keyflowctl diff before-upgrade chk-57 --operator profile --limit 20");
  diff->add_option("A", dopt->a, "The older snapshot (" + names + ")")
      ->required()
      ->check(snapshot_name_check());
  diff->add_option("B", dopt->b, "The newer snapshot")->required()->check(snapshot_name_check());
  diff->add_option("--operator", dopt->operator_id, "Only this operator (its id)")->type_name("ID");
  diff->add_option("--limit", dopt->limit, "At most N examples of each change per operator")
      ->type_name("N")
      ->check(CLI::Validator(CLI::Range(1, 1000000)).description(""));
  add_global_options(*diff, g);
  out.push_back({diff, [&g, dopt] { return run_diff(g, *dopt); }});

  auto restore_name = std::make_shared<std::string>();
  auto* restore = app.add_subcommand(
      "restore", "Restart the job from a snapshot's state and source offsets\n\n"
                 "Stops the job without a final checkpoint (what it did since the snapshot is\n"
                 "discarded: the sources read it again), restores the snapshot's state and source\n"
                 "offsets and starts the job again (POST /restore). Also starts a stopped job,\n"
                 "and is how an imported snapshot is used.");
  restore->footer("Example:\n  keyflowctl restore before-upgrade");
  restore->add_option("SNAPSHOT", *restore_name, "Snapshot to restore (" + names + ")")
      ->required()
      ->check(snapshot_name_check());
  add_global_options(*restore, g);
  out.push_back({restore, [&g, restore_name] { return run_restore(g, *restore_name); }});

  auto ex = std::make_shared<std::pair<std::string, std::string>>();
  auto* exp = app.add_subcommand(
      "export", "Copy a snapshot to a directory another region can read\n\n"
                "The node verifies the snapshot and copies it to DIR/SNAPSHOT (POST /export).\n"
                "DIR is on the node's filesystem (e.g. a shared volume); a relative DIR is made\n"
                "absolute against keyflowctl's current directory.");
  exp->footer("Example:\n  keyflowctl export nightly /mnt/shared/keyflow   # -> "
              "/mnt/shared/keyflow/nightly");
  exp->add_option("SNAPSHOT", ex->first, "Snapshot to export (" + names + ")")
      ->required()
      ->check(snapshot_name_check());
  exp->add_option("DIR", ex->second, "Directory on the node to copy it into")->required();
  add_global_options(*exp, g);
  out.push_back({exp, [&g, ex] { return run_export(g, ex->first, ex->second); }});

  auto import_dir = std::make_shared<std::string>();
  auto* imp = app.add_subcommand(
      "import", "Import an exported snapshot into this node's snapshots\n\n"
                "The node verifies the snapshot in DIR (manifest checksums, pipeline name,\n"
                "max_parallelism) and copies it into its snapshots under its name, the last\n"
                "component of DIR (POST /import); then `keyflowctl restore NAME` starts the job\n"
                "from it. DIR is on the node's filesystem. A snapshot of that name that exists is\n"
                "refused (exit 4).");
  imp->footer("Example:\n  keyflowctl import /mnt/shared/keyflow/nightly && keyflowctl restore "
              "nightly");
  imp->add_option("DIR", *import_dir, "The exported snapshot's directory (DIR/SNAPSHOT of export)")
      ->required()
      ->check(snapshot_dir_check());
  add_global_options(*imp, g);
  out.push_back({imp, [&g, import_dir] { return run_import(g, *import_dir); }});

  for (auto* c : {snapshot, snapshots, inspect, diff, restore, exp, imp})
    c->group("Snapshots");
}

} // namespace keyflowctl
