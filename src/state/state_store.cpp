#include "state/state_store.hpp"

#include <algorithm>
#include <stdexcept>

#include "state/ttl.hpp"

namespace keyflow::state {

void state_key_into(std::string& out, key_group_t kg, std::string_view key) {
  out.clear();
  out.reserve(2 + key.size());
  out.push_back(static_cast<char>(kg >> 8));
  out.push_back(static_cast<char>(kg & 0xff));
  out.append(key);
}

std::string state_key(key_group_t kg, std::string_view key) {
  std::string out;
  state_key_into(out, kg, key);
  return out;
}

key_group_t key_group_of_state_key(std::string_view k) noexcept {
  if (k.size() < 2)
    return 0;
  return static_cast<key_group_t>((static_cast<unsigned char>(k[0]) << 8) |
                                  static_cast<unsigned char>(k[1]));
}

namespace {

rocksdb::ColumnFamilyOptions cf_options() {
  rocksdb::ColumnFamilyOptions opts;
  // Point lookups only (a key group's keys are cut out by range later, not scanned now):
  // 64 MiB block cache, bloom filters and hash index on data blocks.
  opts.OptimizeForPointLookup(64);
  // State with a TTL is dropped when compaction meets it expired (state/ttl.hpp).
  static ttl_compaction_filter ttl_filter;
  opts.compaction_filter = &ttl_filter;
  return opts;
}

} // namespace

std::unique_ptr<state_store> state_store::open(const std::string& dir,
                                               const std::vector<std::string>& column_families) {
  rocksdb::DBOptions db_opts;
  db_opts.create_if_missing = true;
  db_opts.create_missing_column_families = true;
  db_opts.IncreaseParallelism(2);
  std::vector<std::string> names;
  // Column families already on disk must be opened as well.
  if (auto s = rocksdb::DB::ListColumnFamilies(db_opts, dir, &names); !s.ok())
    names.clear();
  if (std::find(names.begin(), names.end(), rocksdb::kDefaultColumnFamilyName) == names.end())
    names.insert(names.begin(), rocksdb::kDefaultColumnFamilyName);
  for (const auto& cf : column_families)
    if (std::find(names.begin(), names.end(), cf) == names.end())
      names.push_back(cf);
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& n : names)
    descriptors.emplace_back(n, cf_options());
  std::unique_ptr<state_store> store{new state_store};
  store->dir_ = dir;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(db_opts, dir, descriptors, &store->handles_, &raw);
  if (!s.ok())
    throw std::runtime_error("cannot open state directory '" + dir + "': " + s.ToString());
  store->db_.reset(raw);
  for (auto* h : store->handles_)
    store->by_name_.emplace(h->GetName(), h);
  // Keyed state is made durable by checkpoints, not by the WAL.
  store->write_options_.disableWAL = true;
  return store;
}

state_store::~state_store() {
  if (!db_)
    return;
  db_->Flush(rocksdb::FlushOptions{});
  for (auto* h : handles_)
    db_->DestroyColumnFamilyHandle(h);
  db_->Close();
}

rocksdb::ColumnFamilyHandle* state_store::column_family(std::string_view name) const {
  auto i = by_name_.find(std::string{name});
  return i == by_name_.end() ? nullptr : i->second;
}

rocksdb::ColumnFamilyHandle* state_store::ensure_column_family(const std::string& name) {
  if (auto* h = column_family(name))
    return h;
  rocksdb::ColumnFamilyHandle* h = nullptr;
  if (auto s = db_->CreateColumnFamily(cf_options(), name, &h); !s.ok())
    throw std::runtime_error("cannot create column family '" + name + "' in '" + dir_ +
                             "': " + s.ToString());
  handles_.push_back(h);
  by_name_.emplace(name, h);
  return h;
}

void state_store::drop_column_family(const std::string& name) {
  auto i = by_name_.find(name);
  if (i == by_name_.end() || name == rocksdb::kDefaultColumnFamilyName)
    return;
  rocksdb::ColumnFamilyHandle* h = i->second;
  if (auto s = db_->DropColumnFamily(h); !s.ok())
    throw std::runtime_error("cannot drop column family '" + name + "' in '" + dir_ +
                             "': " + s.ToString());
  db_->DestroyColumnFamilyHandle(h);
  handles_.erase(std::find(handles_.begin(), handles_.end(), h));
  by_name_.erase(i);
}

std::vector<std::string> state_store::column_family_names() const {
  std::vector<std::string> out;
  for (const auto* h : handles_)
    if (h->GetName() != rocksdb::kDefaultColumnFamilyName)
      out.push_back(h->GetName());
  return out;
}

rocksdb::Status state_store::get(rocksdb::ColumnFamilyHandle* cf, std::string_view key,
                                 std::string* value) {
  return db_->Get(rocksdb::ReadOptions{}, cf, rocksdb::Slice{key.data(), key.size()}, value);
}

rocksdb::Status state_store::write(rocksdb::WriteBatch& batch) {
  return db_->Write(write_options_, &batch);
}

} // namespace keyflow::state
