/// \file
/// Unit tests of the cluster's region assignment (cluster/assignment.hpp) and the status
/// view: balanced, sticky, generations raised only for regions that move, unique across
/// coordinators.

#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "cluster/assignment.hpp"
#include "cluster/membership.hpp"

namespace {

using namespace keyflow::cluster;

/// Regions per node of an assignment.
std::map<uint32_t, int> load(const assignment& a) {
  std::map<uint32_t, int> out;
  for (const auto& r : a.regions)
    ++out[r.node];
  return out;
}

TEST(Assignment, RegionPartitionsSplitTheTopic) {
  EXPECT_EQ(region_partitions(0, 3, 7), (std::vector<int32_t>{0, 3, 6}));
  EXPECT_EQ(region_partitions(2, 3, 7), (std::vector<int32_t>{2, 5}));
  EXPECT_EQ(region_partitions(0, 1, 3), (std::vector<int32_t>{0, 1, 2}));
}

TEST(Assignment, FirstAssignmentIsBalanced) {
  auto a = rebalance({}, {3, 1, 2}, 6, 1, 1);
  EXPECT_EQ(a.version, 1u);
  EXPECT_EQ(a.coordinator, 1u);
  ASSERT_EQ(a.regions.size(), 6u);
  EXPECT_EQ(load(a), (std::map<uint32_t, int>{{1, 2}, {2, 2}, {3, 2}}));
  for (const auto& r : a.regions)
    EXPECT_EQ(r.generation, generation_of(1, 1));
}

TEST(Assignment, SlicesOfASpreadJobRestartTogether) {
  auto a = rebalance({}, {1, 2, 3}, 6, 1, 1, true);
  auto b = rebalance(a, {1, 2}, 6, 1, 2, true);
  EXPECT_EQ(b.version, 2u);
  EXPECT_EQ(load(b), (std::map<uint32_t, int>{{1, 3}, {2, 3}}));
  for (size_t r = 0; r < 6; ++r) { // moved or not, every slice gets the fresh generation
    EXPECT_EQ(b.regions[r].generation, generation_of(2, 1)) << "slice " << r;
    if (a.regions[r].node != 3) {
      EXPECT_EQ(b.regions[r].node, a.regions[r].node) << "slice " << r << " moved";
    }
  }
  auto c = rebalance(b, {2, 1}, 6, 1, 3, true); // nothing changed: nothing restarts
  EXPECT_EQ(c.version, 2u);
  EXPECT_EQ(c.regions[0].generation, generation_of(2, 1));
}

TEST(Assignment, UnchangedLiveSetKeepsTheVersion) {
  auto a = rebalance({}, {1, 2}, 5, 1, 1);
  auto b = rebalance(a, {2, 1}, 5, 1, 2);
  EXPECT_EQ(b.version, 1u);
  EXPECT_EQ(load(a), (std::map<uint32_t, int>{{1, 3}, {2, 2}}));
}

TEST(Assignment, DeadNodesRegionsMoveAndOnlyThey) {
  auto a = rebalance({}, {1, 2, 3}, 6, 1, 1);
  auto b = rebalance(a, {1, 2}, 6, 1, 2);
  EXPECT_EQ(b.version, 2u);
  EXPECT_EQ(load(b), (std::map<uint32_t, int>{{1, 3}, {2, 3}}));
  for (size_t r = 0; r < 6; ++r) {
    if (a.regions[r].node == 3) {
      EXPECT_NE(b.regions[r].node, 3u);
      EXPECT_EQ(b.regions[r].generation, generation_of(2, 1)) << "region " << r;
    } else {
      EXPECT_EQ(b.regions[r].node, a.regions[r].node) << "region " << r << " moved";
      EXPECT_EQ(b.regions[r].generation, a.regions[r].generation);
    }
  }
}

TEST(Assignment, ANewNodeTakesItsShareFromTheFullest) {
  auto a = rebalance({}, {1, 2}, 6, 1, 1);
  auto b = rebalance(a, {1, 2, 3}, 6, 1, 2);
  EXPECT_EQ(load(b), (std::map<uint32_t, int>{{1, 2}, {2, 2}, {3, 2}}));
  int moved = 0;
  for (size_t r = 0; r < 6; ++r)
    moved += a.regions[r].node != b.regions[r].node;
  EXPECT_EQ(moved, 2); // exactly the new node's share moves
  // And back: 3 -> 2 moves only node 3's regions.
  auto c = rebalance(b, {1, 2}, 6, 1, 3);
  for (size_t r = 0; r < 6; ++r) {
    if (b.regions[r].node != 3) {
      EXPECT_EQ(c.regions[r].node, b.regions[r].node);
    }
  }
  EXPECT_EQ(load(c), (std::map<uint32_t, int>{{1, 3}, {2, 3}}));
}

TEST(Assignment, NoLiveNodeLeavesRegionsUnowned) {
  auto a = rebalance({}, {1}, 2, 1, 1);
  auto b = rebalance(a, {}, 2, 1, 2);
  EXPECT_TRUE(owned_by(b, 1).empty());
  EXPECT_EQ(b.regions[0].node, 0u);
}

TEST(Assignment, GenerationsOfTwoCoordinatorsNeverCollide) {
  // Two nodes that each believed they coordinated hand out version 1.
  EXPECT_NE(generation_of(1, 1), generation_of(1, 3));
  EXPECT_LT(generation_of(1, 3), generation_of(2, 1)); // a newer version is always higher
}

TEST(Assignment, OwnedByListsRegionsWithGenerations) {
  auto a = rebalance({}, {1, 2}, 4, 1, 7);
  auto mine = owned_by(a, 2);
  ASSERT_EQ(mine.size(), 2u);
  for (const auto& r : mine)
    EXPECT_EQ(r.generation, generation_of(7, 1));
}

TEST(ClusterView, StatusJsonShowsMembersAndAssignment) {
  cluster_view v;
  cluster_view::snapshot s;
  s.self = 1;
  s.coordinator = 1;
  member_status me;
  me.info.id = 1;
  me.info.host = "127.0.0.1";
  me.info.port = 7401;
  me.alive = me.self = true;
  member_status other;
  other.info.id = 2;
  other.info.host = "127.0.0.1";
  other.info.port = 7402;
  other.info.running = {{1, 65537}};
  s.members = {me, other};
  s.current = rebalance({}, {1, 2}, 2, 1, 1);
  v.update(s);
  v.set_running({{0, 65537}});
  auto j = v.to_json();
  EXPECT_EQ(j["coordinator"], 1);
  EXPECT_EQ(j["members"][1]["address"], "127.0.0.1:7402");
  EXPECT_EQ(j["members"][1]["alive"], false);
  EXPECT_EQ(j["members"][0]["running"][0]["region"], 0);
  EXPECT_EQ(j["members"][1]["running"][0]["generation"], 65537);
  EXPECT_EQ(j["assignment"]["regions"].size(), 2u);
  EXPECT_EQ(j["assignment"]["version"], 1);
}

} // namespace
