// Typed values without a server: what each type accepts at its boundaries,
// the normalized JSON form, JSON Pointer (RFC 6901 section 5), JSON Merge
// Patch (RFC 7386 appendix A) and JSON Patch (RFC 6902 appendix A), all
// against the RFCs' own examples; and the read-modify-write operations of
// typed_ops.h on given states.

#include "server/typed_values.h"

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/typed_ops.h"
#include "tests/support/test_util.h"

namespace strata::server {
namespace {

using ::testing::HasSubstr;

std::string Prepared(int type, const std::string& value) {
  std::string storage;
  absl::StatusOr<std::string_view> v = PrepareTypedValue(type, value, &storage);
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? std::string(*v) : "<error>";
}

absl::Status PrepareStatus(int type, const std::string& value) {
  std::string storage;
  return PrepareTypedValue(type, value, &storage).status();
}

// ---- BYTES, TEXT, INT64 --------------------------------------------------

TEST(TypedValuesTest, BytesAreStoredAsGiven) {
  const std::string raw("\xff\x00\xfe", 3);
  EXPECT_EQ(Prepared(v1::BYTES, raw), raw);
  EXPECT_EQ(Prepared(v1::BYTES, ""), "");
}

TEST(TypedValuesTest, UnknownTypeIsInvalidArgument) {
  absl::Status s = PrepareStatus(7, "x");
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("unknown value type 7"));
  EXPECT_EQ(TypeName(7), "type 7");
  EXPECT_EQ(TypeName(v1::JSON), "JSON");
}

TEST(TypedValuesTest, TextAcceptsWellFormedUtf8AtEveryBoundary) {
  for (const std::string& ok : std::vector<std::string>{
           "", "plain", std::string("nul\0inside", 10),
           "\x7f",                  // U+007F, last 1-byte
           "\xc2\x80",              // U+0080, first 2-byte
           "\xdf\xbf",              // U+07FF
           "\xe0\xa0\x80",          // U+0800, first 3-byte
           "\xed\x9f\xbf",          // U+D7FF, just below the surrogates
           "\xee\x80\x80",          // U+E000, just above them
           "\xef\xbf\xbf",          // U+FFFF
           "\xf0\x90\x80\x80",      // U+10000, first 4-byte
           "\xf4\x8f\xbf\xbf",      // U+10FFFF, the last code point
           "gr\xc3\xbc\xc3\x9f" "e \xf0\x9f\x98\x80"}) {
    EXPECT_OK(CheckUtf8(ok)) << ok;
    EXPECT_EQ(Prepared(v1::TEXT, ok), ok);
  }
}

TEST(TypedValuesTest, TextRejectsBadUtf8WithTheOffset) {
  struct Case {
    std::string text;
    size_t offset;
  };
  for (const Case& c : std::vector<Case>{
           {"ab\xff", 2},                 // never valid
           {"\x80", 0},                   // lone continuation byte
           {"\xc0\xaf", 0},               // overlong '/'
           {"\xc1\xbf", 0},               // overlong
           {"\xe0\x80\xaf", 0},           // overlong 3-byte
           {"\xf0\x80\x80\xaf", 0},       // overlong 4-byte
           {"x\xed\xa0\x80", 1},          // U+D800, a surrogate
           {"\xed\xbf\xbf", 0},           // U+DFFF
           {"\xf4\x90\x80\x80", 0},       // U+110000
           {"\xf5\x80\x80\x80", 0},       // beyond any code point
           {"abc\xc3", 3},                // truncated 2-byte
           {"\xe2\x82", 0},               // truncated 3-byte
           {"\xe2\x28\xa1", 0},           // bad continuation
       }) {
    absl::Status s = PrepareStatus(v1::TEXT, c.text);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << absl::CHexEscape(c.text);
    EXPECT_THAT(s.message(),
                HasSubstr(absl::StrFormat("value is not valid UTF-8: bad byte "
                                          "sequence at offset %d",
                                          c.offset)));
  }
}

TEST(TypedValuesTest, Int64AcceptsItsWholeRange) {
  EXPECT_EQ(*ParseInt64("0"), 0);
  EXPECT_EQ(*ParseInt64("-1"), -1);
  EXPECT_EQ(*ParseInt64("42"), 42);
  EXPECT_EQ(*ParseInt64("9223372036854775807"),
            std::numeric_limits<int64_t>::max());
  EXPECT_EQ(*ParseInt64("-9223372036854775808"),
            std::numeric_limits<int64_t>::min());
  EXPECT_EQ(Prepared(v1::INT64, "-9223372036854775808"),
            "-9223372036854775808");
  EXPECT_EQ(FormatInt64(std::numeric_limits<int64_t>::min()),
            "-9223372036854775808");
  EXPECT_EQ(FormatInt64(std::numeric_limits<int64_t>::max()),
            "9223372036854775807");
  EXPECT_EQ(FormatInt64(0), "0");
}

TEST(TypedValuesTest, Int64RejectsAnythingButItsCanonicalText) {
  struct Case {
    std::string text;
    std::string why;
  };
  for (const Case& c : std::vector<Case>{
           {"9223372036854775808", "out of the int64 range"},
           {"-9223372036854775809", "out of the int64 range"},
           {"99999999999999999999999", "out of the int64 range"},
           {"", "has no digits"},
           {"-", "has no digits"},
           {"+1", "not a decimal integer"},
           {" 1", "not a decimal integer"},
           {"1 ", "not a decimal integer"},
           {"1.0", "not a decimal integer"},
           {"1e3", "not a decimal integer"},
           {"0x10", "not a decimal integer"},
           {"--1", "not a decimal integer"},
           {"007", "leading zero"},
           {"-01", "leading zero"},
           {"-0", "negative zero"},
       }) {
    absl::Status s = PrepareStatus(v1::INT64, c.text);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << c.text;
    EXPECT_THAT(s.message(), HasSubstr("value is not an INT64")) << c.text;
    EXPECT_THAT(s.message(), HasSubstr(c.why)) << c.text;
  }
}

// ---- JSON ----------------------------------------------------------------

TEST(TypedValuesTest, JsonIsStoredNormalized) {
  EXPECT_EQ(Prepared(v1::JSON, " { \"b\" : [ 1 , 2.50 , true ] ,\n \"a\":null } "),
            R"({"a":null,"b":[1,2.5,true]})");
  // Every top-level value is a JSON text (RFC 8259); null is the null value.
  EXPECT_EQ(Prepared(v1::JSON, "null"), "null");
  EXPECT_EQ(Prepared(v1::JSON, " 12 "), "12");
  EXPECT_EQ(Prepared(v1::JSON, R"("x")"), R"("x")");
  // Escapes only where JSON requires them; UTF-8 as is.
  EXPECT_EQ(Prepared(v1::JSON, R"("\u00e9\/\u0001\ud83d\ude00")"),
            "\"\xc3\xa9/\\u0001\xf0\x9f\x98\x80\"");
  // Numbers: integers stay integers (up to 2^64 - 1), others shortest.
  EXPECT_EQ(Prepared(v1::JSON, "[-9223372036854775808,18446744073709551615]"),
            "[-9223372036854775808,18446744073709551615]");
  EXPECT_EQ(Prepared(v1::JSON, "[1e2,0.1,-0.0,1E-400]"), "[100.0,0.1,-0.0,0.0]");
}

TEST(TypedValuesTest, JsonRejectsInvalidTextWithWhereAndWhy) {
  for (const std::string& bad : std::vector<std::string>{
           "", " ", "{", "[1,]", "{'a':1}", "{\"a\":1} x", "nul", "01",
           "\"unterminated", "\"tab\there\"", "/* comment */ 1",
           "\"\xff\"", "\"\\ud800\"", "NaN", "Infinity"}) {
    absl::Status s = PrepareStatus(v1::JSON, bad);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << bad;
    EXPECT_THAT(s.message(), HasSubstr("value is not valid JSON")) << bad;
  }
  absl::Status s = PrepareStatus(v1::JSON, "{\"a\":\n x}");
  EXPECT_THAT(s.message(), HasSubstr("line 2, column 2"));
}

TEST(TypedValuesTest, JsonRejectsNumbersBeyondADouble) {
  for (const char* bad : {"1e400", "-1e400", "[1,2e999]"}) {
    absl::Status s = PrepareStatus(v1::JSON, bad);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << bad;
    // The library reports the overflow itself ("number overflow"); the
    // server also refuses a non-finite number the library would keep.
    EXPECT_THAT(std::string(s.message()), HasSubstr("number")) << s;
  }
}

TEST(TypedValuesTest, JsonRejectsDuplicateMemberNames) {
  for (const char* bad : {R"({"a":1,"a":2})", R"([{"x":{"b":1,"c":2,"b":3}}])"}) {
    absl::Status s = PrepareStatus(v1::JSON, bad);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << bad;
    EXPECT_THAT(s.message(), HasSubstr("duplicate member name")) << bad;
  }
  EXPECT_EQ(Prepared(v1::JSON, R"({"a":{"a":{"a":1}}})"), R"({"a":{"a":{"a":1}}})");
}

std::string Nested(int depth, const char* open, const char* close) {
  std::string s;
  for (int i = 0; i < depth; i++) s += open;
  s += "0";
  for (int i = 0; i < depth; i++) s += close;
  return s;
}

TEST(TypedValuesTest, JsonDepthIsLimitedTo128Levels) {
  EXPECT_OK(NormalizeJson(Nested(kMaxJsonDepth, "[", "]")));
  EXPECT_OK(NormalizeJson(Nested(kMaxJsonDepth, "{\"k\":", "}")));
  for (const std::string& deep :
       {Nested(kMaxJsonDepth + 1, "[", "]"),
        Nested(kMaxJsonDepth + 1, "{\"k\":", "}"),
        // Far deeper than any stack would take if it recursed.
        std::string(1'000'000, '[')}) {
    absl::Status s = PrepareStatus(v1::JSON, deep);
    EXPECT_TRUE(absl::IsInvalidArgument(s));
    EXPECT_THAT(s.message(), HasSubstr("nests more than 128 levels"));
  }
}

TEST(TypedValuesTest, HugeJsonParsesAndKeepsItsSize) {
  // A 2 MiB array: the size limit itself is --max_value_bytes, checked by
  // the caller on the normalized form.
  std::string huge = "[";
  while (huge.size() < (2u << 20) - 16) huge += "123456789,";
  huge += "0]";
  absl::StatusOr<std::string> n = NormalizeJson(huge);
  ASSERT_OK(n.status());
  EXPECT_EQ(*n, huge);
}

// ---- JSON Pointer (RFC 6901 section 5) -----------------------------------

constexpr char kRfc6901Doc[] = R"({
  "foo": ["bar", "baz"],
  "": 0,
  "a/b": 1,
  "c%d": 2,
  "e^f": 3,
  "g|h": 4,
  "i\\j": 5,
  "k\"l": 6,
  " ": 7,
  "m~n": 8
})";

