#include "pipeline/source_decoder.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "operators/basic.hpp"

namespace keyflow::pipeline {

source_decoder::source_decoder(std::shared_ptr<const plan> p)
    : plan_(std::move(p)), decoder_(plan_->schema, plan_->source_paths), ops_(plan_->source_ops()),
      width_(plan_->source_layout.size()) {
  // Operators up to the first aggregate or window keep working on the decoded record; map,
  // enrich and score append fields to it. Reserving the widest of their layouts at decode
  // time saves a reallocation (and a move of every field) per record and operator.
  std::vector<bool> in_place(plan_->ops.size(), false);
  for (size_t i = 0; i < plan_->ops.size(); ++i) {
    const auto& op = plan_->ops[i];
    const bool new_records = op.cfg->type == "aggregate" || op.cfg->type == "window";
    in_place[i] = !new_records && (op.input < 0 || in_place[static_cast<size_t>(op.input)]);
    if (in_place[i])
      width_ = std::max(width_, op.out.size());
  }
}

void source_decoder::reject(std::string_view key, std::string_view value,
                            const ops::provenance& from, const std::string& op,
                            const ops::rejection& why, std::vector<kafka_message>& dead) {
  rejected_by_ = op;
  last_reason_ = why.code;
  const auto& c = plan_->cfg;
  dead.push_back({c.dead_letter_topic, std::string{key},
                  ops::make_dead_letter(key, value, from, op, why, c.name, c.version)});
}

decode_result source_decoder::decode(std::string_view key, std::string_view value,
                                     const ops::provenance& from, record& out,
                                     std::vector<kafka_message>& dead) {
  const auto& c = plan_->cfg;
  const std::string& decoder_id = ops_.empty() ? c.source.id : ops_.front()->cfg->id;
  out.fields.reserve(width_);
  if (!decoder_.decode(value, out.fields, error_)) {
    reject(key, value, from, decoder_id,
           {ec::decode_error, fmt::format("{} ({} bytes)", error_, value.size())}, dead);
    return decode_result::rejected;
  }
  for (const auto* op : ops_) {
    if (op->cfg->type == "validate") {
      ops::rejection why;
      if (!ops::validate_record(*op, out, why)) {
        reject(key, value, from, op->cfg->id, why, dead);
        return decode_result::rejected;
      }
    } else if (!ops::filter_matches(*op, out)) {
      // Filtered records still tell the time (watermarks).
      const auto& t = out.fields[static_cast<size_t>(plan_->event_time_slot)];
      if (t.type == value_type::int64 && t.i > max_event_time_)
        max_event_time_ = t.i;
      return decode_result::filtered;
    }
  }
  const auto& k = out.fields[static_cast<size_t>(plan_->key_slot)];
  const auto& t = out.fields[static_cast<size_t>(plan_->event_time_slot)];
  if (!k.present() || (k.type == value_type::string && k.s.empty())) {
    reject(
        key, value, from, c.source.id,
        {ec::missing_field, fmt::format("key field '{}' is missing or empty", c.source.key.name)},
        dead);
    return decode_result::rejected;
  }
  if (!t.present() || t.i <= 0) {
    reject(key, value, from, c.source.id,
           {ec::missing_field, fmt::format("event time field '{}' is missing or not positive",
                                           c.source.event_time.name)},
           dead);
    return decode_result::rejected;
  }
  if (k.type == value_type::string)
    out.key.assign(k.s);
  else
    out.key = k.to_string();
  out.event_time_ms = t.i;
  out.offset = from.offset;
  out.partition = from.partition;
  out.seq = 0;
  if (plan_->keep_raw)
    out.raw.assign(value);
  else
    out.raw.clear();
  if (out.event_time_ms > max_event_time_)
    max_event_time_ = out.event_time_ms;
  return decode_result::ok;
}

} // namespace keyflow::pipeline
