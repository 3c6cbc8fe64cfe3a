// Schemas from config: loading .proto files, resolving field paths and decoding records,
// checked against the protobuf parser (DynamicMessage + Reflection) on random inputs.
#include "schema/schema.hpp"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>

#include <fmt/format.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/wire_format_lite.h>
#include <gtest/gtest.h>

#include "proto/event.pb.h"
#include "test_util.hpp"

namespace {

namespace pb = google::protobuf;
using keyflow::value;
using keyflow::value_type;
using keyflow::schema::decoder;
using keyflow::schema::field_path;
using keyflow::schema::message_schema;
using keyflow::schema::schema_error;
using schema_ptr = std::shared_ptr<const message_schema>;

constexpr const char* common_proto = R"(syntax = "proto3";
package kf.test;
message Money { int64 units = 1; string currency = 2; }
)";

constexpr const char* rich_proto = R"(syntax = "proto3";
package kf.test;
import "common.proto";
enum Color { COLOR_UNSPECIFIED = 0; RED = 1; GREEN = 2; }
message Bid { double price = 1; int64 auction = 2; Money amount = 3; string bidder = 4; }
message Rich {
  int32 i32 = 1; int64 i64 = 2; uint32 u32 = 3; uint64 u64 = 4; sint32 s32 = 5;
  sint64 s64 = 6; fixed32 f32 = 7; fixed64 f64 = 8; sfixed32 sf32 = 9; sfixed64 sf64 = 10;
  bool flag = 11; float fl = 12; double db = 13; string str = 14; bytes raw = 15;
  Color color = 16;
  Bid bid = 17;
  map<string, string> attributes = 18;
  map<string, int64> counters = 19;
  oneof choice { string name = 20; int64 number = 21; Bid alt = 22; }
  optional int64 opt = 23;
  repeated int64 list = 24;
  map<int32, string> by_id = 25;
  repeated Bid bids = 26;
  message Inner { Bid bid = 1; double score = 2; }
  Inner inner = 27;
  map<string, Bid> bid_map = 28;
}
)";

constexpr const char* legacy_proto = R"(syntax = "proto2";
package kf.test;
enum Mode { A = 1; B = 2; }
message Legacy {
  optional int32 n = 1 [default = 7];
  optional Mode mode = 2;
  optional string s = 3;
  oneof pick { Mode m1 = 4; int32 m2 = 5; }
  optional Legacy next = 6;
}
)";

/// Every path of Rich the decoder supports, "bid.price" twice.
const std::vector<std::string> rich_paths = [] {
  std::vector<std::string> paths;
  std::istringstream in("i32 i64 u32 u64 s32 s64 f32 f64 sf32 sf64 flag fl db str raw color "
                        "bid.price bid.auction bid.amount.units bid.amount.currency bid.bidder "
                        "attributes.page attributes.ref counters.clicks name number alt.price "
                        "alt.amount.currency opt inner.bid.price inner.score "
                        "inner.bid.amount.units bid.price");
  for (std::string p; in >> p;)
    paths.push_back(p);
  return paths;
}();

/// Writes `text` to `path`, creating its directory.
void write_file(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << text;
}

/// Hex dump for failure messages.
std::string hex(std::string_view bytes) {
  std::string s;
  for (unsigned char c : bytes)
    s += fmt::format("{:02x}", c);
  return s;
}

/// Expects `fn` to throw a schema_error whose message contains every one of `parts`.
template <class F>
void expect_error(F&& fn, std::initializer_list<std::string_view> parts) {
  try {
    fn();
    ADD_FAILURE() << "no schema_error";
  } catch (const schema_error& e) {
    for (auto p : parts)
      EXPECT_NE(std::string_view(e.what()).find(p), std::string_view::npos)
          << "'" << p << "' not in: " << e.what();
  }
}