TEST(TypedValuesTest, JsonPointerRfc6901Examples) {
  ASSERT_OK_AND_ASSIGN(const std::string doc, NormalizeJson(kRfc6901Doc));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", doc},         {"/foo", R"(["bar","baz"])"},
      {"/foo/0", R"("bar")"}, {"/", "0"},
      {"/a~1b", "1"},    {"/c%d", "2"},
      {"/e^f", "3"},     {"/g|h", "4"},
      {"/i\\j", "5"},    {"/k\"l", "6"},
      {"/ ", "7"},       {"/m~0n", "8"},
  };
  for (const auto& [pointer, want] : cases) {
    absl::StatusOr<std::string> got = JsonAtPointer(doc, pointer);
    ASSERT_TRUE(got.ok()) << got.status() << " " << pointer;
    EXPECT_EQ(*got, want) << pointer;
  }
}

TEST(TypedValuesTest, JsonPointerEscapesAreDecodedTildeOneFirst) {
  // "~01" is "~1" (not "/"): ~1 is replaced before ~0.
  ASSERT_OK_AND_ASSIGN(const std::string doc,
                       NormalizeJson(R"({"/":9,"~1":10,"~":11,"a~/b":12})"));
  EXPECT_EQ(*JsonAtPointer(doc, "/~01"), "10");
  EXPECT_EQ(*JsonAtPointer(doc, "/~1"), "9");
  EXPECT_EQ(*JsonAtPointer(doc, "/~0"), "11");
  EXPECT_EQ(*JsonAtPointer(doc, "/a~0~1b"), "12");
}

