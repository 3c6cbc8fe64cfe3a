#pragma once
/// \file
/// Checkpoints on disk. Layout under the checkpoint root:
///
///     chk-<id>/rocksdb/...        RocksDB checkpoint (SST files hard-linked from the live DB)
///     chk-<id>/MANIFEST.pb        proto::CheckpointManifest, written last (temp + rename)
///     snapshots/<name>/...        named snapshots, same layout, kept until deleted
///
/// A checkpoint exists only once its manifest does; every file is listed in it with size and
/// SHA-256, so a missing, truncated or altered file is found before restoring from it.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rocksdb/db.h>

#include "proto/checkpoint.pb.h"

namespace keyflow::state {

class state_store;

/// A checkpoint or snapshot found on disk.
struct checkpoint_info {
  std::string dir;                    ///< its directory
  proto::CheckpointManifest manifest; ///< its manifest
};

/// Reports a checkpoint that failed verification: its directory and why.
using bad_checkpoint_handler = std::function<void(const std::string& dir, const std::string& why)>;

/// Creates, verifies, lists, prunes and restores checkpoints under one root directory.
class checkpoint_store {
public:
  /// Checkpoints under `root` (created if missing); keeps the newest `retain` periodic ones.
  explicit checkpoint_store(std::string root, uint32_t retain = 3);

  /// Writes checkpoint `m.id()` of `db` (or snapshot `m.snapshot_name()` if set): RocksDB
  /// checkpoint, file list with checksums, then the manifest. Fills files and size_bytes.
  /// Throws std::runtime_error (leaving no manifest) on failure.
  checkpoint_info create(rocksdb::DB* db, proto::CheckpointManifest m);

  /// Writes checkpoint `m.id()` (or snapshot `m.snapshot_name()`) that has no RocksDB files
  /// of its own: the manifest of a job spread over nodes, whose `parts` name the parts'
  /// checkpoint directories (absolute here; stored relative to the new checkpoint) and
  /// checksums. Throws std::runtime_error (leaving no manifest) on failure.
  checkpoint_info commit_parts(proto::CheckpointManifest m);

  /// Checks a checkpoint directory: manifest parses, every file exists with its size and
  /// checksum, every part (commit_parts) verifies and its manifest has its checksum. Returns an
  /// empty string if valid, else what is wrong (naming the file).
  std::string verify(const std::string& dir, proto::CheckpointManifest* out = nullptr) const;

  /// The manifest in checkpoint directory `dir`, unverified; nullopt if missing or corrupt.
  static std::optional<proto::CheckpointManifest> read_manifest(const std::string& dir);

  /// The newest periodic checkpoint that verifies; calls `on_bad` for each newer one that
  /// does not.
  std::optional<checkpoint_info> latest_valid(const bad_checkpoint_handler& on_bad = {}) const;

  /// The snapshot called `name` if it exists and verifies; throws std::runtime_error naming
  /// the snapshot and the problem otherwise.
  checkpoint_info snapshot(const std::string& name) const;

  /// Ids of periodic checkpoints with a manifest, newest first.
  std::vector<uint64_t> checkpoint_ids() const;

  /// Deletes periodic checkpoints beyond the newest `retain`, and leftovers without manifest.
  void prune();

  /// Replaces `state_dir` with a copy of the checkpoint's RocksDB (SST files hard-linked).
  static void restore_into(const checkpoint_info& chk, const std::string& state_dir);

  /// Copies the keys of key groups [first, last] of every column family of the checkpoint's
  /// RocksDB (opened read-only) into `into`, creating missing column families there; keys
  /// of other key groups are left out. For state split differently than when it was
  /// written (another owner of a key-group range): call it once per checkpoint part.
  /// Returns the number of keys copied; throws std::runtime_error naming the checkpoint.
  static uint64_t import_key_groups(const checkpoint_info& chk, state_store& into, uint32_t first,
                                    uint32_t last);

  /// True if `name` is a safe snapshot name: 1-64 of [A-Za-z0-9._-], not "." or "..".
  static bool valid_snapshot_name(std::string_view name);

  /// Directory of periodic checkpoint `id`.
  std::string checkpoint_dir(uint64_t id) const;

  /// Root directory.
  const std::string& root() const noexcept { return root_; }

  /// Fault injection for tests: called after the RocksDB checkpoint is written and before
  /// its manifest (a crash here must leave the checkpoint incomplete and ignored).
  std::function<void()> before_manifest;

private:
  std::string root_;
  uint32_t retain_;
  // (name, size) -> sha256 of SST files already hashed; SST names are never reused.
  std::vector<proto::CheckpointFile> known_files_;
};

/// SHA-256 of a file as lower-case hex; throws std::runtime_error if unreadable.
std::string sha256_file(const std::string& path);

} // namespace keyflow::state
