// The range map's rules, its JSON (round trip and strict rejection), and
// the controller's pure plans (failover, drain, membership): no etcd.

#include "cluster/control/range_map.h"

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_replace.h"
#include "cluster/control/cluster_rpc.h"
#include "cluster/control/cluster_store.h"
#include "cluster/control/controller.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_util.h"

namespace strata::cluster {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

RangeDescriptor Range(RangeId id, std::string start, std::string end,
                      std::vector<NodeId> replicas,
                      std::vector<NodeId> in_sync = {}, Epoch epoch = 1) {
  RangeDescriptor r;
  r.id = id;
  r.start = std::move(start);
  r.end = std::move(end);
  r.epoch = epoch;
  r.primary = replicas.front();
  r.in_sync = in_sync.empty() ? replicas : std::move(in_sync);
  r.replicas = std::move(replicas);
  r.mod_revision = 10 + id;
  return r;
}

// Three ranges over n1..n3: ["", "g") ["g", "p") ["p", "").
RangeMap ThreeRanges() {
  auto map = RangeMap::Create({Range(0, "", "g", {"n1", "n2", "n3"}),
                               Range(1, "g", "p", {"n2", "n3", "n1"}),
                               Range(2, "p", "", {"n3", "n1", "n2"})},
                              42);
  EXPECT_OK(map);
  return *std::move(map);
}

TEST(RangeMapTest, LookupFindsTheRangeHoldingAStoredKey) {
  const RangeMap map = ThreeRanges();
  EXPECT_EQ(map.revision(), 42);
  EXPECT_EQ(map.Lookup("").id, 0u);
  EXPECT_EQ(map.Lookup("f\xff").id, 0u);
  EXPECT_EQ(map.Lookup("g").id, 1u);  // start is inclusive
  EXPECT_EQ(map.Lookup("o").id, 1u);
  EXPECT_EQ(map.Lookup("p").id, 2u);  // end is exclusive
  EXPECT_EQ(map.Lookup("\xff\xff\x01namespaced").id, 2u);
  ASSERT_NE(map.Find(1), nullptr);
  EXPECT_EQ(map.Find(1)->start, "g");
  EXPECT_EQ(map.Find(7), nullptr);
}

TEST(RangeMapTest, OverlappingHonoursHalfOpenBounds) {
  const RangeMap map = ThreeRanges();
  auto ids = [&](std::string_view s, std::string_view e) {
    std::vector<RangeId> out;
    for (const RangeDescriptor* r : map.Overlapping(s, e)) out.push_back(r->id);
    return out;
  };
  EXPECT_THAT(ids("", ""), ElementsAre(0, 1, 2));
  EXPECT_THAT(ids("a", "g"), ElementsAre(0));  // "g" itself not included
  EXPECT_THAT(ids("a", std::string("g\x00", 2)), ElementsAre(0, 1));
  EXPECT_THAT(ids("g", "h"), ElementsAre(1));
  EXPECT_THAT(ids("h", ""), ElementsAre(1, 2));
  EXPECT_THAT(ids("z", ""), ElementsAre(2));
  EXPECT_THAT(ids("h", "h"), IsEmpty());
  EXPECT_THAT(ids("z", "a"), IsEmpty());
}

TEST(RangeMapTest, CreateRejectsGapsOverlapsAndOpenEnds) {
  auto gap = RangeMap::Create(
      {Range(0, "", "g", {"n1"}), Range(1, "h", "", {"n1"})}, 1);
  EXPECT_TRUE(absl::IsInvalidArgument(gap.status()));
  EXPECT_THAT(gap.status().message(), HasSubstr("gap"));
  auto overlap = RangeMap::Create(
      {Range(0, "", "h", {"n1"}), Range(1, "g", "", {"n1"})}, 1);
  EXPECT_THAT(overlap.status().message(), HasSubstr("overlap"));
  auto two_infinite = RangeMap::Create(
      {Range(0, "", "", {"n1"}), Range(1, "g", "", {"n1"})}, 1);
  EXPECT_THAT(two_infinite.status().message(), HasSubstr("overlap"));
  auto low_open = RangeMap::Create({Range(0, "a", "", {"n1"})}, 1);
  EXPECT_THAT(low_open.status().message(), HasSubstr("below"));
  auto high_open = RangeMap::Create({Range(0, "", "x", {"n1"})}, 1);
  EXPECT_THAT(high_open.status().message(), HasSubstr("from"));
  auto dup = RangeMap::Create(
      {Range(0, "", "g", {"n1"}), Range(0, "g", "", {"n1"})}, 1);
  EXPECT_THAT(dup.status().message(), HasSubstr("used twice"));
  EXPECT_TRUE(absl::IsInvalidArgument(RangeMap::Create({}, 1).status()));
  // Unsorted input is fine: the map sorts by start key.
  auto unsorted = RangeMap::Create(
      {Range(1, "g", "", {"n1"}), Range(0, "", "g", {"n1"})}, 1);
  ASSERT_OK(unsorted);
  EXPECT_EQ(unsorted->ranges().front().id, 0u);
}

TEST(RangeMapTest, ValidateRangeEnforcesReplicaRules) {
  RangeDescriptor ok = Range(0, "", "", {"n1", "n2", "n3"});
  EXPECT_OK(ValidateRange(ok));
  auto broken = [&](auto mutate, std::string_view want) {
    RangeDescriptor r = ok;
    mutate(r);
    const absl::Status s = ValidateRange(r);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << want;
    EXPECT_THAT(s.message(), HasSubstr(want));
  };
  broken([](RangeDescriptor& r) { r.primary = "n9"; }, "not a replica");
  broken([](RangeDescriptor& r) { r.in_sync = {"n2", "n3"}; }, "not in sync");
  broken([](RangeDescriptor& r) { r.in_sync = {"n1", "n9"}; },
         "in-sync node n9 is not a replica");
  broken([](RangeDescriptor& r) { r.in_sync = {"n1", "n1"}; }, "twice");
  broken([](RangeDescriptor& r) { r.replicas = {"n1", "n2", "n1"}; },
         "twice");
  broken([](RangeDescriptor& r) { r.replicas = {"N1"}; r.primary = "N1"; },
         "invalid node id");
  broken([](RangeDescriptor& r) { r.replicas.clear(); }, "no replicas");
  broken([](RangeDescriptor& r) { r.epoch = 0; }, "epoch");
  broken([](RangeDescriptor& r) { r.start = "b"; r.end = "a"; }, "below");
  EXPECT_TRUE(IsValidNodeId("node-1"));
  EXPECT_FALSE(IsValidNodeId(""));
  EXPECT_FALSE(IsValidNodeId(std::string(64, 'a')));
  EXPECT_FALSE(IsValidNodeId("a/b"));
}

TEST(RangeCodecTest, RoundTripsBinaryKeys) {
  RangeDescriptor r = Range(7, std::string("\x00\xff", 2),
                            std::string("\xff\xff\x01\x80", 4),
                            {"n1", "n2", "n3"}, {"n2", "n1"}, 12345678901ull);
  r.primary = "n2";
  const std::string json = EncodeRange(r);
  EXPECT_THAT(json, HasSubstr("\"format\":1"));
  EXPECT_THAT(json, HasSubstr("\"start_hex\":\"00ff\""));
  ASSERT_OK_AND_ASSIGN(const RangeDescriptor back,
                       DecodeRange("strata/ranges/7", json));
  EXPECT_TRUE(back.SameAs(r));
  EXPECT_EQ(back.mod_revision, 0);
}

TEST(RangeCodecTest, RejectsBadValuesAsDataLossNamingTheKey) {
  const std::string good = EncodeRange(Range(3, "a", "b", {"n1", "n2"}));
  ASSERT_OK(DecodeRange("k", good));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{not json", "not valid JSON"},
      {"[1,2]", "not a JSON object"},
      {absl::StrReplaceAll(good, {{"\"format\":1", "\"format\":2"}}),
       "format 2"},
      {absl::StrReplaceAll(good, {{"\"epoch\":1", "\"epoch\":-1"}}),
       "epoch"},
      {absl::StrReplaceAll(good, {{"\"id\":3", "\"id\":\"3\""}}), "id"},
      {absl::StrReplaceAll(good, {{"\"id\":3", "\"id\":4294967296"}}), "id"},
      {absl::StrReplaceAll(good, {{"\"start_hex\":\"61\"", "\"start_hex\":\"6\""}}),
       "start_hex"},
      {absl::StrReplaceAll(good, {{"\"end_hex\":\"62\"", "\"end_hex\":\"zz\""}}),
       "end_hex"},
      {absl::StrReplaceAll(good, {{"\"primary\":\"n1\"", "\"primary\":\"n5\""}}),
       "not a replica"},
      {absl::StrReplaceAll(good, {{"\"in_sync\"", "\"isr\""}}),
       "unknown field \"isr\""},
      {absl::StrReplaceAll(good, {{",\"epoch\":1", ""}}),
       "missing field \"epoch\""},
      {absl::StrReplaceAll(good, {{"[\"n1\",\"n2\"]", "[\"n1\",2]"}}),
       "array of strings"},
  };
  for (const auto& [json, want] : cases) {
    ASSERT_NE(json, good) << want;  // the replacement applied
    const auto r = DecodeRange("strata/ranges/3", json);
    EXPECT_TRUE(absl::IsDataLoss(r.status())) << json;
    EXPECT_THAT(r.status().message(), HasSubstr("strata/ranges/3")) << json;
    EXPECT_THAT(r.status().message(), HasSubstr(want)) << json;
  }
}

TEST(RangeCodecTest, EqualSplitKeysAreAscendingAndNonEmpty) {
  EXPECT_THAT(EqualSplitKeys(1), IsEmpty());
  EXPECT_THAT(EqualSplitKeys(2), ElementsAre("\x80"));
  EXPECT_THAT(EqualSplitKeys(4), ElementsAre("\x40", "\x80", "\xc0"));
  const auto keys = EqualSplitKeys(1000);
  ASSERT_EQ(keys.size(), 999u);
  for (size_t i = 0; i < keys.size(); ++i) {
    EXPECT_FALSE(keys[i].empty());
    if (i > 0) {
      EXPECT_LT(keys[i - 1], keys[i]);
    }
  }
}

TEST(PlanInitialRangesTest, PlacesReplicasRoundRobin) {
  InitOptions o;
  o.num_ranges = 4;
  o.config = {3, 2};
  o.members = {{"n1", "h:1"}, {"n2", "h:2"}, {"n3", "h:3"}, {"n4", "h:4"}};
  ASSERT_OK_AND_ASSIGN(const auto ranges, PlanInitialRanges(o));
  ASSERT_EQ(ranges.size(), 4u);
  EXPECT_THAT(ranges[1].replicas, ElementsAre("n2", "n3", "n4"));
  EXPECT_THAT(ranges[3].replicas, ElementsAre("n4", "n1", "n2"));
  EXPECT_EQ(ranges[3].primary, "n4");
  EXPECT_EQ(ranges[3].in_sync, ranges[3].replicas);
  ASSERT_OK(RangeMap::Create(ranges, 0));
  o.members.resize(2);
  EXPECT_TRUE(absl::IsInvalidArgument(PlanInitialRanges(o).status()));
  o.members = {{"n1", "h"}, {"n1", "h"}, {"n2", "h"}};
  EXPECT_TRUE(absl::IsInvalidArgument(PlanInitialRanges(o).status()));
  o.members = {{"n1", "h"}, {"n2", "h"}, {"n3", "h"}};
  o.split_keys = {"b", "a"};
  EXPECT_TRUE(absl::IsInvalidArgument(PlanInitialRanges(o).status()));
  o.split_keys = {};
  o.config = {3, 4};
  EXPECT_TRUE(absl::IsInvalidArgument(PlanInitialRanges(o).status()));
}

TEST(PlanFailoverTest, PromotesFirstLiveInSyncReplicaAndDropsOldPrimary) {
  const RangeMap map = ThreeRanges();
  // n1 is down: range 0 (primary n1) moves to n2, the next in list order.
  const RangePlan plan = PlanFailover(map, {"n2", "n3"});
  EXPECT_THAT(plan.stuck, IsEmpty());
  ASSERT_EQ(plan.updates.size(), 1u);
  const RangeDescriptor& u = plan.updates[0];
  EXPECT_EQ(u.id, 0u);
  EXPECT_EQ(u.primary, "n2");
  EXPECT_EQ(u.epoch, 2u);
  EXPECT_THAT(u.in_sync, ElementsAre("n2", "n3"));
  EXPECT_THAT(u.replicas, ElementsAre("n1", "n2", "n3"));
  EXPECT_EQ(u.mod_revision, map.Find(0)->mod_revision);  // for the CAS
  // Deterministic: the same inputs, the same plan.
  const RangePlan again = PlanFailover(map, {"n3", "n2"});
  ASSERT_EQ(again.updates.size(), 1u);
  EXPECT_TRUE(again.updates[0].SameAs(u));
  // Everyone live: nothing to do.
  EXPECT_THAT(PlanFailover(map, {"n1", "n2", "n3"}).updates, IsEmpty());
}

TEST(PlanFailoverTest, SparedPrimariesStayButAreNeverPromoted) {
  const RangeMap map = ThreeRanges();
  // Only n1 is live; n2 and n3 have not been seen yet (startup grace).
  const RangePlan plan = PlanFailover(map, {"n1"}, {"n2", "n3"});
  EXPECT_THAT(plan.updates, IsEmpty());
  EXPECT_THAT(plan.stuck, IsEmpty());
  // n2 died after being seen; n3 is still spared: range 1 (n2 n3 n1)
  // goes to n1, not to the unseen n3.
  const RangePlan next = PlanFailover(map, {"n1"}, {"n3"});
  ASSERT_EQ(next.updates.size(), 1u);
  EXPECT_EQ(next.updates[0].id, 1u);
  EXPECT_EQ(next.updates[0].primary, "n1");
}

TEST(PlanFailoverTest, NeverPromotesAnOutOfSyncReplica) {
  // n2 is live but out of sync; n3 (in sync) is down with the primary.
  auto map = RangeMap::Create(
      {Range(0, "", "", {"n1", "n2", "n3"}, {"n1", "n3"})}, 1);
  ASSERT_OK(map);
  const RangePlan plan = PlanFailover(*map, {"n2"});
  EXPECT_THAT(plan.updates, IsEmpty());
  EXPECT_THAT(plan.stuck, ElementsAre(0));
  // When n3 comes back it takes over, skipping n2.
  const RangePlan back = PlanFailover(*map, {"n2", "n3"});
  ASSERT_EQ(back.updates.size(), 1u);
  EXPECT_EQ(back.updates[0].primary, "n3");
  EXPECT_THAT(back.updates[0].in_sync, ElementsAre("n3"));
}

TEST(PlanDrainTest, MovesPrimariesToLiveInSyncReplicas) {
  const RangeMap map = ThreeRanges();
  const RangePlan plan = PlanDrain(map, "n2", {"n1", "n2", "n3"});
  ASSERT_EQ(plan.updates.size(), 1u);
  EXPECT_EQ(plan.updates[0].id, 1u);
  EXPECT_EQ(plan.updates[0].primary, "n3");
  EXPECT_EQ(plan.updates[0].epoch, 2u);
  // The drained node stays in sync: it is alive and has every write.
  EXPECT_THAT(plan.updates[0].in_sync, ElementsAre("n2", "n3", "n1"));
  // With n3 and n1 down there is nowhere to go.
  const RangePlan stuck = PlanDrain(map, "n2", {"n2"});
  EXPECT_THAT(stuck.updates, IsEmpty());
  EXPECT_THAT(stuck.stuck, ElementsAre(1));
}

TEST(PlanMembershipTest, RemoveRefusesPrimaryAndMinInSync) {
  const RangeMap map = ThreeRanges();
  const ClusterConfig config{3, 2};
  auto primary = PlanRemoveMember(map, "n1", config);
  EXPECT_TRUE(absl::IsFailedPrecondition(primary.status()));
  EXPECT_THAT(primary.status().message(), HasSubstr("primary of range 0"));
  auto tight = RangeMap::Create(
      {Range(0, "", "", {"n1", "n2", "n3"}, {"n1", "n2"})}, 1);
  ASSERT_OK(tight);
  auto below = PlanRemoveMember(*tight, "n2", config);
  EXPECT_TRUE(absl::IsFailedPrecondition(below.status()));
  EXPECT_THAT(below.status().message(), HasSubstr("min_in_sync 2"));
  // n3 is out of sync there: removing it is fine.
  ASSERT_OK_AND_ASSIGN(const RangePlan ok,
                       PlanRemoveMember(*tight, "n3", config));
  ASSERT_EQ(ok.updates.size(), 1u);
  EXPECT_THAT(ok.updates[0].replicas, ElementsAre("n1", "n2"));
  EXPECT_EQ(ok.updates[0].epoch, 1u);
}

TEST(PlanMembershipTest, AddFillsOnlyUnderReplicatedRangesOutOfSync) {
  auto map = RangeMap::Create({Range(0, "", "m", {"n1", "n2"}),
                               Range(1, "m", "", {"n1", "n2", "n3"})},
                              1);
  ASSERT_OK(map);
  const RangePlan plan = PlanAddMember(*map, "n4", {3, 2});
  ASSERT_EQ(plan.updates.size(), 1u);
  EXPECT_EQ(plan.updates[0].id, 0u);
  EXPECT_THAT(plan.updates[0].replicas, ElementsAre("n1", "n2", "n4"));
  EXPECT_THAT(plan.updates[0].in_sync, ElementsAre("n1", "n2"));
  EXPECT_THAT(PlanAddMember(*map, "n2", {3, 2}).updates, IsEmpty());
}

TEST(ClusterRpcTest, GetRangeMapResponseCarriesPrimaryAddresses) {
  const RangeMap map = ThreeRanges();
  v1::GetRangeMapResponse resp;
  FillGetRangeMapResponse(map, {{"n1", "h1:1"}, {"n2", "h2:2"}},
                          {{"n2", "stale:9"}, {"n3", "h3:3"}}, &resp);
  EXPECT_EQ(resp.etcd_revision(), 42);
  ASSERT_EQ(resp.ranges_size(), 3);
  EXPECT_EQ(resp.ranges(1).id(), 1u);
  EXPECT_EQ(resp.ranges(1).start_key(), "g");
  EXPECT_EQ(resp.ranges(1).end_key(), "p");
  EXPECT_EQ(resp.ranges(1).primary(), "n2");
  EXPECT_EQ(resp.ranges(1).primary_address(), "h2:2");  // the member's
  EXPECT_EQ(resp.ranges(2).primary_address(), "h3:3");  // only live
  EXPECT_THAT(resp.ranges(2).replicas(), ElementsAre("n3", "n1", "n2"));
  EXPECT_THAT(resp.ranges(2).in_sync(), ElementsAre("n3", "n1", "n2"));
  ASSERT_EQ(resp.nodes_size(), 3);
  EXPECT_EQ(resp.nodes(0).id(), "n1");
  EXPECT_TRUE(resp.nodes(0).member());
  EXPECT_FALSE(resp.nodes(0).live());
  EXPECT_FALSE(resp.nodes(2).member());
  EXPECT_TRUE(resp.nodes(2).live());
}

}  // namespace
}  // namespace strata::cluster