TEST(TypedValuesTest, MalformedPointerIsInvalidArgument) {
  for (const char* bad : {"foo", "/~", "/~2", "/a~x"}) {
    absl::Status s = CheckJsonPointer(bad);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << bad;
    EXPECT_THAT(s.message(), HasSubstr("is not a JSON Pointer")) << bad;
    EXPECT_TRUE(absl::IsInvalidArgument(JsonAtPointer("{}", bad).status()));
  }
}

TEST(TypedValuesTest, PointerThatDoesNotResolveIsNotFoundSayingWhere) {
  const std::string doc = R"({"a":{"b":[1,2]},"n":5})";
  for (const char* missing :
       {"/x", "/a/c", "/a/b/2", "/a/b/-", "/a/b/x", "/n/0", "/a/b/01"}) {
    absl::Status s = JsonAtPointer(doc, missing).status();
    EXPECT_TRUE(absl::IsNotFound(s)) << missing << ": " << s;
    EXPECT_THAT(s.message(),
                HasSubstr(absl::StrFormat("pointer \"%s\" does not resolve",
                                          missing)));
  }
}

// ---- JSON Merge Patch (RFC 7386 appendix A) ------------------------------

absl::StatusOr<std::string> MergePatch(const std::string& doc,
                                       const std::string& patch) {
  v1::JsonUpdateRequest request;
  request.set_merge_patch(patch);
  absl::StatusOr<JsonUpdatePatch> p = JsonUpdatePatch::Parse(request);
  if (!p.ok()) return p.status();
  absl::StatusOr<std::string> stored = NormalizeJson(doc);
  if (!stored.ok()) return stored.status();
  return p->Apply(*stored);
}