/// The value protobuf's Reflection gives for scalar `f` of `m`.
value scalar_of(const pb::Message& m, const pb::FieldDescriptor* f) {
  const pb::Reflection* r = m.GetReflection();
  switch (f->cpp_type()) {
  case pb::FieldDescriptor::CPPTYPE_INT32:
    return value::of(int64_t{r->GetInt32(m, f)});
  case pb::FieldDescriptor::CPPTYPE_INT64:
    return value::of(int64_t{r->GetInt64(m, f)});
  case pb::FieldDescriptor::CPPTYPE_UINT32:
    return value::of(int64_t{r->GetUInt32(m, f)});
  case pb::FieldDescriptor::CPPTYPE_UINT64:
    return value::of(static_cast<int64_t>(r->GetUInt64(m, f)));
  case pb::FieldDescriptor::CPPTYPE_BOOL:
    return value::of(int64_t{r->GetBool(m, f) ? 1 : 0});
  case pb::FieldDescriptor::CPPTYPE_ENUM:
    return value::of(int64_t{r->GetEnumValue(m, f)});
  case pb::FieldDescriptor::CPPTYPE_FLOAT:
    return value::of(double{r->GetFloat(m, f)});
  case pb::FieldDescriptor::CPPTYPE_DOUBLE:
    return value::of(r->GetDouble(m, f));
  case pb::FieldDescriptor::CPPTYPE_STRING:
    return value::of(r->GetString(m, f));
  default:
    return {};
  }
}

/// What `p` names in a parsed message, by Reflection: absent unless HasField.
value reference(const pb::Message& m, const field_path& p) {
  const pb::Message* cur = &m;
  for (size_t i = 0; i + 1 < p.steps.size(); ++i) {
    if (!cur->GetReflection()->HasField(*cur, p.steps[i]))
      return {};
    cur = &cur->GetReflection()->GetMessage(*cur, p.steps[i]);
  }
  const pb::FieldDescriptor* f = p.steps.back();
  const pb::Reflection* r = cur->GetReflection();
  if (f->is_map()) {
    value v;
    for (int j = 0; j < r->FieldSize(*cur, f); ++j) {
      const pb::Message& e = r->GetRepeatedMessage(*cur, f, j);
      if (e.GetReflection()->GetString(e, f->message_type()->map_key()) == p.map_key)
        v = scalar_of(e, f->message_type()->map_value());
    }
    return v;
  }
  return r->HasField(*cur, f) ? scalar_of(*cur, f) : value{};
}

/// Equal, doubles compared bit for bit (NaN, -0.0).
bool same(const value& a, const value& b) {
  if (a.type == value_type::dbl && b.type == value_type::dbl)
    return std::memcmp(&a.d, &b.d, sizeof a.d) == 0;
  return a == b;
}

/// Random values, messages and wire bytes.
struct generator {
  std::mt19937_64 rng{42};

  /// A number below `n`.
  uint64_t pick(uint64_t n) { return rng() % n; }
  /// 0, a tiny number or one of any length up to 64 bits.
  uint64_t varint() {
    const uint64_t k = pick(4);
    return k == 0 ? 0 : k == 1 ? pick(4) : rng() >> pick(64);
  }
  /// Valid UTF-8: wanted map keys, multi-byte characters, printable ASCII.
  std::string text() {
    static const char* pool[] = {"",  "page",         "ref",          "clicks",
                                 "x", "h\xc3\xa9llo", "\xe6\x97\xa5", "\xf0\x9f\x98\x80"};
    if (pick(3) != 0)
      return pool[pick(std::size(pool))];
    std::string s(pick(40), 'a');
    for (auto& c : s)
      c = static_cast<char>(' ' + pick(95));
    return s;
  }
  /// Up to `max` random bytes.
  std::string bytes(size_t max) {
    std::string s(pick(max + 1), '\0');
    for (auto& c : s)
      c = static_cast<char>(rng());
    return s;
  }
  /// Zeros of both signs, infinity, NaN, a denormal, or any bit pattern.
  double dbl() {
    static const double pool[] = {
        0.0, -0.0, 1.5, -2.25e10, std::numeric_limits<double>::infinity(), std::nan(""), 5e-324};
    if (pick(2) == 0)
      return pool[pick(std::size(pool))];
    const uint64_t bits = rng();
    double d;
    std::memcpy(&d, &bits, sizeof d);
    return d;
  }

