#include "pipeline/state_inspect.hpp"

#include <algorithm>
#include <cstdarg>
#include <filesystem>
#include <map>
#include <memory>
#include <tuple>
#include <utility>

#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/iterator.h>

#include "core/key_group.hpp"
#include "operators/accumulator.hpp"
#include "proto/state.pb.h"
#include "state/state_store.hpp"
#include "state/ttl.hpp"

namespace keyflow::pipeline {

namespace fs = std::filesystem;

namespace {

// --- state types ---------------------------------------------------------------------------

std::string_view fn_name(ops::agg_fn fn) {
  switch (fn) {
  case ops::agg_fn::count:
    return "count";
  case ops::agg_fn::sum:
    return "sum";
  case ops::agg_fn::min:
    return "min";
  case ops::agg_fn::max:
    return "max";
  case ops::agg_fn::avg:
    return "avg";
  case ops::agg_fn::first:
    return "first";
  case ops::agg_fn::last:
    return "last";
  case ops::agg_fn::max_by:
    return "max_by";
  default:
    return "min_by";
  }
}

std::string window_type(const op_plan& op) {
  const auto& w = op.window;
  std::string out = op.cfg->type + "/";
  switch (w.kind) {
  case ops::window_kind::global:
    out += "global";
    break;
  case ops::window_kind::tumbling:
    out += fmt::format("tumbling(size={})", w.size_ms);
    break;
  case ops::window_kind::sliding:
    out += fmt::format("sliding(size={},slide={})", w.size_ms, w.slide_ms);
    break;
  case ops::window_kind::session:
    out += fmt::format("session(gap={})", w.gap_ms);
    break;
  }
  out += "[";
  bool keeps_records = false;
  for (size_t i = 0; i < w.aggregates.size(); ++i) {
    const auto& a = w.aggregates[i];
    if (i > 0)
      out += ",";
    out += fn_name(a.fn);
    if (a.fn == ops::agg_fn::count)
      continue;
    if (a.fn == ops::agg_fn::max_by || a.fn == ops::agg_fn::min_by) {
      keeps_records = true;
      const bool known = a.by_slot >= 0 && static_cast<size_t>(a.by_slot) < op.in.size();
      out += "(" + (known ? op.in.at(a.by_slot).name : std::to_string(a.by_slot)) + ")";
    }
    out += ":";
    out += type_name(ops::aggregate_set::output_type(a));
  }
  out += "]";
  if (keeps_records) { // max_by / min_by store whole input records, in slot order
    out += "/record[";
    for (size_t i = 0; i < op.in.size(); ++i) {
      const auto& f = op.in.fields()[i];
      out += (i > 0 ? "," : "") + f.name + ":" + std::string(type_name(f.type));
    }
    out += "]";
  }
  return out;
}

// --- JSON of values ------------------------------------------------------------------------

/// `s` as valid UTF-8 (JSON text): invalid bytes become U+FFFD.
std::string utf8(std::string_view s) {
  if (std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; }))
    return std::string{s};
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = n > 0 && i + n <= s.size();
    uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; ok && k < n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      ok = (cc & 0xC0) == 0x80;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (ok)
      ok = n == 1 || (n == 2 && cp >= 0x80) ||
           (n == 3 && cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF)) ||
           (n == 4 && cp >= 0x10000 && cp <= 0x10FFFF);
    if (ok) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

nlohmann::json to_json(const value& v) {
  switch (v.type) {
  case value_type::int64:
    return v.i;
  case value_type::dbl:
    return v.d;
  case value_type::string:
    return utf8(v.s);
  default:
    return nullptr;
  }
}

// --- reading checkpoints -------------------------------------------------------------------

/// Discards RocksDB's informational log: a read-only open must not add files to a checkpoint.
class quiet_logger : public rocksdb::Logger {
public:
  using rocksdb::Logger::Logv;
  void Logv(const rocksdb::InfoLogLevel, const char*, va_list) override {}
};

