#include "operators/enrich.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <optional>
#include <string_view>
#include <utility>

#include "operators/dead_letter.hpp"

namespace keyflow::ops {

namespace {

/// Redis text as a value of type `t`; nullopt if it does not parse completely.
std::optional<value> parse_as(std::string_view text, value_type t) {
  auto number_text = text;
  if (!number_text.empty() && number_text.front() == '+')
    number_text.remove_prefix(1);
  const char* first = number_text.data();
  const char* last = first + number_text.size();
  switch (t) {
  case value_type::int64: {
    int64_t x = 0;
    auto [ptr, err] = std::from_chars(first, last, x);
    if (err != std::errc{} || ptr != last || number_text.empty())
      return std::nullopt;
    return value::of(x);
  }
  case value_type::dbl: {
    double x = 0;
    auto [ptr, err] = std::from_chars(first, last, x);
    if (err != std::errc{} || ptr != last || number_text.empty() || !std::isfinite(x))
      return std::nullopt;
    return value::of(x);
  }
  default:
    return value::of(std::string{text});
  }
}

} // namespace

layout enrich_output_layout(const layout& input, enrich_spec& spec) {
  layout out = input;
  for (auto& f : spec.fields)
    f.out_slot = out.add(f.name, f.type);
  spec.output_fields = out.size();
  return out;
}

enrich_operator::enrich_operator(enrich_spec spec, op_env env)
    : spec_(std::move(spec)), env_(std::move(env)),
      cache_(spec_.cache_entries, spec_.cache_ttl_ms,
             env_.now_ms ? env_.now_ms
                         : lru_cache<std::string, entity_ptr>::clock_fn{steady_clock_ms}) {
  for (const auto& f : spec_.fields)
    spec_.output_fields = std::max(spec_.output_fields, static_cast<size_t>(f.out_slot + 1));
  auto d = std::make_shared<entity>();
  d->status = lookup_status::missing;
  for (const auto& f : spec_.fields)
    d->values.push_back(f.default_value);
  defaults_ = std::move(d);
}

bool enrich_operator::redis_key(const record& r, std::string& out) const {
  if (spec_.key_slot < 0 || static_cast<size_t>(spec_.key_slot) >= r.fields.size())
    return false;
  const auto& v = r.fields[static_cast<size_t>(spec_.key_slot)];
  if (!v.present())
    return false;
  out = spec_.key_prefix;
  if (v.type == value_type::string)
    out += v.s;
  else
    out += v.to_string();
  return out.size() > spec_.key_prefix.size(); // an empty id names no entity
}

lookup_request enrich_operator::prepare(const std::vector<record>& in) {
  batch_.clear();
  lookup_request req;
  for (const auto& r : in) {
    if (!redis_key(r, key_))
      continue;
    auto [it, fresh] = batch_.try_emplace(key_);
    if (!fresh)
      continue;
    if (auto* hit = cache_.get(key_)) {
      it->second = *hit;
      ++cache_hits_;
    } else {
      req.keys.push_back(key_);
      ++cache_misses_;
    }
  }
  return req;
}

enrich_operator::entity_ptr enrich_operator::convert(const lookup_entry& e) const {
  if (e.status == lookup_status::missing)
    return defaults_;
  auto out = std::make_shared<entity>();
  out->status = e.status;
  if (e.status == lookup_status::failed) {
    out->error = e.error.empty() ? "unknown error" : e.error;
    return out;
  }
  out->values.reserve(spec_.fields.size());
  for (size_t i = 0; i < spec_.fields.size(); ++i) {
    const auto& f = spec_.fields[i];
    bool set = i < e.values.size() && (i < e.set.size() ? static_cast<bool>(e.set[i]) : true);
    std::optional<value> v;
    if (set)
      v = parse_as(e.values[i], f.type);
    out->values.push_back(v ? std::move(*v) : f.default_value);
  }
  return out;
}

void enrich_operator::complete(const lookup_request& req, const lookup_reply& reply) {
  for (size_t i = 0; i < req.keys.size(); ++i) {
    const auto& key = req.keys[i];
    entity_ptr e;
    if (i < reply.entries.size()) {
      e = convert(reply.entries[i]);
    } else {
      lookup_entry f;
      f.status = lookup_status::failed;
      f.error = "lookup reply has " + std::to_string(reply.entries.size()) + " entries for " +
                std::to_string(req.keys.size()) + " keys";
      e = convert(f);
    }
    if (e->status != lookup_status::failed)
      cache_.put(key, e);
    batch_[key] = std::move(e);
  }
}

void enrich_operator::fail(const lookup_request& req, const std::string& error) {
  lookup_reply reply;
  reply.entries.resize(req.keys.size());
  for (auto& e : reply.entries) {
    e.status = lookup_status::failed;
    e.error = error;
  }
  complete(req, reply);
}

enrich_operator::entity_ptr enrich_operator::find(const std::string& key) {
  if (auto it = batch_.find(key); it != batch_.end())
    return it->second; // null if requested but never answered
  if (auto* hit = cache_.get(key))
    return *hit;
  return nullptr;
}

std::string enrich_operator::key_field_name() const {
  return spec_.key_field.empty() ? "slot " + std::to_string(spec_.key_slot) : spec_.key_field;
}

void enrich_operator::dead_letter(record& r, ec code, std::string message, op_output& out) const {
  provenance from{env_.source_topic, r.partition, r.offset, r.event_time_ms};
  out.dead_letters.push_back(kafka_message{env_.dead_letter_topic, r.key,
                                           make_dead_letter(r.key, r.raw, from, spec_.id,
                                                            rejection{code, std::move(message)},
                                                            env_.pipeline, env_.pipeline_version)});
}

void enrich_operator::process(std::vector<record>& in, op_output& out) {
  for (auto& r : in) {
    entity_ptr e;
    std::string missing_why;
    if (!redis_key(r, key_)) {
      e = defaults_;
      missing_why = "no entity for field '" + key_field_name() + "': the record has no value";
    } else {
      e = find(key_);
      if (!e) {
        lookup_entry f;
        f.status = lookup_status::failed;
        f.error = "no lookup result (process() without prepare() and complete())";
        e = convert(f);
      }
      if (e->status == lookup_status::missing)
        missing_why = "no entity '" + key_ + "' for field '" + key_field_name() + "'";
    }
    if (e->status == lookup_status::failed) {
      ++failed_;
      dead_letter(r, ec::enrich_failed, "lookup of '" + key_ + "' failed: " + e->error, out);
      continue;
    }
    if (e->status == lookup_status::missing) {
      ++missing_;
      if (spec_.on_missing == missing_policy::dead_letter) {
        dead_letter(r, ec::enrich_missing, std::move(missing_why), out);
        continue;
      }
    }
    if (r.fields.size() < spec_.output_fields)
      r.fields.resize(spec_.output_fields);
    for (size_t i = 0; i < spec_.fields.size(); ++i) {
      auto slot = spec_.fields[i].out_slot;
      if (slot >= 0)
        r.fields[static_cast<size_t>(slot)] = e->values[i];
    }
    out.records.push_back(std::move(r));
  }
  batch_.clear();
}

} // namespace keyflow::ops
