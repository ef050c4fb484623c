// The compaction policy as a pure function: table-driven cases over
// hand-built versions (levels of files with key ranges and sizes), each
// asserting which compaction is picked, given the files in progress and the
// round-robin pointers.
//
// To add a case, append a PickCase to kPickCases: the files of the version,
// what is in progress, and the expected pick written as Describe() prints
// it. The options every case runs with are in CaseOptions().

#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "compaction/compaction.h"
#include "gtest/gtest.h"
#include "util/comparator.h"
#include "util/dbformat.h"

namespace strata::storage {
namespace {

const InternalKeyComparator kIcmp(BytewiseComparator());

// ------------------------------------------------------ hand-built versions

// One SSTable of a hand-built version: level, file number, user-key range
// and size in bytes.
struct FileSpec {
  int level;
  uint64_t number;
  std::string smallest;
  std::string largest;
  uint64_t bytes = 100;
};

struct VersionUnref {
  void operator()(Version* v) const { v->Unref(); }
};
using VersionPtr = std::unique_ptr<Version, VersionUnref>;

// Every key of file n carries sequence number n, so newer files hold newer
// entries, as in a real tree.
VersionPtr BuildVersion(const std::vector<FileSpec>& specs) {
  std::vector<FileRef> files[kNumLevels];
  for (const FileSpec& s : specs) {
    auto f = std::make_shared<FileMetaData>();
    f->number = s.number;
    f->file_size = s.bytes;
    f->smallest = InternalKey(s.smallest, s.number, kTypeValue);
    f->largest = InternalKey(s.largest, s.number, kTypeValue);
    files[s.level].push_back(std::move(f));
  }
  return VersionPtr(Version::NewDetached(&kIcmp, files));
}

// A compact pointer meaning "the last compaction of this level ended at
// user_key": every entry of user_key sorts at or before it.
std::string PointerAt(std::string_view user_key) {
  return std::string(InternalKey(user_key, 0, kTypeValue).Encode());
}

std::string Numbers(const std::vector<FileRef>& files) {
  return absl::StrJoin(files, " ", [](std::string* out, const FileRef& f) {
    absl::StrAppend(out, f->number);
  });
}

// "L1 {10} -> L2 {20 21}", then " gp {30}" if files of the level below
// the output overlap, then " (move)" for a trivial move; "none" for no
// compaction. Input files are listed in version order (L0 newest first).
std::string Describe(const Compaction* c) {
  if (c == nullptr) return "none";
  std::string out =
      absl::StrCat("L", c->level(), " {", Numbers(c->inputs(0)), "} -> L",
                   c->output_level(), " {", Numbers(c->inputs(1)), "}");
  if (!c->grandparents().empty()) {
    absl::StrAppend(&out, " gp {", Numbers(c->grandparents()), "}");
  }
  if (c->IsTrivialMove()) absl::StrAppend(&out, " (move)");
  return out;
}

// Level 0 is due at 4 files; level 1 at 1000 bytes, level L at
// 1000 * 10^(L-1); a trivial move is refused past 10 * 100 bytes of
// grandparent overlap.
Options CaseOptions() {
  Options o;
  o.level0_compaction_trigger = 4;
  o.max_bytes_for_level_base = 1000;
  o.target_file_size = 100;
  return o;
}

// ------------------------------------------------------------------ cases

// A DB::CompactRange of one level; empty bounds are unbounded.
struct ManualRange {
  int level;
  std::string begin;
  std::string end;
};

struct PickCase {
  // Test name (CamelCase).
  std::string name;
  std::vector<FileSpec> files;
  FilesInProgress in_progress = {};
  // Per level, the user key the previous size-triggered compaction of that
  // level ended at.
  std::map<int, std::string> compact_pointers = {};
  // Set: PickRangeCompaction over this range instead of PickCompaction.
  std::optional<ManualRange> manual = std::nullopt;
  // Describe() of the pick.
  std::string want;
  // The user key of the picked level's compact pointer after Advance;
  // empty: Advance leaves every pointer unchanged.
  std::string want_pointer = "";
};

std::ostream& operator<<(std::ostream& os, const PickCase& c) {
  return os << c.name;
}

// Four overlapping level-0 files, numbers 1..4 (4 newest).
std::vector<FileSpec> FourL0Files() {
  return {{0, 1, "a", "c"}, {0, 2, "b", "d"}, {0, 3, "e", "f"},
          {0, 4, "m", "n"}};
}

template <typename... Parts>
std::vector<FileSpec> Files(const Parts&... parts) {
  std::vector<FileSpec> out;
  (out.insert(out.end(), parts.begin(), parts.end()), ...);
  return out;
}

const std::vector<PickCase>& PickCases() {
  static const auto* cases = new std::vector<PickCase>{
      // ---- nothing to do
      {.name = "EmptyVersionNeedsNothing", .files = {}, .want = "none"},
      {.name = "Level0BelowTriggerNeedsNothing",
       .files = {{0, 1, "a", "c"}, {0, 2, "b", "d"}, {0, 3, "e", "f"}},
       .want = "none"},
      {.name = "Level1JustBelowTargetNeedsNothing",
       .files = {{1, 10, "a", "c", 500}, {1, 11, "d", "f", 499}},
       .want = "none"},
      {.name = "Level2BelowItsTenfoldTargetNeedsNothing",
       .files = {{2, 20, "a", "c", 5000}, {2, 21, "d", "f", 4999}},
       .want = "none"},
      {.name = "LastLevelIsNeverCompacted",
       .files = {{6, 60, "a", "z", uint64_t{1} << 40}},
       .want = "none"},

      // ---- level 0: file-count trigger
      {.name = "Level0AtTriggerTakesAllOfItAndOverlappingLevel1",
       .files = Files(FourL0Files(),
                      std::vector<FileSpec>{{1, 10, "a", "b"},
                                            {1, 11, "g", "h"},
                                            {1, 12, "p", "q"},
                                            {2, 20, "a", "z"}}),
       .want = "L0 {4 3 2 1} -> L1 {10 11} gp {20}"},
      {.name = "Level0AboveTriggerStillTakesAllOfIt",
       .files = Files(FourL0Files(),
                      std::vector<FileSpec>{{0, 5, "x", "y"}}),
       .want = "L0 {5 4 3 2 1} -> L1 {}"},
      {.name = "Level0FileInProgressBlocksLevel0",
       .files = FourL0Files(),
       .in_progress = {2},
       .want = "none"},
      {.name = "Level1OverlapInProgressBlocksLevel0",
       .files = Files(FourL0Files(),
                      std::vector<FileSpec>{{1, 10, "a", "b"}}),
       .in_progress = {10},
       .want = "none"},
      {.name = "Level0CompactionLeavesCompactPointers",
       .files = FourL0Files(),
       .compact_pointers = {{1, "k"}},
       .want = "L0 {4 3 2 1} -> L1 {}"},

      // ---- levels >= 1: size trigger, one file round-robin
      {.name = "Level1OverTargetTakesFirstFileAndOverlappingLevel2",
       .files = {{1, 10, "a", "c", 600},
                 {1, 11, "d", "f", 600},
                 {2, 20, "a", "b"},
                 {2, 21, "c", "e"},
                 {2, 22, "g", "h"}},
       .want = "L1 {10} -> L2 {20 21}",
       .want_pointer = "c"},
      {.name = "Level1ExactlyAtTargetIsDue",
       .files = {{1, 10, "a", "c", 500}, {1, 11, "d", "f", 500}},
       .want = "L1 {10} -> L2 {} (move)",
       .want_pointer = "c"},
      {.name = "Level2AtItsTenfoldTargetIsDue",
       .files = {{2, 20, "a", "c", 5000}, {2, 21, "d", "f", 5000}},
       .want = "L2 {20} -> L3 {} (move)",
       .want_pointer = "c"},
      {.name = "CompactPointerStartsAfterTheLastCompactedKey",
       .files = {{1, 10, "a", "c", 600}, {1, 11, "d", "f", 600}},
       .compact_pointers = {{1, "c"}},
       .want = "L1 {11} -> L2 {} (move)",
       .want_pointer = "f"},
      {.name = "CompactPointerInsideAFileStartsAtThatFile",
       .files = {{1, 10, "a", "c", 600}, {1, 11, "d", "f", 600}},
       .compact_pointers = {{1, "b"}},
       .want = "L1 {10} -> L2 {} (move)",
       .want_pointer = "c"},
      {.name = "CompactPointerPastTheLastFileWrapsAround",
       .files = {{1, 10, "a", "c", 600}, {1, 11, "d", "f", 600}},
       .compact_pointers = {{1, "z"}},
       .want = "L1 {10} -> L2 {} (move)",
       .want_pointer = "c"},
      {.name = "CompactPointerOfAnotherLevelIsIgnored",
       .files = {{1, 10, "a", "c", 600}, {1, 11, "d", "f", 600}},
       .compact_pointers = {{2, "c"}},
       .want = "L1 {10} -> L2 {} (move)",
       .want_pointer = "c"},
      {.name = "FileInProgressIsSkipped",
       .files = {{1, 10, "a", "c", 600}, {1, 11, "d", "f", 600}},
       .in_progress = {10},
       .want = "L1 {11} -> L2 {} (move)",
       .want_pointer = "f"},
      {.name = "FileInProgressIsSkippedAcrossTheWrap",
       .files = {{1, 10, "a", "c", 400},
                 {1, 11, "d", "f", 400},
                 {1, 12, "g", "i", 400}},
       .in_progress = {12},
       .compact_pointers = {{1, "f"}},
       .want = "L1 {10} -> L2 {} (move)",
       .want_pointer = "c"},
      {.name = "FileWhoseNextLevelOverlapIsInProgressIsSkipped",
       .files = {{1, 10, "a", "c", 600},
                 {1, 11, "d", "f", 600},
                 {2, 20, "b", "b"},
                 {2, 21, "e", "e"}},
       .in_progress = {20},
       .want = "L1 {11} -> L2 {21}",
       .want_pointer = "f"},
      {.name = "EveryFileOfTheLevelInProgressNeedsNothing",
       .files = {{1, 10, "a", "c", 600}, {1, 11, "d", "f", 600}},
       .in_progress = {10, 11},
       .want = "none"},
      {.name = "NextLevelOverlapIsExpandedToEveryOverlappingFile",
       .files = {{1, 10, "c", "m", 1000},
                 {2, 20, "a", "c"},
                 {2, 21, "d", "f"},
                 {2, 22, "g", "k"},
                 {2, 23, "m", "p"},
                 {2, 24, "q", "z"}},
       .want = "L1 {10} -> L2 {20 21 22 23}",
       .want_pointer = "m"},
      {.name = "Level5CompactsIntoTheLastLevelWithoutGrandparents",
       .files = {{5, 50, "a", "k", 10'000'000}, {6, 60, "c", "z"}},
       .want = "L5 {50} -> L6 {60}",
       .want_pointer = "k"},

      // ---- trivial moves
      {.name = "GrandparentOverlapUpToTheLimitStillMoves",
       .files = {{1, 10, "a", "c", 1000}, {3, 30, "a", "c", 1000}},
       .want = "L1 {10} -> L2 {} gp {30} (move)",
       .want_pointer = "c"},
      {.name = "GrandparentOverlapPastTheLimitIsNoMove",
       .files = {{1, 10, "a", "c", 1000}, {3, 30, "a", "c", 1001}},
       .want = "L1 {10} -> L2 {} gp {30}",
       .want_pointer = "c"},

      // ---- which level first: highest score
      {.name = "HigherLevel1ScoreBeatsLevel0",
       // L0 score 1.0, L1 score 3.0.
       .files = Files(FourL0Files(),
                      std::vector<FileSpec>{{1, 10, "p", "q", 3000}}),
       .want = "L1 {10} -> L2 {} (move)",
       .want_pointer = "q"},
      {.name = "HigherLevel0ScoreBeatsLevel1",
       // L0 score 1.25, L1 score 1.1.
       .files = Files(FourL0Files(),
                      std::vector<FileSpec>{{0, 5, "s", "t"},
                                            {1, 10, "p", "q", 1100}}),
       .want = "L0 {5 4 3 2 1} -> L1 {10}"},
      {.name = "HigherLevel2ScoreBeatsLevel1",
       // L1 score 1.5, L2 score 2.0.
       .files = {{1, 10, "a", "c", 1500}, {2, 20, "x", "z", 20000}},
       .want = "L2 {20} -> L3 {} (move)",
       .want_pointer = "z"},
      {.name = "BlockedLevelFallsBackToTheNextDueLevel",
       // L1 (score 3.0) is all in progress; L0 (score 1.0) overlaps none
       // of it.
       .files = Files(FourL0Files(),
                      std::vector<FileSpec>{{1, 10, "p", "q", 1500},
                                            {1, 11, "r", "s", 1500}}),
       .in_progress = {10, 11},
       .want = "L0 {4 3 2 1} -> L1 {}"},

      // ---- manual (range) compactions
      {.name = "ManualLevel0RangeGrowsToTransitivelyOverlappingFiles",
       .files = {{0, 1, "a", "c"}, {0, 2, "c", "e"}, {0, 3, "e", "g"},
                 {0, 4, "x", "y"}},
       .manual = ManualRange{0, "a", "b"},
       .want = "L0 {3 2 1} -> L1 {}"},
      {.name = "ManualUnboundedRangeTakesTheWholeLevel",
       .files = {{1, 10, "a", "c"}, {1, 11, "d", "f"}, {2, 20, "e", "k"}},
       .manual = ManualRange{1, "", ""},
       .want = "L1 {10 11} -> L2 {20}"},
      {.name = "ManualRangeExpandsNextLevelInputs",
       .files = {{1, 10, "d", "f"}, {2, 20, "a", "d"}, {2, 21, "f", "k"},
                 {2, 22, "m", "n"}},
       .manual = ManualRange{1, "e", "e"},
       .want = "L1 {10} -> L2 {20 21}"},
      {.name = "ManualRangeNeedsNoTrigger",
       .files = {{1, 10, "a", "c", 1}},
       .manual = ManualRange{1, "", ""},
       .want = "L1 {10} -> L2 {} (move)"},
      {.name = "ManualRangeLeavesCompactPointers",
       .files = {{1, 10, "a", "c", 1}},
       .compact_pointers = {{1, "z"}},
       .manual = ManualRange{1, "a", "a"},
       .want = "L1 {10} -> L2 {} (move)"},
      {.name = "ManualRangeWithoutFilesNeedsNothing",
       .files = {{1, 10, "a", "c"}},
       .manual = ManualRange{1, "d", "z"},
       .want = "none"},
      {.name = "ManualRangeWithAnInputInProgressNeedsNothing",
       .files = {{1, 10, "a", "c"}, {1, 11, "d", "f"}},
       .in_progress = {11},
       .manual = ManualRange{1, "", ""},
       .want = "none"},
      {.name = "ManualRangeWithANextLevelInputInProgressNeedsNothing",
       .files = {{1, 10, "a", "c"}, {2, 20, "b", "d"}},
       .in_progress = {20},
       .manual = ManualRange{1, "", ""},
       .want = "none"},
  };
  return *cases;
}

class PickCompactionTest : public ::testing::TestWithParam<PickCase> {};

TEST_P(PickCompactionTest, PicksTheExpectedCompaction) {
  const PickCase& tc = GetParam();
  const Options options = CaseOptions();
  VersionPtr version = BuildVersion(tc.files);
  CompactionPickerState state;
  for (const auto& [level, key] : tc.compact_pointers) {
    state.compact_pointer[level] = PointerAt(key);
  }

  std::unique_ptr<Compaction> c;
  if (tc.manual) {
    std::optional<InternalKey> begin, end;
    if (!tc.manual->begin.empty()) {
      begin.emplace(tc.manual->begin, kMaxSequenceNumber, kValueTypeForSeek);
    }
    if (!tc.manual->end.empty()) {
      end.emplace(tc.manual->end, 0, kTypeDeletion);
    }
    c = PickRangeCompaction(options, &kIcmp, version.get(), tc.manual->level,
                            begin ? &*begin : nullptr, end ? &*end : nullptr,
                            tc.in_progress);
  } else {
    c = PickCompaction(options, &kIcmp, version.get(), state, tc.in_progress);
  }
  ASSERT_EQ(Describe(c.get()), tc.want);
  if (c == nullptr) return;

  const CompactionPickerState before = state;
  state.Advance(*c);
  for (int level = 0; level < kNumLevels; level++) {
    if (!tc.want_pointer.empty() && level == c->level()) {
      EXPECT_EQ(ExtractUserKey(state.compact_pointer[level]), tc.want_pointer)
          << "compact pointer of L" << level;
    } else {
      EXPECT_EQ(state.compact_pointer[level], before.compact_pointer[level])
          << "compact pointer of L" << level << " should not move";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, PickCompactionTest,
                         ::testing::ValuesIn(PickCases()),
                         [](const auto& info) { return info.param.name; });

// ------------------------------------------------ sequences of decisions

// What a compaction thread does under the DB mutex: pick and record.
std::unique_ptr<Compaction> PickAndRecord(Version* v,
                                          CompactionPickerState* state,
                                          FilesInProgress* in_progress) {
  auto c = PickCompaction(CaseOptions(), &kIcmp, v, *state, *in_progress);
  if (c != nullptr) {
    state->Advance(*c);
    c->AddInputsTo(in_progress);
  }
  return c;
}

TEST(CompactionPolicyTest, PickingTwiceGivesTheSameAnswer) {
  VersionPtr v = BuildVersion(Files(
      FourL0Files(), std::vector<FileSpec>{{1, 10, "a", "b", 600},
                                           {1, 11, "x", "y", 600}}));
  CompactionPickerState state;
  FilesInProgress in_progress;
  auto first = PickCompaction(CaseOptions(), &kIcmp, v.get(), state, in_progress);
  auto second = PickCompaction(CaseOptions(), &kIcmp, v.get(), state, in_progress);
  EXPECT_EQ(Describe(first.get()), "L1 {10} -> L2 {} (move)");
  EXPECT_EQ(Describe(second.get()), Describe(first.get()));
}

TEST(CompactionPolicyTest, SuccessiveCompactionsOfALevelWalkItsFilesRoundRobin) {
  // No compaction is installed in between, so the level stays over its
  // target and each pick starts after the previous one.
  VersionPtr v = BuildVersion({{1, 10, "a", "c", 400},
                               {1, 11, "d", "f", 400},
                               {1, 12, "g", "i", 400}});
  CompactionPickerState state;
  FilesInProgress none;
  std::vector<std::string> picks;
  for (int i = 0; i < 4; i++) {
    auto c = PickCompaction(CaseOptions(), &kIcmp, v.get(), state, none);
    ASSERT_NE(c, nullptr);
    state.Advance(*c);
    picks.push_back(Numbers(c->inputs(0)));
  }
  EXPECT_EQ(absl::StrJoin(picks, ","), "10,11,12,10");
}

TEST(CompactionPolicyTest, ConcurrentCompactionsTakeDisjointFiles) {
  // Three compaction threads over one version: each pick excludes what the
  // earlier ones hold, until nothing independent is left.
  VersionPtr v = BuildVersion({{1, 10, "a", "c", 400},
                               {1, 11, "d", "f", 400},
                               {1, 12, "g", "i", 400},
                               {2, 20, "c", "d"},  // Under both 10 and 11.
                               {2, 21, "h", "h"}});
  CompactionPickerState state;
  FilesInProgress in_progress;
  auto a = PickAndRecord(v.get(), &state, &in_progress);
  auto b = PickAndRecord(v.get(), &state, &in_progress);
  auto c = PickAndRecord(v.get(), &state, &in_progress);
  EXPECT_EQ(Describe(a.get()), "L1 {10} -> L2 {20}");
  EXPECT_EQ(Describe(b.get()), "L1 {12} -> L2 {21}");  // 11 needs 20.
  EXPECT_EQ(Describe(c.get()), "none");
  EXPECT_EQ(in_progress, (FilesInProgress{10, 12, 20, 21}));

  // The first one ends (here without installing anything): its files can
  // be picked again, and the round-robin has wrapped around to them.
  a->RemoveInputsFrom(&in_progress);
  EXPECT_EQ(in_progress, (FilesInProgress{12, 21}));
  auto d = PickAndRecord(v.get(), &state, &in_progress);
  EXPECT_EQ(Describe(d.get()), "L1 {10} -> L2 {20}");
}

TEST(CompactionPolicyTest, Level0CompactionsNeverRunConcurrently) {
  VersionPtr v = BuildVersion(FourL0Files());
  CompactionPickerState state;
  FilesInProgress in_progress;
  auto a = PickAndRecord(v.get(), &state, &in_progress);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->reason(), CompactionReason::kLevel0Files);
  EXPECT_EQ(Describe(PickAndRecord(v.get(), &state, &in_progress).get()),
            "none");
}

TEST(CompactionPolicyTest, ReasonsNameTheTrigger) {
  VersionPtr v = BuildVersion({{1, 10, "a", "c", 5000}});
  FilesInProgress none;
  auto sized = PickCompaction(CaseOptions(), &kIcmp, v.get(), {}, none);
  ASSERT_NE(sized, nullptr);
  EXPECT_EQ(sized->reason(), CompactionReason::kLevelSize);
  auto manual = PickRangeCompaction(CaseOptions(), &kIcmp, v.get(), 1, nullptr,
                                    nullptr, none);
  ASSERT_NE(manual, nullptr);
  EXPECT_EQ(manual->reason(), CompactionReason::kManual);
}

// ------------------------------------------------------ compaction helpers

TEST(CompactionPolicyTest, TombstoneIsDroppableOnlyWhereNoDeeperLevelHasTheKey) {
  VersionPtr v = BuildVersion({{1, 10, "a", "z", 5000},
                               {3, 30, "c", "e"},
                               {4, 40, "m", "m"}});
  FilesInProgress none;
  auto c = PickCompaction(CaseOptions(), &kIcmp, v.get(), {}, none);
  ASSERT_EQ(Describe(c.get()), "L1 {10} -> L2 {} gp {30} (move)");
  // Ascending keys, as the compaction asks.
  EXPECT_TRUE(c->IsBaseLevelForKey("a"));
  EXPECT_FALSE(c->IsBaseLevelForKey("c"));
  EXPECT_FALSE(c->IsBaseLevelForKey("e"));
  EXPECT_TRUE(c->IsBaseLevelForKey("f"));
  EXPECT_FALSE(c->IsBaseLevelForKey("m"));
  EXPECT_TRUE(c->IsBaseLevelForKey("n"));
}

TEST(CompactionPolicyTest, OutputIsCutOnceItOverlapsTooMuchOfTheGrandparents) {
  // Limit: 10 * target_file_size = 1000 bytes of grandparent overlap.
  VersionPtr v = BuildVersion({{1, 10, "a", "z", 5000},
                               {3, 30, "b", "b", 600},
                               {3, 31, "d", "d", 600},
                               {3, 32, "f", "f", 600}});
  FilesInProgress none;
  auto c = PickCompaction(CaseOptions(), &kIcmp, v.get(), {}, none);
  ASSERT_NE(c, nullptr);
  auto key = [](std::string_view user_key) {
    return std::string(InternalKey(user_key, 1, kTypeValue).Encode());
  };
  EXPECT_FALSE(c->ShouldStopBefore(key("a")));  // First key: nothing passed.
  EXPECT_FALSE(c->ShouldStopBefore(key("c")));  // Passed 30: 600 bytes.
  EXPECT_TRUE(c->ShouldStopBefore(key("e")));   // Passed 31: 1200 > 1000.
  EXPECT_FALSE(c->ShouldStopBefore(key("e")));  // A new output starts at 0.
  EXPECT_FALSE(c->ShouldStopBefore(key("g")));  // Passed 32: 600.
}

TEST(CompactionPolicyTest, PendingBytesCountWhatLevelsExceedTheirTargets) {
  Options o = CaseOptions();
  EXPECT_EQ(EstimatePendingCompactionBytes(o, BuildVersion({}).get()), 0u);
  // Three L0 files are below the trigger; L1 is 200 over, L2 at target.
  EXPECT_EQ(EstimatePendingCompactionBytes(
                o, BuildVersion({{0, 1, "a", "b"},
                                 {0, 2, "a", "b"},
                                 {0, 3, "a", "b"},
                                 {1, 10, "a", "b", 1200},
                                 {2, 20, "a", "b", 10000}})
                       .get()),
            200u);
  // At the trigger all of L0 counts.
  std::vector<FileSpec> l0 = FourL0Files();
  EXPECT_EQ(EstimatePendingCompactionBytes(o, BuildVersion(l0).get()), 400u);
}

}  // namespace
}  // namespace strata::storage