/// The RocksDB of one checkpoint directory, opened read-only with all its column families.
class checkpoint_db {
public:
  explicit checkpoint_db(const std::string& chk_dir)
      : path_((fs::path{chk_dir} / "rocksdb").string()) {
    if (!fs::is_directory(path_))
      throw std::runtime_error("checkpoint " + chk_dir + " has no state directory " + path_);
    rocksdb::Options options;
    options.create_if_missing = false;
    options.info_log = std::make_shared<quiet_logger>();
    std::vector<std::string> names;
    if (auto s = rocksdb::DB::ListColumnFamilies(options, path_, &names); !s.ok())
      throw std::runtime_error("checkpoint " + chk_dir +
                               ": cannot list its column families: " + s.ToString());
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
    for (const auto& n : names)
      descriptors.emplace_back(n, rocksdb::ColumnFamilyOptions{});
    rocksdb::DB* raw = nullptr;
    if (auto s = rocksdb::DB::OpenForReadOnly(options, path_, descriptors, &handles_, &raw);
        !s.ok())
      throw std::runtime_error("checkpoint " + chk_dir + ": cannot open " + path_ +
                               " read-only: " + s.ToString());
    db_.reset(raw);
    for (size_t i = 0; i < handles_.size() && i < names.size(); ++i)
      by_name_.emplace(names[i], handles_[i]);
  }
  ~checkpoint_db() {
    for (auto* h : handles_)
      db_->DestroyColumnFamilyHandle(h);
    db_.reset();
  }
  checkpoint_db(const checkpoint_db&) = delete;
  checkpoint_db& operator=(const checkpoint_db&) = delete;

  /// The column family `name`, or nullptr.
  rocksdb::ColumnFamilyHandle* cf(const std::string& name) const {
    auto i = by_name_.find(name);
    return i == by_name_.end() ? nullptr : i->second;
  }
  rocksdb::DB* db() const noexcept { return db_.get(); }

private:
  std::string path_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::map<std::string, rocksdb::ColumnFamilyHandle*> by_name_;
};

/// A half-open range of state keys: [lower, upper), no upper = to the end.
struct key_bounds {
  std::string lower;
  std::optional<std::string> upper;
};

std::string kg_prefix(uint32_t kg) {
  return {static_cast<char>((kg >> 8) & 0xFF), static_cast<char>(kg & 0xFF)};
}

/// Sorted (state key, value) pairs of several RocksDB ranges merged into one sequence; a key
/// present in more than one range appears once (from the first range added).
class merged_cursor {
public:
  void add(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, key_bounds bounds) {
    auto s = std::make_unique<sub>();
    s->bounds = std::move(bounds);
    rocksdb::ReadOptions options;
    options.total_order_seek = true;
    if (s->bounds.upper) {
      s->upper = rocksdb::Slice{*s->bounds.upper};
      options.iterate_upper_bound = &s->upper;
    }
    s->it.reset(db->NewIterator(options, cf));
    s->it->Seek(s->bounds.lower);
    check(*s);
    subs_.push_back(std::move(s));
    pick();
  }

  bool valid() const noexcept { return current_ != nullptr; }
  std::string_view key() const { return current_->it->key().ToStringView(); }
  std::string_view value() const { return current_->it->value().ToStringView(); }

  void next() {
    const std::string at{key()};
    for (auto& s : subs_)
      if (s->it->Valid() && s->it->key().ToStringView() == at) {
        s->it->Next();
        check(*s);
      }
    pick();
  }

private:
  struct sub {
    key_bounds bounds;
    rocksdb::Slice upper;
    std::unique_ptr<rocksdb::Iterator> it;
  };

  static void check(const sub& s) {
    if (!s.it->Valid() && !s.it->status().ok())
      throw std::runtime_error("reading checkpoint state failed: " + s.it->status().ToString());
  }

  void pick() {
    current_ = nullptr;
    for (auto& s : subs_)
      if (s->it->Valid() && (current_ == nullptr || s->it->key().compare(current_->it->key()) < 0))
        current_ = s.get();
  }

  std::vector<std::unique_ptr<sub>> subs_;
  sub* current_ = nullptr;
};

/// How an operator's stored values are read and shown.
class op_codec {
public:
  explicit op_codec(const op_plan& op) : op_(&op) {
    const auto& t = op.cfg->type;
    if (t == "aggregate" || t == "window") {
      kind_ = op.window.kind == ops::window_kind::global ? kind::global : kind::windows;
      aggs_.emplace(op.window.aggregates);
    } else {
      kind_ = kind::marker;
    }
  }

  /// Dedup: state keys are record key, NUL, event id.
  bool per_event() const noexcept { return op_->cfg->type == "dedup"; }

