#include "state/checkpoint_store.hpp"

#include "state/state_store.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <fcntl.h>
#include <openssl/evp.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>
#include <unistd.h>

namespace keyflow::state {

namespace fs = std::filesystem;

namespace {

constexpr const char* manifest_name = "MANIFEST.pb";
constexpr const char* prefix = "chk-";

void fsync_path(const fs::path& p) {
  int fd = ::open(p.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync of the directory.
void write_atomically(const fs::path& path, const std::string& bytes) {
  auto tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out{tmp, std::ios::binary | std::ios::trunc};
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out.flush())
      throw std::runtime_error("cannot write " + tmp.string());
  }
  fsync_path(tmp);
  fs::rename(tmp, path);
  fsync_path(path.parent_path());
}

std::optional<uint64_t> parse_id(const std::string& name) {
  if (name.rfind(prefix, 0) != 0 || name.size() == 4)
    return std::nullopt;
  uint64_t id = 0;
  for (size_t i = 4; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9')
      return std::nullopt;
    id = id * 10 + static_cast<uint64_t>(name[i] - '0');
  }
  return id;
}

/// Directory for new checkpoint `m` (periodic, or snapshot `m.snapshot_name()`) under `root`;
/// throws if the name is invalid or a checkpoint with a manifest is there already.
fs::path new_checkpoint_dir(const std::string& root, const proto::CheckpointManifest& m) {
  fs::path dir = m.snapshot_name().empty() ? fs::path{root} / (prefix + std::to_string(m.id()))
                                           : fs::path{root} / "snapshots" / m.snapshot_name();
  if (!m.snapshot_name().empty() && !checkpoint_store::valid_snapshot_name(m.snapshot_name()))
    throw std::runtime_error("invalid snapshot name '" + m.snapshot_name() + "'");
  if (fs::exists(dir / manifest_name))
    throw std::runtime_error("checkpoint directory " + dir.string() + " already exists");
  return dir;
}

} // namespace

std::string sha256_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    throw std::runtime_error("cannot read " + path);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    EVP_DigestUpdate(ctx, buf.data(), static_cast<size_t>(in.gcount()));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  std::string hex;
  char two[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(two, sizeof(two), "%02x", md[i]);
    hex += two;
  }
  return hex;
}

checkpoint_store::checkpoint_store(std::string root, uint32_t retain)
    : root_(std::move(root)), retain_(std::max(1u, retain)) {
  fs::create_directories(fs::path{root_} / "snapshots");
}

std::string checkpoint_store::checkpoint_dir(uint64_t id) const {
  return (fs::path{root_} / (prefix + std::to_string(id))).string();
}

