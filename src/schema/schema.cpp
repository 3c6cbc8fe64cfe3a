#include "schema/schema.hpp"

#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>
#include <google/protobuf/compiler/importer.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

namespace keyflow::schema {

namespace {

namespace pb = google::protobuf;
using wfl = pb::internal::WireFormatLite;

// --- loading ----------------------------------------------------------------------------

/// Collects the errors of a .proto load as "<file>:<line>:<col>: <message>".
class error_collector final : public pb::compiler::MultiFileErrorCollector {
public:
  explicit error_collector(pb::compiler::DiskSourceTree& tree) : tree_(tree) {}

  void AddError(const std::string& filename, int line, int column,
                const std::string& message) override {
    std::string disk;
    if (!tree_.VirtualFileToDiskFile(filename, &disk))
      disk = filename;
    if (line >= 0)
      errors.push_back(fmt::format("{}:{}:{}: {}", disk, line + 1, column + 1, message));
    else
      errors.push_back(fmt::format("{}: {}", disk, message));
  }

  std::vector<std::string> errors; ///< in the order reported

private:
  pb::compiler::DiskSourceTree& tree_;
};

/// The loaded schema: owns the source tree and the importer whose pool holds `desc`.
struct loaded_schema final : message_schema {
  pb::compiler::DiskSourceTree tree;
  error_collector errors{tree};
  pb::compiler::Importer importer{&tree, &errors};
  const pb::Descriptor* desc = nullptr;
  std::string type;
  std::string file;
};

/// Appends the full names of `d` and its nested types (map entries left out).
void list_types(const pb::Descriptor* d, std::vector<std::string>& names) {
  if (d->options().map_entry())
    return;
  names.push_back(d->full_name());
  for (int i = 0; i < d->nested_type_count(); ++i)
    list_types(d->nested_type(i), names);
}

/// "a, b, c" from the field names of `d`.
std::string field_names(const pb::Descriptor* d) {
  std::vector<std::string> names;
  for (int i = 0; i < d->field_count(); ++i)
    names.push_back(d->field(i)->name());
  return names.empty() ? std::string("none") : fmt::format("{}", fmt::join(names, ", "));
}

/// Value type a scalar field yields.
value_type scalar_type(const pb::FieldDescriptor* f) {
  switch (f->cpp_type()) {
  case pb::FieldDescriptor::CPPTYPE_DOUBLE:
  case pb::FieldDescriptor::CPPTYPE_FLOAT:
    return value_type::dbl;
  case pb::FieldDescriptor::CPPTYPE_STRING:
    return value_type::string;
  case pb::FieldDescriptor::CPPTYPE_MESSAGE:
    return value_type::none;
  default:
    return value_type::int64;
  }
}

} // namespace

std::shared_ptr<const message_schema>
message_schema::load(const std::string& proto_file, const std::string& message_type,
                     const std::vector<std::string>& import_dirs) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(proto_file, ec) || !std::ifstream(proto_file).good())
    throw schema_error(fmt::format("cannot read proto file '{}'", proto_file));

  auto s = std::make_shared<loaded_schema>();
  const fs::path path(proto_file);
  const std::string dir = path.parent_path().empty() ? "." : path.parent_path().string();
  s->tree.MapPath("", dir);
  for (const auto& d : import_dirs)
    s->tree.MapPath("", d);
  // Last, the well-known types (google/protobuf/*.proto) where the protobuf headers live.
  for (const char* d : {"/usr/include", "/usr/local/include"})
    if (fs::exists(fs::path(d) / "google/protobuf/timestamp.proto", ec))
      s->tree.MapPath("", d);

  const pb::FileDescriptor* fd = s->importer.Import(path.filename().string());
  if (fd == nullptr) {
    if (s->errors.errors.empty())
      throw schema_error(fmt::format("cannot load proto file '{}': {}", proto_file,
                                     s->tree.GetLastErrorMessage()));
    throw schema_error(fmt::format("{}", fmt::join(s->errors.errors, "\n")));
  }
  s->desc = s->importer.pool()->FindMessageTypeByName(message_type);
  if (s->desc == nullptr) {
    std::vector<std::string> names;
    for (int i = 0; i < fd->message_type_count(); ++i)
      list_types(fd->message_type(i), names);
    throw schema_error(
        fmt::format("no message type '{}' in '{}' (types: {})", message_type, proto_file,
                    names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", "))));
  }
  s->type = s->desc->full_name();
  s->file = proto_file;
  return s;
}

