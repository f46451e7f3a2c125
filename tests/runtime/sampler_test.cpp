#include "runtime/sampler.hpp"

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
