#include "server/handlers.h"
#include "server/keyspace.h"

#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_util.h"

namespace strata::server {
namespace {

using ::testing::HasSubstr;

// Lists a batch's operations as "P key=value" / "D key".
class BatchRecorder : public storage::WriteBatch::Handler {
 public:
  void Put(std::string_view key, std::string_view value,
           const storage::PutAttributes&) override {
    ops.push_back("P " + std::string(key) + "=" + std::string(value));
  }
  void Delete(std::string_view key) override {
    ops.push_back("D " + std::string(key));
  }
  std::vector<std::string> ops;
};

std::vector<std::string> Ops(const storage::WriteBatch& batch) {
  BatchRecorder r;
  EXPECT_OK(batch.Iterate(&r));
  return r.ops;
}

// An iterator over a std::map, optionally failing after `fail_after` pairs.
class MapIterator : public storage::Iterator {
 public:
  explicit MapIterator(const std::map<std::string, std::string>* m,
                       int fail_after = -1)
      : m_(m), it_(m->end()), fail_after_(fail_after) {}
  bool Valid() const override { return status_.ok() && it_ != m_->end(); }
  void SeekToFirst() override { it_ = m_->begin(); }
  void SeekToLast() override {}
  void Seek(std::string_view target) override {
    it_ = m_->lower_bound(std::string(target));
  }
  void Next() override {
    ++it_;
    ++steps_;
    if (fail_after_ >= 0 && steps_ >= fail_after_) {
      status_ = absl::DataLossError("bad block in 000012.sst at offset 4096");
    }
  }
  void Prev() override {}
  std::string_view key() const override { return it_->first; }
  std::string_view value() const override { return it_->second; }
  absl::Status status() const override { return status_; }
  int steps() const { return steps_; }

 private:
  const std::map<std::string, std::string>* m_;
  std::map<std::string, std::string>::const_iterator it_;
  int fail_after_;
  int steps_ = 0;
  absl::Status status_;
};

Limits DefaultLimits() { return Limits(); }

TEST(LimitsTest, DefaultsMatchTheContract) {
  Limits l;
  EXPECT_EQ(l.max_key_bytes, 8192u);
  EXPECT_EQ(l.max_value_bytes, 2u << 20);
  EXPECT_EQ(l.max_message_bytes, 16u << 20);
  EXPECT_EQ(l.max_batch_mutations, 10000u);
  EXPECT_OK(ValidateLimits(l));
}

TEST(LimitsTest, InconsistentLimitsAreRejected) {
  Limits l;
  l.max_key_bytes = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateLimits(l)));
  l = Limits();
  l.max_batch_mutations = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateLimits(l)));
  l = Limits();
  l.max_value_bytes = l.max_message_bytes;  // A maximal Put cannot fit.
  absl::Status s = ValidateLimits(l);
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_THAT(std::string(s.message()), HasSubstr("--max_message_bytes"));
  l = Limits();
  l.max_message_bytes = size_t{2} << 30;
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateLimits(l)));
}

TEST(ValidateKeyTest, BoundariesAndMessages) {
  const Limits l = DefaultLimits();
  EXPECT_OK(ValidateKey("k", l));
  EXPECT_OK(ValidateKey(std::string(8192, 'k'), l));
  absl::Status s = ValidateKey(std::string(9000, 'k'), l);
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_EQ(s.message(),
            "key is 9000 bytes; the limit is 8192 (--max_key_bytes)");
  s = ValidateKey("", l);
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_EQ(s.message(),
            "key is empty; keys must be 1..8192 bytes (--max_key_bytes)");
}

TEST(ValidateValueTest, BoundariesAndMessages) {
  const Limits l = DefaultLimits();
  EXPECT_OK(ValidateValue("", l));
  EXPECT_OK(ValidateValue(std::string(2 << 20, 'v'), l));
  absl::Status s = ValidateValue(std::string((2 << 20) + 1, 'v'), l);
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_EQ(s.message(),
            "value is 2097153 bytes; the limit is 2097152 (--max_value_bytes)");
}