  /// True if a stored payload means no state (a window state without windows).
  bool absent(std::string_view payload) const noexcept {
    return kind_ != kind::marker && payload.empty();
  }

  /// The value as the operator would output it.
  nlohmann::json render(std::string_view payload, std::string_view key) const {
    if (kind_ == kind::marker)
      return true;
    thread_local proto::WindowState msg;
    if (!msg.ParseFromArray(payload.data(), static_cast<int>(payload.size())))
      throw std::runtime_error(fmt::format("operator '{}': the stored state of key '{}' is corrupt",
                                           op_->cfg->id, utf8(key)));
    const size_t na = aggs_->accumulators(), nb = aggs_->bests();
    const auto& specs = op_->window.aggregates;
    std::vector<ops::accumulator> accs;
    std::vector<ops::best_record> bests;
    std::vector<value> results;
    auto values_of = [&](const proto::Window& w) {
      if (static_cast<size_t>(w.accumulators_size()) != na ||
          static_cast<size_t>(w.best_size()) != nb)
        throw std::runtime_error(fmt::format(
            "operator '{}': the stored state of key '{}' has {} accumulators and {} best records, "
            "its aggregates need {} and {}",
            op_->cfg->id, utf8(key), w.accumulators_size(), w.best_size(), na, nb));
      accs.clear();
      bests.clear();
      for (const auto& pa : w.accumulators())
        accs.push_back({ops::from_proto(pa.value()), pa.count(), pa.event_time_ms()});
      for (const auto& pb : w.best()) {
        auto& b = bests.emplace_back();
        b.has = pb.has();
        b.by = pb.by();
        for (const auto& f : pb.fields())
          b.fields.push_back(ops::from_proto(f));
      }
      results.clear();
      aggs_->results(accs.data(), bests.data(), results);
      nlohmann::json out = nlohmann::json::object();
      for (size_t i = 0; i < specs.size() && i < results.size(); ++i)
        out[utf8(specs[i].name)] = to_json(results[i]);
      return out;
    };
    if (kind_ == kind::global)
      return msg.windows_size() == 0 ? nlohmann::json(nullptr) : values_of(msg.windows(0));
    std::vector<const proto::Window*> windows;
    for (const auto& w : msg.windows())
      windows.push_back(&w);
    std::sort(windows.begin(), windows.end(), [](const auto* a, const auto* b) {
      return std::tuple(a->start_ms(), a->end_ms()) < std::tuple(b->start_ms(), b->end_ms());
    });
    nlohmann::json out = nlohmann::json::array();
    for (const auto* w : windows)
      out.push_back({{"start_ms", w->start_ms()},
                     {"end_ms", w->end_ms()},
                     {"records", w->records()},
                     {"values", values_of(*w)}});
    return out;
  }

private:
  enum class kind { marker, global, windows };
  const op_plan* op_;
  kind kind_ = kind::marker;
  std::optional<ops::aggregate_set> aggs_;
};

/// One stored entry of an operator, valid until its stream moves on.
struct stored_entry {
  std::string_view state_key;            // as stored: key group + key
  key_group_t key_group = 0;             // its key group
  std::string_view key;                  // the record key
  std::optional<std::string_view> event; // dedup: the event id
  std::string_view payload;              // the value without TTL header
  int64_t expire_at = 0;                 // TTL expiry (ms), 0 = none
};

/// An operator's live entries (not expired, not absent) in state-key order.
class entry_stream {
public:
  entry_stream(merged_cursor cursor, const op_codec& codec, int64_t now_ms)
      : cursor_(std::move(cursor)), codec_(&codec), now_(now_ms) {
    settle();
  }
  bool valid() const noexcept { return cursor_.valid(); }
  const stored_entry& get() const noexcept { return e_; }
  void next() {
    cursor_.next();
    settle();
  }

private:
  /// Skips to the next entry that counts, and fills e_.
  void settle() {
    for (; cursor_.valid(); cursor_.next()) {
      const auto k = cursor_.key();
      if (k.size() < 2)
        continue;
      auto payload = cursor_.value();
      int64_t expire_at = 0;
      if (state::strip_ttl_header(payload, expire_at) && expire_at <= now_)
        continue;
      if (codec_->absent(payload))
        continue;
      e_.state_key = k;
      e_.key_group = state::key_group_of_state_key(k);
      e_.key = k.substr(2);
      e_.event.reset();
      if (codec_->per_event())
        if (auto nul = e_.key.find('\0'); nul != std::string_view::npos) {
          e_.event = e_.key.substr(nul + 1);
          e_.key = e_.key.substr(0, nul);
        }
      e_.payload = payload;
      e_.expire_at = expire_at;
      return;
    }
  }

