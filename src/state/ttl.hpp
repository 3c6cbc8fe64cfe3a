#pragma once
/// \file
/// State time-to-live. A value with a TTL is stored as 0xFF, the 8-byte big-endian
/// expiry time (processing time, ms since the Unix epoch) and the payload. No serialized
/// protobuf message starts with 0xFF (it would be a tag of wire type 7, which does not
/// exist), so values with and without TTL can share a column family. Expired values are
/// treated as absent when read and dropped by RocksDB compaction (ttl_compaction_filter).

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include <rocksdb/compaction_filter.h>

namespace keyflow::state {

/// Marker byte of a value with an expiry time.
inline constexpr unsigned char ttl_marker = 0xFF;

/// Wall-clock ms since the Unix epoch (the TTL clock).
inline int64_t wall_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Appends the TTL header for `expire_at_ms` to `out`.
inline void append_ttl_header(std::string& out, int64_t expire_at_ms) {
  out.push_back(static_cast<char>(ttl_marker));
  auto u = static_cast<uint64_t>(expire_at_ms);
  for (int shift = 56; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((u >> shift) & 0xff));
}

/// If `stored` has a TTL header, sets `expire_at_ms`, strips the header from `stored` and
/// returns true; otherwise returns false and leaves both unchanged.
inline bool strip_ttl_header(std::string_view& stored, int64_t& expire_at_ms) {
  if (stored.size() < 9 || static_cast<unsigned char>(stored[0]) != ttl_marker)
    return false;
  uint64_t u = 0;
  for (size_t i = 1; i < 9; ++i)
    u = (u << 8) | static_cast<unsigned char>(stored[i]);
  expire_at_ms = static_cast<int64_t>(u);
  stored.remove_prefix(9);
  return true;
}

/// Drops values whose TTL header says they expired (wall clock). Installed on every column
/// family of the state store; values without a header are kept.
class ttl_compaction_filter : public rocksdb::CompactionFilter {
public:
  /// Decides per value: true = drop.
  bool Filter(int, const rocksdb::Slice&, const rocksdb::Slice& value, std::string*,
              bool*) const override {
    std::string_view v{value.data(), value.size()};
    int64_t expire_at = 0;
    return strip_ttl_header(v, expire_at) && expire_at <= wall_clock_ms();
  }
  /// Name shown in RocksDB's logs.
  const char* Name() const override { return "keyflow.ttl"; }
};

} // namespace keyflow::state