TEST(ValidateRequestSizeTest, BoundariesAndMessages) {
  const Limits l = DefaultLimits();
  EXPECT_OK(ValidateRequestSize(16 << 20, l));
  absl::Status s = ValidateRequestSize((16 << 20) + 1, l);
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_EQ(s.message(),
            "request is 16777217 bytes; the limit is 16777216 "
            "(--max_message_bytes)");
}

TEST(ValidateGetTest, ChecksTheKey) {
  v1::GetRequest r;
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateGet(r, DefaultLimits())));
  r.set_key(std::string(8192, 'a'));
  EXPECT_OK(ValidateGet(r, DefaultLimits()));
  r.set_key(std::string(8193, 'a'));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateGet(r, DefaultLimits())));
}

storage::GetResult Found(std::string value, storage::Revision at,
                         storage::Revision create = 0,
                         storage::Revision mod = 0, uint64_t version = 0) {
  storage::GetResult r;
  r.found = true;
  r.value = std::move(value);
  r.metadata.create_revision = create;
  r.metadata.mod_revision = mod;
  r.metadata.version = version;
  r.revision = at;
  return r;
}

TEST(FillGetResponseTest, FoundMissingAndError) {
  v1::GetResponse resp;
  EXPECT_OK(FillGetResponse(Found("v", 9, 3, 7, 4), &resp));
  EXPECT_TRUE(resp.found());
  EXPECT_EQ(resp.value(), "v");
  EXPECT_EQ(resp.header().revision(), 9);
  EXPECT_EQ(resp.create_revision(), 3);
  EXPECT_EQ(resp.mod_revision(), 7);
  EXPECT_EQ(resp.version(), 4);

  EXPECT_OK(FillGetResponse(Found("", 9), &resp));  // Empty value: found.
  EXPECT_TRUE(resp.found());
  EXPECT_EQ(resp.value(), "");

  storage::GetResult missing;
  missing.revision = 10;
  EXPECT_OK(FillGetResponse(missing, &resp));
  EXPECT_FALSE(resp.found());
  EXPECT_EQ(resp.value(), "");
  EXPECT_EQ(resp.mod_revision(), 0);
  EXPECT_EQ(resp.header().revision(), 10);

  absl::Status s = FillGetResponse(absl::DataLossError("bad block"), &resp);
  EXPECT_TRUE(absl::IsDataLoss(s));
  EXPECT_EQ(s.message(), "bad block");
  EXPECT_FALSE(resp.found());
}

TEST(ValidateRevisionTest, NegativeRevisionsAreInvalid) {
  v1::GetRequest g;
  g.set_key("k");
  g.set_revision(-1);
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateGet(g, DefaultLimits())));
  v1::ScanRequest sc;
  sc.set_revision(-5);
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateScan(sc, DefaultLimits())));
  sc.set_revision(5);
  EXPECT_OK(ValidateScan(sc, DefaultLimits()));
}

TEST(ValidateBatchGetTest, KeysCountAndRevision) {
  Limits l = DefaultLimits();
  l.max_batch_mutations = 3;
  v1::BatchGetRequest r;
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateBatchGet(r, l)));  // No keys.
  for (const char* k : {"a", "b", "c"}) r.add_keys(k);
  EXPECT_OK(ValidateBatchGet(r, l));
  r.add_keys("d");
  absl::Status s = ValidateBatchGet(r, l);
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_NE(s.message().find("--max_batch_mutations"), std::string_view::npos);
  r.mutable_keys()->RemoveLast();
  r.set_keys(1, "");
  s = ValidateBatchGet(r, l);
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_NE(s.message().find("key 1"), std::string_view::npos) << s;
  r.set_keys(1, "b");
  r.set_revision(-1);
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateBatchGet(r, l)));
}

TEST(ValidateDeleteRangeTest, BoundsMayBeEmptyButNotTooLong) {
  v1::DeleteRangeRequest r;
  EXPECT_OK(ValidateDeleteRange(r, DefaultLimits()));
  r.set_end_key(std::string(8193, 'z'));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateDeleteRange(r, DefaultLimits())));
}

