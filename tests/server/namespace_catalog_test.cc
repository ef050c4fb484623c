// The namespace catalog (server/namespace_catalog.h) on a real DB, without a
// server: names, the admin batches' checks, ids never reused, the copy in
// memory (Load, Apply out of order), and the commit-time re-check that
// keeps a write out of a namespace deleted after it was resolved.

#include "server/namespace_catalog.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "gtest/gtest.h"
#include "strata/storage/db.h"
#include "tests/support/test_util.h"

namespace strata::server {
namespace {

using ::strata::testing::TempDir;
using storage::Revision;

class NamespaceCatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::Options options;
    options.create_if_missing = true;
    auto db = storage::DB::Open(options, dir_.path() + "/db");
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    catalog_ = std::make_unique<NamespaceCatalog>(db_.get());
    ASSERT_OK(catalog_->Load());
  }

  // Runs an admin batch as the server does (commit, then Apply).
  absl::StatusOr<Revision> Admin(const std::string& name,
                                 storage::WriteBatch batch,
                                 const NamespaceCatalog::Result& result) {
    absl::StatusOr<Revision> r = db_->Write(storage::WriteOptions(), &batch);
    if (r.ok()) catalog_->Apply(name, *result, *r);
    return r;
  }
  absl::StatusOr<Revision> Create(const std::string& name, uint64_t qb = 0,
                                  uint64_t qk = 0) {
    auto result = std::make_shared<std::optional<NamespaceEntry>>();
    return Admin(name, NamespaceCatalog::CreateBatch(name, qb, qk, result),
                 result);
  }
  // As the server: the catalog's copy learns the name is gone; `deleted`
  // (if given) gets the deleted entry.
  absl::StatusOr<Revision> Delete(
      const std::string& name,
      NamespaceCatalog::Result deleted =
          std::make_shared<std::optional<NamespaceEntry>>()) {
    return Admin(name, NamespaceCatalog::DeleteBatch(name, deleted),
                 std::make_shared<std::optional<NamespaceEntry>>());
  }

  TempDir dir_;
  std::unique_ptr<storage::DB> db_;
  std::unique_ptr<NamespaceCatalog> catalog_;
};

TEST(NamespaceNameTest, ValidAndInvalidNames) {
  EXPECT_OK(NamespaceCatalog::ValidateName("a"));
  EXPECT_OK(NamespaceCatalog::ValidateName("team/svc-1_v2.0"));
  EXPECT_OK(NamespaceCatalog::ValidateName(std::string(255, 'x')));
  for (const std::string& bad :
       {std::string(), std::string(256, 'x'), std::string("a b"),
        std::string("a\0b", 3), std::string("caf\xc3\xa9"), std::string("a:b"),
        std::string("*")}) {
    EXPECT_TRUE(absl::IsInvalidArgument(NamespaceCatalog::ValidateName(bad)))
        << bad;
  }
}

TEST(NamespaceEntryTest, RoundTripsAndRejectsMalformedBytes) {
  const NamespaceEntry e{300, 1ull << 40, 7};
  absl::StatusOr<NamespaceEntry> d =
      DecodeNamespaceEntry(EncodeNamespaceEntry(e));
  ASSERT_OK(d.status());
  EXPECT_EQ(d->id, 300u);
  EXPECT_EQ(d->quota_bytes, 1ull << 40);
  EXPECT_EQ(d->quota_keys, 7u);
  const std::string good = EncodeNamespaceEntry(e);
  EXPECT_TRUE(absl::IsDataLoss(DecodeNamespaceEntry("").status()));
  EXPECT_TRUE(absl::IsDataLoss(DecodeNamespaceEntry("\x02" + good.substr(1))
                                   .status()));  // Unknown format.
  EXPECT_TRUE(absl::IsDataLoss(
      DecodeNamespaceEntry(good.substr(0, good.size() - 1)).status()));
  EXPECT_TRUE(absl::IsDataLoss(
      DecodeNamespaceEntry(EncodeNamespaceEntry({0, 0, 0})).status()));
}

