#include "operators/basic.hpp"

#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

#include "pipeline/plan.hpp"
#include "state/keyed_state.hpp"

namespace keyflow::ops {

namespace {

/// A one-byte "seen" marker as keyed state.
struct seen_codec {
  static std::string encode(const bool&) { return std::string(1, '\x01'); }
  static bool decode(std::string_view b, bool& v) {
    v = !b.empty();
    return true;
  }
};

using seen_state = state::keyed_state<bool, seen_codec>;

rocksdb::ColumnFamilyHandle* cf_of(const op_env& env, const std::string& id) {
  if (env.store == nullptr)
    throw std::runtime_error("operator '" + id + "' keeps state but no state store is open");
  auto* cf = env.store->column_family(id);
  if (cf == nullptr)
    throw std::runtime_error("state store has no column family for operator '" + id + "'");
  return cf;
}

/// A filter's comparison, read from its op text (eq ne lt le gt ge mod_eq, as validated)
/// by its first two characters: no string compares per record.
enum class cmp : uint8_t { eq, ne, lt, le, gt, ge, mod_eq };

cmp cmp_of(const std::string& op) noexcept {
  switch (op.empty() ? 'e' : op[0]) {
  case 'n':
    return cmp::ne;
  case 'm':
    return cmp::mod_eq;
  case 'l':
    return op.size() > 1 && op[1] == 't' ? cmp::lt : cmp::le;
  case 'g':
    return op.size() > 1 && op[1] == 't' ? cmp::gt : cmp::ge;
  default:
    return cmp::eq;
  }
}

template <class T>
bool ordered(cmp c, T a, T b) noexcept {
  switch (c) {
  case cmp::eq:
    return a == b;
  case cmp::ne:
    return a != b;
  case cmp::lt:
    return a < b;
  case cmp::le:
    return a <= b;
  case cmp::gt:
    return a > b;
  default:
    return a >= b;
  }
}

bool compare(cmp c, const value& v, const value& lit) {
  if (v.type == value_type::string || lit.type == value_type::string) {
    bool eq = v.type == value_type::string && v.s == lit.s;
    return c == cmp::eq ? eq : c == cmp::ne ? !eq : false;
  }
  if (!v.present())
    return c == cmp::ne;
  if (v.type == value_type::int64 && lit.type == value_type::int64)
    return ordered(c, v.i, lit.i);
  return ordered(c, v.as_double(), lit.as_double());
}

/// Common part: the id.
class base : public keyed_operator {
public:
  explicit base(std::string id) : id_(std::move(id)) {}
  const std::string& id() const noexcept override { return id_; }

protected:
  std::string id_;
};

/// filter: keeps matching records; once_per_key lets each key pass once.
class filter_op final : public base {
public:
  filter_op(const pipeline::op_plan& op, const op_env& env) : base(op.cfg->id), op_(&op) {
    if (op.filter.once_per_key)
      seen_.emplace(*env.store, cf_of(env, id_));
  }
  void process(std::vector<record>& in, op_output& out) override {
    for (auto& r : in) {
      if (!filter_matches(*op_, r))
        continue;
      if (seen_) {
        if (seen_->find(r.key, r.key_group) != nullptr)
          continue;
        seen_->update(r.key, r.key_group) = true;
      }
      out.records.push_back(std::move(r));
    }
  }
  size_t flush_state() override { return seen_ ? seen_->flush() : 0; }
  size_t evict_to(size_t n) override { return seen_ ? seen_->evict_to(n) : 0; }
  size_t state_size() const override { return seen_ ? seen_->size() : 0; }
  std::vector<std::string> column_families() const override {
    return seen_ ? std::vector<std::string>{id_} : std::vector<std::string>{};
  }

private:
  const pipeline::op_plan* op_;
  std::optional<seen_state> seen_;
};

/// map: computed numeric fields.
class map_op final : public base {
public:
  explicit map_op(const pipeline::op_plan& op) : base(op.cfg->id), op_(&op) {}
  void process(std::vector<record>& in, op_output& out) override {
    const auto width = op_->out.size();
    for (auto& r : in) {
      r.fields.resize(width);
      for (const auto& m : op_->maps) {
        const auto& v = r.fields[static_cast<size_t>(m.in_slot)];
        auto& o = r.fields[static_cast<size_t>(m.out_slot)];
        if (v.present())
          o = value::of(v.as_double() * m.multiply + m.add);
        else
          o = value{};
      }
      out.records.push_back(std::move(r));
    }
  }

private:
  const pipeline::op_plan* op_;
};

/// dedup: drops records whose (key, event id) was seen within the TTL.
class dedup_op final : public base {
public:
  dedup_op(const pipeline::op_plan& op, const op_env& env)
      : base(op.cfg->id), slot_(op.dedup_slot), seen_(*env.store, cf_of(env, id_)) {
    seen_.set_ttl(op.cfg->ttl_ms, env.now_ms ? env.now_ms : state::wall_clock_ms);
  }
  void process(std::vector<record>& in, op_output& out) override {
    for (auto& r : in) {
      const auto& id = r.fields[static_cast<size_t>(slot_)];
      if (!id.present()) { // nothing to deduplicate by: pass
        out.records.push_back(std::move(r));
        continue;
      }
      scratch_.assign(r.key);
      scratch_.push_back('\0');
      scratch_ += id.to_string();
      if (seen_.find(scratch_, r.key_group) != nullptr) {
        ++duplicates_;
        continue;
      }
      seen_.update(scratch_, r.key_group) = true;
      out.records.push_back(std::move(r));
    }
  }
  size_t flush_state() override { return seen_.flush(); }
  size_t evict_to(size_t n) override { return seen_.evict_to(n); }
  size_t state_size() const override { return seen_.size(); }
  std::vector<std::string> column_families() const override { return {id_}; }
  uint64_t duplicates() const override { return duplicates_; }

private:
  int slot_;
  seen_state seen_;
  std::string scratch_;
  uint64_t duplicates_ = 0;
};

/// score: logistic model over numeric fields.
class score_op final : public base {
public:
  explicit score_op(const pipeline::op_plan& op) : base(op.cfg->id), op_(&op) {}
  void process(std::vector<record>& in, op_output& out) override {
    const auto width = op_->out.size();
    for (auto& r : in) {
      double z = op_->score.bias;
      for (const auto& [slot, w] : op_->score.weights)
        z += w * r.fields[static_cast<size_t>(slot)].as_double();
      r.fields.resize(width);
      r.fields[static_cast<size_t>(op_->score.out_slot)] = value::of(1.0 / (1.0 + std::exp(-z)));
      out.records.push_back(std::move(r));
    }
  }

private:
  const pipeline::op_plan* op_;
};

/// key_by: re-keys records by a field (the host routes them to the next stage).
class key_by_op final : public base {
public:
  explicit key_by_op(const pipeline::op_plan& op) : base(op.cfg->id), slot_(op.key_slot) {}
  void process(std::vector<record>& in, op_output& out) override {
    for (auto& r : in) {
      r.key = r.fields[static_cast<size_t>(slot_)].to_string();
      out.records.push_back(std::move(r));
    }
  }

private:
  int slot_;
};

} // namespace

bool validate_record(const pipeline::op_plan& op, const record& r, rejection& why) {
  for (int slot : op.required_slots) {
    const auto& v = r.fields[static_cast<size_t>(slot)];
    if (!v.present() || (v.type == value_type::string && v.s.empty())) {
      why = {ec::missing_field,
             fmt::format("required field '{}' is missing or empty", op.in.at(slot).name)};
      return false;
    }
  }
  for (size_t i = 0; i < r.fields.size(); ++i)
    if (r.fields[i].type == value_type::dbl && !std::isfinite(r.fields[i].d)) {
      why = {ec::invalid_field,
             fmt::format("field '{}' is not a finite number", op.in.at(static_cast<int>(i)).name)};
      return false;
    }
  return true;
}

bool filter_matches(const pipeline::op_plan& op, const record& r) {
  const auto& f = op.filter;
  const auto& v = r.fields[static_cast<size_t>(f.slot)];
  const cmp c = cmp_of(f.op);
  if (c == cmp::mod_eq)
    return v.type == value_type::int64 && f.modulus > 0 && v.i % f.modulus == f.literal.i;
  return compare(c, v, f.literal);
}

std::unique_ptr<keyed_operator> make_basic_operator(const pipeline::op_plan& op,
                                                    const op_env& env) {
  const auto& t = op.cfg->type;
  if (t == "filter")
    return std::make_unique<filter_op>(op, env);
  if (t == "map")
    return std::make_unique<map_op>(op);
  if (t == "dedup")
    return std::make_unique<dedup_op>(op, env);
  if (t == "score")
    return std::make_unique<score_op>(op);
  if (t == "key_by")
    return std::make_unique<key_by_op>(op);
  throw std::invalid_argument("no basic operator of type '" + t + "'");
}

} // namespace keyflow::ops