TEST(PutToBatchTest, BuildsOnePutAndChecksLimits) {
  const Limits l = DefaultLimits();
  v1::PutRequest r;
  r.set_key("k");
  r.set_value("v");
  ASSERT_OK_AND_ASSIGN(storage::WriteBatch b, PutToBatch(r, l));
  EXPECT_EQ(Ops(b), std::vector<std::string>({"P k=v"}));

  r.set_key(std::string(8192, 'k'));
  r.set_value(std::string(2 << 20, 'v'));
  EXPECT_OK(PutToBatch(r, l).status());  // Both exactly at the limit.

  r.set_key("");
  EXPECT_TRUE(absl::IsInvalidArgument(PutToBatch(r, l).status()));
  r.set_key(std::string(8193, 'k'));
  auto s = PutToBatch(r, l).status();
  EXPECT_THAT(std::string(s.message()), HasSubstr("--max_key_bytes"));
  r.set_key("k");
  r.set_value(std::string((2 << 20) + 1, 'v'));
  s = PutToBatch(r, l).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_THAT(std::string(s.message()), HasSubstr("--max_value_bytes"));
}

TEST(DeleteToBatchTest, BuildsOneDeleteAndChecksTheKey) {
  v1::DeleteRequest r;
  r.set_key("gone");
  ASSERT_OK_AND_ASSIGN(storage::WriteBatch b, DeleteToBatch(r, DefaultLimits()));
  EXPECT_EQ(Ops(b), std::vector<std::string>({"D gone"}));
  r.set_key("");
  EXPECT_TRUE(absl::IsInvalidArgument(DeleteToBatch(r, DefaultLimits()).status()));
  r.set_key(std::string(8193, 'k'));
  EXPECT_TRUE(absl::IsInvalidArgument(DeleteToBatch(r, DefaultLimits()).status()));
}

// The key limit applies to the key the client sent, not to its stored form:
// a default-namespace key beginning "\xff\xff" is stored one byte longer
// (server/keyspace.h), and a key of exactly max_key_bytes must still be
// accepted. (Found by fuzz_request, whose checker had confused the two.)
TEST(DeleteToBatchTest, KeyLimitAppliesToTheUserKeyNotItsStoredForm) {
  Limits l = DefaultLimits();
  l.max_key_bytes = 3;
  v1::DeleteRequest r;
  r.set_key(std::string("\xff\xffy", 3));
  ASSERT_OK_AND_ASSIGN(storage::WriteBatch b, DeleteToBatch(r, l));
  BatchRecorder rec;
  ASSERT_OK(b.Iterate(&rec));
  ASSERT_EQ(rec.ops.size(), 1u);
  EXPECT_EQ(rec.ops[0], "D " + std::string("\xff\xff\xffy", 4));
  const DecodedKey d = DecodeStoredKey(std::string("\xff\xff\xffy", 4));
  EXPECT_EQ(d.kind, DecodedKey::Kind::kUser);
  EXPECT_EQ(d.key, r.key());
}

v1::WriteRequest MakeWrite(int n) {
  v1::WriteRequest w;
  for (int i = 0; i < n; ++i) {
    auto* p = w.add_mutations()->mutable_put();
    p->set_key("k" + std::to_string(i));
    p->set_value("v");
  }
  return w;
}

TEST(WriteToBatchTest, KeepsOrderSoLaterMutationsWin) {
  v1::WriteRequest w;
  auto* m = w.add_mutations()->mutable_put();
  m->set_key("a");
  m->set_value("1");
  w.add_mutations()->mutable_delete_()->set_key("a");
  m = w.add_mutations()->mutable_put();
  m->set_key("a");
  m->set_value("2");
  ASSERT_OK_AND_ASSIGN(storage::WriteBatch b, WriteToBatch(w, DefaultLimits()));
  EXPECT_EQ(Ops(b), std::vector<std::string>({"P a=1", "D a", "P a=2"}));
}

TEST(WriteToBatchTest, EmptyWriteIsAnEmptyBatch) {
  ASSERT_OK_AND_ASSIGN(storage::WriteBatch b,
                       WriteToBatch(v1::WriteRequest(), DefaultLimits()));
  EXPECT_EQ(b.Count(), 0u);
}

