#include "runtime/plan/elastic_plan.hpp"

#include <catch2/catch.hpp>

using namespace floe::runtime;

namespace {
// A ViT-like unit list: embedding, L blocks of (attn, mlp), norm, head.
PlanRequest vit_like(int layers, int devices, int k0) {
  PlanRequest q;
  q.unit_params.push_back(4000);
  q.unit_blocks.push_back(-1);
  for (int b = 0; b < layers; ++b) {
    q.unit_params.insert(q.unit_params.end(), {16000, 16000});
    q.unit_blocks.insert(q.unit_blocks.end(), {b, b});
  }
  q.unit_params.insert(q.unit_params.end(), {128, 650});
  q.unit_blocks.insert(q.unit_blocks.end(), {layers, layers});
  q.devices = devices;
  q.initial_stages = q.current_stages = k0;
  q.micro_batches = 4;
  return q;
}
}  // namespace

TEST_CASE("the frozen prefix is the embedding plus the frozen blocks", "[plan]") {
  auto q = vit_like(6, 8, 8);
  CHECK(frozen_unit_count(q.unit_blocks, 0) == 0);
  CHECK(frozen_unit_count(q.unit_blocks, 1) == 3);
  CHECK(frozen_unit_count(q.unit_blocks, 6) == 13);
}

TEST_CASE("plans shrink K and grow R as blocks freeze, never an empty stage", "[plan]") {
  for (bool frozen_cost : {false, true}) {
    auto q = vit_like(6, 8, 8);
    q.compression.apply_frozen_cost = frozen_cost;
    int k = 8;
    for (int f = 0; f <= 6; ++f) {
      q.frozen_blocks = f;
      q.current_stages = k;
      auto p = make_plan(q);
      INFO("F=" << f << " frozen_cost=" << frozen_cost);
      CHECK(p.stages <= k);
      CHECK(p.stages * p.replicas <= 8);
      if (f > 0) CHECK(p.replicas == 8 / p.stages);
      CHECK(int(p.units_per_stage.size()) == p.stages);
      int sum = p.frozen_units;
      for (int u : p.units_per_stage) {
        CHECK(u > 0);
        sum += u;
      }
      CHECK(sum == int(q.unit_params.size()));
      CHECK(p.micro_batches == (p.stages == 1 ? 1 : 4));
      k = p.stages;
    }
    CHECK(k == 1);
  }
}

TEST_CASE("virtual stages cut the active units into K·v stages while K > 1 and the units suffice", "[plan]") {
  auto q = vit_like(6, 4, 4);  // 15 units
  q.chunks = 2;
  auto p = make_plan(q);
  CHECK(p.stages == 4);
  CHECK(p.chunks == 2);
  REQUIRE(p.units_per_stage.size() == 8);
  int placed = 0;
  for (int n : p.units_per_stage) {
    CHECK(n >= 1);
    placed += n;
  }
  CHECK(placed == 15);
  q.chunks = 1;
  CHECK_FALSE(make_plan(q).same_layout(p));
  // Five blocks frozen: 4 active units, fewer than K·v for any K > 1 that compression keeps,
  // or K = 1: one chunk.
  q.chunks = 2;
  q.frozen_blocks = 5;
  q.current_stages = 4;
  const auto late = make_plan(q);
  CHECK(late.units_per_stage.size() == static_cast<size_t>(late.stages * late.chunks));
  CHECK((late.stages == 1 || 4 >= late.stages * late.chunks));
  if (late.stages == 1) CHECK(late.chunks == 1);
}

TEST_CASE("without AutoDP a shorter pipeline leaves the freed devices idle", "[plan]") {
  auto q = vit_like(6, 8, 8);
  q.data_parallel = false;
  q.frozen_blocks = 5;
  const auto p = make_plan(q);
  CHECK(p.stages < 8);
  CHECK(p.replicas == 1);
  q.data_parallel = true;
  const auto dp = make_plan(q);
  CHECK(dp.stages == p.stages);
  CHECK(dp.replicas == 8 / p.stages);
}

TEST_CASE("an unprofiled M falls back to the paper's table", "[plan][profile]") {
  auto q = vit_like(6, 8, 8);
  q.micro_batches = 0;
  CHECK(make_plan(q).micro_batches == 16);
  q.initial_stages = q.current_stages = 3;
  CHECK(make_plan(q).micro_batches == 12);
}

TEST_CASE("a static plan keeps K and R and only moves the frozen prefix", "[plan]") {
  auto q = vit_like(4, 4, 2);
  q.initial_replicas = 2;
  q.elastic = false;
  q.frozen_blocks = 3;
  auto p = make_plan(q);
  CHECK(p.stages == 2);
  CHECK(p.replicas == 2);
  CHECK(p.frozen_units == 7);
}