  /// Sets scalar `f` of `m` to a random value (a known one for closed enums).
  void set_scalar(pb::Message& m, const pb::FieldDescriptor* f) {
    const pb::Reflection* r = m.GetReflection();
    const uint64_t u = varint();
    switch (f->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_INT32:
      return r->SetInt32(&m, f, static_cast<int32_t>(u));
    case pb::FieldDescriptor::CPPTYPE_INT64:
      return r->SetInt64(&m, f, static_cast<int64_t>(u));
    case pb::FieldDescriptor::CPPTYPE_UINT32:
      return r->SetUInt32(&m, f, static_cast<uint32_t>(u));
    case pb::FieldDescriptor::CPPTYPE_UINT64:
      return r->SetUInt64(&m, f, u);
    case pb::FieldDescriptor::CPPTYPE_BOOL:
      return r->SetBool(&m, f, u & 1);
    case pb::FieldDescriptor::CPPTYPE_ENUM:
      if (f->enum_type()->file()->syntax() == pb::FileDescriptor::SYNTAX_PROTO2)
        return r->SetEnumValue(&m, f, 1 + static_cast<int>(pick(2)));
      return r->SetEnumValue(&m, f, static_cast<int>(pick(5)) - 1);
    case pb::FieldDescriptor::CPPTYPE_FLOAT:
      return r->SetFloat(&m, f, static_cast<float>(dbl()));
    case pb::FieldDescriptor::CPPTYPE_DOUBLE:
      return r->SetDouble(&m, f, dbl());
    case pb::FieldDescriptor::CPPTYPE_STRING:
      return r->SetString(&m, f, f->type() == pb::FieldDescriptor::TYPE_BYTES ? bytes(8) : text());
    default:
      return;
    }
  }

  /// Sets about half of the fields of `m` to random values, maps and repeated fields included.
  void fill(pb::Message& m, int depth = 0) {
    const pb::Reflection* r = m.GetReflection();
    for (int i = 0; i < m.GetDescriptor()->field_count(); ++i) {
      const pb::FieldDescriptor* f = m.GetDescriptor()->field(i);
      if (pick(2) == 0)
        continue;
      const bool msg = f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE;
      if (f->is_repeated()) {
        for (uint64_t n = pick(4); n > 0; --n) {
          if (msg && (f->is_map() || depth < 3))
            fill(*r->AddMessage(&m, f), depth + 1);
          else if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_INT64)
            r->AddInt64(&m, f, static_cast<int64_t>(varint()));
        }
      } else if (msg) {
        if (depth < 3)
          fill(*r->MutableMessage(&m, f), depth + 1);
      } else {
        set_scalar(m, f);
      }
    }
  }

  /// Appends `v` as a varint.
  static void put_varint(std::string& out, uint64_t v) {
    for (; v >= 0x80; v >>= 7)
      out += static_cast<char>(v | 0x80);
    out += static_cast<char>(v);
  }

  /// Structurally valid wire bytes for `d`: known and unknown field numbers, mostly the
  /// declared wire types but also others, groups, explicit defaults, nested messages, map
  /// entries with any content, strings now and then not UTF-8.
  std::string wire(const pb::Descriptor* d, int depth = 0) {
    std::string out;
    for (uint64_t n = pick(depth == 0 ? 12 : 5); n > 0; --n) {
      const pb::FieldDescriptor* f = pick(4) != 0 && d->field_count() > 0
                                         ? d->field(static_cast<int>(pick(d->field_count())))
                                         : nullptr;
      const uint32_t number = f ? static_cast<uint32_t>(f->number())
                                : (pick(8) == 0 ? 536870911u : 1 + static_cast<uint32_t>(pick(40)));
      const bool msg = f && f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE;
      const uint32_t declared =
          msg ? 2
          : f ? pb::internal::WireFormatLite::WireTypeForFieldType(
                    static_cast<pb::internal::WireFormatLite::FieldType>(f->type()))
              : 0;
      static const uint32_t any[] = {0, 1, 2, 5, 3};
      const uint32_t wt = f && pick(8) != 0 ? declared : any[pick(depth < 3 ? 5 : 4)];
      put_varint(out, number << 3 | wt);
      if (wt == 0) {
        put_varint(out, varint());
      } else if (wt == 1 || wt == 5) {
        for (int i = wt == 1 ? 8 : 4; i > 0; --i)
          out += static_cast<char>(rng());
      } else if (wt == 3) {
        out += wire(d, depth + 1);
        put_varint(out, number << 3 | 4);
      } else {
        std::string payload;
        if (msg && wt == declared && depth < 4)
          payload = wire(f->message_type(), depth + 1);
        else if (pick(10) == 0)
          payload = bytes(12);
        else
          payload = text();
        put_varint(out, payload.size());
        out += payload;
      }
    }
    return out;
  }
};