TEST(WriteToBatchTest, MutationCountLimit) {
  Limits l = DefaultLimits();
  l.max_batch_mutations = 10;
  EXPECT_OK(WriteToBatch(MakeWrite(10), l).status());
  absl::Status s = WriteToBatch(MakeWrite(11), l).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_EQ(s.message(),
            "write has 11 mutations; the limit is 10 (--max_batch_mutations)");
  // The default limit, exactly.
  EXPECT_OK(WriteToBatch(MakeWrite(10000), DefaultLimits()).status());
  EXPECT_TRUE(absl::IsInvalidArgument(
      WriteToBatch(MakeWrite(10001), DefaultLimits()).status()));
}

TEST(WriteToBatchTest, BadMutationNamesItsIndex) {
  v1::WriteRequest w = MakeWrite(5);
  w.mutable_mutations(3)->mutable_put()->set_key("");
  absl::Status s = WriteToBatch(w, DefaultLimits()).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_EQ(s.message(),
            "mutation 3: key is empty; keys must be 1..8192 bytes "
            "(--max_key_bytes)");

  w = MakeWrite(5);
  w.mutable_mutations(4)->mutable_put()->set_value(std::string((2 << 20) + 1, 'v'));
  s = WriteToBatch(w, DefaultLimits()).status();
  EXPECT_THAT(std::string(s.message()), HasSubstr("mutation 4: value is"));

  w = MakeWrite(5);
  w.mutable_mutations(1)->mutable_delete_()->set_key(std::string(8193, 'k'));
  s = WriteToBatch(w, DefaultLimits()).status();
  EXPECT_THAT(std::string(s.message()), HasSubstr("mutation 1: key is 8193"));

  w = MakeWrite(5);
  w.mutable_mutations(2)->Clear();
  s = WriteToBatch(w, DefaultLimits()).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_EQ(s.message(), "mutation 2 has no operation (set put or delete)");
}

class FillScanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 100; ++i) {
      data_[absl_key(i)] = "value" + std::to_string(i);
    }
  }
  static std::string absl_key(int i) {
    char buf[16];
    snprintf(buf, sizeof(buf), "k%03d", i);
    return buf;
  }
  // Runs a whole scan; returns the batches' keys.
  std::vector<std::vector<std::string>> ScanAll(const v1::ScanRequest& req,
                                                size_t batch_bytes,
                                                absl::Status* status) {
    MapIterator it(&data_);
    ScanCursor cursor;
    std::vector<std::vector<std::string>> batches;
    for (int guard = 0; guard < 10000 && !cursor.done; ++guard) {
      v1::ScanResponse resp;
      *status = FillScanResponse(&it, req, batch_bytes, &cursor, &resp);
      std::vector<std::string> keys;
      for (const auto& kv : resp.pairs()) {
        keys.push_back(kv.key());
        if (req.keys_only()) {
          EXPECT_EQ(kv.value(), "");
        } else {
          EXPECT_EQ(kv.value(), data_[kv.key()]);
        }
      }
      if (!keys.empty() || !cursor.done) batches.push_back(keys);
      if (!status->ok()) break;
    }
    EXPECT_TRUE(cursor.done);
    return batches;
  }
  static std::vector<std::string> Flatten(
      const std::vector<std::vector<std::string>>& b) {
    std::vector<std::string> out;
    for (const auto& v : b) out.insert(out.end(), v.begin(), v.end());
    return out;
  }

  std::map<std::string, std::string> data_;
};

TEST_F(FillScanTest, WholeRangeInOrder) {
  absl::Status s;
  auto keys = Flatten(ScanAll(v1::ScanRequest(), kScanBatchBytes, &s));
  ASSERT_OK(s);
  ASSERT_EQ(keys.size(), 100u);
  EXPECT_EQ(keys.front(), "k000");
  EXPECT_EQ(keys.back(), "k099");
}

TEST_F(FillScanTest, StartInclusiveEndExclusive) {
  v1::ScanRequest req;
  req.set_start_key("k010");
  req.set_end_key("k020");
  absl::Status s;
  auto keys = Flatten(ScanAll(req, kScanBatchBytes, &s));
  ASSERT_OK(s);
  ASSERT_EQ(keys.size(), 10u);
  EXPECT_EQ(keys.front(), "k010");
  EXPECT_EQ(keys.back(), "k019");
}

