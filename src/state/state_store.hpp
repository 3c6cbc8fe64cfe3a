#pragma once
/// \file
/// The node's RocksDB instance: one per node, one column family per stateful operator,
/// keys prefixed by a 2-byte big-endian key group so a key-group range is one contiguous
/// key range (cut out, moved or dropped as a unit).

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "core/key_group.hpp"

namespace keyflow::state {

/// Builds the RocksDB key of `key` in key group `kg`.
std::string state_key(key_group_t kg, std::string_view key);

/// Appends the state key of (`kg`, `key`) to `out` (cleared first); avoids allocation.
void state_key_into(std::string& out, key_group_t kg, std::string_view key);

/// Key group encoded in a state key's first two bytes.
key_group_t key_group_of_state_key(std::string_view state_key) noexcept;

/// Owns the RocksDB instance and its column families.
class state_store {
public:
  /// Opens (creating if needed) the database at `dir` with the given column families;
  /// column families already present on disk are opened too. Throws std::runtime_error
  /// naming the directory and RocksDB's reason on failure.
  static std::unique_ptr<state_store> open(const std::string& dir,
                                           const std::vector<std::string>& column_families);

  ~state_store();
  state_store(const state_store&) = delete;
  state_store& operator=(const state_store&) = delete;

  /// Handle of a column family opened at start; nullptr if unknown.
  rocksdb::ColumnFamilyHandle* column_family(std::string_view name) const;

  /// The column family `name`, created (with the store's options) if it does not exist.
  /// Throws std::runtime_error with RocksDB's reason on failure.
  rocksdb::ColumnFamilyHandle* ensure_column_family(const std::string& name);

  /// Drops column family `name` and its data (an operator whose state must not carry over);
  /// nothing if it does not exist. Throws std::runtime_error with RocksDB's reason.
  void drop_column_family(const std::string& name);

  /// Names of the column families other than RocksDB's default one.
  std::vector<std::string> column_family_names() const;

  /// Reads one value; NotFound if absent.
  rocksdb::Status get(rocksdb::ColumnFamilyHandle* cf, std::string_view key, std::string* value);

  /// Applies a batch atomically.
  rocksdb::Status write(rocksdb::WriteBatch& batch);

  /// Raw database, for iteration and checkpoints.
  rocksdb::DB* db() const noexcept { return db_.get(); }

  /// Directory of the database.
  const std::string& dir() const noexcept { return dir_; }

private:
  state_store() = default;
  std::string dir_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::unordered_map<std::string, rocksdb::ColumnFamilyHandle*> by_name_;
  rocksdb::WriteOptions write_options_;
};

} // namespace keyflow::state