bool checkpoint_store::valid_snapshot_name(std::string_view name) {
  if (name.empty() || name.size() > 64 || name == "." || name == "..")
    return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

checkpoint_info checkpoint_store::create(rocksdb::DB* db, proto::CheckpointManifest m) {
  auto dir = new_checkpoint_dir(root_, m);
  fs::remove_all(dir);
  fs::create_directories(dir);
  rocksdb::Checkpoint* raw = nullptr;
  auto s = rocksdb::Checkpoint::Create(db, &raw);
  std::unique_ptr<rocksdb::Checkpoint> chk{raw};
  if (s.ok())
    s = chk->CreateCheckpoint((dir / "rocksdb").string());
  if (!s.ok()) {
    fs::remove_all(dir);
    throw std::runtime_error("RocksDB checkpoint into " + dir.string() +
                             " failed: " + s.ToString());
  }
  uint64_t total = 0;
  std::vector<proto::CheckpointFile> files;
  for (const auto& e : fs::recursive_directory_iterator(dir / "rocksdb")) {
    if (!e.is_regular_file())
      continue;
    proto::CheckpointFile f;
    f.set_path(fs::relative(e.path(), dir).string());
    f.set_size(e.file_size());
    auto name = e.path().filename().string();
    bool immutable = name.size() > 4 && name.substr(name.size() - 4) == ".sst";
    auto known = std::find_if(known_files_.begin(), known_files_.end(), [&](const auto& k) {
      return immutable && k.path() == name && k.size() == f.size();
    });
    f.set_sha256(known != known_files_.end() ? known->sha256() : sha256_file(e.path().string()));
    if (immutable && known == known_files_.end()) {
      proto::CheckpointFile k = f;
      k.set_path(name);
      known_files_.push_back(std::move(k));
    }
    total += f.size();
    files.push_back(std::move(f));
  }
  std::sort(files.begin(), files.end(),
            [](const auto& a, const auto& b) { return a.path() < b.path(); });
  for (auto& f : files)
    *m.add_files() = std::move(f);
  m.set_size_bytes(total);
  if (before_manifest)
    before_manifest();
  write_atomically(dir / manifest_name, m.SerializeAsString());
  return {dir.string(), std::move(m)};
}

checkpoint_info checkpoint_store::commit_parts(proto::CheckpointManifest m) {
  auto dir = new_checkpoint_dir(root_, m);
  fs::create_directories(dir);
  uint64_t total = 0;
  for (auto& part : *m.mutable_parts()) {
    fs::path abs{part.dir()};
    auto pm = read_manifest(abs.string());
    if (!pm)
      throw std::runtime_error("part " + std::to_string(part.slice()) + ": manifest in " +
                               abs.string() + " is missing or corrupt");
    part.set_size_bytes(pm->size_bytes());
    part.set_manifest_sha256(sha256_file((abs / manifest_name).string()));
    part.set_dir(fs::relative(abs, dir).string());
    total += part.size_bytes();
  }
  m.set_size_bytes(total);
  if (before_manifest)
    before_manifest();
  write_atomically(dir / manifest_name, m.SerializeAsString());
  return {dir.string(), std::move(m)};
}

std::optional<proto::CheckpointManifest> checkpoint_store::read_manifest(const std::string& dir) {
  std::ifstream in{fs::path{dir} / manifest_name, std::ios::binary};
  proto::CheckpointManifest m;
  if (!in || !m.ParseFromString(std::string{std::istreambuf_iterator<char>(in), {}}))
    return std::nullopt;
  return m;
}

std::string checkpoint_store::verify(const std::string& dir, proto::CheckpointManifest* out) const {
  fs::path d{dir};
  if (!fs::exists(d / manifest_name))
    return "manifest " + (d / manifest_name).string() + " is missing";
  auto read = read_manifest(dir);
  if (!read)
    return "manifest " + (d / manifest_name).string() + " is corrupt";
  auto& m = *read;
  for (const auto& f : m.files()) {
    auto p = d / f.path();
    std::error_code ec;
    auto size = fs::file_size(p, ec);
    if (ec)
      return "file " + p.string() + " is missing";
    if (size != f.size())
      return "file " + p.string() + " has " + std::to_string(size) + " bytes, manifest says " +
             std::to_string(f.size());
    if (sha256_file(p.string()) != f.sha256())
      return "file " + p.string() + " fails its SHA-256 checksum";
  }
  for (const auto& part : m.parts()) {
    auto pd = (d / part.dir()).lexically_normal();
    auto pm = (pd / manifest_name).string();
    if (!fs::exists(pm))
      return "part " + std::to_string(part.slice()) + ": manifest " + pm + " is missing";
    if (sha256_file(pm) != part.manifest_sha256())
      return "part " + std::to_string(part.slice()) + ": manifest " + pm +
             " fails its SHA-256 checksum";
    if (auto why = verify(pd.string()); !why.empty())
      return "part " + std::to_string(part.slice()) + ": " + why;
  }
  if (out != nullptr)
    *out = std::move(m);
  return {};
}

std::vector<uint64_t> checkpoint_store::checkpoint_ids() const {
  std::vector<uint64_t> ids;
  for (const auto& e : fs::directory_iterator(root_)) {
    auto id = parse_id(e.path().filename().string());
    if (id && fs::exists(e.path() / manifest_name))
      ids.push_back(*id);
  }
  std::sort(ids.rbegin(), ids.rend());
  return ids;
}

std::optional<checkpoint_info>
checkpoint_store::latest_valid(const bad_checkpoint_handler& on_bad) const {
  for (auto id : checkpoint_ids()) {
    checkpoint_info info{checkpoint_dir(id), {}};
    auto why = verify(info.dir, &info.manifest);
    if (why.empty())
      return info;
    if (on_bad)
      on_bad(info.dir, why);
  }
  return std::nullopt;
}

checkpoint_info checkpoint_store::snapshot(const std::string& name) const {
  if (!valid_snapshot_name(name))
    throw std::runtime_error("invalid snapshot name '" + name +
                             "' (1-64 characters of A-Z a-z 0-9 . _ -)");
  checkpoint_info info{(fs::path{root_} / "snapshots" / name).string(), {}};
  if (!fs::exists(info.dir))
    throw std::runtime_error("snapshot '" + name + "' does not exist under " + root_);
  auto why = verify(info.dir, &info.manifest);
  if (!why.empty())
    throw std::runtime_error("snapshot '" + name + "' is unusable: " + why);
  return info;
}

void checkpoint_store::prune() {
  auto ids = checkpoint_ids();
  for (size_t i = retain_; i < ids.size(); ++i)
    fs::remove_all(checkpoint_dir(ids[i]));
  // Leftovers of checkpoints that never got a manifest (crash mid-checkpoint), older than
  // the newest complete one.
  uint64_t newest = ids.empty() ? 0 : ids.front();
  for (const auto& e : fs::directory_iterator(root_)) {
    auto id = parse_id(e.path().filename().string());
    if (id && *id < newest && !fs::exists(e.path() / manifest_name))
      fs::remove_all(e.path());
  }
}

void checkpoint_store::restore_into(const checkpoint_info& chk, const std::string& state_dir) {
  fs::path target{state_dir};
  fs::remove_all(target);
  fs::create_directories(target);
  fs::path src = fs::path{chk.dir} / "rocksdb";
  for (const auto& e : fs::directory_iterator(src)) {
    auto to = target / e.path().filename();
    auto name = e.path().filename().string();
    std::error_code ec;
    if (name.size() > 4 && name.substr(name.size() - 4) == ".sst")
      fs::create_hard_link(e.path(), to, ec);
    if (ec || !fs::exists(to))
      fs::copy_file(e.path(), to, fs::copy_options::overwrite_existing);
  }
  fsync_path(target);
}

uint64_t checkpoint_store::import_key_groups(const checkpoint_info& chk, state_store& into,
                                             uint32_t first, uint32_t last) {
  const auto path = (fs::path{chk.dir} / "rocksdb").string();
  auto fail = [&](const std::string& what, const rocksdb::Status& s) {
    return std::runtime_error("checkpoint " + chk.dir + ": " + what + ": " + s.ToString());
  };
  std::vector<std::string> names;
  rocksdb::Options options;
  if (auto s = rocksdb::DB::ListColumnFamilies(options, path, &names); !s.ok())
    throw fail("cannot list its column families", s);
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& n : names)
    descriptors.emplace_back(n, rocksdb::ColumnFamilyOptions{});
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  if (auto s = rocksdb::DB::OpenForReadOnly(options, path, descriptors, &handles, &raw); !s.ok())
    throw fail("cannot open it", s);
  std::unique_ptr<rocksdb::DB> db{raw};
  const std::string lo{static_cast<char>(first >> 8), static_cast<char>(first & 0xFF)};
  uint64_t copied = 0;
  for (size_t i = 0; i < handles.size(); ++i) {
    auto* target = into.ensure_column_family(names[i]);
    std::unique_ptr<rocksdb::Iterator> it{db->NewIterator(rocksdb::ReadOptions{}, handles[i])};
    rocksdb::WriteBatch batch;
    for (it->Seek(lo); it->Valid(); it->Next()) {
      auto k = it->key().ToStringView();
      if (k.size() < 2 || key_group_of_state_key(k) > last)
        break;
      batch.Put(target, it->key(), it->value());
      ++copied;
      if (batch.Count() >= 10000) {
        if (auto s = into.write(batch); !s.ok())
          throw fail("cannot write imported keys", s);
        batch.Clear();
      }
    }
    if (!it->status().ok())
      throw fail("cannot read column family " + names[i], it->status());
    if (auto s = into.write(batch); !s.ok())
      throw fail("cannot write imported keys", s);
  }
  for (auto* h : handles)
    db->DestroyColumnFamilyHandle(h);
  return copied;
}

} // namespace keyflow::state
