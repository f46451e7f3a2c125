#include "runtime/placement.hpp"

#include <catch2/catch.hpp>

#include <stdexcept>

using namespace floe::runtime;

TEST_CASE("pipelines stay inside a node and fill the nodes in order", "[placement]") {
  CHECK(replicas_on_nodes({2, 2}, 2) == 2);
  CHECK(replicas_on_nodes({3, 3}, 2) == 2);  // a pipeline never straddles two nodes
  CHECK(replicas_on_nodes({4, 1}, 1) == 5);
  CHECK(place_pipelines({2, 2}, 1, 4) == std::vector<int>{0, 0, 1, 1});
  CHECK(place_pipelines({3, 3}, 2, 2) == std::vector<int>{0, 1});
  CHECK(place_pipelines({4}, 2, 1) == std::vector<int>{0});
  CHECK_THROWS_WITH(place_pipelines({1, 1}, 2, 1), Catch::Contains("do not fit") && Catch::Contains("[1, 1]"));
  CHECK_THROWS_AS(replicas_on_nodes({2}, 0), std::invalid_argument);
}
