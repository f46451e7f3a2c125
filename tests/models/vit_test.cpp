#include <torch/torch.h>

#include "models/vit.hpp"

#include <catch2/catch.hpp>

using namespace floe::models;

TEST_CASE("the ViT decomposes into the paper's units", "[model]") {
  ModelConfig c;
  c.depth = 3;
  auto units = build_vit(c);
  REQUIRE(units.size() == size_t(vit_unit_count(c)));
  CHECK(units.front().name == "embed");
  CHECK(units[1].name == "block0.attn");
  CHECK(units[2].name == "block0.mlp");
  CHECK(units[2].block == 0);
  CHECK(units[6].name == "block2.mlp");
  CHECK(units[7].name == "norm");
  CHECK(units.back().name == "head");
  // dim 64: attention = LN (128) + in-proj (3·64·64 + 3·64) + out-proj (64·64 + 64)
  CHECK(units[1].parameter_count() == 128 + 3 * 64 * 64 + 3 * 64 + 64 * 64 + 64);
  CHECK(units[2].parameter_count() == 128 + 64 * 128 + 128 + 128 * 64 + 64);
  CHECK(units.back().parameter_count() == 64 * 10 + 10);
  auto out = forward_range(units, 0, units.size(), torch::randn({5, 1, 28, 28}));
  CHECK(out.sizes() == torch::IntArrayRef({5, 10}));
}

TEST_CASE("bad model shapes name the field", "[model]") {
  ModelConfig c;
  c.patch = 5;
  CHECK_THROWS_WITH(build_vit(c), Catch::Contains("model.patch"));
  c = {};
  c.dim = 30;
  CHECK_THROWS_WITH(build_vit(c), Catch::Contains("model.dim"));
}