/// Drops protobuf's log messages while alive.
struct quiet_protobuf {
  quiet_protobuf() : old(pb::SetLogHandler(nullptr)) {}
  ~quiet_protobuf() { pb::SetLogHandler(old); }
  pb::LogHandler* old;
};

/// Loads the test schemas into a temporary directory.
class schema_test : public ::testing::Test {
protected:
  void SetUp() override {
    write_file(dir.path("imports/common.proto"), common_proto);
    write_file(dir.path("main/rich.proto"), rich_proto);
    write_file(dir.path("main/legacy.proto"), legacy_proto);
    rich = message_schema::load(dir.path("main/rich.proto"), "kf.test.Rich", {dir.path("imports")});
  }

  /// Resolves every one of `paths` against `s`.
  std::vector<field_path> resolve(const schema_ptr& s, const std::vector<std::string>& paths) {
    std::vector<field_path> out;
    for (const auto& p : paths)
      out.push_back(s->resolve(p));
    return out;
  }

  /// Decodes `bytes` with `dec` and parses them with protobuf: a record the decoder rejects
  /// must be rejected by protobuf too, and one protobuf accepts must decode to the values
  /// Reflection gives. With `exact`, both must also reject the same records. Returns
  /// whether protobuf accepted.
  bool compare(decoder& dec, const std::vector<field_path>& paths, const pb::Message& proto,
               const std::string& bytes, bool exact = false) {
    std::unique_ptr<pb::Message> m(proto.New());
    const bool ref_ok = m->ParseFromString(bytes);
    std::string error;
    // An exactly sized copy: a read past the end is caught under -fsanitize=address.
    const auto copy = std::make_unique<char[]>(bytes.size());
    std::memcpy(copy.get(), bytes.data(), bytes.size());
    const bool ok = dec.decode({copy.get(), bytes.size()}, out, error);
    EXPECT_TRUE(ok || !ref_ok) << "decoder rejects what protobuf accepts: " << error << "\n"
                               << hex(bytes);
    EXPECT_EQ(out.size(), paths.size());
    if (exact) {
      EXPECT_EQ(ok, ref_ok) << error << "\n" << hex(bytes);
    }
    hits.resize(paths.size());
    if (ref_ok && ok)
      for (size_t i = 0; i < paths.size(); ++i) {
        const value want = reference(*m, paths[i]);
        hits[i] += want.present();
        EXPECT_TRUE(same(want, out[i]))
            << paths[i].path << ": want " << keyflow::type_name(want.type) << " "
            << want.to_string() << ", got " << keyflow::type_name(out[i].type) << " "
            << out[i].to_string() << "\n"
            << hex(bytes);
      }
    return ref_ok;
  }

  /// Expects every path to have been present in `min` records compared since the last call.
  void expect_hits(const std::vector<field_path>& paths, int min) {
    for (size_t i = 0; i < paths.size(); ++i)
      EXPECT_GE(hits.at(i), min) << paths[i].path << " is rarely present: test data too thin";
    hits.clear();
  }

  quiet_protobuf quiet; // protobuf logs every invalid UTF-8 string it rejects
  keyflow::test::temp_dir dir;
  schema_ptr rich;
  pb::DynamicMessageFactory factory;
  generator gen;
  std::vector<value> out;
  std::vector<int> hits; // per path: records where it was present
};

TEST_F(schema_test, loads_the_event_schema_and_decodes_generated_events) {
  const std::string root = KEYFLOW_SOURCE_DIR;
  auto s = message_schema::load(root + "/config/proto/event.proto", "keyflow.proto.Event");
  EXPECT_EQ(s->type_name(), "keyflow.proto.Event");
  EXPECT_EQ(s->file(), root + "/config/proto/event.proto");
  EXPECT_EQ(s->resolve("attributes.page").type, value_type::string);
  EXPECT_EQ(s->resolve("event_time_ms").type, value_type::int64);
  EXPECT_EQ(s->resolve("value").type, value_type::dbl);

  keyflow::proto::Event e;
  e.set_event_id("e-1");
  e.set_customer_id("c-42");
  e.set_event_time_ms(1700000000123);
  e.set_value(12.5);
  (*e.mutable_attributes())["page"] = "/checkout";
  (*e.mutable_attributes())["ref"] = "mail";
  const auto paths = resolve(
      s, {"customer_id", "event_time_ms", "value", "attributes.page", "attributes.none", "type"});
  decoder dec(s, paths);
  std::string error;
  ASSERT_TRUE(dec.decode(e.SerializeAsString(), out, error)) << error;
  EXPECT_EQ(out[0], value::of(std::string("c-42")));
  EXPECT_EQ(out[1], value::of(int64_t{1700000000123}));
  EXPECT_EQ(out[2], value::of(12.5));
  EXPECT_EQ(out[3], value::of(std::string("/checkout")));
  EXPECT_FALSE(out[4].present());
  EXPECT_FALSE(out[5].present()); // empty string: proto3 default, not on the wire
}

