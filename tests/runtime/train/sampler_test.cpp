#include "runtime/train/sampler.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <set>

using namespace floe::runtime;

TEST_CASE("epoch permutations are deterministic per (seed, epoch) and differ across epochs", "[sampler]") {
  auto a = epoch_permutation(1000, 42, 0), b = epoch_permutation(1000, 42, 0), c = epoch_permutation(1000, 42, 1);
  CHECK(a == b);
  CHECK(a != c);
  auto sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) REQUIRE(sorted[i] == i);
}

TEST_CASE("every sample is used exactly once per epoch for any replica count", "[sampler]") {
  const int64_t n = 1003, batch = 64;
  const auto perm = epoch_permutation(n, 7, 3);
  for (int replicas : {1, 2, 3, 4, 8}) {
    std::multiset<int64_t> seen;
    for (int64_t s = 0; s < steps_per_epoch(n, batch); ++s)
      for (int r = 0; r < replicas; ++r)
        for (auto u : shard_of_step(perm, s, batch, r, replicas)) seen.insert(u);
    CHECK(seen.size() == size_t(n));
    CHECK(std::set<int64_t>(seen.begin(), seen.end()).size() == size_t(n));
  }
}

TEST_CASE("split sizes differ by at most one and add up", "[sampler]") {
  CHECK(split_sizes(10, 4) == std::vector<int64_t>{3, 3, 2, 2});
  CHECK(split_sizes(3, 4) == std::vector<int64_t>{1, 1, 1, 0});
  CHECK(steps_per_epoch(1003, 64) == 16);
}

TEST_CASE("length buckets: every sample once, batches of similar length, shuffled per epoch", "[sampler]") {
  const int64_t n = 1000, batch = 32;
  std::vector<int64_t> lengths(n);
  for (int64_t i = 0; i < n; ++i) lengths[i] = 2 + (i * 37) % 60;
  const auto perm = epoch_permutation(n, 9, 0);
  const auto out = length_bucketed(perm, lengths, batch, 8, 9, 0);
  auto sorted = out;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < n; ++i) REQUIRE(sorted[i] == i);
  // padding waste (batch longest x size - tokens) falls well below the random order's
  auto waste = [&](const std::vector<int64_t>& order) {
    int64_t w = 0;
    for (int64_t a = 0; a < n; a += batch) {
      int64_t longest = 0, sum = 0;
      for (int64_t i = a; i < std::min(n, a + batch); ++i) {
        longest = std::max(longest, lengths[order[i]]);
        sum += lengths[order[i]];
      }
      w += longest * (std::min(n, a + batch) - a) - sum;
    }
    return w;
  };
  CHECK(waste(out) * 4 < waste(perm));
  // the last partial batch stays last; another epoch orders its batches differently
  CHECK(std::vector<int64_t>(out.end() - n % batch, out.end()).size() == size_t(n % batch));
  CHECK(length_bucketed(perm, lengths, batch, 8, 9, 1) != out);
  CHECK(length_bucketed(perm, lengths, batch, 8, 9, 0) == out);
}