const google::protobuf::Descriptor* message_schema::descriptor() const noexcept {
  return static_cast<const loaded_schema*>(this)->desc;
}

const std::string& message_schema::type_name() const noexcept {
  return static_cast<const loaded_schema*>(this)->type;
}

const std::string& message_schema::file() const noexcept {
  return static_cast<const loaded_schema*>(this)->file;
}

field_path message_schema::resolve(std::string_view path) const {
  const std::string& root = type_name();
  field_path fp;
  fp.path = std::string(path);
  // "<what> field '<path>' in <Type>: <why>"
  auto fail = [&](std::string_view what, const std::string& why) {
    return schema_error(fmt::format("{} field '{}' in {}: {}", what, path, root, why));
  };
  if (path.empty())
    throw schema_error(fmt::format("empty field path in {}", root));
  const pb::Descriptor* msg = descriptor();
  size_t pos = 0;
  while (true) {
    const size_t dot = path.find('.', pos);
    const std::string step(path.substr(pos, dot == std::string_view::npos ? dot : dot - pos));
    const bool last = dot == std::string_view::npos;
    if (step.empty())
      throw fail("invalid", fmt::format("empty step at offset {}", pos));
    const pb::FieldDescriptor* f = msg->FindFieldByName(step);
    if (f == nullptr)
      throw fail("unknown", fmt::format("'{}' has no field '{}' (fields: {})", msg->full_name(),
                                        step, field_names(msg)));
    const std::string where = fmt::format("field '{}' of '{}'", step, msg->full_name());
    fp.steps.push_back(f);
    if (f->is_map()) {
      const pb::FieldDescriptor* key = f->message_type()->map_key();
      const pb::FieldDescriptor* val = f->message_type()->map_value();
      if (key->type() != pb::FieldDescriptor::TYPE_STRING)
        throw fail("unsupported",
                   fmt::format("{} is a map with {} keys; only map<string, scalar> entries "
                               "can be addressed",
                               where, key->type_name()));
      if (val->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE)
        throw fail("unsupported",
                   fmt::format("{} is a map with message values ({}); only map<string, "
                               "scalar> entries can be addressed",
                               where, val->message_type()->full_name()));
      if (last)
        throw fail("incomplete",
                   fmt::format("{} is a map; name a key, e.g. '{}.<key>'", where, path));
      fp.map_key = std::string(path.substr(dot + 1)); // the rest, dots included
      if (fp.map_key.empty())
        throw fail("invalid", fmt::format("empty map key after {}", where));
      fp.type = scalar_type(val);
      return fp;
    }
    if (f->is_repeated())
      throw fail("unsupported",
                 fmt::format("{} is a repeated field; repeated fields are not supported", where));
    if (f->type() == pb::FieldDescriptor::TYPE_GROUP)
      throw fail("unsupported", fmt::format("{} is a group; groups are not supported", where));
    if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      if (last)
        throw fail("incomplete",
                   fmt::format("{} is a message ({}); name one of its fields ({})", where,
                               f->message_type()->full_name(), field_names(f->message_type())));
      msg = f->message_type();
    } else {
      if (!last)
        throw fail("unknown",
                   fmt::format("{} is a scalar ({}) and has no fields", where, f->type_name()));
      fp.type = scalar_type(f);
      return fp;
    }
    pos = dot + 1;
  }
}

// --- decoding -----------------------------------------------------------------------------

