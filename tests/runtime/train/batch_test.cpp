#include <torch/torch.h>

#include "models/bert.hpp"
#include "runtime/train/batch.hpp"
#include "runtime/train/stage_compute.hpp"

#include <catch2/catch.hpp>

using namespace floe;

namespace {

// Texts of lengths 3..12: [CLS] tokens [SEP], zero-padded to 12.
models::Dataset texts(int64_t n) {
  auto ids = torch::zeros({n, 12}, torch::kInt64);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t len = 3 + i % 10;
    ids[i][0] = 2;
    for (int64_t j = 1; j < len - 1; ++j) ids[i][j] = 5 + (i * 13 + j * 7) % 95;
    ids[i][len - 1] = 3;
  }
  return {"texts", ids, torch::zeros({n}, torch::kInt64), {100, 4, {0, 2, 3, 4}}};
}

std::vector<int64_t> range(int64_t n) {
  std::vector<int64_t> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = i;
  return v;
}

}  // namespace

TEST_CASE("a batch of texts is cut to its longest text", "[batch]") {
  const auto d = texts(40);
  CHECK(runtime::make_batch(d, {0, 1, 2}, true, 0, {}).x.size(1) == 5);  // lengths 3, 4, 5
  CHECK(runtime::make_batch(d, {9, 0}, true, 0, {}).x.size(1) == 12);
  CHECK(runtime::make_batch(d, {10}, true, 0, {}).x.sizes() == torch::IntArrayRef({1, 3}));
}

TEST_CASE("MLM masking is BERT's, seeded per sample and epoch, and never touches special tokens", "[batch][mlm]") {
  const auto d = texts(2000);
  runtime::BatchRecipe r;
  r.mlm = true;
  r.seed = 7;
  const auto uids = range(2000);
  const auto b = runtime::make_batch(d, uids, true, 3, r);
  const auto orig = models::gather(d, torch::tensor(uids)).x;
  const auto chosen = b.y != models::kIgnoreTarget;
  // targets are the original tokens where chosen
  CHECK(b.y.masked_select(chosen).equal(orig.masked_select(chosen)));
  // specials and padding are never chosen, and stay as they were
  const auto special = (orig == 0) | (orig == 2) | (orig == 3) | (orig == 4);
  CHECK((chosen & special).sum().item<int64_t>() == 0);
  CHECK(b.x.masked_select(special).equal(orig.masked_select(special)));
  // every text has at least one chosen token
  CHECK(chosen.any(1).all().item<bool>());
  // about 15 % of the ordinary tokens (texts of 1..10 of them; at least one each)
  const double ordinary = special.logical_not().sum().item<double>();
  const double share = chosen.sum().item<double>() / ordinary;
  CHECK(share > 0.15);
  CHECK(share < 0.3);
  // of the chosen: ~80 % [MASK], ~10 % another token, ~10 % unchanged
  const double n = chosen.sum().item<double>();
  const double masked = (b.x == 4).logical_and(chosen).sum().item<double>() / n;
  const double same = (b.x == orig).logical_and(chosen).sum().item<double>() / n;
  CHECK(masked == Approx(0.8).margin(0.04));
  CHECK(same == Approx(0.1).margin(0.03));  // (a random draw may also hit the same token, rarely)
  CHECK(b.x.lt(100).all().item<bool>());

  SECTION("the same sample gets the same masking in any batch; another epoch another one") {
    const auto alone = runtime::make_batch(d, {1234}, true, 3, r);
    const int64_t len = alone.x.size(1);
    CHECK(alone.x.equal(b.x[1234].narrow(0, 0, len).unsqueeze(0)));
    CHECK(alone.y.equal(b.y[1234].narrow(0, 0, len).unsqueeze(0)));
    const auto other = runtime::make_batch(d, uids, true, 4, r);
    CHECK_FALSE(other.y.equal(b.y));
  }
  SECTION("evaluation masks the same way every epoch") {
    CHECK(runtime::make_batch(d, uids, false, 1, r).y.equal(runtime::make_batch(d, uids, false, 6, r).y));
  }
}

TEST_CASE("loss terms score labels, or only the tokens chosen for MLM", "[batch]") {
  auto logits = torch::tensor({{2.0f, 0.0f}, {0.0f, 1.0f}, {3.0f, 0.0f}});
  auto t = runtime::loss_terms(logits, torch::tensor({0, 1, 1}, torch::kInt64));
  CHECK(t.targets == 3);
  CHECK(t.correct == 2);
  CHECK(t.loss_sum.item<double>() ==
        Approx(torch::nn::functional::cross_entropy(logits, torch::tensor({0, 1, 1}, torch::kInt64)).item<double>() * 3));
  auto seq = logits.view({1, 3, 2});
  auto m = runtime::loss_terms(seq, torch::tensor({models::kIgnoreTarget, int64_t{1}, models::kIgnoreTarget}, torch::kInt64).view({1, 3}));
  CHECK(m.targets == 1);
  CHECK(m.correct == 1);
  CHECK(m.loss_sum.item<double>() == Approx(std::log(1 + std::exp(-1.0))));
}
