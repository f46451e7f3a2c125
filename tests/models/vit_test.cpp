#include <torch/torch.h>

#include "models/transformer.hpp"
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

TEST_CASE("the ViT's attention is LibTorch's MultiheadAttention: same names, same first weights, same outputs and gradients",
          "[model]") {
  torch::manual_seed(11);
  StackedSelfAttention ours(16, 4);
  torch::manual_seed(11);
  torch::nn::MultiheadAttention theirs(torch::nn::MultiheadAttentionOptions(16, 4));
  const auto a = ours->named_parameters(), b = theirs->named_parameters();
  REQUIRE(a.keys() == b.keys());  // in_proj_weight, in_proj_bias, out_proj.weight, out_proj.bias
  for (const auto& p : a) {
    INFO(p.key());
    CHECK(torch::equal(p.value(), b[p.key()]));  // same draws in the same order
  }

  const auto x = torch::randn({3, 7, 16});
  auto x1 = x.clone().requires_grad_(true), x2 = x.clone().requires_grad_(true);
  const auto y1 = ours->forward(x1);
  const auto h = x2.transpose(0, 1);  // LibTorch's MHA takes (L, N, E)
  const auto y2 = std::get<0>(theirs->forward(h, h, h, torch::Tensor(), false)).transpose(0, 1);
  CHECK(torch::allclose(y1, y2, 1e-5, 1e-6));
  const auto g = torch::randn({3, 7, 16});
  y1.backward(g);
  y2.backward(g);
  CHECK(torch::allclose(x1.grad(), x2.grad(), 1e-5, 1e-6));
  for (const auto& p : a) {
    INFO(p.key());
    CHECK(torch::allclose(p.value().grad(), b[p.key()].grad(), 1e-5, 1e-6));
  }
}

TEST_CASE("the ViT's patch embedding is its convolution: same outputs and gradients as Conv2d's forward",
          "[model]") {
  torch::manual_seed(12);
  ModelConfig c;
  c.channels = 3;
  c.image_size = 8;
  c.patch = 4;
  c.dim = 16;
  c.heads = 4;
  auto units = build_vit(c);
  auto& embed = *units.front().module;
  auto* conv = embed.named_children()["proj"]->as<torch::nn::Conv2d>();
  REQUIRE(conv != nullptr);
  const auto params = embed.named_parameters();
  const auto x = torch::randn({5, 3, 8, 8});
  const auto got = embed.forward(x);
  const auto p = conv->forward(x).flatten(2).transpose(1, 2);  // [N, P, dim]
  const auto want = torch::cat({params["cls"].expand({5, -1, -1}), p}, 1) + params["pos"];
  REQUIRE(got.sizes() == want.sizes());
  CHECK(torch::allclose(got, want, 1e-5, 1e-6));
  const auto g = torch::randn_like(got);
  const auto grads = torch::autograd::grad({got}, {conv->weight, conv->bias}, {g});
  const auto wants = torch::autograd::grad({want}, {conv->weight, conv->bias}, {g});
  CHECK(torch::allclose(grads[0], wants[0], 1e-5, 1e-5));
  CHECK(torch::allclose(grads[1], wants[1], 1e-5, 1e-5));
}