TEST_F(NamespaceCatalogTest, CreateResolveDeleteAndIdsAreNeverReused) {
  EXPECT_TRUE(absl::IsNotFound(catalog_->Resolve("a").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(catalog_->Resolve("a b").status()));
  ASSERT_OK(catalog_->Resolve("").status());
  EXPECT_TRUE(catalog_->Resolve("")->is_default());

  ASSERT_OK(Create("a").status());
  ASSERT_OK(Create("b").status());
  EXPECT_TRUE(absl::IsAlreadyExists(Create("a").status()));
  const uint64_t a1 = catalog_->Resolve("a")->id();
  EXPECT_NE(a1, catalog_->Resolve("b")->id());

  ASSERT_OK(Delete("a").status());
  EXPECT_TRUE(absl::IsNotFound(Delete("a").status()));
  EXPECT_TRUE(absl::IsNotFound(catalog_->Resolve("a").status()));
  ASSERT_OK(Create("a").status());
  const uint64_t a2 = catalog_->Resolve("a")->id();
  EXPECT_GT(a2, a1);  // A new id: the old keys can never show through.
  EXPECT_NE(a2, catalog_->Resolve("b")->id());
}

// The compaction filter learns every deleted id: from the delete batch's
// result (the server records it once the delete is durable), and at Load
// (every id below the next id without a record), so a delete just before a
// restart is not forgotten. Keys of live namespaces, the default namespace
// and system keys are never unreachable.
TEST_F(NamespaceCatalogTest, DeletedIdsReachTheCompactionFilter) {
  ASSERT_OK(Create("a"));
  ASSERT_OK(Create("b"));
  ASSERT_OK(Create("c"));
  auto deleted = std::make_shared<std::optional<NamespaceEntry>>();
  absl::StatusOr<Revision> r = Delete("b", deleted);
  ASSERT_OK(r);
  ASSERT_TRUE(deleted->has_value());
  EXPECT_EQ((*deleted)->id, 2u);

  DeletedNamespaces filter;
  NamespaceCatalog reloaded(db_.get(), &filter);
  ASSERT_OK(reloaded.Load());
  EXPECT_FALSE(filter.Contains(1));
  EXPECT_TRUE(filter.Contains(2));
  EXPECT_FALSE(filter.Contains(3));
  EXPECT_EQ(filter.UnreachableSince(KeyspaceView(2).Encode("k")), 0u);
  EXPECT_EQ(filter.UnreachableSince(KeyspaceView(1).Encode("k")),
            std::nullopt);
  EXPECT_EQ(filter.UnreachableSince("k"), std::nullopt);
  EXPECT_EQ(filter.UnreachableSince(SystemKey("ns/next_id")), std::nullopt);
  // A delete recorded at run time keeps its revision.
  ASSERT_OK(Delete("c"));
  reloaded.RecordDeleted(3, *r + 1);
  EXPECT_EQ(filter.UnreachableSince(KeyspaceView(3).Encode("")), *r + 1);
}

TEST_F(NamespaceCatalogTest, UpdateSetsQuotasAndNeedsAnExistingNamespace) {
  ASSERT_OK(Create("a", 100, 10).status());
  auto result = std::make_shared<std::optional<NamespaceEntry>>();
  ASSERT_OK(Admin("a", NamespaceCatalog::UpdateBatch("a", 5, 6, result),
                  result)
                .status());
  auto list = catalog_->List("");
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].second.quota_bytes, 5u);
  EXPECT_EQ(list[0].second.quota_keys, 6u);
  auto none = std::make_shared<std::optional<NamespaceEntry>>();
  EXPECT_TRUE(absl::IsNotFound(
      Admin("z", NamespaceCatalog::UpdateBatch("z", 1, 1, none), none)
          .status()));
}

TEST_F(NamespaceCatalogTest, ListFiltersByPrefixInNameOrder) {
  for (const char* n : {"team/b", "team/a", "other", "team2"}) {
    ASSERT_OK(Create(n).status());
  }
  ASSERT_OK(Delete("team/b").status());
  std::string names;
  for (const auto& [name, e] : catalog_->List("team")) names += name + ",";
  EXPECT_EQ(names, "team/a,team2,");
  names.clear();
  for (const auto& [name, e] : catalog_->List("team/")) names += name + ",";
  EXPECT_EQ(names, "team/a,");
}