TEST_F(schema_test, load_errors_name_the_file_line_and_type) {
  const std::string bad = dir.path("main/bad.proto");
  write_file(bad, "syntax = \"proto3\";\nmessage Bad {\n  int64 x = ;\n}\n");
  expect_error([&] { message_schema::load(bad, "Bad"); }, {bad + ":3:"});
  const std::string missing_import = dir.path("main/imp.proto");
  write_file(missing_import, "syntax = \"proto3\";\nimport \"nowhere.proto\";\nmessage M {}\n");
  expect_error([&] { message_schema::load(missing_import, "M"); },
               {missing_import + ":2:", "nowhere.proto"});
  expect_error([&] { message_schema::load(dir.path("main/absent.proto"), "X"); },
               {"cannot read proto file '" + dir.path("main/absent.proto") + "'"});
  expect_error(
      [&] {
        message_schema::load(dir.path("main/rich.proto"), "kf.test.Nope", {dir.path("imports")});
      },
      {"no message type 'kf.test.Nope'", dir.path("main/rich.proto"),
       "types: kf.test.Bid, kf.test.Rich, kf.test.Rich.Inner"});
  // Without the import dir, common.proto is not found.
  expect_error([&] { message_schema::load(dir.path("main/rich.proto"), "kf.test.Rich"); },
               {"rich.proto:3:", "common.proto"});
}

TEST_F(schema_test, resolves_paths_and_names_what_is_wrong) {
  field_path p = rich->resolve("bid.amount.units");
  ASSERT_EQ(p.steps.size(), 3u);
  EXPECT_EQ(p.steps[2]->full_name(), "kf.test.Money.units");
  EXPECT_EQ(p.type, value_type::int64);
  EXPECT_EQ(rich->resolve("attributes.utm.source").map_key, "utm.source");
  EXPECT_EQ(rich->resolve("counters.clicks").type, value_type::int64);
  EXPECT_EQ(rich->resolve("flag").type, value_type::int64);
  EXPECT_EQ(rich->resolve("color").type, value_type::int64);
  EXPECT_EQ(rich->resolve("fl").type, value_type::dbl);
  EXPECT_EQ(rich->resolve("raw").type, value_type::string);
  EXPECT_EQ(rich->resolve("alt.price").type, value_type::dbl);

  auto err = [&](const std::string& path, std::initializer_list<std::string_view> parts) {
    expect_error([&] { rich->resolve(path); }, parts);
  };
  err("nope", {"unknown field 'nope' in kf.test.Rich: 'kf.test.Rich' has no field 'nope'",
               "(fields: i32, i64,"});
  err("bid.nope", {"unknown field 'bid.nope' in kf.test.Rich: 'kf.test.Bid' has no field "
                   "'nope' (fields: price, auction, amount, bidder)"});
  err("list", {"'list'", "repeated"});
  err("bids.price", {"'bids'", "repeated"});
  err("by_id.5", {"'by_id'", "int32 keys"});
  err("bid_map.x", {"'bid_map'", "message values (kf.test.Bid)"});
  err("attributes", {"'attributes'", "is a map; name a key"});
  err("bid", {"'bid'", "is a message (kf.test.Bid)", "price, auction"});
  err("i32.x", {"'i32'", "is a scalar (int32)"});
  err("bid..price", {"'bid..price'", "empty step"});
  err("", {"empty field path in kf.test.Rich"});

  auto event = message_schema::load(std::string(KEYFLOW_SOURCE_DIR) + "/config/proto/event.proto",
                                    "keyflow.proto.Event");
  EXPECT_THROW(decoder(rich, {event->resolve("customer_id")}), schema_error);
}

