#pragma once
/// \file
/// Event schemas from config: a pipeline names a .proto file and a message type; the field
/// paths its operators use are resolved once at deploy time against the protobuf
/// descriptors, and records are decoded by extracting just those fields from the wire
/// format. A new event type needs a config change, not a rebuild.

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/value.hpp"

namespace google::protobuf {
class Descriptor;
class DescriptorPool;
class FieldDescriptor;
} // namespace google::protobuf

namespace keyflow::schema {

/// A schema problem at deploy time: unreadable .proto, unknown message type, unknown or
/// unsupported field path. The message names the file, the type and the field.
class schema_error : public std::runtime_error {
public:
  /// Builds an error from a finished message.
  explicit schema_error(const std::string& what) : std::runtime_error(what) {}
};

/// One resolved field path: the chain of descriptors from the root message to a scalar.
/// Made by message_schema::resolve.
struct field_path {
  /// As written, e.g. "bid.price".
  std::string path;
  /// The message fields, then the scalar field (or the map field).
  std::vector<const google::protobuf::FieldDescriptor*> steps;
  /// For "attributes.page" on a map<string, scalar>: "page"; else empty.
  std::string map_key;
  /// Value type the path yields.
  value_type type = value_type::none;
};

/// A message type loaded from a .proto file at run time.
class message_schema {
public:
  /// Loads `proto_file` (imports resolved from its directory, then `import_dirs`, then the
  /// well-known types google/protobuf/*.proto where the protobuf headers are installed) and
  /// finds `message_type` (full name, e.g. "keyflow.proto.Event"). Throws schema_error:
  /// "cannot read proto file '<path>'", "<file>:<line>:<col>: <message>" for each parse or
  /// import error, or "no message type '<name>' in '<file>' (types: ...)".
  static std::shared_ptr<const message_schema>
  load(const std::string& proto_file, const std::string& message_type,
       const std::vector<std::string>& import_dirs = {});

  /// Resolves a dotted path through singular message fields to a scalar field (integers,
  /// bool and enum → int64, float/double → double, string/bytes → string) or to one entry of
  /// a map<string, scalar> ("attributes.page"; everything after the map's name is the key,
  /// dots included). Throws schema_error naming the path, the message type and the first
  /// unknown or unsupported step (repeated fields, groups, other maps, a path ending on a
  /// message or a map).
  field_path resolve(std::string_view path) const;

  /// The message descriptor.
  const google::protobuf::Descriptor* descriptor() const noexcept;

  /// Full name of the message type.
  const std::string& type_name() const noexcept;

  /// The file it was loaded from.
  const std::string& file() const noexcept;

  virtual ~message_schema() = default;

protected:
  message_schema() = default;
};

/// Extracts a fixed list of field paths from serialized messages by scanning the wire format
/// once, without building a message. Values are those protobuf's parser would give: the last
/// occurrence of a scalar wins, an embedded message occurring several times is merged, a
/// oneof member clears the others, the last map entry with the key wins, fields with an
/// unexpected wire type are unknown fields, unknown fields (groups too) are skipped. Not
/// thread-safe: one decoder per thread.
class decoder {
public:
  /// Decodes `paths`, resolved by `schema` (kept alive by the decoder); output slot i holds
  /// paths[i]. Throws schema_error for a path not resolved against `schema`.
  decoder(std::shared_ptr<const message_schema> schema, std::vector<field_path> paths);
  ~decoder();
  decoder(decoder&&) noexcept;
  decoder& operator=(decoder&&) noexcept;

  /// Parses `bytes` and writes one value per path into `out` (resized to the number of
  /// paths; its strings' capacity is reused): the field's value, or value_type::none when
  /// the field is not set (not on the wire, or, for proto3 scalars without `optional`, on
  /// it with the default value: protobuf's HasField). A map entry that is there gives its
  /// value, even "" or 0. Returns false and sets `error` ("invalid <Type> record at byte
  /// <offset>: field <n> (<name>) > ...: <what>") when the bytes are not a valid message in
  /// the parts scanned: the message itself and the embedded messages on the paths. Nested
  /// messages off the paths are skipped unchecked, and UTF-8 is checked only in the strings
  /// extracted. Never throws.
  bool decode(std::string_view bytes, std::vector<value>& out, std::string& error) noexcept;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace keyflow::schema