  merged_cursor cursor_;
  const op_codec* codec_;
  int64_t now_;
  stored_entry e_;
};

/// Name of a checkpoint for answers: the snapshot name, else chk-<id>.
std::string name_of(const state::checkpoint_info& chk) {
  return chk.manifest.snapshot_name().empty() ? "chk-" + std::to_string(chk.manifest.id())
                                              : chk.manifest.snapshot_name();
}

/// Every RocksDB of a checkpoint: its own, or those of its parts (a job spread over nodes).
class checkpoint_reader {
public:
  explicit checkpoint_reader(const state::checkpoint_info& chk) {
    if (chk.manifest.parts_size() == 0) {
      parts_.push_back({chk.manifest, std::make_unique<checkpoint_db>(chk.dir)});
      return;
    }
    for (const auto& p : chk.manifest.parts()) {
      const auto dir = (fs::path{chk.dir} / p.dir()).lexically_normal().string();
      auto m = state::checkpoint_store::read_manifest(dir);
      if (!m)
        throw std::runtime_error(fmt::format("checkpoint {}: part {} ({}) has no readable manifest",
                                             chk.dir, p.slice(), dir));
      parts_.push_back({std::move(*m), std::make_unique<checkpoint_db>(dir)});
    }
  }

  /// The live entries of operator `op`: all of them, or those of `key` (in key group `kg`).
  entry_stream open(const op_plan& op, const op_codec& codec, const std::optional<std::string>& key,
                    key_group_t kg, int64_t now_ms) const {
    merged_cursor cursor;
    const auto& id = op.cfg->id;
    for (const auto& part : parts_) {
      auto* cf = part.db->cf(id);
      if (cf == nullptr)
        continue;
      // The key groups the part holds for the operator (a slice's range), else all.
      uint32_t first = 0, last = 1u << 16;
      for (const auto& o : part.manifest.operators())
        if (o.operator_id() == id && o.last_key_group() > o.first_key_group()) {
          first = o.first_key_group();
          last = std::min(o.last_key_group(), 1u << 16);
        }
      key_bounds b;
      if (key) {
        if (kg < first || kg >= last)
          continue;
        b.lower = state::state_key(kg, *key);
        b.upper = b.lower;
        if (codec.per_event()) { // every "<key>\0<event id>"
          b.lower.push_back('\0');
          b.upper->push_back('\x01');
        } else { // exactly the key
          b.upper->push_back('\0');
        }
      } else {
        b.lower = kg_prefix(first);
        if (last < (1u << 16))
          b.upper = kg_prefix(last);
      }
      cursor.add(part.db->db(), cf, std::move(b));
    }
    return entry_stream(std::move(cursor), codec, now_ms);
  }

private:
  struct part {
    proto::CheckpointManifest manifest;
    std::unique_ptr<checkpoint_db> db;
  };
  std::vector<part> parts_;
};

/// The operators a query covers: `id`, or every stateful one.
std::vector<const op_plan*> selected_ops(const plan& p, const std::string& id) {
  std::vector<const op_plan*> out;
  for (const auto& op : p.ops)
    if (op.stateful && (id.empty() || op.cfg->id == id))
      out.push_back(&op);
  if (!id.empty() && out.empty()) {
    const auto* cfg = p.cfg.find_operator(id);
    const auto stateful = p.column_families();
    std::string list;
    for (const auto& s : stateful)
      list += (list.empty() ? "" : ", ") + s;
    throw inspect_not_found(
        fmt::format("{} in pipeline '{}' (operators with state: {})",
                    cfg == nullptr ? "unknown operator '" + id + "'"
                                   : "operator '" + id + "' (" + cfg->type + ") keeps no state",
                    p.cfg.name, list.empty() ? "none" : list));
  }
  return out;
}

/// Throws state_type_mismatch if checkpoint `chk` lists `op` with another state type.
void check_state_type(const op_plan& op, const state::checkpoint_info& chk) {
  const auto want = state_type(op);
  for (const auto& o : chk.manifest.operators())
    if (o.operator_id() == op.cfg->id && o.state_type() != want)
      throw state_type_mismatch(
          fmt::format("operator '{}': snapshot '{}' holds state of type {}, but the pipeline's "
                      "operator has state type {}; that state cannot be read by this version",
                      op.cfg->id, name_of(chk), o.state_type(), want));
}