TEST(TypedValuesTest, MergePatchRfc7386AppendixA) {
  struct Case {
    const char* original;
    const char* patch;
    const char* result;
  };
  const Case cases[] = {
      {R"({"a":"b"})", R"({"a":"c"})", R"({"a":"c"})"},
      {R"({"a":"b"})", R"({"b":"c"})", R"({"a":"b","b":"c"})"},
      {R"({"a":"b"})", R"({"a":null})", R"({})"},
      {R"({"a":"b","b":"c"})", R"({"a":null})", R"({"b":"c"})"},
      {R"({"a":["b"]})", R"({"a":"c"})", R"({"a":"c"})"},
      {R"({"a":"c"})", R"({"a":["b"]})", R"({"a":["b"]})"},
      {R"({"a":{"b":"c"}})", R"({"a":{"b":"d","c":null}})",
       R"({"a":{"b":"d"}})"},
      {R"({"a":[{"b":"c"}]})", R"({"a":[1]})", R"({"a":[1]})"},
      {R"(["a","b"])", R"(["c","d"])", R"(["c","d"])"},
      {R"({"a":"b"})", R"(["c"])", R"(["c"])"},
      {R"({"a":"foo"})", R"(null)", R"(null)"},
      {R"({"a":"foo"})", R"("bar")", R"("bar")"},
      {R"({"e":null})", R"({"a":1})", R"({"e":null,"a":1})"},
      {R"([1,2])", R"({"a":"b","c":null})", R"({"a":"b"})"},
      {R"({})", R"({"a":{"bb":{"ccc":null}}})", R"({"a":{"bb":{}}})"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::string> got = MergePatch(c.original, c.patch);
    ASSERT_TRUE(got.ok()) << got.status() << " " << c.original << " + " << c.patch;
    EXPECT_EQ(*got, *NormalizeJson(c.result)) << c.original << " + " << c.patch;
  }
}

TEST(TypedValuesTest, MergePatchThatIsNotJsonIsInvalidArgument) {
  absl::Status s = MergePatch("{}", "{a:1}").status();
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_THAT(s.message(), HasSubstr("merge_patch is not valid JSON"));
}

// ---- JSON Patch (RFC 6902 appendix A) ------------------------------------

absl::StatusOr<std::string> JsonPatch(const std::string& doc,
                                      const std::string& patch) {
  v1::JsonUpdateRequest request;
  request.set_json_patch(patch);
  absl::StatusOr<JsonUpdatePatch> p = JsonUpdatePatch::Parse(request);
  if (!p.ok()) return p.status();
  absl::StatusOr<std::string> stored = NormalizeJson(doc);
  if (!stored.ok()) return stored.status();
  return p->Apply(*stored);
}

TEST(TypedValuesTest, JsonPatchRfc6902AppendixASuccesses) {
  struct Case {
    const char* section;
    const char* doc;
    const char* patch;
    const char* result;
  };
  const Case cases[] = {
      {"A.1", R"({"foo":"bar"})",
       R"([{"op":"add","path":"/baz","value":"qux"}])",
       R"({"baz":"qux","foo":"bar"})"},
      {"A.2", R"({"foo":["bar","baz"]})",
       R"([{"op":"add","path":"/foo/1","value":"qux"}])",
       R"({"foo":["bar","qux","baz"]})"},
      {"A.3", R"({"baz":"qux","foo":"bar"})",
       R"([{"op":"remove","path":"/baz"}])", R"({"foo":"bar"})"},
      {"A.4", R"({"foo":["bar","qux","baz"]})",
       R"([{"op":"remove","path":"/foo/1"}])", R"({"foo":["bar","baz"]})"},
      {"A.5", R"({"baz":"qux","foo":"bar"})",
       R"([{"op":"replace","path":"/baz","value":"boo"}])",
       R"({"baz":"boo","foo":"bar"})"},
      {"A.6", R"({"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}})",
       R"([{"op":"move","from":"/foo/waldo","path":"/qux/thud"}])",
       R"({"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}})"},
      {"A.7", R"({"foo":["all","grass","cows","eat"]})",
       R"([{"op":"move","from":"/foo/1","path":"/foo/3"}])",
       R"({"foo":["all","cows","eat","grass"]})"},
      {"A.8", R"({"baz":"qux","foo":["a",2,"c"]})",
       R"([{"op":"test","path":"/baz","value":"qux"},
           {"op":"test","path":"/foo/1","value":2}])",
       R"({"baz":"qux","foo":["a",2,"c"]})"},
      {"A.10", R"({"foo":"bar"})",
       R"([{"op":"add","path":"/child","value":{"grandchild":{}}}])",
       R"({"foo":"bar","child":{"grandchild":{}}})"},
      {"A.11", R"({"foo":"bar"})",
       R"([{"op":"add","path":"/baz","value":"qux","xyz":123}])",
       R"({"foo":"bar","baz":"qux"})"},
      {"A.14", R"({"/":9,"~1":10})",
       R"([{"op":"test","path":"/~01","value":10}])", R"({"/":9,"~1":10})"},
      {"A.16", R"({"foo":["bar"]})",
       R"([{"op":"add","path":"/foo/-","value":["abc","def"]}])",
       R"({"foo":["bar",["abc","def"]]})"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::string> got = JsonPatch(c.doc, c.patch);
    ASSERT_TRUE(got.ok()) << got.status() << " " << c.section;
    EXPECT_EQ(*got, *NormalizeJson(c.result)) << c.section;
  }
}

