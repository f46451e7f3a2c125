#include "runtime/plan/placement.hpp"

#include <catch2/catch.hpp>

#include <stdexcept>

using namespace floe::runtime;

using Placement = std::vector<std::vector<int>>;

TEST_CASE("pipelines stay inside a node and fill the nodes in order", "[placement]") {
  CHECK(replicas_on_nodes({2, 2}, 2) == 2);
  CHECK(replicas_on_nodes({3, 3}, 2) == 2);  // a pipeline never straddles two nodes
  CHECK(replicas_on_nodes({4, 1}, 1) == 5);
  CHECK(place_pipelines({2, 2}, 1, 4) == Placement{{0}, {0}, {1}, {1}});
  CHECK(place_pipelines({3, 3}, 2, 2) == Placement{{0, 0}, {1, 1}});
  CHECK(place_pipelines({4}, 2, 1) == Placement{{0, 0}});
  CHECK(place_pipelines({1, 2}, 2, 1) == Placement{{1, 1}});
  CHECK_THROWS_WITH(place_pipelines({1, 1}, 2, 1), Catch::Contains("do not fit") && Catch::Contains("[1, 1]") &&
                                                       Catch::Contains("pipeline.span_nodes"));
  CHECK_THROWS_AS(replicas_on_nodes({2}, 0), std::invalid_argument);
  CHECK_FALSE(splits_pipelines(place_pipelines({2, 2}, 2, 2)));
  CHECK_FALSE(groups_span_nodes(place_pipelines({2, 2}, 2, 1)));
  CHECK(groups_span_nodes(place_pipelines({2, 2}, 2, 2)));
}

TEST_CASE("with span_nodes a pipeline continues on the next node", "[placement]") {
  CHECK(replicas_on_nodes({1, 1}, 2, true) == 1);
  CHECK(replicas_on_nodes({3, 3}, 2, true) == 3);
  CHECK(place_pipelines({1, 1}, 2, 1, true) == Placement{{0, 1}});
  // Only the pipeline that does not fit on one node straddles two.
  CHECK(place_pipelines({3, 3}, 2, 3, true) == Placement{{0, 0}, {0, 1}, {1, 1}});
  CHECK(place_pipelines({1, 1, 1}, 3, 1, true) == Placement{{0, 1, 2}});
  CHECK(splits_pipelines(place_pipelines({1, 1}, 2, 1, true)));
  CHECK_FALSE(groups_span_nodes(place_pipelines({1, 1}, 2, 1, true)));  // one replica: every group is one stage
  CHECK(groups_span_nodes(place_pipelines({3, 3}, 2, 3, true)));
  CHECK_THROWS_WITH(place_pipelines({1, 1}, 2, 2, true), Catch::Contains("do not fit"));
}

TEST_CASE("the pieces of a placement: consecutive stages of a replica on one node", "[placement]") {
  auto summary = [](const std::vector<std::vector<PipelinePiece>>& per_node) {
    std::vector<std::vector<std::vector<int>>> out;
    for (const auto& pieces : per_node) {
      out.emplace_back();
      for (const auto& p : pieces) out.back().push_back({p.replica, p.first_stage, p.stages});
    }
    return out;
  };
  using Summary = std::vector<std::vector<std::vector<int>>>;
  // Whole pipelines: one piece per replica, on its node.
  CHECK(summary(pieces_per_node(place_pipelines({2, 2}, 2, 2), 2)) == Summary{{{0, 0, 2}}, {{1, 0, 2}}});
  // Nodes of 3 and 3 with K=2 spanning: replica 1 is cut in two; a node without pieces is empty.
  CHECK(summary(pieces_per_node(place_pipelines({3, 3}, 2, 3, true), 3)) ==
        Summary{{{0, 0, 2}, {1, 0, 1}}, {{1, 1, 1}, {2, 0, 2}}, {}});
  CHECK(summary(pieces_per_node({{0, 1, 1, 0}}, 2)) == Summary{{{0, 0, 1}, {0, 3, 1}}, {{0, 1, 2}}});
}
