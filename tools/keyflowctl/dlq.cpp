// keyflowctl's dead-letter commands: dlq list (GET /dead-letters) and dlq replay
// (POST /dead-letters/replay).

#include <cstdio>

#include <fmt/format.h>

#include "keyflowctl.hpp"
#include "render.hpp"

namespace keyflowctl {
namespace {

/// Options of `keyflowctl dlq list` and `dlq replay`.
struct dlq_options {
  std::string reason;      ///< only letters with this error code
  std::string operator_id; ///< only letters of this operator
  int limit = 100;         ///< list: at most this many letters
  int64_t from = -1;       ///< first dead-letter offset (-1: default)
};

/// The query string of the dead-letter filter options.
std::string dlq_query(const dlq_options& o, bool listing) {
  return query({{"reason", o.reason},
                {"operator", o.operator_id},
                {"limit", listing ? std::to_string(o.limit) : ""},
                {"from", o.from >= 0 ? std::to_string(o.from) : ""}});
}

/// `keyflowctl dlq list`: the dead letters as a table.
int run_dlq_list(const global_options& g, const dlq_options& o) {
  admin_client c{g};
  auto j = c.get("/dead-letters" + dlq_query(o, true));
  if (g.json()) {
    print_json(c.last_body());
    return exit_ok;
  }
  table t{{"DLQ", "SOURCE", "OPERATOR", "REASON", "ATTEMPTS", "MESSAGE"}};
  const auto* letters = list_of(j, {"dead_letters"});
  if (letters != nullptr)
    for (const auto& e : *letters)
      t.add({field(e, {"partition"}, "?") + "/" + field(e, {"offset"}, "?"),
             field(e, {"source_topic"}, "?") + "/" + field(e, {"source_partition"}, "?") + "/" +
                 field(e, {"source_offset"}, "?"),
             field(e, {"operator"}), field(e, {"error_code"}), field(e, {"attempts"}),
             field(e, {"error_message"})});
  t.print();
  auto count = integer(j, {"count"}).value_or(letters == nullptr ? 0 : letters->size());
  auto limit = integer(j, {"limit"}).value_or(o.limit);
  std::printf("%s\n",
              fmt::format("\n{} dead letter(s) in {} (pipeline {}){}", count,
                          field(j, {"topic"}, "?"), field(j, {"pipeline"}, "?"),
                          count >= limit ? "; limit reached: --limit or --from for more" : "")
                  .c_str());
  return exit_ok;
}

/// "a: 1, b: 2" of a JSON object of counts ("-" if empty or absent).
std::string counts_text(const nlohmann::json* counts) {
  return counts == nullptr ? "-" : text(*counts);
}

/// `keyflowctl dlq replay`: replays the matching dead letters and prints what it did.
int run_dlq_replay(const global_options& g, const dlq_options& o) {
  admin_client c{g};
  auto j = c.post("/dead-letters/replay" + dlq_query(o, false), nullptr);
  if (g.json()) {
    print_json(c.last_body());
    return exit_ok;
  }
  std::printf("%s\n",
              fmt::format("replayed {} dead letter(s) from {} to their source partitions ({}); "
                          "passed {} other(s) ({}); consumer group {}",
                          field(j, {"replayed"}, "0"), field(j, {"topic"}, "?"),
                          counts_text(find(j, {"replayed_by_reason"})), field(j, {"skipped"}, "0"),
                          counts_text(find(j, {"skipped_by_reason"})), field(j, {"group"}, "?"))
                  .c_str());
  return exit_ok;
}

} // namespace

void add_dlq_commands(CLI::App& app, global_options& g, std::vector<command>& out) {
  auto* dlq = app.add_subcommand("dlq", "List and replay the pipeline's dead letters\n\n"
                                        "Records an operator rejected (malformed, late, a missing "
                                        "entity, ...) go to the\n"
                                        "pipeline's dead-letter topic with their provenance. "
                                        "`dlq list` shows them,\n"
                                        "`dlq replay` sends them back to their source once the "
                                        "cause is fixed.");
  dlq->group("Dead letters");
  dlq->require_subcommand(1);
  dlq->footer("Examples:\n  keyflowctl dlq list --reason enrich_missing --limit 20\n"
              "  keyflowctl dlq replay --reason enrich_missing");
  auto o = std::make_shared<dlq_options>();
  auto* list = dlq->add_subcommand(
      "list", "List dead letters: where, from which source record, operator, reason\n\n"
              "Reads the dead-letter topic up to its end (GET /dead-letters): at most --limit\n"
              "letters matching --reason and --operator, from offset --from in every partition.\n"
              "The table shows each letter's dead-letter partition/offset, its source\n"
              "topic/partition/offset, the operator, the reason, the attempts and the message;\n"
              "--output json adds the pipeline version, timestamps and the original key and\n"
              "value (base64).");
  list->footer("Example:\n  keyflowctl dlq list --reason enrich_missing --operator enrich --limit "
               "20");
  auto* replay = dlq->add_subcommand(
      "replay", "Send the matching dead letters back to their source topic and partition\n\n"
                "Writes the original key and value of each matching letter back to its source\n"
                "topic and partition (POST /dead-letters/replay), with the header\n"
                "keyflow-replay-of: <dlq topic>/<partition>/<offset>, from where the consumer\n"
                "group keyflow-dlq-replay-<pipeline> stopped last time (or --from): a second\n"
                "replay replays nothing already passed. Fix the cause first.");
  replay->footer("Example:\n  keyflowctl dlq replay --reason enrich_missing");
  for (auto* c : {list, replay}) {
    c->group("Commands");
    c->add_option("--reason", o->reason,
                  "Only dead letters with this error code (decode_error, missing_field,\n"
                  "invalid_field, late, enrich_missing, enrich_failed, ...)")
        ->type_name("R");
    c->add_option("--operator", o->operator_id, "Only dead letters of this operator (its id)")
        ->type_name("O");
    c->add_option("--from", o->from,
                  "First dead-letter offset, in every partition (replay: instead of where\n"
                  "the consumer group stopped)")
        ->type_name("OFFSET")
        ->check(at_least(0, "an offset"));
  }
  list->add_option("--limit", o->limit, "At most N dead letters (default 100)")
      ->type_name("N")
      ->check(CLI::Validator(CLI::Range(1, 100000)).description(""))
      ->capture_default_str();
  for (auto* c : {list, replay})
    add_global_options(*c, g);
  out.push_back({list, [&g, o] { return run_dlq_list(g, *o); }});
  out.push_back({replay, [&g, o] { return run_dlq_replay(g, *o); }});
}

} // namespace keyflowctl