TEST(TypedValuesTest, JsonPatchRfc6902AppendixAErrors) {
  // A.9: a failed test. A.12: adding to a nonexistent target. A.15: "10"
  // is a string, not the number 10.
  struct Case {
    const char* section;
    const char* doc;
    const char* patch;
    const char* message;
  };
  const Case cases[] = {
      {"A.9", R"({"baz":"qux"})",
       R"([{"op":"test","path":"/baz","value":"bar"}])",
       "operation 0 (test /baz) does not apply: test failed"},
      {"A.12", R"({"foo":"bar"})",
       R"([{"op":"add","path":"/baz/bat","value":"qux"}])",
       "operation 0 (add /baz/bat) does not apply: its parent does not exist"},
      {"A.15", R"({"/":9,"~1":10})",
       R"([{"op":"test","path":"/~01","value":"10"}])",
       "operation 0 (test /~01) does not apply: test failed"},
  };
  for (const Case& c : cases) {
    absl::Status s = JsonPatch(c.doc, c.patch).status();
    EXPECT_TRUE(absl::IsFailedPrecondition(s)) << c.section << ": " << s;
    EXPECT_THAT(s.message(), HasSubstr(c.message)) << c.section;
  }
  // A.13: a duplicate "op" member makes the patch invalid JSON.
  absl::Status s =
      JsonPatch(R"({"foo":"bar"})",
                R"([{"op":"add","path":"/baz","value":"qux","op":"remove"}])")
          .status();
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("duplicate member name"));
}