namespace {

/// What a tracked field of a message level is.
enum class kind : uint8_t {
  scalar,  ///< a scalar: decoded into `slot` (or only tracked to clear oneof siblings)
  message, ///< an embedded message: scanned as node `sub` (or skipped, if none)
  map,     ///< a map<string, scalar>: entries whose key is one of keys[sub, sub + nsub)
};

constexpr uint32_t no_node = UINT32_MAX;

/// One tracked field of a message level.
struct child {
  uint32_t number = 0;                        // field number
  uint8_t wire = 0;                           // wire type the field must have (else: unknown field)
  kind k = kind::scalar;                      // what it is
  uint8_t ftype = 0;                          // scalar: its type; map: the value's type
  uint8_t vwire = 0;                          // map: wire type of the value
  bool implicit = false;                      // default value reads as absent (proto3 scalar)
  bool utf8 = false;                          // strings must be valid UTF-8 (proto3 string)
  bool closed_enum = false;                   // unknown enum numbers leave the field unset (proto2)
  int32_t slot = -1;                          // scalar: output slot, -1 when not requested
  uint32_t sub = no_node;                     // message: node; map: first key
  uint32_t nsub = 0;                          // map: number of keys
  uint32_t clear_begin = 0;                   // oneof: slots of the other members
  uint32_t clear_end = 0;                     //   in clears[clear_begin, clear_end)
  const pb::FieldDescriptor* field = nullptr; // for error messages and enum values
  const pb::FieldDescriptor* key_field = nullptr;   // map: the entry's key
  const pb::FieldDescriptor* value_field = nullptr; // map: the entry's value
};

/// One message level: its tracked fields, children[begin, end), sorted by number.
struct node {
  uint32_t begin = 0;
  uint32_t end = 0;
};

/// A wanted map key and the slot it fills.
struct map_key {
  std::string key;
  uint32_t slot = 0;
};

/// Tree of the requested paths while the decoder is built.
struct build_node;
struct build_child {
  const pb::FieldDescriptor* field = nullptr;
  int32_t slot = -1;
  std::unique_ptr<build_node> sub;
  std::vector<map_key> keys;
};
struct build_node {
  const pb::Descriptor* desc = nullptr;
  std::map<uint32_t, build_child> children;
};

/// Appends every output slot below `c`.
void collect_slots(const build_child& c, std::vector<uint32_t>& out) {
  if (c.slot >= 0)
    out.push_back(static_cast<uint32_t>(c.slot));
  for (const auto& k : c.keys)
    out.push_back(k.slot);
  if (c.sub)
    for (const auto& [n, cc] : c.sub->children)
      collect_slots(cc, out);
}

/// True for a well-formed UTF-8 sequence (no overlongs, surrogates or values past U+10FFFF).
bool valid_utf8(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* e = p + s.size();
  constexpr uint64_t high_bits = 0x8080808080808080ull;
  while (p < e) {
    uint64_t word = 0;
    if (e - p >= 8 && (std::memcpy(&word, p, 8), (word & high_bits) == 0)) {
      p += 8; // eight ASCII bytes
      continue;
    }
    const unsigned c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int n = 0;
    unsigned lo = 0x80, hi = 0xBF; // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF)
      n = 1;
    else if (c >= 0xE0 && c <= 0xEF)
      n = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4)
      n = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else
      return false;
    if (e - p <= n || p[1] < lo || p[1] > hi)
      return false;
    for (int i = 2; i <= n; ++i)
      if ((p[i] & 0xC0) != 0x80)
        return false;
    p += n + 1;
  }
  return true;
}

/// Bytes left before the current limit. The stream reads one flat array, so its buffer ends
/// at the limit: no call into the library needed.
int bytes_left(pb::io::CodedInputStream& in) {
  const void* data = nullptr;
  int size = 0;
  in.GetDirectBufferPointerInline(&data, &size);
  return size;
}

/// A value read from the wire, before it is stored.
struct scalar_value {
  int64_t i = 0;
  double d = 0;
  std::string_view s;
};

/// Stores `v`, read from a field of type `ftype`, into `o`; with `implicit` (proto3 field
/// without presence), the default value reads as absent, as protobuf's HasField says.
void store(uint8_t ftype, const scalar_value& v, bool implicit, value& o) {
  switch (static_cast<pb::FieldDescriptor::Type>(ftype)) {
  case pb::FieldDescriptor::TYPE_STRING:
  case pb::FieldDescriptor::TYPE_BYTES:
    o.type = implicit && v.s.empty() ? value_type::none : value_type::string;
    o.s.assign(v.s.data(), v.s.size());
    return;
  case pb::FieldDescriptor::TYPE_DOUBLE:
  case pb::FieldDescriptor::TYPE_FLOAT: {
    uint64_t bits = 0;
    std::memcpy(&bits, &v.d, sizeof bits); // -0.0 counts as set, as in protobuf
    o.type = implicit && bits == 0 ? value_type::none : value_type::dbl;
    o.d = v.d;
    return;
  }
  default:
    o.type = implicit && v.i == 0 ? value_type::none : value_type::int64;
    o.i = v.i;
  }
}

} // namespace