TEST_F(NamespaceCatalogTest, LoadRebuildsTheCopyFromTheDurableCatalog) {
  ASSERT_OK(Create("a", 1, 2).status());
  ASSERT_OK(Create("b").status());
  ASSERT_OK(Delete("b").status());
  const uint64_t a = catalog_->Resolve("a")->id();
  NamespaceCatalog fresh(db_.get());
  ASSERT_OK(fresh.Load());
  ASSERT_OK(fresh.Resolve("a").status());
  EXPECT_EQ(fresh.Resolve("a")->id(), a);
  EXPECT_TRUE(absl::IsNotFound(fresh.Resolve("b").status()));
  auto list = fresh.List("");
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].second.quota_keys, 2u);
}

TEST_F(NamespaceCatalogTest, AStaleApplyNeverOverwritesALaterOne) {
  catalog_->Apply("x", NamespaceEntry{9, 0, 0}, 20);
  catalog_->Apply("x", std::nullopt, 10);  // Older: ignored.
  ASSERT_OK(catalog_->Resolve("x").status());
  catalog_->Apply("x", std::nullopt, 30);
  EXPECT_TRUE(absl::IsNotFound(catalog_->Resolve("x").status()));
  catalog_->Apply("x", NamespaceEntry{9, 0, 0}, 25);  // Older: ignored.
  EXPECT_TRUE(absl::IsNotFound(catalog_->Resolve("x").status()));
}

TEST_F(NamespaceCatalogTest, AWriteResolvedBeforeADeleteCommitsNothing) {
  ASSERT_OK(Create("a").status());
  ASSERT_OK(Create("b").status());
  absl::StatusOr<NamespaceViews> views = catalog_->ResolveAll("a", {"b"});
  ASSERT_OK(views.status());
  // Deleted (and re-created under a new id) after the write resolved it.
  ASSERT_OK(Delete("b").status());
  ASSERT_OK(Create("b").status());
  storage::WriteBatch batch;
  batch.Put(views->For("").Encode("k"), "in a");
  batch.Put(views->For("b").Encode("k"), "in old b");
  NamespaceCatalog::Guard(*views, &batch);
  absl::StatusOr<Revision> r = db_->Write(storage::WriteOptions(), &batch);
  EXPECT_TRUE(absl::IsNotFound(r.status())) << r.status();
  // Nothing of the batch was written, not even a's part.
  EXPECT_TRUE(absl::IsNotFound(
      db_->Get(storage::ReadOptions(), views->For("").Encode("k")).status()));

  // The same write with fresh views commits.
  views = catalog_->ResolveAll("a", {"b"});
  ASSERT_OK(views.status());
  storage::WriteBatch again;
  again.Put(views->For("b").Encode("k"), "in b");
  NamespaceCatalog::Guard(*views, &again);
  ASSERT_OK(db_->Write(storage::WriteOptions(), &again).status());
}

TEST_F(NamespaceCatalogTest, GuardKeepsTheBatchsOwnCommitFunction) {
  ASSERT_OK(Create("a").status());
  absl::StatusOr<NamespaceViews> views = catalog_->ResolveAll("a", {});
  ASSERT_OK(views.status());
  storage::WriteBatch batch;
  bool ran = false;
  batch.SetCommitFunction([&](storage::CommitView*, storage::WriteBatch* b) {
    ran = true;
    b->Put(views->fallback().Encode("k"), "v");
    return absl::OkStatus();
  });
  NamespaceCatalog::Guard(*views, &batch);
  ASSERT_OK(db_->Write(storage::WriteOptions(), &batch).status());
  EXPECT_TRUE(ran);
  EXPECT_TRUE(
      db_->Get(storage::ReadOptions(), views->fallback().Encode("k")).ok());

  // A default-namespace-only batch is left as it is (no commit function).
  storage::WriteBatch plain;
  plain.Put("k", "v");
  NamespaceCatalog::Guard(NamespaceViews(), &plain);
  EXPECT_FALSE(plain.commit_function());
}

}  // namespace
}  // namespace strata::server
