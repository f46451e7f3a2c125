#include "runtime/placement.hpp"

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