struct decoder::impl {
  std::shared_ptr<const message_schema> schema;
  std::vector<node> nodes;                           // nodes[0] is the root message
  std::vector<child> children;                       // of all nodes
  std::vector<map_key> keys;                         // of all map children
  std::vector<uint32_t> clears;                      // slot lists of oneof children
  std::vector<std::pair<uint32_t, uint32_t>> copies; // (to, from) for repeated paths
  size_t slots = 0;

  // Per decode call.
  int err_pos = 0;
  std::string err;

  uint32_t flatten(build_node& b);
  bool scan(uint32_t n, pb::io::CodedInputStream& in, std::vector<value>& out);
  bool scalar(const child& c, pb::io::CodedInputStream& in, std::vector<value>& out);
  bool map_entry(const child& c, pb::io::CodedInputStream& in, std::vector<value>& out);
  bool skip(uint32_t tag, int pos, pb::io::CodedInputStream& in);
  bool length(pb::io::CodedInputStream& in, uint32_t number, const pb::FieldDescriptor* f,
              int& len);
  bool read_value(uint8_t ftype, uint32_t number, const pb::FieldDescriptor* f,
                  pb::io::CodedInputStream& in, scalar_value& v);

  /// Records an error at byte `pos` in field `number` (0: none; `f`: its descriptor, if
  /// known); returns false.
  bool fail(int pos, uint32_t number, std::string_view what,
            const pb::FieldDescriptor* f = nullptr) {
    err_pos = pos;
    if (number == 0)
      err = std::string(what);
    else if (f != nullptr)
      err = fmt::format("field {} ({}): {}", number, f->name(), what);
    else
      err = fmt::format("field {}: {}", number, what);
    return false;
  }
  void clear_siblings(const child& c, std::vector<value>& out) const {
    for (uint32_t i = c.clear_begin; i < c.clear_end; ++i)
      out[clears[i]].type = value_type::none;
  }
};

uint32_t decoder::impl::flatten(build_node& b) {
  const auto index = static_cast<uint32_t>(nodes.size());
  nodes.push_back({static_cast<uint32_t>(children.size()), 0});
  std::vector<std::pair<uint32_t, build_child*>> subs;
  for (auto& [number, bc] : b.children) {
    const pb::FieldDescriptor* f = bc.field;
    child c;
    c.number = number;
    c.field = f;
    c.wire =
        static_cast<uint8_t>(wfl::WireTypeForFieldType(static_cast<wfl::FieldType>(f->type())));
    if (f->is_map()) {
      const pb::FieldDescriptor* val = f->message_type()->map_value();
      c.key_field = f->message_type()->map_key();
      c.value_field = val;
      c.k = kind::map;
      c.ftype = static_cast<uint8_t>(val->type());
      c.vwire =
          static_cast<uint8_t>(wfl::WireTypeForFieldType(static_cast<wfl::FieldType>(val->type())));
      c.utf8 = val->type() == pb::FieldDescriptor::TYPE_STRING &&
               f->file()->syntax() == pb::FileDescriptor::SYNTAX_PROTO3;
      c.sub = static_cast<uint32_t>(keys.size());
      c.nsub = static_cast<uint32_t>(bc.keys.size());
      keys.insert(keys.end(), bc.keys.begin(), bc.keys.end());
    } else if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      c.k = kind::message;
      if (bc.sub)
        subs.emplace_back(static_cast<uint32_t>(children.size()), &bc);
    } else {
      c.k = kind::scalar;
      c.ftype = static_cast<uint8_t>(f->type());
      c.slot = bc.slot;
      c.implicit = !f->has_presence();
      c.utf8 = f->type() == pb::FieldDescriptor::TYPE_STRING &&
               f->file()->syntax() == pb::FileDescriptor::SYNTAX_PROTO3;
      c.closed_enum = f->type() == pb::FieldDescriptor::TYPE_ENUM &&
                      f->file()->syntax() == pb::FileDescriptor::SYNTAX_PROTO2;
    }
    if (const pb::OneofDescriptor* o = f->real_containing_oneof()) {
      c.clear_begin = static_cast<uint32_t>(clears.size());
      for (int i = 0; i < o->field_count(); ++i)
        if (o->field(i) != f)
          if (auto it = b.children.find(o->field(i)->number()); it != b.children.end())
            collect_slots(it->second, clears);
      c.clear_end = static_cast<uint32_t>(clears.size());
    }
    children.push_back(c);
  }
  nodes[index].end = static_cast<uint32_t>(children.size());
  for (auto& [ci, bc] : subs) {
    const uint32_t sub = flatten(*bc->sub);
    children[ci].sub = sub;
  }
  return index;
}

