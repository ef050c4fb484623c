// The server's key layout: default-namespace keys as they are (escaped
// only when they begin with \xff\xff), server metadata and other
// namespaces in the reserved area no default key can reach, and iteration
// over one namespace in user-key order.

#include "server/keyspace.h"

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "strata/storage/db.h"
#include "tests/support/test_util.h"

namespace strata::server {
namespace {

using ::strata::testing::TempDir;

const std::string kFF = "\xff\xff";

TEST(KeyspaceTest, DefaultNamespaceKeysAreStoredAsTheyAreUnlessReserved) {
  KeyspaceView d;
  EXPECT_EQ(d.Encode("a"), "a");
  EXPECT_EQ(d.Encode("\xff"), "\xff");
  EXPECT_EQ(d.Encode(kFF), kFF + "\xff");
  EXPECT_EQ(d.Encode(kFF + "x"), kFF + "\xffx");
  for (const std::string& k : {std::string("a"), kFF, kFF + "x", kFF + "\xff"}) {
    std::string back;
    ASSERT_TRUE(d.Decode(d.Encode(k), &back));
    EXPECT_EQ(back, k);
  }
  std::string key = "unchanged";
  EXPECT_FALSE(d.Decode(SystemKey("lease/1"), &key));
  EXPECT_FALSE(d.Decode(KeyspaceView(7).Encode("a"), &key));
  EXPECT_EQ(key, "unchanged");
}

TEST(KeyspaceTest, StoredKeysDecodeToTheirOwners) {
  DecodedKey sys = DecodeStoredKey(SystemKey("ttl/x"));
  EXPECT_EQ(sys.kind, DecodedKey::Kind::kSystem);
  EXPECT_EQ(sys.key, "ttl/x");
  DecodedKey ns = DecodeStoredKey(KeyspaceView(300).Encode("k"));
  EXPECT_EQ(ns.kind, DecodedKey::Kind::kUser);
  EXPECT_EQ(ns.namespace_id, 300u);
  EXPECT_EQ(ns.key, "k");
  DecodedKey def = DecodeStoredKey(kFF + "\xffz");
  EXPECT_EQ(def.namespace_id, 0u);
  EXPECT_EQ(def.key, kFF + "z");
  // Unknown reserved tags are never shown as user keys.
  EXPECT_EQ(DecodeStoredKey(kFF + "\x05whatever").kind,
            DecodedKey::Kind::kSystem);
  EXPECT_EQ(DecodeStoredKey(kFF).kind, DecodedKey::Kind::kSystem);
}

TEST(KeyspaceTest, NamespacesNeverShareAPrefix) {
  // Varint ids are prefix-free: namespace 1's keys never start with 128's.
  for (uint64_t a : {1ull, 2ull, 127ull, 128ull, 300ull, 1ull << 40}) {
    for (uint64_t b : {1ull, 2ull, 127ull, 128ull, 300ull, 1ull << 40}) {
      if (a == b) continue;
      std::string key;
      EXPECT_FALSE(KeyspaceView(b).Decode(KeyspaceView(a).Encode("k"), &key))
          << a << " " << b;
    }
  }
}

class KeyspaceIterationTest : public ::testing::Test {
 protected:
  KeyspaceIterationTest() {
    auto db = storage::DB::Open(storage::Options(), dir_.path());
    EXPECT_TRUE(db.ok());
    db_ = std::move(*db);
    storage::WriteBatch b;
    KeyspaceView def, ns5(5), ns6(6);
    for (const std::string& k : {std::string("a"), std::string("m"),
                                 std::string("\xff"), kFF, kFF + "z"}) {
      b.Put(def.Encode(k), "d");
    }
    for (const char* k : {"a", "b", "c"}) b.Put(ns5.Encode(k), "5");
    b.Put(ns6.Encode("a"), "6");
    b.Put(SystemKey("lease/1"), "s");
    EXPECT_TRUE(db_->Write(storage::WriteOptions(), &b).ok());
  }
  std::string Keys(const KeyspaceView& v, bool reverse = false,
                   std::string from = "") {
    auto it = v.NewIterator(db_->NewIterator(storage::ReadOptions()));
    std::string out;
    if (reverse) {
      for (it->SeekToLast(); it->Valid(); it->Prev()) out += Show(it->key());
    } else {
      for (from.empty() ? it->SeekToFirst() : it->Seek(from); it->Valid();
           it->Next()) {
        out += Show(it->key());
      }
    }
    EXPECT_OK(it->status());
    return out;
  }
  static std::string Show(std::string_view k) {
    std::string s;
    for (char c : k) s += c == '\xff' ? std::string("~") : std::string(1, c);
    return s + ",";
  }
  TempDir dir_;
  std::unique_ptr<storage::DB> db_;
};

TEST_F(KeyspaceIterationTest, DefaultNamespaceSkipsTheReservedArea) {
  EXPECT_EQ(Keys(KeyspaceView()), "a,m,~,~~,~~z,");
  EXPECT_EQ(Keys(KeyspaceView(), /*reverse=*/true), "~~z,~~,~,m,a,");
  EXPECT_EQ(Keys(KeyspaceView(), false, "\xff\x01"), "~~,~~z,");
  EXPECT_EQ(Keys(KeyspaceView(), false, kFF + "y"), "~~z,");
}

TEST_F(KeyspaceIterationTest, NamedNamespacesSeeOnlyTheirKeys) {
  EXPECT_EQ(Keys(KeyspaceView(5)), "a,b,c,");
  EXPECT_EQ(Keys(KeyspaceView(5), true), "c,b,a,");
  EXPECT_EQ(Keys(KeyspaceView(5), false, "b"), "b,c,");
  EXPECT_EQ(Keys(KeyspaceView(6)), "a,");
  EXPECT_EQ(Keys(KeyspaceView(7)), "");
  EXPECT_EQ(Keys(KeyspaceView(7), true), "");
}

}  // namespace
}  // namespace strata::server
