// keyflowctl's job commands: status, deploy, stop, rescale (GET /status, POST /deploy,
// POST /stop, POST /rescale of docs/admin-api.md).

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>

#include <unistd.h>

#include <fmt/format.h>

#include "keyflowctl.hpp"
#include "render.hpp"

namespace keyflowctl {
namespace {

// --- status -------------------------------------------------------------------------------

/// The pipeline a status or plan names: name, version and file (each "" if not given).
struct pipeline_info {
  std::string name;    ///< pipeline name
  std::string version; ///< pipeline version
  std::string file;    ///< the file it was deployed from
};

/// The pipeline of `s`: "pipeline" as a name or as {name, version, file}, with "version"
/// or "pipeline_version" and "file" or "pipeline_file" beside it.
pipeline_info pipeline_of(const nlohmann::json& s) {
  pipeline_info p;
  const auto* pj = find(s, {"pipeline"});
  if (pj != nullptr && pj->is_object()) {
    p.name = field(*pj, {"name"}, "");
    p.version = field(*pj, {"version"}, "");
    p.file = field(*pj, {"file", "path"}, "");
  } else if (pj != nullptr) {
    p.name = text(*pj);
  }
  if (p.version.empty())
    p.version = field(s, {"pipeline_version", "version"}, "");
  if (p.file.empty())
    p.file = field(s, {"pipeline_file", "file"}, "");
  return p;
}

/// "cdp v2" (or "cdp", or "?").
std::string pipeline_title(const pipeline_info& p) {
  return (p.name.empty() ? "?" : p.name) + (p.version.empty() ? "" : " v" + p.version);
}

/// The status with the members of a "job" object (if any) merged in, so job fields are
/// found at the top level or inside "job".
nlohmann::json job_view(const nlohmann::json& s) {
  nlohmann::json v = s;
  const auto* job = find(s, {"job"});
  if (job != nullptr && job->is_object()) {
    for (const auto& [k, e] : job->items())
      if (!v.contains(k) || k == "state")
        v[k] = e;
  } else if (job != nullptr && job->is_string()) {
    v["state"] = *job;
  }
  return v;
}

/// The last checkpoint for people: "#42 (nightly) at 2026-01-01 12:00:00 UTC (3 s ago),
/// 12.3 MiB, took 120 ms"; "none yet" if the node says null; "" if it says nothing.
std::string checkpoint_text(const nlohmann::json& v) {
  auto it = v.find("last_checkpoint");
  if (it == v.end())
    it = v.find("checkpoint");
  if (it == v.end()) {
    if (auto id = integer(v, {"last_checkpoint_id"}))
      return fmt::format("#{}", *id);
    return "";
  }
  const auto& c = *it;
  if (c.is_null())
    return "none yet";
  if (c.is_number())
    return fmt::format("#{}", text(c));
  if (!c.is_object())
    return text(c);
  std::string id = field(c, {"id"}, "");
  std::string name = field(c, {"name", "snapshot"}, "");
  std::string out = id.empty() ? name : "#" + id;
  if (!id.empty() && !name.empty() && name != "chk-" + id)
    out += " (" + name + ")";
  if (auto at =
          integer(c, {"completed_at_ms", "created_at_ms", "at_ms", "time_ms", "timestamp_ms"}))
    out += fmt::format(" at {} UTC ({})", utc_text(*at), age_text(*at));
  else if (auto age = integer(c, {"age_ms"}))
    out += fmt::format(" ({} s ago)", *age / 1000);
  else if (const auto* age_s = find(c, {"age_s"}); age_s != nullptr && age_s->is_number())
    out += fmt::format(" ({:.1f} s ago)", age_s->get<double>());
  if (auto size = integer(c, {"size_bytes"}))
    out += ", " + bytes_text(static_cast<uint64_t>(*size));
  if (auto took = integer(c, {"duration_ms"}))
    out += fmt::format(", took {} ms", *took);
  return out.empty() ? text(c) : out;
}

/// Up to 8 "name: n" parts of `parts`, then "...".
std::string some(const std::vector<std::string>& parts) {
  std::string out;
  for (size_t i = 0; i < parts.size() && i < 8; ++i)
    out += (i == 0 ? "" : ", ") + parts[i];
  if (parts.size() > 8)
    out += ", ...";
  return out;
}

/// Consumer lag for people: a number, {total, partitions}, {"topic/p": n}, or a list of
/// {topic, partition, lag}; "" if `v` is null.
std::string lag_text(const nlohmann::json* v) {
  if (v == nullptr)
    return "";
  if (v->is_number())
    return text(*v) + " records";
  std::vector<std::string> parts;
  int64_t sum = 0;
  bool numeric = true;
  if (v->is_object()) {
    if (auto total = integer(*v, {"total", "records", "sum"})) {
      const auto* per = find(*v, {"partitions", "per_partition", "by_partition"});
      return fmt::format("{} records{}", *total,
                         per == nullptr ? "" : " (" + some({text(*per)}) + ")");
    }
    for (const auto& [k, e] : v->items()) {
      numeric = numeric && e.is_number();
      if (e.is_number())
        sum += e.get<int64_t>();
      parts.push_back(k + ": " + text(e));
    }
  } else if (v->is_array()) {
    for (const auto& e : *v) {
      auto n = integer(e, {"lag", "records"});
      numeric = numeric && n.has_value();
      sum += n.value_or(0);
      parts.push_back(fmt::format("{}/{}: {}", field(e, {"topic"}, "?"),
                                  field(e, {"partition"}, "?"), n.value_or(0)));
    }
  } else {
    return text(*v);
  }
  if (!numeric)
    return text(*v);
  return fmt::format("{} records{}", sum, parts.empty() ? "" : " (" + some(parts) + ")");
}

/// Backpressure for people: "backpressure" false "none", true "yes", else as text; or
/// "backpressured_seconds": the time senders waited for credit, in total.
std::string backpressure_text(const nlohmann::json& v) {
  if (const auto* b = find(v, {"backpressure", "backpressured"})) {
    if (b->is_boolean())
      return b->get<bool>() ? "yes" : "none";
    return text(*b);
  }
  if (const auto* secs = find(v, {"backpressured_seconds"}); secs != nullptr && secs->is_number())
    return fmt::format("{:.{}f} s waited for credit in total", secs->get<double>(),
                       secs->get<double>() < 10 ? 2 : 0);
  return "";
}

/// Prints the job fields of a status (job state, pipeline, parallelism, records, last
/// checkpoint, lag, backpressure), those the node gave.
void print_job_fields(const nlohmann::json& s) {
  auto v = job_view(s);
  auto p = pipeline_of(s);
  fields f;
  f.add("job", field(v, {"state", "job_state"}, ""));
  f.add("pipeline file", p.file);
  f.add("restored from", field(v, {"restored_from"}, ""));
  if (const auto* pa = find(v, {"parallelism"})) {
    auto max = field(v, {"max_parallelism"}, "");
    f.add("parallelism", text(*pa) + " partition actor(s) per stage" +
                             (max.empty() ? "" : " (max_parallelism " + max + ")"));
  }
  std::string source = field(v, {"source_topic"}, "");
  if (const auto* parts = find(v, {"partitions"}))
    source += (source.empty() ? "" : ", ") +
              (parts->is_array() ? std::to_string(parts->size()) : text(*parts)) + " partition(s)";
  f.add("source", source);
  std::string records;
  const auto* rec = find(v, {"records"});
  auto read = integer(v, {"records_read"});
  auto done = integer(v, {"records_processed"});
  if (rec != nullptr && rec->is_object()) {
    read = read ? read : integer(*rec, {"read"});
    done = done ? done : integer(*rec, {"processed"});
  }
  if (read)
    records = fmt::format("{} read", *read);
  if (done)
    records += fmt::format("{}{} processed", records.empty() ? "" : ", ", *done);
  f.add("records", records);
  f.add("last checkpoint", checkpoint_text(v));
  f.add("consumer lag", lag_text(find(v, {"lag", "consumer_lag"})));
  f.add("backpressure", backpressure_text(v));
  f.add("dead letters", field(v, {"dead_letters"}, ""));
  f.add("restarts", field(v, {"restarts"}, ""));
  f.print();
}

/// "region (g generation), ..." of a JSON list of running regions.
std::string regions_text(const nlohmann::json* running) {
  std::string out;
  if (running != nullptr && running->is_array())
    for (const auto& r : *running)
      out += fmt::format("{}{} (g{})", out.empty() ? "" : ", ", field(r, {"region"}, "?"),
                         field(r, {"generation"}, "?"));
  return out.empty() ? "-" : out;
}

/// Prints a cluster node's status: header, job fields, members, assignment.
void print_cluster(const nlohmann::json& s) {
  const nlohmann::json empty = nlohmann::json::object();
  const auto* asg = find(s, {"assignment"});
  const auto& assignment = asg != nullptr && asg->is_object() ? *asg : empty;
  std::printf(
      "%s\n",
      fmt::format("pipeline {}, cluster seen from node {}; coordinator: node {}; "
                  "assignment v{}{}",
                  pipeline_title(pipeline_of(s)), field(s, {"node"}, "?"),
                  field(s, {"coordinator"}, "?"), field(assignment, {"version"}, "?"),
                  find(s, {"tls"}) != nullptr && s["tls"] == true ? "; TLS between nodes" : "")
          .c_str());
  std::printf("\n");
  print_job_fields(s);
  table members{{"NODE", "ADDRESS", "ALIVE", "SILENT", "RUNS"}};
  if (const auto* ms = find(s, {"members"}); ms != nullptr && ms->is_array())
    for (const auto& m : *ms) {
      auto silent = integer(m, {"silent_ms"});
      const auto* me = find(m, {"self"});
      bool self = me != nullptr && *me == true;
      members.add({field(m, {"id"}, "?") + (self ? "*" : ""), field(m, {"address"}),
                   field(m, {"alive"}),
                   !silent || *silent < 0 ? "-" : fmt::format("{} ms", *silent),
                   regions_text(find(m, {"running"}))});
    }
  std::printf("\n");
  members.print();
  const bool spread = find(s, {"spread"}) != nullptr && s["spread"] == true;
  std::map<std::string, std::pair<std::string, std::string>> partitions;
  if (const auto* rs = find(s, {"regions"}); rs != nullptr && rs->is_array())
    for (const auto& r : *rs) {
      std::string p;
      if (const auto* ps = find(r, {"partitions"}); ps != nullptr && ps->is_array())
        for (const auto& x : *ps)
          p += (p.empty() ? "" : ",") + text(x);
      std::string kg;
      if (const auto* k = find(r, {"key_groups"}); k != nullptr && k->is_array() && k->size() == 2)
        kg = fmt::format("[{}, {})", text((*k)[0]), text((*k)[1]));
      partitions[field(r, {"region"}, "?")] = {p, kg};
    }
  if (spread)
    std::printf("\none job spread over the nodes: every slice restarts with one generation; "
                "records go to the node of their key group\n");
  std::vector<std::string> header{spread ? "SLICE" : "REGION", "OWNER", "GENERATION",
                                  "SOURCE PARTITIONS"};
  if (spread)
    header.emplace_back("KEY GROUPS");
  table regions{header};
  if (const auto* rs = find(assignment, {"regions"}); rs != nullptr && rs->is_array())
    for (const auto& r : *rs) {
      auto region = field(r, {"region"}, "?");
      auto node = integer(r, {"node"});
      const auto& [p, kg] = partitions[region];
      std::vector<std::string> row{region, !node || *node == 0 ? "-" : std::to_string(*node),
                                   field(r, {"generation"}), p.empty() ? "-" : p};
      if (spread)
        row.push_back(kg.empty() ? "-" : kg);
      regions.add(std::move(row));
    }
  std::printf("\n");
  regions.print();
}

/// `keyflowctl status`.
int run_status(const global_options& g) {
  admin_client c{g};
  auto s = c.get("/status");
  if (g.json()) {
    print_json(c.last_body());
    return exit_ok;
  }
  if (field(s, {"mode"}, "") == "cluster") {
    print_cluster(s);
  } else {
    std::printf("pipeline %s, standalone node\n\n", pipeline_title(pipeline_of(s)).c_str());
    print_job_fields(s);
  }
  return exit_ok;
}

// --- deploy -------------------------------------------------------------------------------

/// Options of `keyflowctl deploy`.
struct deploy_options {
  std::string file;              ///< the pipeline file
  bool dry_run = false;          ///< only print the plan
  bool allow_drop_state = false; ///< start dropped/incompatible operators empty
  bool yes = false;              ///< do not ask
};

/// "version 1 -> 2" (or "version 2" when nothing ran before).
std::string versions_text(const nlohmann::json& plan) {
  auto from = field(plan, {"from_version"}, "");
  auto to = field(plan, {"to_version"}, "?");
  return from.empty() || from == "0" ? "version " + to : "version " + from + " -> " + to;
}

/// Prints a deploy plan to `out`: a header (pipeline, versions, action) and one row per
/// operator (id, type, state type, what happens to its state).
void print_plan(const nlohmann::json& plan, std::FILE* out) {
  std::fprintf(out, "%s\n",
               fmt::format("pipeline {}: {}, action {}", field(plan, {"pipeline"}, "?"),
                           versions_text(plan), field(plan, {"action"}, "?"))
                   .c_str());
  table t{{"OPERATOR", "TYPE", "STATE TYPE", "STATE"}};
  for (const auto& [id, o] : operators_of(plan)) {
    auto from = field(o, {"from_state_type"}, "");
    auto to = field(o, {"state_type"});
    t.add({id, field(o, {"type"}),
           from.empty() || from == to ? to : from + " -> " + (to == "-" ? "none" : to),
           field(o, {"state"})});
  }
  if (!t.empty()) {
    std::fprintf(out, "\n");
    t.print(out);
  }
}

/// The operators of `plan` whose state would be lost: the node's "reason" for each, or
/// "operator 'x' would lose its state (drop)".
std::vector<std::string> losing_state(const nlohmann::json& plan) {
  std::vector<std::string> out;
  for (const auto& [id, o] : operators_of(plan)) {
    auto state = field(o, {"state"}, "");
    if (state != "drop" && state != "incompatible")
      continue;
    auto reason = field(o, {"reason"}, "");
    if (!reason.empty())
      out.push_back(reason);
    else if (state == "drop")
      out.push_back(fmt::format("operator '{}' would lose its state (drop)", id));
    else
      out.push_back(fmt::format("operator '{}' cannot carry its state over (incompatible)", id));
  }
  return out;
}

/// The failure of a refused deploy: the node's reason (else the plan's operators at fault)
/// and how to go on anyway.
failure refused(const nlohmann::json& plan, const std::string& what, bool allow_drop_state) {
  std::string why;
  if (const auto* e = find(plan, {"error"}))
    why = text(*e);
  if (why.empty())
    for (const auto& l : losing_state(plan))
      why += (why.empty() ? "" : "; ") + l;
  if (why.empty())
    why = "the plan is not compatible with the running job";
  if (!allow_drop_state && why.find("state") != std::string::npos)
    why += " (--allow-drop-state starts such operators empty)";
  return failure(exit_refused, what + ": " + why);
}

/// True if the person at the terminal answers yes to `question` (asked on stderr).
bool confirm(const std::string& question) {
  std::fprintf(stderr, "%s [y/N] ", question.c_str());
  std::fflush(stderr);
  std::string line;
  if (!std::getline(std::cin, line))
    return false;
  return line == "y" || line == "Y" || line == "yes" || line == "Yes" || line == "YES";
}

/// `keyflowctl deploy`: plan (dry run), show it, confirm, deploy.
int run_deploy(const global_options& g, const deploy_options& o) {
  std::ifstream in{o.file, std::ios::binary};
  if (!in.is_open())
    throw failure(exit_usage,
                  fmt::format("FILE {}: cannot read it: {}", o.file, std::strerror(errno)));
  std::string yaml{std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
  if (in.bad())
    throw failure(exit_usage, fmt::format("FILE {}: cannot read it", o.file));
  std::error_code ec;
  auto path = std::filesystem::absolute(o.file, ec).lexically_normal().string();
  if (ec)
    path = o.file;
  admin_client c{g};
  nlohmann::json req{
      {"yaml", yaml}, {"file", path}, {"dry_run", true}, {"allow_drop_state", o.allow_drop_state}};
  auto a = c.call("POST", "/deploy", req);
  if (a.status == 409) {
    if (!g.json() && !operators_of(a.body).empty())
      print_plan(a.body, stdout);
    throw refused(a.body, "deploy refused", o.allow_drop_state);
  }
  if (a.status != 200)
    c.fail("POST", "/deploy", a);
  const auto& plan = a.body;
  const bool compatible = !(find(plan, {"compatible"}) != nullptr && plan["compatible"] == false);
  const auto action = field(plan, {"action"}, "");
  const bool last = o.dry_run || !compatible || action == "unchanged";
  if (g.json() && last)
    print_json(a.raw);
  if (!g.json())
    print_plan(plan, stdout);
  if (!compatible)
    throw refused(plan, "deploy would be refused", o.allow_drop_state);
  if (action == "unchanged") {
    if (!g.json())
      std::printf("\nthe pipeline is unchanged: nothing to deploy\n");
    return exit_ok;
  }
  if (o.dry_run) {
    if (!g.json())
      std::printf("\ndry run: nothing deployed (without --dry-run, keyflowctl deploys it)\n");
    return exit_ok;
  }
  if (!o.yes && isatty(STDIN_FILENO) != 0) {
    if (g.json())
      print_plan(plan, stderr);
    std::string starts_empty;
    for (const auto& [id, op] : operators_of(plan)) {
      auto state = field(op, {"state"}, "");
      if (state == "drop" || state == "incompatible")
        starts_empty += (starts_empty.empty() ? "" : ", ") + id;
    }
    auto question = fmt::format(
        "\n{} pipeline {} {}{}?", action == "start" ? "Start" : "Deploy",
        field(plan, {"pipeline"}, "?"), versions_text(plan),
        starts_empty.empty() ? "" : fmt::format(" (state of {} is DROPPED)", starts_empty));
    if (!confirm(question))
      throw failure(exit_refused, "deploy cancelled: nothing deployed");
  }
  req["dry_run"] = false;
  auto done = c.call("POST", "/deploy", req);
  if (done.status == 409)
    throw refused(done.body, "deploy refused", o.allow_drop_state);
  if (done.status != 200)
    c.fail("POST", "/deploy", done);
  if (g.json()) {
    print_json(done.raw);
    return exit_ok;
  }
  std::map<std::string, int> states;
  for (const auto& [id, op] : operators_of(done.body))
    ++states[field(op, {"state"}, "?")];
  std::string counts;
  for (const auto& [state, n] : states)
    counts += fmt::format("{}{} {}", counts.empty() ? "" : ", ", n, state);
  std::printf("%s\n",
              fmt::format("\ndeployed pipeline {} {} ({}){}{}", field(done.body, {"pipeline"}, "?"),
                          versions_text(done.body), field(done.body, {"action"}, "?"),
                          counts.empty() ? "" : "; operators: " + counts,
                          find(done.body, {"snapshot"}) == nullptr
                              ? ""
                              : "; state before it in snapshot " + field(done.body, {"snapshot"}))
                  .c_str());
  return exit_ok;
}

// --- stop, rescale --------------------------------------------------------------------------

/// `keyflowctl stop`.
int run_stop(const global_options& g, const std::string& snapshot) {
  admin_client c{g};
  auto r = c.post("/stop", snapshot.empty() ? nlohmann::json::object()
                                            : nlohmann::json{{"snapshot", snapshot}});
  if (g.json()) {
    print_json(c.last_body());
    return exit_ok;
  }
  const auto* cp = find(r, {"checkpoint"});
  const auto& final = cp != nullptr && cp->is_object() ? *cp : r;
  auto name = field(final, {"snapshot", "name"}, snapshot);
  auto id = field(final, {"id"}, "");
  if (name == "chk-" + id)
    name.clear();
  std::string final_cp;
  if (!id.empty() || !name.empty())
    final_cp = fmt::format("; final checkpoint{}{}", id.empty() ? "" : " #" + id,
                           name.empty() ? "" : " written as snapshot " + name);
  std::printf("job stopped%s\nthe node keeps answering: `keyflowctl deploy FILE` or `keyflowctl "
              "restore SNAPSHOT` starts the job again\n",
              final_cp.c_str());
  return exit_ok;
}

/// `keyflowctl rescale`.
int run_rescale(const global_options& g, int parallelism) {
  admin_client c{g};
  auto r = c.post("/rescale", nlohmann::json{{"parallelism", parallelism}});
  if (g.json()) {
    print_json(c.last_body());
    return exit_ok;
  }
  auto from = integer(r, {"from", "from_parallelism", "previous_parallelism", "previous"});
  auto snap = field(r, {"snapshot"}, "");
  std::printf("%s\n",
              fmt::format("rescaled to {} partition actor(s) per stage{}{}",
                          field(r, {"parallelism", "to"}, std::to_string(parallelism)),
                          from ? fmt::format(" (was {})", *from) : "",
                          snap.empty() ? "" : "; state moved by key group via snapshot " + snap)
                  .c_str());
  return exit_ok;
}

} // namespace

void add_job_commands(CLI::App& app, global_options& g, std::vector<command>& out) {
  const std::string group = "Job";

  auto* status = app.add_subcommand(
      "status", "Show the job: state, pipeline, lag, last checkpoint, backpressure, nodes\n\n"
                "Asks the node (GET /status) and prints the job's state (running or stopped),\n"
                "the pipeline's name, version and file, the parallelism, records read and\n"
                "processed, the last checkpoint, the consumer lag and backpressure. A cluster\n"
                "node adds the members as it sees them (alive, silence since their last\n"
                "heartbeat, regions each runs), the coordinator and the assignment of regions\n"
                "(or slices) to nodes with their source partitions.");
  status->footer(
      "Example:\n  keyflowctl status --node 10.0.0.5:9465 --token-file /etc/keyflow/admin-token\n"
      "  keyflowctl status --output json | jq .last_checkpoint");
  add_global_options(*status, g);
  out.push_back({status, [&g] { return run_status(g); }});

  auto deploy_opts = std::make_shared<deploy_options>();
  auto* deploy = app.add_subcommand(
      "deploy", "Deploy a pipeline file: show the plan, confirm, start or update the job\n\n"
                "Sends FILE to the node as a dry run first (POST /deploy) and prints the plan:\n"
                "the pipeline, its version before and after, the action (start, update,\n"
                "unchanged) and per operator its type, state type and what happens to its\n"
                "state (keep, new, drop, incompatible, stateless). A plan that would drop or\n"
                "cannot carry an operator's state is refused (exit 4) unless\n"
                "--allow-drop-state. Otherwise, after you confirm (not asked with --yes or when\n"
                "stdin is not a terminal), the node deploys it: a stopped job starts; a running\n"
                "job drains, is snapshotted (pre-deploy-<version>-<time>) and continues in the\n"
                "new pipeline with its state restored by operator id.");
  deploy->footer(
      "Examples:\n  keyflowctl deploy config/pipelines/cdp.yaml --dry-run\n"
      "  keyflowctl deploy cdp.yaml --yes\n"
      "  keyflowctl deploy cdp.yaml --allow-drop-state   # removed operators start empty");
  deploy->add_option("FILE", deploy_opts->file, "The pipeline file (YAML) to deploy")
      ->required()
      ->check(CLI::ExistingFile);
  deploy->add_flag("--dry-run", deploy_opts->dry_run, "Only print the plan; deploy nothing");
  deploy->add_flag("--allow-drop-state", deploy_opts->allow_drop_state,
                   "Deploy even if operators lose their state (drop) or cannot carry it\n"
                   "(incompatible): they start empty");
  deploy->add_flag("-y,--yes", deploy_opts->yes, "Do not ask for confirmation");
  add_global_options(*deploy, g);
  out.push_back({deploy, [&g, deploy_opts] { return run_deploy(g, *deploy_opts); }});

  auto stop_snapshot = std::make_shared<std::string>();
  auto* stop = app.add_subcommand(
      "stop", "Stop the job after a final checkpoint, optionally kept as a named snapshot\n\n"
              "The node drains the job (in-flight records reach the sinks), writes the final\n"
              "checkpoint (as snapshot NAME with --snapshot) and stops the job (POST /stop).\n"
              "The node stays up and answers; `keyflowctl deploy` or `keyflowctl restore` starts\n"
              "the job again. A job already stopped is refused (exit 4).");
  stop->footer("Example:\n  keyflowctl stop --snapshot before-upgrade");
  stop->add_option("--snapshot", *stop_snapshot,
                   "Keep the final checkpoint as this named snapshot (1-64 of A-Z a-z 0-9 . _ -)")
      ->type_name("NAME")
      ->check(snapshot_name_check());
  add_global_options(*stop, g);
  out.push_back({stop, [&g, stop_snapshot] { return run_stop(g, *stop_snapshot); }});

  auto parallelism = std::make_shared<int>(0);
  auto* rescale = app.add_subcommand(
      "rescale", "Restart the job with N partition actors per stage\n\n"
                 "The node takes a snapshot, then restarts the job with N partition actors per\n"
                 "stage (POST /rescale); state moves by key group. N is 1..max_parallelism of\n"
                 "the pipeline (the node refuses more with exit 2).");
  rescale->footer("Example:\n  keyflowctl rescale 8");
  rescale->add_option("N", *parallelism, "New parallelism: partition actors per stage (>= 1)")
      ->required()
      ->check(at_least(1, "N (partition actors per stage)"));
  add_global_options(*rescale, g);
  out.push_back({rescale, [&g, parallelism] { return run_rescale(g, *parallelism); }});

  for (auto* c : {status, deploy, stop, rescale})
    c->group(group);
}

} // namespace keyflowctl