decoder::decoder(std::shared_ptr<const message_schema> schema, std::vector<field_path> paths)
    : impl_(std::make_unique<impl>()) {
  if (!schema)
    throw schema_error("decoder needs a schema");
  const pb::Descriptor* root = schema->descriptor();
  build_node tree;
  tree.desc = root;
  std::map<std::string, uint32_t> seen; // path → first slot
  for (uint32_t slot = 0; slot < paths.size(); ++slot) {
    const field_path& p = paths[slot];
    if (auto [it, fresh] = seen.emplace(p.path, slot); !fresh) {
      impl_->copies.emplace_back(slot, it->second);
      continue;
    }
    const pb::Descriptor* d = root;
    build_node* n = &tree;
    for (size_t i = 0; i < p.steps.size(); ++i) {
      const pb::FieldDescriptor* f = p.steps[i];
      if (f == nullptr || f->containing_type() != d)
        throw schema_error(
            fmt::format("field path '{}' was not resolved against {}", p.path, root->full_name()));
      build_child& bc = n->children[static_cast<uint32_t>(f->number())];
      bc.field = f;
      const bool last = i + 1 == p.steps.size();
      if (last && f->is_map()) {
        bc.keys.push_back({p.map_key, slot});
      } else if (last && f->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE) {
        bc.slot = static_cast<int32_t>(slot);
      } else if (!last && !f->is_map() && !f->is_repeated() &&
                 f->type() == pb::FieldDescriptor::TYPE_MESSAGE) {
        d = f->message_type();
        if (!bc.sub) {
          bc.sub = std::make_unique<build_node>();
          bc.sub->desc = d;
        }
        n = bc.sub.get();
      } else {
        throw schema_error(
            fmt::format("field path '{}' was not resolved against {}", p.path, root->full_name()));
      }
    }
    if (p.steps.empty())
      throw schema_error(fmt::format("empty field path for {}", root->full_name()));
  }
  // Members of a oneof with a requested member are tracked too: setting one clears the rest.
  auto add_oneof_members = [](auto& self, build_node& n) -> void {
    for (int o = 0; o < n.desc->real_oneof_decl_count(); ++o) {
      const pb::OneofDescriptor* od = n.desc->oneof_decl(o);
      bool tracked = false;
      for (int i = 0; i < od->field_count(); ++i)
        tracked = tracked || n.children.count(static_cast<uint32_t>(od->field(i)->number()));
      if (tracked)
        for (int i = 0; i < od->field_count(); ++i)
          n.children[static_cast<uint32_t>(od->field(i)->number())].field = od->field(i);
    }
    for (auto& [number, c] : n.children)
      if (c.sub)
        self(self, *c.sub);
  };
  add_oneof_members(add_oneof_members, tree);
  impl_->flatten(tree);
  impl_->slots = paths.size();
  impl_->schema = std::move(schema);
}

decoder::~decoder() = default;
decoder::decoder(decoder&&) noexcept = default;
decoder& decoder::operator=(decoder&&) noexcept = default;

bool decoder::impl::length(pb::io::CodedInputStream& in, uint32_t number,
                           const pb::FieldDescriptor* f, int& len) {
  const int pos = in.CurrentPosition();
  uint32_t n = 0;
  if (!in.ReadVarint32(&n))
    return fail(pos, number, "truncated length", f);
  // Like the protobuf parser: at most 5 bytes, below 2 GiB.
  if (in.CurrentPosition() - pos > 5 || n > INT_MAX)
    return fail(pos, number, "invalid length", f);
  const int left = bytes_left(in);
  if (static_cast<int>(n) > left)
    return fail(pos, number, fmt::format("length {} exceeds the {} bytes left", n, left), f);
  len = static_cast<int>(n);
  return true;
}

