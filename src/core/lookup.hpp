#pragma once
/// \file
/// Messages between enrich operators and the Redis lookup actor: a request names entity
/// hashes; the reply gives, per hash and in request order, the requested fields or why
/// they are not there.

#include <cstdint>
#include <string>
#include <vector>

namespace keyflow {

/// Outcome of one entity lookup.
enum class lookup_status : uint8_t {
  found,   ///< the hash exists (at least one requested field is set)
  missing, ///< no such hash (or none of the requested fields is set)
  failed,  ///< Redis did not answer in time after every retry, or answered an error
};

/// Entity hashes to read; `keys` are full Redis keys (prefix + entity id).
struct lookup_request {
  std::vector<std::string> keys; ///< distinct keys
};

/// Inspects a lookup_request (CAF 0.17 inspect protocol).
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, lookup_request& x) {
  return f(x.keys);
}

/// One entity's result.
struct lookup_entry {
  lookup_status status = lookup_status::missing; ///< outcome
  /// When found: the requested hash fields in configured order ("" for an unset field,
  /// see `set`).
  std::vector<std::string> values;
  std::vector<bool> set; ///< per field: present in the hash
  std::string error;     ///< when failed: Redis's or the timeout's message
};

/// Inspects a lookup_entry.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, lookup_entry& x) {
  return f(x.status, x.values, x.set, x.error);
}

/// Reply to a lookup_request: entries[i] answers keys[i].
struct lookup_reply {
  std::vector<lookup_entry> entries; ///< in request order
};

/// Inspects a lookup_reply.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, lookup_reply& x) {
  return f(x.entries);
}

} // namespace keyflow