/// Key groups of a checkpoint's state: its manifest's max_parallelism (the pipeline's when
/// the manifest has none).
uint32_t max_parallelism_of(const plan& p, const state::checkpoint_info& chk) {
  const auto m = chk.manifest.max_parallelism();
  return m > 0 ? m : std::max(1u, p.cfg.max_parallelism);
}

/// {"key", "key_group"[, "event_id"]} of an entry.
nlohmann::json entry_head(const stored_entry& e) {
  nlohmann::json j{{"key", utf8(e.key)}, {"key_group", e.key_group}};
  if (e.event)
    j["event_id"] = utf8(*e.event);
  return j;
}

// --- deploy plans --------------------------------------------------------------------------

nlohmann::json refs(const std::vector<config::field_ref>& v) {
  auto out = nlohmann::json::array();
  for (const auto& r : v)
    out.push_back(r.name);
  return out;
}

/// Everything of a pipeline config that changes what it does (no positions, no file name).
nlohmann::json canonical(const config::pipeline_config& c) {
  nlohmann::json j;
  j["name"] = c.name;
  j["version"] = c.version;
  j["max_parallelism"] = c.max_parallelism;
  j["mode"] = c.mode;
  j["schema"] = {c.schema.proto, c.schema.message};
  const auto& s = c.source;
  j["source"] = {s.id,
                 s.topic,
                 s.start_offset,
                 s.key.name,
                 s.event_time.name,
                 s.watermark.max_out_of_orderness_ms,
                 s.watermark.idle_timeout_ms,
                 s.partitioned_by_key};
  j["dead_letters"] = c.dead_letter_topic;
  auto ops = nlohmann::json::array();
  for (const auto& o : c.operators) {
    auto set = nlohmann::json::array();
    for (const auto& m : o.set)
      set.push_back({m.name, m.field.name, m.multiply, m.add});
    auto fields = nlohmann::json::array();
    for (const auto& f : o.fields)
      fields.push_back({f.name, f.hash_field, f.type, f.default_value});
    auto aggs = nlohmann::json::array();
    for (const auto& a : o.aggregates)
      aggs.push_back({a.name, a.fn, a.field.name, a.by.name});
    auto weights = nlohmann::json::array();
    for (const auto& [f, w] : o.weights)
      weights.push_back({f.name, w});
    ops.push_back({o.id,
                   o.type,
                   o.input,
                   refs(o.required),
                   o.field.name,
                   o.op,
                   o.value,
                   o.modulus,
                   o.once_per_key,
                   std::move(set),
                   o.ttl_ms,
                   o.key.name,
                   o.key_prefix,
                   std::move(fields),
                   o.on_missing,
                   o.cache_entries,
                   o.cache_ttl_ms,
                   o.batch_size,
                   o.max_delay_ms,
                   o.timeout_ms,
                   o.retries,
                   o.kind,
                   o.size_ms,
                   o.slide_ms,
                   o.gap_ms,
                   o.allowed_lateness_ms,
                   std::move(aggs),
                   o.late_topic,
                   o.bias,
                   std::move(weights),
                   o.output});
  }
  j["operators"] = std::move(ops);
  auto sinks = nlohmann::json::array();
  for (const auto& k : c.sinks)
    sinks.push_back({k.id, k.type, k.from, refs(k.fields), k.field_names, k.key_prefix,
                     refs(k.key_fields), k.topic, k.delivery});
  j["sinks"] = std::move(sinks);
  return j;
}

/// The field an operator's state is keyed by: the key of the nearest key_by above it, else
/// the source key.
std::string key_field(const plan& p, const op_plan& op) {
  for (int i = op.input; i >= 0; i = p.ops[static_cast<size_t>(i)].input) {
    const auto& up = p.ops[static_cast<size_t>(i)];
    if (up.cfg->type == "key_by")
      return up.cfg->key.name;
  }
  return p.cfg.source.key.name;
}

} // namespace

std::string state_type(const op_plan& op) {
  if (!op.stateful || op.cfg == nullptr)
    return {};
  const auto& t = op.cfg->type;
  if (t == "dedup")
    return "dedup";
  if (t == "filter")
    return "filter/once_per_key";
  if (t == "aggregate" || t == "window")
    return window_type(op);
  return t;
}