TEST(TypedValuesTest, JsonPatchIsAllOrNothing) {
  // The second operation fails: the first one's change is not kept.
  absl::Status s = JsonPatch(R"({"a":1})",
                             R"([{"op":"replace","path":"/a","value":2},
                                 {"op":"remove","path":"/missing"}])")
                       .status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("operation 1 (remove /missing)"));
}

TEST(TypedValuesTest, JsonPatchEdgeCasesTheLibraryGetsWrongAreErrors) {
  // A scalar or null parent is not a container (RFC 6902 section 4.1).
  for (const char* patch : {R"([{"op":"add","path":"/n/x","value":1}])",
                            R"([{"op":"add","path":"/z/x","value":1}])",
                            R"([{"op":"remove","path":"/n/x"}])",
                            R"([{"op":"copy","from":"/n","path":"/s/x"}])"}) {
    absl::Status s = JsonPatch(R"({"n":5,"s":"str","z":null})", patch).status();
    EXPECT_TRUE(absl::IsFailedPrecondition(s)) << patch << ": " << s;
  }
  // Whole-document operations.
  EXPECT_EQ(*JsonPatch(R"({"a":1})", R"([{"op":"add","path":"","value":[1]}])"),
            "[1]");
  EXPECT_EQ(*JsonPatch(R"({"a":1})",
                       R"([{"op":"replace","path":"","value":null}])"),
            "null");
  EXPECT_TRUE(absl::IsInvalidArgument(
      JsonPatch(R"({"a":1})", R"([{"op":"remove","path":""}])").status()));
  // Moving a value into itself.
  EXPECT_TRUE(absl::IsFailedPrecondition(
      JsonPatch(R"({"a":{"b":1}})",
                R"([{"op":"move","from":"/a","path":"/a/b/c"}])")
          .status()));
  // Array index past the end.
  EXPECT_TRUE(absl::IsFailedPrecondition(
      JsonPatch(R"({"a":[1]})", R"([{"op":"add","path":"/a/3","value":1}])")
          .status()));
}

TEST(TypedValuesTest, MalformedJsonPatchIsInvalidArgument) {
  struct Case {
    const char* patch;
    const char* message;
  };
  const Case cases[] = {
      {R"({"op":"add"})", "not an array of operations"},
      {R"([1])", "operation 0 is not an object"},
      {R"([{"path":"/a"}])", "has no string member \"op\""},
      {R"([{"op":"frob","path":"/a"}])", "has op \"frob\""},
      {R"([{"op":"add","value":1}])", "has no string member \"path\""},
      {R"([{"op":"add","path":"a","value":1}])", "is not a JSON Pointer"},
      {R"([{"op":"add","path":"/a"}])", "has no member \"value\""},
      {R"([{"op":"move","path":"/a"}])", "has no string member \"from\""},
      {R"([{"op":"copy","from":"/~9","path":"/a"}])", "is not a JSON Pointer"},
      {R"([{"op":"test","path":"/a","value":1},{"op":"replace","path":"/a"}])",
       "operation 1 has no member \"value\""},
  };
  for (const Case& c : cases) {
    absl::Status s = JsonPatch("{}", c.patch).status();
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << c.patch << ": " << s;
    EXPECT_THAT(s.message(), HasSubstr(c.message)) << c.patch;
  }
  v1::JsonUpdateRequest none;
  EXPECT_TRUE(absl::IsInvalidArgument(JsonUpdatePatch::Parse(none).status()));
}

