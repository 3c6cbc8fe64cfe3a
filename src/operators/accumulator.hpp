#pragma once
/// \file
/// Incremental aggregate functions of the window operator: fold a record in, merge two
/// partial results (session windows), read the results. Plain data, no state store.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/record.hpp"
#include "core/value.hpp"
#include "operators/window.hpp"

namespace keyflow::ops {

/// Running state of one aggregate other than max_by/min_by.
struct accumulator {
  value v;       ///< sum, min, max, first, last: current value; avg: running sum (double)
  int64_t n = 0; ///< count: records; avg: values summed
  int64_t t = 0; ///< first, last: event time of the record `v` came from
};

/// max_by / min_by: the record chosen so far (shared by every aggregate with the same
/// function and `by` field, so they always name the same record). `by` values compare as
/// doubles (absent = 0, NaN below every number); equal ones by compare_fields.
struct best_record {
  bool has = false;          ///< a record was chosen
  double by = 0;             ///< its `by` value as a double
  std::vector<value> fields; ///< all its fields
};

/// Total order on values: by type (absent < int64 < double < string), then by value;
/// doubles order NaN first and -0 before +0. Returns <0, 0 or >0.
int compare_values(const value& a, const value& b) noexcept;

/// Lexicographic order of field vectors under compare_values (a prefix orders first).
int compare_fields(const std::vector<value>& a, const std::vector<value>& b) noexcept;

/// The aggregates of one operator, resolved: which accumulator or best record each uses.
/// Records fold in arrival order.
class aggregate_set {
public:
  /// Resolves `specs` (in output order).
  explicit aggregate_set(const std::vector<agg_spec>& specs);

  /// Accumulators per window.
  size_t accumulators() const noexcept { return n_acc_; }

  /// Best records per window (distinct (max_by|min_by, by) pairs).
  size_t bests() const noexcept { return groups_.size(); }

  /// Folds record `r` into one window's accumulators and best records (arrays of
  /// accumulators() and bests() elements).
  void fold(accumulator* accs, best_record* bests, const record& r) const;

  /// Merges another window's partial results into `accs`/`bests` as if its records had
  /// arrived after theirs: on equal event times `first` keeps its value and `last` takes
  /// the other's. Merged session windows never hold equal event times (an event time lies
  /// in one session only), so the result equals folding all their records into one
  /// window, except that double sums may round differently. Moves from `other_bests`.
  void merge(accumulator* accs, best_record* bests, const accumulator* other_accs,
             best_record* other_bests) const;

  /// Appends the aggregate values, in spec order, to `out`.
  void results(const accumulator* accs, const best_record* bests, std::vector<value>& out) const;

  /// Number of aggregates.
  size_t size() const noexcept { return plan_.size(); }

  /// Output type of an aggregate (see agg_fn).
  static value_type output_type(const agg_spec& spec) noexcept;

private:
  struct step {
    agg_fn fn;
    int input_slot;
    bool as_int;  // sum/min/max over an int64 field
    size_t index; // accumulator, or best record (max_by/min_by)
  };
  struct group {
    agg_fn fn;
    int by_slot;
  };
  void fold_value(const step& s, accumulator& a, const value& x, int64_t t) const;

  std::vector<step> plan_;
  std::vector<group> groups_;
  size_t n_acc_ = 0;
};

} // namespace keyflow::ops
