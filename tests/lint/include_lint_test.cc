// The repository follows the engine's layering (tests/lint/include_lint.h),
// and the checker catches each kind of violation it is meant to.

#include "tests/lint/include_lint.h"

#include <filesystem>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_util.h"

namespace strata::lint {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;

// Violations of `file` holding the single line `#include <spelled>`.
std::vector<Violation> CheckInclude(const std::string& file,
                                    const std::string& spelled) {
  return CheckFile(file, "#include " + spelled + "\n");
}

std::string Describe(const std::vector<Violation>& violations) {
  std::string out;
  for (const Violation& v : violations) out += v.ToString() + "\n";
  return out;
}

// `file` may include `spelled`.
void ExpectAllowed(const std::string& file, const std::string& spelled) {
  const std::vector<Violation> v = CheckInclude(file, spelled);
  EXPECT_TRUE(v.empty()) << file << " including " << spelled << ": "
                         << Describe(v);
}

// `file` including `spelled` is one violation whose reason says `why`.
void ExpectFlagged(const std::string& file, const std::string& spelled,
                   const std::string& why) {
  const std::vector<Violation> v = CheckInclude(file, spelled);
  ASSERT_THAT(v, SizeIs(1)) << file << " including " << spelled;
  EXPECT_THAT(v[0].why, HasSubstr(why)) << file << " including " << spelled;
}

TEST(IncludeLintTest, RepositoryFollowsTheLayering) {
  int files = 0;
  const std::vector<Violation> violations =
      CheckTree(STRATA_SOURCE_DIR, &files);
  EXPECT_TRUE(violations.empty()) << Describe(violations);
  // Guards against a wrong root making the check vacuous.
  EXPECT_GT(files, 150);
}

TEST(IncludeLintTest, ParsesIncludeDirectives) {
  const std::vector<Include> includes = ParseIncludes(
      "// #include \"db/commented_out.h\"\n"
      "#include <memory>\n"
      "  #  include \"util/coding.h\"  // why\n"
      "#define X \"db/db_impl.h\"\n"
      "#include_next <stdlib.h>\n"
      "#include \"unterminated\n"
      "#include\t\"table/table.h\"");
  ASSERT_THAT(includes, SizeIs(3));
  EXPECT_EQ(includes[0].path, "memory");
  EXPECT_TRUE(includes[0].angled);
  EXPECT_EQ(includes[0].line, 2);
  EXPECT_EQ(includes[1].path, "util/coding.h");
  EXPECT_FALSE(includes[1].angled);
  EXPECT_EQ(includes[1].line, 3);
  EXPECT_EQ(includes[2].path, "table/table.h");
  EXPECT_EQ(includes[2].line, 7);
}

TEST(IncludeLintTest, ComponentsIncludeOnlyLowerLayers) {
  ExpectAllowed("storage/table/table.cc", "\"util/coding.h\"");
  ExpectAllowed("storage/db/db_impl.h", "\"version/version_set.h\"");
  ExpectAllowed("storage/tools/verify.cc", "\"db/db_impl.h\"");
  ExpectAllowed("storage/table/table.cc", "\"table/block.h\"");
  ExpectAllowed("storage/table/table.cc", "\"strata/storage/env.h\"");
  ExpectAllowed("storage/memtable/memtable.cc", "\"arena.h\"");

  const std::vector<Violation> up =
      CheckInclude("storage/table/table.cc", "\"db/db_impl.h\"");
  ASSERT_THAT(up, SizeIs(1));
  EXPECT_EQ(up[0].file, "storage/table/table.cc");
  EXPECT_EQ(up[0].line, 1);
  EXPECT_EQ(up[0].include, "db/db_impl.h");
  EXPECT_THAT(up[0].why, HasSubstr("table may not include db"));
  ExpectFlagged("storage/util/coding.cc", "\"env/io_error.h\"",
                "util may not include env");
  ExpectFlagged("storage/db/db_impl.cc", "\"tools/verify.h\"",
                "db may not include tools");
}

TEST(IncludeLintTest, ComponentsOfOneLayerIncludeOnlyTheirListedPeer) {
  ExpectAllowed("storage/table/table.h", "\"cache/lru_cache.h\"");
  ExpectFlagged("storage/cache/lru_cache.cc", "\"table/table.h\"",
                "cache may not include table");
  ExpectFlagged("storage/memtable/memtable.h", "\"table/format.h\"",
                "memtable may not include table");
  ExpectFlagged("storage/record/writer.cc", "\"memtable/arena.h\"",
                "record may not include memtable");
}

TEST(IncludeLintTest, StorageHasNoRpcOrMetricsDependency) {
  for (const char* file :
       {"storage/db/db_impl.cc", "storage/include/strata/storage/db.h"}) {
    for (const char* spelled :
         {"<grpcpp/grpcpp.h>", "\"grpcpp/server.h\"", "<grpc/grpc.h>",
          "\"google/protobuf/message.h\"", "\"prometheus/counter.h\"",
          "<prometheus/registry.h>", "\"strata/v1/kv.pb.h\"",
          "\"proto/etcd/etcd_kv.pb.h\""}) {
      ExpectFlagged(file, spelled, "gRPC, protobuf or Prometheus");
    }
    for (const char* spelled :
         {"\"server/status_util.h\"", "\"tests/support/test_util.h\""}) {
      ExpectFlagged(file, spelled, "layers above it");
    }
  }
}

TEST(IncludeLintTest, PublicHeadersIncludeOnlyPublicHeaders) {
  const std::string db_h = "storage/include/strata/storage/db.h";
  ExpectAllowed(db_h, "\"strata/storage/options.h\"");
  ExpectAllowed(db_h, "\"absl/status/status.h\"");
  ExpectAllowed(db_h, "<string>");
  ExpectFlagged(db_h, "\"util/coding.h\"", "public header");
}

TEST(IncludeLintTest, EngineUsersSeeOnlyThePublicHeaders) {
  for (const char* file :
       {"server/kv_server.cc", "server/metrics/engine_collector.h",
        "client/strata_client.cc", "bench/dbbench/strata_engine.cc",
        "tests/server/metrics_test.cc", "tests/crash/crash_loop_test.cc"}) {
    ExpectAllowed(file, "\"strata/storage/db.h\"");
    ExpectAllowed(file, "\"server/kv_server.h\"");
    for (const char* spelled : {"\"db/db_impl.h\"", "\"storage/db/db_impl.h\"",
                                "\"storage/util/coding.h\""}) {
      ExpectFlagged(file, spelled, "only its public headers");
    }
  }
  // The engine's own tests and fuzzers may reach inside.
  for (const char* file :
       {"tests/storage/db/db_test.cc", "tests/support/fault_env.h",
        "fuzz/fuzz_wal_reader.cc"}) {
    ExpectAllowed(file, "\"db/db_impl.h\"");
  }
}

TEST(IncludeLintTest, UnknownComponentsAndOtherSpellingsAreFlagged) {
  ExpectFlagged("storage/newpart/thing.cc", "\"util/coding.h\"",
                "not a known engine component");
  ExpectFlagged("storage/db/db_impl.cc", "\"storage/util/coding.h\"",
                "relative to storage/");
  ExpectFlagged("storage/db/db_impl.cc", "\"../util/coding.h\"",
                "no relative parent paths");
}

TEST(IncludeLintTest, TreeWalkFindsViolationsAndSkipsBuildTrees) {
  namespace fs = std::filesystem;
  strata::testing::TempDir dir;
  const fs::path root = dir.path();
  fs::create_directories(root / "storage/util");
  fs::create_directories(root / "server");
  fs::create_directories(root / "build-x/storage/util");
  fs::create_directories(root / ".hidden/storage/util");
  strata::testing::WriteFileOrDie(
      (root / "storage/util/good.h").string(),
      "#include <string>\n#include \"util/coding.h\"\n");
  strata::testing::WriteFileOrDie((root / "storage/util/bad.h").string(),
                                  "\n#include \"db/db_impl.h\"\n");
  strata::testing::WriteFileOrDie((root / "server/notes.md").string(),
                                  "#include \"db/db_impl.h\"\n");
  strata::testing::WriteFileOrDie((root / "build-x/CMakeCache.txt").string(),
                                  "");
  for (const char* skipped : {"build-x", ".hidden"}) {
    strata::testing::WriteFileOrDie(
        (root / skipped / "storage/util/bad.h").string(),
        "#include \"db/db_impl.h\"\n");
  }
  int files = 0;
  const std::vector<Violation> v = CheckTree(root, &files);
  EXPECT_EQ(files, 2);
  ASSERT_THAT(v, SizeIs(1)) << Describe(v);
  EXPECT_EQ(v[0].ToString(),
            "storage/util/bad.h:2: #include \"db/db_impl.h\": util may not "
            "include db: the order is util -> env -> {memtable, record, cache, "
            "table} -> version -> compaction -> db -> tools");
}

}  // namespace
}  // namespace strata::lint