TEST(TypedValuesTest, PatchedDocumentDeeperThanTheLimitIsRejected) {
  // The patch itself stays within the limit (2 + 126 levels).
  const std::string deep_value = Nested(kMaxJsonDepth - 2, "[", "]");
  // add: a 126-level value under 3 levels of document = 129 levels.
  absl::Status s =
      JsonPatch(R"({"a":{"b":{}}})",
                absl::StrFormat(R"([{"op":"add","path":"/a/b/x","value":%s}])",
                                deep_value))
          .status();
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("would nest 129 levels"));
}

// ---- typed_ops.h on given states -----------------------------------------

StoredValue Stored(const std::string& value, v1::ValueType type,
                   uint64_t expire_at = 0, uint64_t lease = 0) {
  StoredValue s;
  s.value = value;
  s.metadata.attributes.value_type = static_cast<uint8_t>(type);
  s.metadata.attributes.expire_at_unix_ms = expire_at;
  s.metadata.attributes.lease = lease;
  return s;
}

v1::IncrementRequest Incr(int64_t delta, bool must_exist = false,
                          int64_t ttl_ms = 0) {
  v1::IncrementRequest r;
  r.set_key("k");
  r.set_delta(delta);
  r.set_must_exist(must_exist);
  r.set_ttl_ms(ttl_ms);
  return r;
}

TEST(TypedOpsTest, IncrementCountsFromZeroOrNeedsTheKey) {
  ASSERT_OK_AND_ASSIGN(IncrementResult r,
                       ComputeIncrement(std::nullopt, Incr(5), 0));
  EXPECT_EQ(r.value, 5);
  EXPECT_EQ(r.put.value, "5");
  EXPECT_EQ(r.put.attributes.value_type, v1::INT64);
  EXPECT_EQ(r.put.attributes.expire_at_unix_ms, 0u);
  absl::Status s = ComputeIncrement(std::nullopt, Incr(5, true), 0).status();
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  ASSERT_OK_AND_ASSIGN(r, ComputeIncrement(Stored("-3", v1::INT64), Incr(0, true), 0));
  EXPECT_EQ(r.put.value, "-3");
}

TEST(TypedOpsTest, IncrementOverflowIsOutOfRangeAtBothEnds) {
  const int64_t max = std::numeric_limits<int64_t>::max();
  const int64_t min = std::numeric_limits<int64_t>::min();
  ASSERT_OK_AND_ASSIGN(
      IncrementResult r,
      ComputeIncrement(Stored(FormatInt64(max - 1), v1::INT64), Incr(1), 0));
  EXPECT_EQ(r.value, max);
  absl::Status s =
      ComputeIncrement(Stored(FormatInt64(max), v1::INT64), Incr(1), 0).status();
  EXPECT_TRUE(absl::IsOutOfRange(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("overflows int64"));
  ASSERT_OK_AND_ASSIGN(
      r, ComputeIncrement(Stored(FormatInt64(min + 1), v1::INT64), Incr(-1), 0));
  EXPECT_EQ(r.value, min);
  EXPECT_TRUE(absl::IsOutOfRange(
      ComputeIncrement(Stored(FormatInt64(min), v1::INT64), Incr(-1), 0)
          .status()));
  ASSERT_OK_AND_ASSIGN(r, ComputeIncrement(std::nullopt, Incr(min), 0));
  EXPECT_EQ(r.put.value, "-9223372036854775808");
  EXPECT_TRUE(absl::IsOutOfRange(
      ComputeIncrement(Stored("-1", v1::INT64), Incr(min), 0).status()));
}

TEST(TypedOpsTest, IncrementOfAnotherTypeIsFailedPrecondition) {
  for (v1::ValueType t : {v1::BYTES, v1::TEXT, v1::JSON}) {
    absl::Status s = ComputeIncrement(Stored("1", t), Incr(1), 0).status();
    EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
    EXPECT_THAT(s.message(), HasSubstr("Increment: the key holds a " +
                                       TypeName(t) + " value, not INT64"));
  }
  // A stored INT64 that does not parse is corruption.
  EXPECT_TRUE(absl::IsDataLoss(
      ComputeIncrement(Stored("x", v1::INT64), Incr(1), 0).status()));
}

TEST(TypedOpsTest, IncrementKeepsExpiryAndLeaseUnlessTtlIsGiven) {
  ASSERT_OK_AND_ASSIGN(
      IncrementResult r,
      ComputeIncrement(Stored("1", v1::INT64, 5000, 77), Incr(1), 1000));
  EXPECT_EQ(r.put.attributes.expire_at_unix_ms, 5000u);
  EXPECT_EQ(r.put.attributes.lease, 77u);
  ASSERT_OK_AND_ASSIGN(
      r, ComputeIncrement(Stored("1", v1::INT64, 5000, 77), Incr(1, false, 250),
                          1000));
  EXPECT_EQ(r.put.attributes.expire_at_unix_ms, 1250u);
  EXPECT_EQ(r.put.attributes.lease, 77u);
  Limits limits;
  v1::IncrementRequest bad = Incr(1, false, -1);
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateIncrement(bad, limits)));
  bad.set_key("");
  bad.set_ttl_ms(0);
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateIncrement(bad, limits)));
}

