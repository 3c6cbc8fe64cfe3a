#pragma once
/// \file
/// Enrichment from Redis: adds fields read from an entity hash (`<key_prefix><key value>`)
/// to every record. The operator itself does no I/O: the hosting actor asks prepare() which
/// keys are neither cached nor known, has the lookup actor read them (actors/lookup.cpp),
/// hands the reply to complete(), then runs process(). Entities (and their absence) are
/// cached in an LRU cache with a TTL; failed lookups are not cached. The cache is only a
/// cache: the operator keeps no checkpointed state.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/errors.hpp"
#include "core/layout.hpp"
#include "core/lookup.hpp"
#include "core/value.hpp"
#include "operators/lru_cache.hpp"
#include "operators/operator.hpp"

namespace keyflow::ops {

/// One field an enrich operator adds, read from a hash field of the entity.
struct enrich_field {
  std::string name;                     ///< output field name
  std::string hash_field;               ///< field of the Redis hash
  value_type type = value_type::string; ///< declared type; Redis text is converted to it
  value default_value; ///< used when the entity or the hash field is missing or unparsable
  int out_slot = -1;   ///< slot in the output layout
};

/// What happens to a record whose entity does not exist.
enum class missing_policy : uint8_t {
  defaults,    ///< every enrich field gets its default value
  dead_letter, ///< the record goes to the dead-letter topic (reason enrich_missing)
};

/// A resolved enrich operator.
struct enrich_spec {
  std::string id;         ///< operator id (dead letters, metrics)
  int key_slot = -1;      ///< input slot of the entity id
  std::string key_field;  ///< name of that field (dead-letter messages)
  std::string key_prefix; ///< Redis key = key_prefix + entity id as text
  /// Fields to add; `hash_field`s in the order the lookup actor is configured with.
  std::vector<enrich_field> fields;
  missing_policy on_missing = missing_policy::defaults; ///< missing entities
  size_t cache_entries = 100000;                        ///< cache size in entities
  int64_t cache_ttl_ms = 60000; ///< a cached entity is read again this long after its lookup
  /// Size of the output layout; 0 = the greatest out_slot + 1.
  size_t output_fields = 0;
};

/// Output layout of an enrich operator: the input fields, then each enrich field (a name
/// already present keeps its slot and takes the new type). Sets every field's out_slot and
/// spec.output_fields.
layout enrich_output_layout(const layout& input, enrich_spec& spec);

/// Adds entity fields from Redis to records. Lookups go through prepare() / complete();
/// process() only reads what they produced.
class enrich_operator : public keyed_operator {
public:
  /// An enrich operator for one partition actor. The cache TTL uses `env.now_ms` when set,
  /// else the steady clock.
  enrich_operator(enrich_spec spec, op_env env);

  /// The operator id.
  const std::string& id() const noexcept override { return spec_.id; }

  /// Keys (prefix + value of key_slot as text) of `in` that are neither cached nor already
  /// requested; empty = process() can run now. Starts a new batch: cached entities of `in`
  /// are kept for process() even if the cache drops them meanwhile.
  lookup_request prepare(const std::vector<record>& in);

  /// Takes the reply to the last prepare() (fills the cache; failed entries are not cached).
  void complete(const lookup_request& req, const lookup_reply& reply);

  /// The request of the last prepare() got no reply at all (lookup actor gone, request
  /// timed out): every key of it failed with `error`.
  void fail(const lookup_request& req, const std::string& error);

  /// Writes the enrich fields of every record (fields resized to the output layout) and
  /// moves it to `out.records`; records whose entity is missing (dead_letter policy) or
  /// whose lookup failed go to `out.dead_letters` instead. Uses only what prepare() and
  /// complete() produced for this batch, and the cache.
  void process(std::vector<record>& in, op_output& out) override;

  /// Distinct keys per batch answered by the cache, so far.
  uint64_t cache_hits() const noexcept { return cache_hits_; }
  /// Distinct keys per batch that had to be looked up, so far.
  uint64_t cache_misses() const noexcept { return cache_misses_; }
  /// Records whose entity did not exist (or whose key field was absent), so far.
  uint64_t missing() const noexcept { return missing_; }
  /// Records dead-lettered because their lookup failed, so far.
  uint64_t failed() const noexcept { return failed_; }
  /// Missing entities send records to the dead-letter topic (on_missing: dead_letter).
  bool dead_letters_missing() const noexcept {
    return spec_.on_missing == missing_policy::dead_letter;
  }
  /// Entities in the cache.
  size_t cache_size() const noexcept { return cache_.size(); }

private:
  /// A looked-up entity: its enrich field values (converted, defaults applied) or why not.
  struct entity {
    lookup_status status = lookup_status::missing;
    std::vector<value> values; ///< one per spec field (defaults when missing)
    std::string error;         ///< when failed
  };
  using entity_ptr = std::shared_ptr<const entity>;

  bool redis_key(const record& r, std::string& out) const;
  entity_ptr convert(const lookup_entry& e) const;
  entity_ptr find(const std::string& key);
  void dead_letter(record& r, ec code, std::string message, op_output& out) const;
  std::string key_field_name() const;

  enrich_spec spec_;
  op_env env_;
  lru_cache<std::string, entity_ptr> cache_;
  std::unordered_map<std::string, entity_ptr> batch_; // this batch's keys (null = requested)
  entity_ptr defaults_;                               // the missing entity
  std::string key_;                                   // scratch
  uint64_t cache_hits_ = 0;
  uint64_t cache_misses_ = 0;
  uint64_t missing_ = 0;
  uint64_t failed_ = 0;
};

} // namespace keyflow::ops
