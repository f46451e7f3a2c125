#include "models/prenorm.hpp"
#include "models/transformer.hpp"
#include "models/weight_grads.hpp"

#include <catch2/catch.hpp>

#include <limits>
#include <optional>

using namespace floe::models;

namespace {

// The two sublayers as LibTorch modules compose them, each operation its own autograd node:
// the reference the fused sublayers must equal.
struct Reference {
  torch::nn::LayerNorm ln1{torch::nn::LayerNormOptions({16})}, ln2{torch::nn::LayerNormOptions({16})};
  StackedSelfAttention attn{16, 4};
  torch::nn::Linear fc1{16, 32}, fc2{32, 16};

  Reference() {
    torch::NoGradGuard no_grad;  // layer norms away from 1 and 0, so that their gradients count
    for (auto* t : {&ln1->weight, &ln1->bias, &ln2->weight, &ln2->bias}) t->copy_(torch::randn_like(*t));
  }
  std::vector<torch::Tensor> params() const {
    return {ln1->weight, ln1->bias, attn->in_proj_weight, attn->in_proj_bias, attn->out_proj->weight,
            attn->out_proj->bias, ln2->weight, ln2->bias, fc1->weight, fc1->bias, fc2->weight, fc2->bias};
  }
  torch::Tensor modules(const torch::Tensor& x) {
    const auto h = x + attn->forward(ln1->forward(x));
    return h + linear(fc2, torch::gelu(linear(fc1, ln2->forward(h))));
  }
  torch::Tensor fused(const torch::Tensor& x) const {
    const auto h = prenorm_attention(x, {ln1->weight, ln1->bias, 1e-5}, attn->in_proj_weight, attn->in_proj_bias,
                                     attn->out_proj->weight, attn->out_proj->bias, 4);
    return prenorm_mlp(h, {ln2->weight, ln2->bias, 1e-5}, fc1->weight, fc1->bias, fc2->weight, fc2->bias);
  }
  void zero_grad() const {
    for (auto p : params()) p.mutable_grad() = torch::Tensor();
  }
  // The gradients after a backward of `f` (with `defer`: I, then W), x's last.
  template <class F>
  std::vector<torch::Tensor> grads(F f, const torch::Tensor& x0, const torch::Tensor& g, bool defer) {
    zero_grad();
    auto x = x0.clone().requires_grad_(true);
    WeightGrads held;
    torch::Tensor y;
    {
      std::optional<DeferWeightGrads> scope;
      if (defer) scope.emplace(&held);
      y = f(x);
    }
    y.backward(g);
    if (defer) {
      CHECK_FALSE(fc1->weight.grad().defined());  // held back for W
      CHECK_FALSE(attn->in_proj_weight.grad().defined());
      CHECK(held.bytes() > 0);
      held.apply();
    }
    std::vector<torch::Tensor> out;
    for (const auto& p : params()) out.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
    out.push_back(x.grad());
    return out;
  }
};

void check_close(const std::vector<torch::Tensor>& got, const std::vector<torch::Tensor>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("gradient " << i << " (12 = x)");
    REQUIRE(got[i].defined() == want[i].defined());
    if (got[i].defined()) CHECK(torch::allclose(got[i], want[i], 1e-5, 1e-6));
  }
}

}  // namespace

TEST_CASE("the fused pre-norm sublayers equal the modules: outputs, gradients, deferred weight gradients",
          "[model][weight_grads]") {
  torch::manual_seed(21);
  Reference r;
  const auto x = torch::randn({3, 7, 16});
  const auto g = torch::randn({3, 7, 16});
  CHECK(torch::allclose(r.fused(x), r.modules(x), 1e-5, 1e-6));

  SECTION("one backward") {
    const auto want = r.grads([&](auto& t) { return r.modules(t); }, x, g, false);
    check_close(r.grads([&](auto& t) { return r.fused(t); }, x, g, false), want);
  }
  SECTION("split backward: I, then W") {
    const auto want = r.grads([&](auto& t) { return r.modules(t); }, x, g, false);
    check_close(r.grads([&](auto& t) { return r.fused(t); }, x, g, true), want);
    // both record the same layers and hold the same bytes until W
    WeightGrads a, b;
    auto xa = x.clone().requires_grad_(true), xb = x.clone().requires_grad_(true);
    {
      DeferWeightGrads scope(&a);
      r.modules(xa).backward(g);
    }
    {
      DeferWeightGrads scope(&b);
      r.fused(xb).backward(g);
    }
    CHECK(a.bytes() == b.bytes());
  }
  SECTION("a non-contiguous input") {
    const auto xt = x.transpose(0, 1).contiguous().transpose(0, 1);
    REQUIRE_FALSE(xt.is_contiguous());
    const auto want = r.grads([&](auto& t) { return r.modules(t); }, x, g, false);
    check_close(r.grads([&](auto& t) { return r.fused(t); }, xt, g, false), want);
  }
}

TEST_CASE("the fused sublayers without gradients keep nothing; frozen, they pass the input's gradient only",
          "[model][weight_grads]") {
  torch::manual_seed(22);
  Reference r;
  const auto x = torch::randn({2, 5, 16});
  WeightGrads held;
  {
    DeferWeightGrads scope(&held);
    torch::NoGradGuard no_grad;
    const auto y = r.fused(x.clone().requires_grad_(true));
    CHECK_FALSE(y.requires_grad());
    CHECK(torch::allclose(y, r.modules(x), 1e-5, 1e-6));
  }
  CHECK(held.empty());

  for (auto p : r.params()) p.requires_grad_(false);  // a frozen block inside a stage's active part
  const auto g = torch::randn({2, 5, 16});
  auto x1 = x.clone().requires_grad_(true), x2 = x.clone().requires_grad_(true);
  {
    DeferWeightGrads scope(&held);
    r.fused(x1).backward(g);
  }
  CHECK(held.empty());  // frozen layers defer nothing
  r.modules(x2).backward(g);
  CHECK(torch::allclose(x1.grad(), x2.grad(), 1e-5, 1e-6));
  for (const auto& p : r.params()) CHECK_FALSE(p.grad().defined());
}

TEST_CASE("a batched GEMM with beta = 0 ignores what its output held, NaN included (the fused attention's scores)",
          "[model]") {
  torch::manual_seed(23);
  const auto a = torch::randn({8, 50, 16}), b = torch::randn({8, 16, 50});
  auto out = torch::full({8, 50, 50}, std::numeric_limits<float>::quiet_NaN());
  out.baddbmm_(a, b, 0.0, 0.25);
  CHECK(torch::isfinite(out).all().item<bool>());
  CHECK(torch::allclose(out, torch::bmm(a, b) * 0.25, 1e-5, 1e-6));
}