nlohmann::json inspect_state(const plan& p, const state::checkpoint_info& chk,
                             const inspect_query& q) {
  const auto ops = selected_ops(p, q.operator_id);
  for (const auto* op : ops)
    check_state_type(*op, chk);
  const uint32_t max_p = max_parallelism_of(p, chk);
  const key_group_t kg = q.key ? key_group_of(*q.key, max_p) : key_group_t{0};
  const checkpoint_reader reader{chk};
  const int64_t now = state::wall_clock_ms();
  auto out_ops = nlohmann::json::array();
  size_t found = 0;
  for (const auto* op : ops) {
    const op_codec codec{*op};
    auto entries = nlohmann::json::array();
    size_t n = 0;
    for (auto s = reader.open(*op, codec, q.key, kg, now); s.valid(); s.next(), ++n) {
      if (entries.size() >= q.limit)
        continue; // counted only
      const auto& e = s.get();
      auto j = entry_head(e);
      j["value"] = codec.render(e.payload, e.key);
      if (e.expire_at != 0)
        j["expires_at_ms"] = e.expire_at;
      entries.push_back(std::move(j));
    }
    found += n;
    out_ops.push_back({{"id", op->cfg->id},
                       {"type", op->cfg->type},
                       {"state_type", state_type(*op)},
                       {"keys", n},
                       {"entries", std::move(entries)}});
  }
  if (q.key && found == 0)
    throw inspect_not_found(fmt::format(
        "key '{}' (key group {}) has no state in {} of snapshot '{}'", utf8(*q.key), kg,
        q.operator_id.empty() ? "any operator" : "operator '" + q.operator_id + "'", name_of(chk)));
  return {{"snapshot", name_of(chk)},
          {"id", chk.manifest.id()},
          {"pipeline", chk.manifest.pipeline()},
          {"version", chk.manifest.pipeline_version()},
          {"operators", std::move(out_ops)}};
}

nlohmann::json diff_state(const plan& p, const state::checkpoint_info& a,
                          const state::checkpoint_info& b, const std::string& operator_id,
                          size_t limit) {
  const auto ops = selected_ops(p, operator_id);
  for (const auto* op : ops) {
    check_state_type(*op, a);
    check_state_type(*op, b);
  }
  if (const auto ma = max_parallelism_of(p, a), mb = max_parallelism_of(p, b); ma != mb)
    throw std::runtime_error(fmt::format(
        "snapshots '{}' and '{}' have different max_parallelism ({} and {}): their key groups "
        "cannot be compared",
        name_of(a), name_of(b), ma, mb));
  const checkpoint_reader ra{a}, rb{b};
  const int64_t now = state::wall_clock_ms();
  auto out_ops = nlohmann::json::array();
  for (const auto* op : ops) {
    const op_codec codec{*op};
    size_t added = 0, removed = 0, changed = 0, unchanged = 0;
    auto ex_added = nlohmann::json::array(), ex_removed = nlohmann::json::array(),
         ex_changed = nlohmann::json::array();
    auto sa = ra.open(*op, codec, std::nullopt, 0, now);
    auto sb = rb.open(*op, codec, std::nullopt, 0, now);
    while (sa.valid() || sb.valid()) {
      const int c = !sa.valid()   ? 1
                    : !sb.valid() ? -1
                                  : sa.get().state_key.compare(sb.get().state_key);
      if (c < 0) {
        ++removed;
        if (ex_removed.size() < limit) {
          auto j = entry_head(sa.get());
          j["a"] = codec.render(sa.get().payload, sa.get().key);
          j["b"] = nullptr;
          ex_removed.push_back(std::move(j));
        }
        sa.next();
      } else if (c > 0) {
        ++added;
        if (ex_added.size() < limit) {
          auto j = entry_head(sb.get());
          j["a"] = nullptr;
          j["b"] = codec.render(sb.get().payload, sb.get().key);
          ex_added.push_back(std::move(j));
        }
        sb.next();
      } else {
        const auto& ea = sa.get();
        const auto& eb = sb.get();
        bool same = ea.payload == eb.payload;
        if (!same) {
          auto va = codec.render(ea.payload, ea.key), vb = codec.render(eb.payload, eb.key);
          same = va == vb;
          if (!same && ex_changed.size() < limit) {
            auto j = entry_head(ea);
            j["a"] = std::move(va);
            j["b"] = std::move(vb);
            ex_changed.push_back(std::move(j));
          }
        }
        ++(same ? unchanged : changed);
        sa.next();
        sb.next();
      }
    }
    out_ops.push_back({{"id", op->cfg->id},
                       {"type", op->cfg->type},
                       {"state_type", state_type(*op)},
                       {"added", added},
                       {"removed", removed},
                       {"changed", changed},
                       {"unchanged", unchanged},
                       {"examples",
                        {{"added", std::move(ex_added)},
                         {"removed", std::move(ex_removed)},
                         {"changed", std::move(ex_changed)}}}});
  }
  return {{"a", name_of(a)},
          {"b", name_of(b)},
          {"a_id", a.manifest.id()},
          {"b_id", b.manifest.id()},
          {"operators", std::move(out_ops)}};
}