TEST_F(schema_test, decode_errors_name_the_field_and_byte) {
  decoder dec(rich, resolve(rich, {"str", "attributes.page", "bid.price"}));
  std::string error;
  auto bad = [&](std::string_view bytes, std::initializer_list<std::string_view> parts) {
    EXPECT_FALSE(dec.decode(bytes, out, error)) << hex(bytes);
    for (auto p : parts)
      EXPECT_NE(error.find(p), std::string::npos) << "'" << p << "' not in: " << error;
  };
  bad(std::string("\x72\x05"
                  "ab",
                  4),
      {"kf.test.Rich", "byte 1", "field 14 (str)", "length 5"});
  bad(std::string("\x92\x01\x04\x0a\x05"
                  "ab",
                  7),
      {"byte 4", "field 18 (attributes) > field 1 (key)", "length 5"});
  bad(std::string("\x8a\x01\x03\x09\x00\x00", 6),
      {"field 17 (bid) > field 1 (price)", "truncated"});
  bad(std::string("\x0f", 1), {"byte 0", "field 1", "wire type 7"});
  bad(std::string("\x00", 1), {"byte 0", "invalid tag"});
  bad(std::string("\x08\x80", 2), {"field 1", "truncated"});
  bad(std::string("\x72\x01\xff", 3), {"field 14 (str)", "UTF-8"});
  bad(std::string("\x0c", 1), {"end-group"});
  // An unknown group is skipped, as protobuf does.
  EXPECT_TRUE(dec.decode(std::string("\xfb\x01\x08\x01\xfc\x01", 6), out, error)) << error;
}

TEST_F(schema_test, checks_utf8_like_protobuf) {
  // Lead bytes, then continuation bytes around every boundary of the UTF-8 table.
  static const unsigned char leads[] = {'a',  0x00, 0x7f, 0x80, 0xbf, 0xc0, 0xc1, 0xc2,
                                        0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0,
                                        0xf1, 0xf3, 0xf4, 0xf5, 0xf8, 0xff};
  static const unsigned char conts[] = {0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 'a'};
  const auto paths = resolve(rich, {"str"});
  decoder dec(rich, paths);
  const pb::Message& proto = *factory.GetPrototype(rich->descriptor());
  int rejected = 0;
  for (int n = 0; n < 20000 && !HasFailure(); ++n) {
    std::string text;
    for (uint64_t k = 1 + gen.pick(3); k > 0; --k) {
      const unsigned char lead = leads[gen.pick(std::size(leads))];
      const uint64_t fits = lead < 0x80 ? 0 : lead < 0xe0 ? 1 : lead < 0xf0 ? 2 : 3;
      text += static_cast<char>(lead);
      for (uint64_t c = gen.pick(4) == 0 ? gen.pick(4) : fits; c > 0; --c)
        text += static_cast<char>(conts[gen.pick(std::size(conts))]);
    }
    std::string bytes = "\x72";
    generator::put_varint(bytes, text.size());
    rejected += !compare(dec, paths, proto, bytes + text, true);
  }
  EXPECT_GT(rejected, 1000);
  EXPECT_LT(rejected, 19000);
}

TEST_F(schema_test, decodes_random_messages_like_protobuf) {
  const auto paths = resolve(rich, rich_paths);
  decoder dec(rich, paths);
  const pb::Message& proto = *factory.GetPrototype(rich->descriptor());
  for (int n = 0; n < 3000; ++n) {
    std::unique_ptr<pb::Message> a(proto.New()), b(proto.New());
    gen.fill(*a);
    gen.fill(*b);
    const std::string one = a->SerializeAsString();
    EXPECT_TRUE(compare(dec, paths, proto, one, true));
    // Two serializations one after the other: merged, last occurrence wins.
    EXPECT_TRUE(compare(dec, paths, proto, one + b->SerializeAsString(), true));
    if (HasFailure())
      return;
  }
  expect_hits(paths, 100);
}

TEST_F(schema_test, decodes_odd_wire_data_like_protobuf) {
  const std::vector<std::vector<std::string>> subsets = {
      rich_paths, {"alt.price"}, {"name", "attributes.page"}, {"bid.amount.currency", "number"}};
  const pb::Message& proto = *factory.GetPrototype(rich->descriptor());
  int accepted = 0;
  for (const auto& subset : subsets) {
    const auto paths = resolve(rich, subset);
    decoder dec(rich, paths);
    for (int n = 0; n < 5000 && !HasFailure(); ++n)
      accepted += compare(dec, paths, proto, gen.wire(rich->descriptor()));
    expect_hits(paths, 10);
  }
  EXPECT_GT(accepted, 10000); // most random wire data is valid
}

