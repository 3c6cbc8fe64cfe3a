#pragma once
/// \file
/// Order-independent digests of result records, so that the engine's output (seen by a
/// counting sink) and a raw baseline's output can be compared without storing either: a
/// digest is the number of records and the sum (mod 2^64) of one 64-bit hash per record,
/// computed over the record's key and the values of the fields a sink writes.

#include <cstdint>
#include <cstring>
#include <string_view>

#include "core/value.hpp"

namespace keyflow::bench {

/// Hash of one result record, built field by field (key first, then the written fields in
/// sink order). Types are part of the hash: int64 7 and double 7.0 differ.
class record_hash {
public:
  /// The record key.
  record_hash& key(std::string_view k) noexcept { return bytes(0x6b, k); }
  /// An int64 field.
  record_hash& i64(int64_t v) noexcept { return word(0x69, static_cast<uint64_t>(v)); }
  /// A double field (its bits: -0 and +0 differ).
  record_hash& dbl(double v) noexcept {
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(bits));
    return word(0x64, bits);
  }
  /// A string field.
  record_hash& str(std::string_view s) noexcept { return bytes(0x73, s); }
  /// An absent field.
  record_hash& none() noexcept { return word(0x6e, 0); }
  /// Any field value.
  record_hash& val(const value& v) noexcept {
    switch (v.type) {
    case value_type::int64:
      return i64(v.i);
    case value_type::dbl:
      return dbl(v.d);
    case value_type::string:
      return str(v.s);
    default:
      return none();
    }
  }
  /// The hash of everything added.
  uint64_t done() const noexcept { return mix(h_ ^ 0x5bd1e9955bd1e995ULL); }

private:
  static constexpr uint64_t mix(uint64_t z) noexcept {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  record_hash& word(uint64_t tag, uint64_t v) noexcept {
    h_ = mix(h_ + tag * 0x9e3779b97f4a7c15ULL) ^ v;
    return *this;
  }
  record_hash& bytes(uint64_t tag, std::string_view s) noexcept {
    uint64_t f = 0xcbf29ce484222325ULL; // FNV-1a
    for (unsigned char c : s)
      f = (f ^ c) * 0x100000001b3ULL;
    return word(tag, f ^ s.size());
  }
  uint64_t h_ = 0x243f6a8885a308d3ULL;
};

/// Number and hash sum of a set of records.
struct result_digest {
  uint64_t count = 0; ///< records
  uint64_t sum = 0;   ///< sum of their hashes, mod 2^64
  /// Adds one record's hash.
  void add(uint64_t h) noexcept {
    ++count;
    sum += h;
  }
  /// Adds another digest.
  void merge(const result_digest& o) noexcept {
    count += o.count;
    sum += o.sum;
  }
  /// Same number of records and same hash sum.
  friend bool operator==(const result_digest& a, const result_digest& b) noexcept {
    return a.count == b.count && a.sum == b.sum;
  }
};

} // namespace keyflow::bench