TEST(TypedOpsTest, StoredInt64ComparesOnlyInt64Values) {
  EXPECT_EQ(*StoredInt64(Stored("-12", v1::INT64)), -12);
  EXPECT_TRUE(
      absl::IsFailedPrecondition(StoredInt64(Stored("12", v1::TEXT)).status()));
}

TEST(TypedOpsTest, JsonGetTellsAMissingKeyFromAMissingPointer) {
  v1::JsonGetRequest request;
  request.set_key("k");
  request.set_pointer("/a");
  absl::Status missing_key = ComputeJsonGet(std::nullopt, request).status();
  EXPECT_TRUE(absl::IsNotFound(missing_key));
  EXPECT_EQ(missing_key.message(), "key not found");
  absl::Status missing_path =
      ComputeJsonGet(Stored("{}", v1::JSON), request).status();
  EXPECT_TRUE(absl::IsNotFound(missing_path));
  EXPECT_THAT(missing_path.message(), HasSubstr("pointer \"/a\" does not resolve"));
  EXPECT_TRUE(absl::IsFailedPrecondition(
      ComputeJsonGet(Stored("{}", v1::TEXT), request).status()));
  EXPECT_EQ(*ComputeJsonGet(Stored(R"({"a":[1]})", v1::JSON), request), "[1]");
}

TEST(TypedOpsTest, JsonUpdateNeedsAJsonKeyAndStaysWithinTheValueLimit) {
  v1::JsonUpdateRequest request;
  request.set_key("k");
  request.set_merge_patch(R"({"big":"0123456789012345678901234567890123456789"})");
  Limits limits;
  ASSERT_OK_AND_ASSIGN(JsonUpdatePatch patch, PrepareJsonUpdate(request, limits));
  EXPECT_TRUE(
      absl::IsNotFound(ComputeJsonUpdate(std::nullopt, patch, limits).status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(
      ComputeJsonUpdate(Stored("{}", v1::BYTES), patch, limits).status()));
  ASSERT_OK_AND_ASSIGN(
      TypedPut put,
      ComputeJsonUpdate(Stored(R"({"a":1})", v1::JSON, 9000, 3), patch, limits));
  EXPECT_EQ(put.value,
            R"({"a":1,"big":"0123456789012345678901234567890123456789"})");
  EXPECT_EQ(put.attributes.value_type, v1::JSON);
  EXPECT_EQ(put.attributes.expire_at_unix_ms, 9000u);
  EXPECT_EQ(put.attributes.lease, 3u);
  limits.max_value_bytes = 40;
  absl::Status s =
      ComputeJsonUpdate(Stored(R"({"a":1})", v1::JSON), patch, limits).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("the limit is 40 (--max_value_bytes)"));
  // A stored document that does not parse is corruption.
  EXPECT_TRUE(absl::IsDataLoss(
      ComputeJsonUpdate(Stored("{", v1::JSON), patch, Limits()).status()));
}

}  // namespace
}  // namespace strata::server
