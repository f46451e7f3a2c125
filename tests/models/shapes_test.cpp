// The simulator plans models it does not build: their units' counts must be build_model's.
#include "models/shapes.hpp"

#include <catch2/catch.hpp>
#include <torch/torch.h>

using namespace floe::models;

namespace {
ModelConfig small_bert(int64_t dim, int64_t heads, int64_t depth, int64_t ffn, int64_t vocab, int64_t max_len) {
  ModelConfig c;
  c.kind = "bert";
  c.dim = dim;
  c.heads = heads;
  c.depth = depth;
  c.ffn_dim = ffn;
  c.vocab_size = vocab;
  c.max_len = max_len;
  c.classes = 2;
  return c;
}

void same_units(const ModelConfig& c) {
  const auto built = build_model(c);
  const auto shapes = unit_shapes(c);
  REQUIRE(shapes.size() == built.size());
  for (size_t i = 0; i < built.size(); ++i) {
    INFO(built[i].name);
    CHECK(shapes[i].name == built[i].name);
    CHECK(shapes[i].block == built[i].block);
    CHECK(shapes[i].params == built[i].parameter_count());
    CHECK(shapes[i].planner_cost == built[i].planner_cost());
    CHECK(shapes[i].output_elements > 0);
  }
}
}  // namespace

TEST_CASE("unit shapes count what build_model builds", "[shapes][simulate]") {
  ModelConfig vit;  // the demo's ViT
  same_units(vit);
  vit.image_size = 32;
  vit.channels = 3;
  vit.patch = 8;
  vit.dim = 48;
  vit.heads = 3;
  vit.depth = 2;
  vit.mlp_ratio = 4;
  same_units(vit);
  auto bert = small_bert(32, 2, 2, 64, 100, 16);
  same_units(bert);
  bert.task = "mlm";
  same_units(bert);
}

TEST_CASE("unit shapes: the arithmetic of a block by hand", "[shapes][simulate]") {
  const auto c = small_bert(8, 2, 1, 16, 10, 4);
  const auto u = unit_shapes(c, 3);  // 3 tokens
  // attention: four 8x8 projections on 3 tokens (2·3·64 each) and scores + sum (4·3·3·8)
  CHECK(u[1].forward_flops == 4 * 2 * 3 * 64 + 4 * 9 * 8);
  // feed-forward: 8 -> 16 -> 8 on 3 tokens
  CHECK(u[2].forward_flops == 2 * 3 * 8 * 16 * 2);
  CHECK(u[1].output_elements == 3 * 9);  // hidden plus the mask channel
  CHECK(sequence_length(c, 0) == 4);
  CHECK_THROWS_AS(unit_shapes(ModelConfig{"gpt"}), std::invalid_argument);
}
