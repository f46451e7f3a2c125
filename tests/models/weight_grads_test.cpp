#include "models/weight_grads.hpp"

#include <catch2/catch.hpp>

using namespace floe;

namespace {

// A two-layer block with a residual, as the models use linear layers.
struct Net {
  torch::nn::Linear a{6, 5}, b{5, 6};
  torch::Tensor forward(const torch::Tensor& x) {
    return x + models::linear(b, torch::gelu(models::linear(a, x)));
  }
  std::vector<torch::Tensor> grads() { return {a->weight.grad(), a->bias.grad(), b->weight.grad(), b->bias.grad()}; }
};

}  // namespace

TEST_CASE("split backward: I gives the input gradient, W the same weight gradients as one backward",
          "[weight_grads]") {
  torch::manual_seed(5);
  Net net;
  const auto x = torch::randn({3, 4, 6});
  const auto g = torch::randn({3, 4, 6});

  auto x1 = x.clone().requires_grad_(true);
  net.forward(x1).backward(g);
  const auto want = net.grads();
  const auto want_x = x1.grad().clone();
  for (auto& p : {net.a->weight, net.a->bias, net.b->weight, net.b->bias}) p.mutable_grad() = torch::Tensor();

  models::WeightGrads held;
  auto x2 = x.clone().requires_grad_(true);
  torch::Tensor y;
  {
    models::DeferWeightGrads defer(&held);
    y = net.forward(x2);
  }
  y.backward(g);  // I: the scope has ended; the layers recorded where their gradients go
  CHECK(torch::allclose(x2.grad(), want_x, 1e-6, 1e-6));
  CHECK_FALSE(net.a->weight.grad().defined());  // held back
  CHECK(held.bytes() > 0);
  held.apply();  // W
  CHECK(held.empty());
  const auto got = net.grads();
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("parameter " << i);
    REQUIRE(got[i].defined());
    CHECK(torch::allclose(got[i], want[i], 1e-6, 1e-6));
  }
}

TEST_CASE("W's may run before a later micro-batch's I: every gradient is the same, bit for bit", "[weight_grads]") {
  // What a stage relies on when it fills a wait with a due W (runtime::early_weight_gradient):
  // only W touches the linear layers' gradients, so moving W's among I's, in their own order,
  // changes no sum.
  torch::manual_seed(6);
  Net net;
  const auto norm = torch::ones({6}, torch::requires_grad());  // a parameter whose gradient I computes
  std::vector<torch::Tensor> xs, gs;
  for (int mb = 0; mb < 3; ++mb) xs.push_back(torch::randn({2, 4, 6})), gs.push_back(torch::randn({2, 4, 6}));
  auto run = [&](bool early) {
    for (auto* p : {&net.a->weight, &net.a->bias, &net.b->weight, &net.b->bias}) p->mutable_grad() = torch::Tensor();
    norm.mutable_grad() = torch::Tensor();
    std::vector<models::WeightGrads> held(3);
    std::vector<torch::Tensor> ys;
    for (int mb = 0; mb < 3; ++mb) {
      models::DeferWeightGrads defer(&held[mb]);
      ys.push_back(net.forward(xs[mb] * norm));
    }
    for (int mb = 0; mb < 3; ++mb) {
      ys[mb].backward(gs[mb]);                  // I
      if (early && mb > 0) held[mb - 1].apply();  // the W due, before the next I
    }
    for (int mb = early ? 2 : 0; mb < 3; ++mb) held[mb].apply();
    auto out = net.grads();
    out.push_back(norm.grad());
    for (auto& t : out) t = t.clone();
    return out;
  };
  const auto in_order = run(false), filled = run(true);
  for (size_t i = 0; i < in_order.size(); ++i) {
    INFO("parameter " << i);
    CHECK(torch::equal(filled[i], in_order[i]));
  }
}

TEST_CASE("a stage's first layer defers its weight gradient though its input needs none", "[weight_grads]") {
  torch::manual_seed(6);
  torch::nn::Linear l(4, 2);
  models::WeightGrads held;
  torch::Tensor y;
  const auto x = torch::randn({5, 4});
  {
    models::DeferWeightGrads defer(&held);
    y = models::linear(l, x);
  }
  y.sum().backward();
  held.apply();
  CHECK(torch::allclose(l->weight.grad(), torch::ones({5, 2}).t().mm(x)));
  CHECK(torch::allclose(l->bias.grad(), torch::full({2}, 5.0)));
}

TEST_CASE("outside a scope, and without gradients, linear is torch's own", "[weight_grads]") {
  torch::nn::Linear l(3, 2);
  const auto x = torch::randn({2, 3});
  models::WeightGrads held;
  {
    models::DeferWeightGrads defer(&held);
    torch::NoGradGuard no_grad;
    CHECK(torch::equal(models::linear(l, x), l->forward(x)));
  }
  CHECK(held.empty());
  models::linear(l, x).sum().backward();
  CHECK(l->weight.grad().defined());
}
