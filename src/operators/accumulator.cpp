#include "operators/accumulator.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

namespace keyflow::ops {

namespace {

const value absent_value{};

const value& field_at(const std::vector<value>& fields, int slot) noexcept {
  return slot >= 0 && static_cast<size_t>(slot) < fields.size() ? fields[static_cast<size_t>(slot)]
                                                                : absent_value;
}

// Doubles: NaN first (NaNs equal), then numeric order. -0 and +0 compare equal here.
int compare_numbers(double a, double b) noexcept {
  bool na = std::isnan(a), nb = std::isnan(b);
  if (na || nb)
    return static_cast<int>(nb) - static_cast<int>(na);
  return a < b ? -1 : (b < a ? 1 : 0);
}

// `by` of a candidate beats the chosen record of a max_by (min_by) group.
bool beats(agg_fn fn, double by, const std::vector<value>& fields, const best_record& best) {
  if (!best.has)
    return true;
  int c = compare_numbers(by, best.by);
  if (c != 0)
    return fn == agg_fn::max_by ? c > 0 : c < 0;
  return compare_fields(fields, best.fields) < 0;
}

} // namespace

int compare_values(const value& a, const value& b) noexcept {
  if (a.type != b.type)
    return a.type < b.type ? -1 : 1;
  switch (a.type) {
  case value_type::int64:
    return a.i < b.i ? -1 : (b.i < a.i ? 1 : 0);
  case value_type::dbl: {
    if (int c = compare_numbers(a.d, b.d); c != 0)
      return c;
    bool sa = std::signbit(a.d), sb = std::signbit(b.d);
    return sa == sb ? 0 : (sa ? -1 : 1);
  }
  case value_type::string: {
    int c = a.s.compare(b.s);
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  default:
    return 0;
  }
}

int compare_fields(const std::vector<value>& a, const std::vector<value>& b) noexcept {
  size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i)
    if (int c = compare_values(a[i], b[i]); c != 0)
      return c;
  return a.size() == b.size() ? 0 : (a.size() < b.size() ? -1 : 1);
}

aggregate_set::aggregate_set(const std::vector<agg_spec>& specs) {
  for (const auto& s : specs) {
    step st{s.fn, s.input_slot, s.input_type == value_type::int64, 0};
    if (s.fn == agg_fn::max_by || s.fn == agg_fn::min_by) {
      size_t g = 0;
      while (g < groups_.size() && !(groups_[g].fn == s.fn && groups_[g].by_slot == s.by_slot))
        ++g;
      if (g == groups_.size())
        groups_.push_back({s.fn, s.by_slot});
      st.index = g;
    } else {
      st.index = n_acc_++;
    }
    plan_.push_back(st);
  }
}

value_type aggregate_set::output_type(const agg_spec& spec) noexcept {
  switch (spec.fn) {
  case agg_fn::count:
    return value_type::int64;
  case agg_fn::sum:
  case agg_fn::min:
  case agg_fn::max:
    return spec.input_type == value_type::int64 ? value_type::int64 : value_type::dbl;
  case agg_fn::avg:
    return value_type::dbl;
  default:
    return spec.input_type;
  }
}

void aggregate_set::fold_value(const step& s, accumulator& a, const value& x, int64_t t) const {
  const bool has = a.v.present();
  switch (s.fn) {
  case agg_fn::sum:
    if (s.as_int) {
      // Wraps around on overflow (two's complement) instead of undefined behaviour.
      int64_t add = x.as_int();
      a.v.i = has ? static_cast<int64_t>(static_cast<uint64_t>(a.v.i) + static_cast<uint64_t>(add))
                  : add;
      a.v.type = value_type::int64;
    } else {
      double add = x.as_double();
      a.v.d = has ? a.v.d + add : add;
      a.v.type = value_type::dbl;
    }
    break;
  case agg_fn::min:
  case agg_fn::max: {
    const bool is_min = s.fn == agg_fn::min;
    if (s.as_int) {
      int64_t xi = x.as_int();
      if (!has || (is_min ? xi < a.v.i : xi > a.v.i)) {
        a.v.i = xi;
        a.v.type = value_type::int64;
      }
    } else {
      // A NaN is taken only while nothing else was seen (like fmin/fmax).
      double xd = x.as_double();
      if (!has || std::isnan(a.v.d) || (is_min ? xd < a.v.d : xd > a.v.d)) {
        a.v.d = xd;
        a.v.type = value_type::dbl;
      }
    }
    break;
  }
  case agg_fn::avg: {
    double add = x.as_double();
    a.v.d = a.n > 0 ? a.v.d + add : add;
    a.v.type = value_type::dbl;
    ++a.n;
    break;
  }
  case agg_fn::first:
    if (!has || t < a.t) { // equal times: the earlier arrival stays
      a.v = x;
      a.t = t;
    }
    break;
  case agg_fn::last:
    if (!has || t >= a.t) { // equal times: the later arrival wins
      a.v = x;
      a.t = t;
    }
    break;
  default:
    break;
  }
}

void aggregate_set::fold(accumulator* accs, best_record* bests, const record& r) const {
  for (const auto& s : plan_) {
    if (s.fn == agg_fn::count) {
      ++accs[s.index].n;
    } else if (s.fn != agg_fn::max_by && s.fn != agg_fn::min_by) {
      const value& x = field_at(r.fields, s.input_slot);
      if (x.present())
        fold_value(s, accs[s.index], x, r.event_time_ms);
    }
  }
  for (size_t g = 0; g < groups_.size(); ++g) {
    double by = field_at(r.fields, groups_[g].by_slot).as_double();
    best_record& b = bests[g];
    if (beats(groups_[g].fn, by, r.fields, b)) {
      b.has = true;
      b.by = by;
      b.fields = r.fields;
    }
  }
}

void aggregate_set::merge(accumulator* accs, best_record* bests, const accumulator* other_accs,
                          best_record* other_bests) const {
  for (const auto& s : plan_) {
    if (s.fn == agg_fn::max_by || s.fn == agg_fn::min_by)
      continue;
    accumulator& a = accs[s.index];
    const accumulator& o = other_accs[s.index];
    if (s.fn == agg_fn::count) {
      a.n += o.n;
    } else if (s.fn == agg_fn::avg) {
      if (o.n > 0) {
        a.v.d = a.n > 0 ? a.v.d + o.v.d : o.v.d;
        a.v.type = value_type::dbl;
        a.n += o.n;
      }
    } else if (o.v.present()) {
      fold_value(s, a, o.v, o.t);
    }
  }
  for (size_t g = 0; g < groups_.size(); ++g) {
    best_record& o = other_bests[g];
    if (o.has && beats(groups_[g].fn, o.by, o.fields, bests[g])) {
      bests[g].has = true;
      bests[g].by = o.by;
      bests[g].fields = std::move(o.fields);
    }
  }
}

void aggregate_set::results(const accumulator* accs, const best_record* bests,
                            std::vector<value>& out) const {
  for (const auto& s : plan_) {
    switch (s.fn) {
    case agg_fn::count:
      out.push_back(value::of(accs[s.index].n));
      break;
    case agg_fn::avg: {
      const accumulator& a = accs[s.index];
      out.push_back(a.n > 0 ? value::of(a.v.d / static_cast<double>(a.n)) : value{});
      break;
    }
    case agg_fn::max_by:
    case agg_fn::min_by: {
      const best_record& b = bests[s.index];
      out.push_back(b.has ? field_at(b.fields, s.input_slot) : absent_value);
      break;
    }
    default:
      out.push_back(accs[s.index].v);
    }
  }
}

} // namespace keyflow::ops