std::string_view to_string(state_change c) noexcept {
  switch (c) {
  case state_change::keep:
    return "keep";
  case state_change::fresh:
    return "new";
  case state_change::drop:
    return "drop";
  case state_change::incompatible:
    return "incompatible";
  default:
    return "stateless";
  }
}

std::string_view to_string(deploy_action a) noexcept {
  switch (a) {
  case deploy_action::start:
    return "start";
  case deploy_action::update:
    return "update";
  default:
    return "unchanged";
  }
}

nlohmann::json to_json(const deploy_plan& d) {
  auto ops = nlohmann::json::array();
  for (const auto& o : d.operators) {
    nlohmann::json j{{"id", o.id}, {"type", o.type}};
    if (!o.state_type.empty())
      j["state_type"] = o.state_type;
    j["state"] = std::string(to_string(o.state));
    if (o.state == state_change::drop || o.state == state_change::incompatible) {
      j["from_state_type"] = o.from_state_type;
      j["reason"] = o.reason;
    }
    ops.push_back(std::move(j));
  }
  nlohmann::json j{{"pipeline", d.pipeline}};
  j["from_version"] = d.from_version ? nlohmann::json(*d.from_version) : nlohmann::json(nullptr);
  j["to_version"] = d.to_version;
  j["action"] = std::string(to_string(d.action));
  j["compatible"] = d.compatible;
  j["operators"] = std::move(ops);
  return j;
}