bool decoder::impl::skip(uint32_t tag, int pos, pb::io::CodedInputStream& in) {
  const uint32_t number = wfl::GetTagFieldNumber(tag);
  int len = 0;
  uint64_t v = 0;
  switch (wfl::GetTagWireType(tag)) {
  case wfl::WIRETYPE_VARINT:
    return in.ReadVarint64(&v) || fail(pos, number, "truncated varint");
  case wfl::WIRETYPE_FIXED64:
    return in.Skip(8) || fail(pos, number, "truncated fixed64");
  case wfl::WIRETYPE_FIXED32:
    return in.Skip(4) || fail(pos, number, "truncated fixed32");
  case wfl::WIRETYPE_LENGTH_DELIMITED:
    return length(in, number, nullptr, len) && in.Skip(len);
  case wfl::WIRETYPE_START_GROUP: // skipped like an unknown group
    return wfl::SkipField(&in, tag) || fail(pos, number, "malformed or unterminated group");
  case wfl::WIRETYPE_END_GROUP:
    return fail(pos, number, "unexpected end-group tag");
  default:
    return fail(pos, number, fmt::format("invalid wire type {}", wfl::GetTagWireType(tag)));
  }
}

bool decoder::impl::read_value(uint8_t ftype, uint32_t number, const pb::FieldDescriptor* f,
                               pb::io::CodedInputStream& in, scalar_value& v) {
  const int pos = in.CurrentPosition();
  bool ok = true;
  switch (static_cast<wfl::FieldType>(ftype)) {
#define KEYFLOW_READ(TYPE, CTYPE, FIELD)                                                           \
  case wfl::TYPE: {                                                                                \
    CTYPE x{};                                                                                     \
    ok = wfl::ReadPrimitive<CTYPE, wfl::TYPE>(&in, &x);                                            \
    v.FIELD = x;                                                                                   \
    break;                                                                                         \
  }
    KEYFLOW_READ(TYPE_INT32, int32_t, i)
    KEYFLOW_READ(TYPE_INT64, int64_t, i)
    KEYFLOW_READ(TYPE_UINT32, uint32_t, i)
    KEYFLOW_READ(TYPE_SINT32, int32_t, i)
    KEYFLOW_READ(TYPE_SINT64, int64_t, i)
    KEYFLOW_READ(TYPE_FIXED32, uint32_t, i)
    KEYFLOW_READ(TYPE_SFIXED32, int32_t, i)
    KEYFLOW_READ(TYPE_SFIXED64, int64_t, i)
    KEYFLOW_READ(TYPE_BOOL, bool, i)
    KEYFLOW_READ(TYPE_ENUM, int, i)
    KEYFLOW_READ(TYPE_FLOAT, float, d)
    KEYFLOW_READ(TYPE_DOUBLE, double, d)
#undef KEYFLOW_READ
  case wfl::TYPE_UINT64: {
    uint64_t x = 0;
    ok = wfl::ReadPrimitive<uint64_t, wfl::TYPE_UINT64>(&in, &x);
    v.i = static_cast<int64_t>(x); // above INT64_MAX wraps, by design
    break;
  }
  case wfl::TYPE_FIXED64: {
    uint64_t x = 0;
    ok = wfl::ReadPrimitive<uint64_t, wfl::TYPE_FIXED64>(&in, &x);
    v.i = static_cast<int64_t>(x);
    break;
  }
  case wfl::TYPE_STRING:
  case wfl::TYPE_BYTES: {
    int len = 0;
    if (!length(in, number, f, len))
      return false;
    const void* at = nullptr;
    int left = 0;
    in.GetDirectBufferPointerInline(&at, &left); // left >= len: checked by length()
    v.s = std::string_view(static_cast<const char*>(at), static_cast<size_t>(len));
    in.Skip(len);
    return true;
  }
  default:
    return fail(pos, number, "unsupported field type", f);
  }
  return ok || fail(pos, number, "truncated value", f);
}

bool decoder::impl::scalar(const child& c, pb::io::CodedInputStream& in, std::vector<value>& out) {
  scalar_value v;
  const int pos = in.CurrentPosition();
  if (!read_value(c.ftype, c.number, c.field, in, v))
    return false;
  if (c.utf8 && !valid_utf8(v.s))
    return fail(pos, c.number, "invalid UTF-8 in a string field", c.field);
  if (c.closed_enum && c.field->enum_type()->FindValueByNumber(static_cast<int>(v.i)) == nullptr)
    return true; // an unknown value of a closed enum leaves the field unset
  clear_siblings(c, out);
  if (c.slot >= 0)
    store(c.ftype, v, c.implicit, out[static_cast<size_t>(c.slot)]);
  return true;
}

