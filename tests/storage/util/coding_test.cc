// The integer encodings every on-disk format uses (util/coding.h): exact
// bytes, round trips at every width boundary, and rejection of truncated or
// overlong input without reading past it.

#include "util/coding.h"

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"

namespace strata::storage {
namespace {

// Values at and around every 7-bit boundary of a varint.
std::vector<uint64_t> VarintBoundaries() {
  std::vector<uint64_t> values = {0, 1, 2};
  for (int bits = 7; bits < 64; bits += 7) {
    uint64_t power = uint64_t{1} << bits;
    values.insert(values.end(), {power - 1, power, power + 1});
  }
  values.push_back(std::numeric_limits<uint32_t>::max());
  values.push_back(std::numeric_limits<uint64_t>::max() - 1);
  values.push_back(std::numeric_limits<uint64_t>::max());
  return values;
}

// A view over bytes that is followed in memory by a guard byte, so a read
// past the view's end would be visible to a sanitizer build and, here,
// would change the result.
std::string_view Bounded(const std::string& buffer_with_guard) {
  return std::string_view(buffer_with_guard.data(),
                          buffer_with_guard.size() - 1);
}

TEST(CodingTest, FixedIntegersAreLittleEndian) {
  std::string s;
  PutFixed32(&s, 0x04030201);
  PutFixed64(&s, 0x0807060504030201);
  EXPECT_EQ(s, std::string("\x01\x02\x03\x04"
                           "\x01\x02\x03\x04\x05\x06\x07\x08",
                           12));
}

TEST(CodingTest, FixedIntegersRoundTripAtTheirLimits) {
  const uint32_t v32[] = {0, 1, 0xff, 0x100, 0x7fffffff, 0x80000000,
                          0xffffffff};
  const uint64_t v64[] = {0, 1, 0xffffffff, 0x100000000, 0x7fffffffffffffff,
                          0x8000000000000000, 0xffffffffffffffff};
  std::string s;
  for (uint32_t v : v32) PutFixed32(&s, v);
  for (uint64_t v : v64) PutFixed64(&s, v);
  EXPECT_EQ(s.size(), 7 * 4 + 7 * 8u);
  std::string_view in(s);
  for (uint32_t v : v32) {
    uint32_t got;
    ASSERT_TRUE(GetFixed32(&in, &got));
    EXPECT_EQ(got, v);
  }
  for (uint64_t v : v64) {
    uint64_t got;
    ASSERT_TRUE(GetFixed64(&in, &got));
    EXPECT_EQ(got, v);
  }
  EXPECT_TRUE(in.empty());
}

TEST(CodingTest, TruncatedFixedIntegersAreRejected) {
  std::string s;
  PutFixed64(&s, 42);
  for (size_t len = 0; len < 8; len++) {
    std::string_view in(s.data(), len);
    uint64_t v64;
    EXPECT_FALSE(GetFixed64(&in, &v64)) << len << " bytes";
    if (len < 4) {
      uint32_t v32;
      in = std::string_view(s.data(), len);
      EXPECT_FALSE(GetFixed32(&in, &v32)) << len << " bytes";
    }
  }
}

TEST(CodingTest, VarintBytesMatchTheFormat) {
  auto encode = [](uint64_t v) {
    std::string s;
    PutVarint64(&s, v);
    return s;
  };
  EXPECT_EQ(encode(0), std::string("\x00", 1));
  EXPECT_EQ(encode(127), "\x7f");
  EXPECT_EQ(encode(128), "\x80\x01");
  EXPECT_EQ(encode(300), "\xac\x02");
  EXPECT_EQ(encode(16383), "\xff\x7f");
  EXPECT_EQ(encode(16384), std::string("\x80\x80\x01"));
  EXPECT_EQ(encode(std::numeric_limits<uint64_t>::max()),
            "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01");
}

TEST(CodingTest, Varint64RoundTripsAtEveryBoundary) {
  std::string s;
  for (uint64_t v : VarintBoundaries()) PutVarint64(&s, v);
  std::string_view in(s);
  for (uint64_t v : VarintBoundaries()) {
    const size_t before = in.size();
    uint64_t got;
    ASSERT_TRUE(GetVarint64(&in, &got)) << v;
    EXPECT_EQ(got, v);
    EXPECT_EQ(before - in.size(), static_cast<size_t>(VarintLength(v))) << v;
  }
  EXPECT_TRUE(in.empty());
}

TEST(CodingTest, Varint32RoundTripsAtEveryBoundary) {
  std::vector<uint32_t> values;
  for (uint64_t v : VarintBoundaries()) {
    if (v <= std::numeric_limits<uint32_t>::max()) {
      values.push_back(static_cast<uint32_t>(v));
    }
  }
  std::string s;
  for (uint32_t v : values) PutVarint32(&s, v);
  std::string_view in(s);
  for (uint32_t v : values) {
    uint32_t got;
    ASSERT_TRUE(GetVarint32(&in, &got)) << v;
    EXPECT_EQ(got, v);
  }
  EXPECT_TRUE(in.empty());
  // The pointer decoder agrees.
  const char* p = s.data();
  const char* limit = p + s.size();
  for (uint32_t v : values) {
    uint32_t got;
    p = GetVarint32Ptr(p, limit, &got);
    ASSERT_NE(p, nullptr) << v;
    EXPECT_EQ(got, v);
  }
  EXPECT_EQ(p, limit);
}

TEST(CodingTest, EncodeVarintReturnsTheEndOfWhatItWrote) {
  for (uint64_t v : VarintBoundaries()) {
    char buf[10];
    char* end = EncodeVarint64(buf, v);
    EXPECT_EQ(end - buf, VarintLength(v)) << v;
    if (v <= std::numeric_limits<uint32_t>::max()) {
      char buf32[5];
      EXPECT_EQ(EncodeVarint32(buf32, static_cast<uint32_t>(v)) - buf32,
                VarintLength(v));
    }
  }
  EXPECT_EQ(VarintLength(std::numeric_limits<uint32_t>::max()), 5);
  EXPECT_EQ(VarintLength(std::numeric_limits<uint64_t>::max()), 10);
}

TEST(CodingTest, TruncatedVarintsAreRejectedWithoutReadingPastTheInput) {
  for (uint64_t v : VarintBoundaries()) {
    std::string full;
    PutVarint64(&full, v);
    for (size_t len = 0; len < full.size(); len++) {
      // The byte after the view continues the varint, so decoding it would
      // succeed only by reading past the end.
      std::string buffer = full.substr(0, len) + full.substr(len, 1);
      std::string_view in(buffer.data(), len);
      uint64_t got64;
      EXPECT_FALSE(GetVarint64(&in, &got64)) << v << " cut to " << len;
      if (v <= std::numeric_limits<uint32_t>::max()) {
        in = std::string_view(buffer.data(), len);
        uint32_t got32;
        EXPECT_FALSE(GetVarint32(&in, &got32)) << v << " cut to " << len;
        EXPECT_EQ(GetVarint32Ptr(buffer.data(), buffer.data() + len, &got32),
                  nullptr);
      }
    }
  }
}

TEST(CodingTest, OverlongVarintsAreRejected) {
  // 2^32 does not fit a varint32.
  std::string s;
  PutVarint64(&s, uint64_t{1} << 32);
  std::string_view in(s);
  uint32_t v32;
  EXPECT_FALSE(GetVarint32(&in, &v32));
  // Six bytes with continuation bits can never be a varint32.
  std::string six("\x80\x80\x80\x80\x80\x01", 6);
  in = six;
  EXPECT_FALSE(GetVarint32(&in, &v32));
  // 2^64 does not fit a varint64: ten bytes with 2 in the last.
  std::string big("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 10);
  in = big;
  uint64_t v64;
  EXPECT_FALSE(GetVarint64(&in, &v64));
  // Eleven bytes with continuation bits can never be a varint64.
  std::string eleven(10, '\x80');
  eleven += '\x01';
  in = eleven;
  EXPECT_FALSE(GetVarint64(&in, &v64));
}

TEST(CodingTest, LengthPrefixedSlicesRoundTrip) {
  const std::string values[] = {"", "a", std::string(127, 'b'),
                                std::string(128, 'c'), std::string(70000, 'd'),
                                std::string("with\0nul", 8)};
  std::string s;
  for (const std::string& v : values) PutLengthPrefixed(&s, v);
  std::string_view in(s);
  for (const std::string& v : values) {
    std::string_view got;
    ASSERT_TRUE(GetLengthPrefixed(&in, &got));
    EXPECT_EQ(got, v);
  }
  EXPECT_TRUE(in.empty());
}

TEST(CodingTest, LengthPrefixedSliceLongerThanTheInputIsRejected) {
  std::string s;
  PutLengthPrefixed(&s, "hello");
  s.push_back('!');  // Guard: one more byte than the view holds.
  for (size_t len = 0; len + 1 < s.size(); len++) {
    std::string_view in(s.data(), len);
    std::string_view got;
    EXPECT_FALSE(GetLengthPrefixed(&in, &got)) << len << " bytes";
  }
  std::string_view whole = Bounded(s);
  std::string_view got;
  ASSERT_TRUE(GetLengthPrefixed(&whole, &got));
  EXPECT_EQ(got, "hello");
}

}  // namespace
}  // namespace strata::storage