TEST_F(schema_test, decodes_proto2_like_protobuf) {
  auto legacy = message_schema::load(dir.path("main/legacy.proto"), "kf.test.Legacy");
  const auto paths = resolve(legacy, {"n", "mode", "s", "m1", "m2", "next.n", "next.mode"});
  decoder dec(legacy, paths);
  const pb::Message& proto = *factory.GetPrototype(legacy->descriptor());
  for (int n = 0; n < 5000 && !HasFailure(); ++n)
    compare(dec, paths, proto, gen.wire(legacy->descriptor()));
  expect_hits(paths, 10);
}

TEST_F(schema_test, truncated_records_are_rejected_like_protobuf) {
  const auto paths = resolve(rich, rich_paths);
  decoder dec(rich, paths);
  const pb::Message& proto = *factory.GetPrototype(rich->descriptor());
  for (int n = 0; n < 200 && !HasFailure(); ++n) {
    std::unique_ptr<pb::Message> a(proto.New());
    gen.fill(*a);
    const std::string bytes = a->SerializeAsString();
    for (size_t len = 0; len < bytes.size(); ++len)
      compare(dec, paths, proto, bytes.substr(0, len), true);
  }
}

TEST_F(schema_test, mutated_records_never_crash) {
  const auto paths = resolve(rich, rich_paths);
  decoder dec(rich, paths);
  const pb::Message& proto = *factory.GetPrototype(rich->descriptor());
  for (int n = 0; n < 20000 && !HasFailure(); ++n) {
    std::unique_ptr<pb::Message> a(proto.New());
    gen.fill(*a);
    std::string bytes = a->SerializeAsString();
    if (bytes.empty())
      continue;
    for (uint64_t k = 1 + gen.pick(3); k > 0; --k)
      bytes[gen.pick(bytes.size())] = static_cast<char>(gen.rng());
    compare(dec, paths, proto, bytes);
  }
}

TEST_F(schema_test, oneof_members_clear_each_other) {
  const auto paths = resolve(rich, {"alt.price", "name"});
  decoder dec(rich, paths);
  const pb::Descriptor* d = rich->descriptor();
  const pb::Message& proto = *factory.GetPrototype(d);
  std::unique_ptr<pb::Message> alt(proto.New()), number(proto.New()), name(proto.New());
  auto* bid = alt->GetReflection()->MutableMessage(alt.get(), d->FindFieldByName("alt"));
  bid->GetReflection()->SetDouble(bid, bid->GetDescriptor()->FindFieldByName("price"), 2.5);
  number->GetReflection()->SetInt64(number.get(), d->FindFieldByName("number"), 0);
  name->GetReflection()->SetString(name.get(), d->FindFieldByName("name"), "n");
  std::string error;
  ASSERT_TRUE(dec.decode(alt->SerializeAsString(), out, error));
  EXPECT_EQ(out[0], value::of(2.5));
  // "number" is not requested, yet setting it clears "alt".
  ASSERT_TRUE(dec.decode(alt->SerializeAsString() + number->SerializeAsString(), out, error));
  EXPECT_FALSE(out[0].present());
  ASSERT_TRUE(dec.decode(name->SerializeAsString() + alt->SerializeAsString(), out, error));
  EXPECT_EQ(out[0], value::of(2.5));
  EXPECT_FALSE(out[1].present());
  for (const auto& bytes :
       {alt->SerializeAsString() + number->SerializeAsString(),
        name->SerializeAsString() + alt->SerializeAsString() + alt->SerializeAsString()})
    compare(dec, paths, proto, bytes, true);
}

TEST_F(schema_test, decoder_reuses_output_and_moves) {
  decoder dec(rich, resolve(rich, {"str"}));
  decoder moved = std::move(dec);
  std::string error;
  ASSERT_TRUE(moved.decode(std::string("\x72\x03"
                                       "abc",
                                       5),
                           out, error));
  EXPECT_EQ(out.at(0), value::of(std::string("abc")));
  ASSERT_TRUE(moved.decode("", out, error));
  EXPECT_FALSE(out.at(0).present());
}

} // namespace