bool decoder::impl::map_entry(const child& c, pb::io::CodedInputStream& in,
                              std::vector<value>& out) {
  std::string_view key;
  scalar_value v;
  int value_pos = 0;
  while (true) {
    const int pos = in.CurrentPosition();
    const uint32_t tag = in.ReadTagNoLastTag();
    if (tag == 0) {
      if (in.CurrentPosition() == pos && bytes_left(in) == 0)
        break; // a clean end: a truncated tag is consumed before it fails
      return fail(pos, 0, "invalid tag (field number 0, or truncated)");
    }
    if (in.CurrentPosition() - pos > 5)
      return fail(pos, 0, "tag longer than 5 bytes");
    if (tag == wfl::MakeTag(1, wfl::WIRETYPE_LENGTH_DELIMITED)) {
      scalar_value k;
      if (!read_value(wfl::TYPE_STRING, 1, c.key_field, in, k))
        return false;
      key = k.s;
    } else if (tag == wfl::MakeTag(2, static_cast<wfl::WireType>(c.vwire))) {
      value_pos = pos;
      if (!read_value(c.ftype, 2, c.value_field, in, v))
        return false;
    } else if (!skip(tag, pos, in)) {
      return false;
    }
  }
  for (uint32_t i = c.sub; i < c.sub + c.nsub; ++i) {
    if (keys[i].key != key)
      continue;
    if (c.utf8 && !valid_utf8(v.s))
      return fail(value_pos, 2, "invalid UTF-8 in a string field", c.value_field);
    store(c.ftype, v, false, out[keys[i].slot]); // an entry's value is there, even if 0
  }
  return true;
}

bool decoder::impl::scan(uint32_t n, pb::io::CodedInputStream& in, std::vector<value>& out) {
  const child* first = children.data() + nodes[n].begin;
  const child* last = children.data() + nodes[n].end;
  while (true) {
    const int pos = in.CurrentPosition();
    const uint32_t tag = in.ReadTagNoLastTag();
    if (tag == 0) {
      if (in.CurrentPosition() == pos && bytes_left(in) == 0)
        return true; // a clean end: a truncated tag is consumed before it fails
      return fail(pos, 0, "invalid tag (field number 0, or truncated)");
    }
    if (in.CurrentPosition() - pos > 5)
      return fail(pos, 0, "tag longer than 5 bytes");
    const uint32_t number = wfl::GetTagFieldNumber(tag);
    if (number == 0)
      return fail(pos, 0, "invalid tag (field number 0)");
    const child* c = first;
    while (c != last && c->number < number)
      ++c;
    if (c == last || c->number != number || c->wire != wfl::GetTagWireType(tag)) {
      if (!skip(tag, pos, in))
        return false;
      continue;
    }
    if (c->k == kind::scalar) {
      if (!scalar(*c, in, out))
        return false;
      continue;
    }
    if (c->k == kind::message && c->sub == no_node) { // a oneof member, only to clear others
      if (!skip(tag, pos, in))
        return false;
      clear_siblings(*c, out);
      continue;
    }
    int len = 0;
    if (!length(in, number, c->field, len))
      return false;
    clear_siblings(*c, out);
    const auto limit = in.PushLimit(len);
    if (!in.IncrementRecursionDepth())
      return fail(pos, number, "messages nested too deeply", c->field);
    const bool ok = c->k == kind::map ? map_entry(*c, in, out) : scan(c->sub, in, out);
    if (!ok) {
      err = fmt::format("field {} ({}) > {}", number, c->field->name(), err);
      return false;
    }
    in.DecrementRecursionDepth();
    in.PopLimit(limit);
  }
}

bool decoder::decode(std::string_view bytes, std::vector<value>& out, std::string& error) noexcept {
  impl& m = *impl_;
  try {
    out.resize(m.slots);
    for (auto& v : out)
      v.type = value_type::none;
    if (bytes.size() > static_cast<size_t>(INT_MAX)) {
      error = fmt::format("invalid {} record: {} bytes is too large", m.schema->type_name(),
                          bytes.size());
      return false;
    }
    pb::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                static_cast<int>(bytes.size()));
    if (!m.scan(0, in, out)) {
      error =
          fmt::format("invalid {} record at byte {}: {}", m.schema->type_name(), m.err_pos, m.err);
      return false;
    }
    for (const auto& [to, from] : m.copies)
      out[to] = out[from];
    return true;
  } catch (const std::exception& e) { // out of memory: nothing else throws
    try {
      error = fmt::format("cannot decode {} record: {}", m.schema->type_name(), e.what());
    } catch (...) {
    }
  }
  return false;
}

} // namespace keyflow::schema