TEST_F(FillScanTest, StartBetweenKeysAndEmptyEndIsUnbounded) {
  v1::ScanRequest req;
  req.set_start_key("k0945");
  absl::Status s;
  auto keys = Flatten(ScanAll(req, kScanBatchBytes, &s));
  ASSERT_OK(s);
  EXPECT_EQ(keys, std::vector<std::string>(
                      {"k095", "k096", "k097", "k098", "k099"}));
}

TEST_F(FillScanTest, EndAtOrBeforeStartIsEmpty) {
  v1::ScanRequest req;
  req.set_start_key("k050");
  req.set_end_key("k050");
  absl::Status s;
  EXPECT_TRUE(Flatten(ScanAll(req, kScanBatchBytes, &s)).empty());
  req.set_end_key("k010");
  EXPECT_TRUE(Flatten(ScanAll(req, kScanBatchBytes, &s)).empty());
  ASSERT_OK(s);
}

TEST_F(FillScanTest, LimitStopsWithoutSteppingPast) {
  v1::ScanRequest req;
  req.set_limit(7);
  MapIterator it(&data_);
  ScanCursor cursor;
  v1::ScanResponse resp;
  ASSERT_OK(FillScanResponse(&it, req, kScanBatchBytes, &cursor, &resp));
  EXPECT_TRUE(cursor.done);
  EXPECT_EQ(resp.pairs_size(), 7);
  EXPECT_EQ(it.steps(), 6);  // No Next() after the last returned pair.
}

TEST_F(FillScanTest, LimitAcrossBatches) {
  v1::ScanRequest req;
  req.set_limit(25);
  absl::Status s;
  auto batches = ScanAll(req, 10 * 12, &s);  // ~10 pairs per batch.
  ASSERT_OK(s);
  EXPECT_EQ(Flatten(batches).size(), 25u);
  EXPECT_GE(batches.size(), 3u);
}

TEST_F(FillScanTest, KeysOnlyCountsOnlyKeyBytes) {
  v1::ScanRequest req;
  req.set_keys_only(true);
  absl::Status s;
  // 4-byte keys: 40 bytes per batch = 10 keys.
  auto batches = ScanAll(req, 40, &s);
  ASSERT_OK(s);
  ASSERT_EQ(batches.size(), 10u);
  for (const auto& b : batches) EXPECT_EQ(b.size(), 10u);
}

TEST_F(FillScanTest, BatchesStayUnderTheTargetAndLargePairTravelsAlone) {
  data_.clear();
  data_["a"] = std::string(300, 'x');
  data_["b"] = std::string(300, 'x');
  data_["c"] = std::string(300, 'x');
  data_["d"] = std::string(5000, 'x');  // Larger than a batch.
  data_["e"] = std::string(300, 'x');
  absl::Status s;
  auto batches = ScanAll(v1::ScanRequest(), 1000, &s);
  ASSERT_OK(s);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[0], std::vector<std::string>({"a", "b", "c"}));
  EXPECT_EQ(batches[1], std::vector<std::string>({"d"}));
  EXPECT_EQ(batches[2], std::vector<std::string>({"e"}));
}

TEST_F(FillScanTest, IteratorErrorIsReturnedAfterThePairsBeforeIt) {
  MapIterator it(&data_, /*fail_after=*/5);
  ScanCursor cursor;
  v1::ScanResponse resp;
  absl::Status s =
      FillScanResponse(&it, v1::ScanRequest(), kScanBatchBytes, &cursor, &resp);
  EXPECT_TRUE(absl::IsDataLoss(s));
  EXPECT_TRUE(cursor.done);
  EXPECT_EQ(resp.pairs_size(), 5);
}

TEST_F(FillScanTest, EmptyIterator) {
  data_.clear();
  absl::Status s;
  EXPECT_TRUE(Flatten(ScanAll(v1::ScanRequest(), kScanBatchBytes, &s)).empty());
  EXPECT_OK(s);
}

}  // namespace
}  // namespace strata::server