deploy_plan compare_plans(const plan* current, const plan& next,
                          const std::vector<proto::OperatorState>* stored) {
  const auto& nc = next.cfg;
  if (current != nullptr) {
    const auto& cc = current->cfg;
    auto refuse = [&](const std::string& key, const std::string& was, const std::string& now,
                      const std::string& why) {
      throw config::config_error(fmt::format(
          "{}: {}: {} differs from the running pipeline's {}; {}", nc.file, key, now, was, why));
    };
    if (cc.name != nc.name)
      refuse("pipeline.name", "'" + cc.name + "'", "'" + nc.name + "'",
             "state cannot carry over to another pipeline (stop the job and start the new "
             "pipeline with its own state)");
    if (cc.max_parallelism != nc.max_parallelism)
      refuse("pipeline.max_parallelism", std::to_string(cc.max_parallelism),
             std::to_string(nc.max_parallelism),
             "state is split into that many key groups for the life of a pipeline");
    if (cc.source.topic != nc.source.topic)
      refuse("source.topic", "'" + cc.source.topic + "'", "'" + nc.source.topic + "'",
             "the stored source offsets belong to the running topic");
  }

  // The state there is now: (id, type, state type), from the snapshot or the running plan.
  struct old_state {
    std::string id, type, state_type;
    const op_plan* op = nullptr; // running plan's operator, if any
  };
  std::vector<old_state> olds;
  if (stored != nullptr) {
    for (const auto& o : *stored) {
      old_state s{o.operator_id(), {}, o.state_type(), nullptr};
      if (current != nullptr)
        if (const auto* oc = current->cfg.find_operator(o.operator_id()))
          s.type = oc->type;
      if (s.type.empty())
        s.type = o.state_type().substr(0, o.state_type().find('/'));
      olds.push_back(std::move(s));
    }
  } else if (current != nullptr) {
    for (const auto& op : current->ops)
      if (op.stateful)
        olds.push_back({op.cfg->id, op.cfg->type, state_type(op), &op});
  }
  auto old_of = [&](const std::string& id) -> const old_state* {
    for (const auto& o : olds)
      if (o.id == id)
        return &o;
    return nullptr;
  };

  deploy_plan d;
  d.pipeline = nc.name;
  if (current != nullptr)
    d.from_version = current->cfg.version;
  d.to_version = nc.version;
  for (const auto& op : next.ops) {
    operator_change c;
    c.id = op.cfg->id;
    c.type = op.cfg->type;
    c.state_type = state_type(op);
    const auto* old = old_of(c.id);
    if (old != nullptr)
      c.from_state_type = old->state_type;
    if (!op.stateful) {
      c.state = old != nullptr ? state_change::drop : state_change::stateless;
      if (old != nullptr)
        c.reason = fmt::format("operator '{}' no longer keeps state: its state ({}) would be "
                               "dropped",
                               c.id, old->state_type);
    } else if (old == nullptr) {
      c.state = state_change::fresh;
    } else if (old->state_type != c.state_type &&
               old->state_type.find_first_of("/[(") == std::string::npos &&
               c.state_type.rfind(old->state_type + "/", 0) == 0) {
      // A manifest written before state types carried their full signature names only the
      // kind ("aggregate"): the same kind is taken as the same state.
      c.state = state_change::keep;
      c.reason = fmt::format("operator '{}': the snapshot names only the kind '{}' of its state "
                             "(written by an older version); assumed to be {}",
                             c.id, old->state_type, c.state_type);
    } else if (old->state_type != c.state_type) {
      c.state = state_change::incompatible;
      c.reason = fmt::format("operator '{}': state type changes from {} to {}", c.id,
                             old->state_type, c.state_type);
    } else if (old->op != nullptr && key_field(*current, *old->op) != key_field(next, op)) {
      c.state = state_change::incompatible;
      c.reason = fmt::format("operator '{}': its state is keyed by '{}', the new version keys it "
                             "by '{}'",
                             c.id, key_field(*current, *old->op), key_field(next, op));
    } else {
      c.state = state_change::keep;
    }
    d.operators.push_back(std::move(c));
  }
  for (const auto& o : olds) {
    if (next.cfg.find_operator(o.id) != nullptr)
      continue;
    operator_change c;
    c.id = o.id;
    c.type = o.type;
    c.from_state_type = o.state_type;
    c.state = state_change::drop;
    c.reason =
        fmt::format("operator '{}' ({}) is removed: its state would be dropped", c.id, o.type);
    d.operators.push_back(std::move(c));
  }
  d.compatible = std::none_of(d.operators.begin(), d.operators.end(), [](const auto& c) {
    return c.state == state_change::drop || c.state == state_change::incompatible;
  });
  const bool all_kept = std::all_of(d.operators.begin(), d.operators.end(), [](const auto& c) {
    return c.state == state_change::keep || c.state == state_change::stateless;
  });
  if (current == nullptr)
    d.action = deploy_action::start;
  else if (all_kept && canonical(current->cfg) == canonical(nc))
    d.action = deploy_action::unchanged;
  else
    d.action = deploy_action::update;
  return d;
}

std::string refusal(const deploy_plan& d) {
  std::vector<const operator_change*> bad;
  for (const auto& c : d.operators)
    if (c.state == state_change::drop || c.state == state_change::incompatible)
      bad.push_back(&c);
  if (bad.empty())
    return {};
  constexpr size_t named = 3;
  std::string out;
  for (size_t i = 0; i < bad.size() && i < named; ++i)
    out += (i > 0 ? "; " : "") + bad[i]->reason;
  if (bad.size() > named)
    out += fmt::format("; and {} more operator(s)", bad.size() - named);
  const bool all_incompatible = std::all_of(
      bad.begin(), bad.end(), [](const auto* c) { return c->state == state_change::incompatible; });
  const bool all_dropped = std::all_of(
      bad.begin(), bad.end(), [](const auto* c) { return c->state == state_change::drop; });
  const bool one = bad.size() == 1;
  out += "; deploy with --allow-drop-state to ";
  if (all_incompatible)
    out += one ? "start it empty" : "start them empty";
  else if (all_dropped)
    out += one ? "drop its state" : "drop their state";
  else
    out += "drop that state (operators whose state type changes start empty)";
  return out;
}

} // namespace keyflow::pipeline
