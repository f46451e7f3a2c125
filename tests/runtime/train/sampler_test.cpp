#include "runtime/train/sampler.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>
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

TEST_CASE("tapered micro-batches: the first and last K - 1 grow and shrink in steps of 1/K, and add up", "[sampler]") {
  // K=2: the first and the last half the others (the largest remainders, ties to the earlier).
  CHECK(micro_batch_weights(4, 2) == std::vector<double>{4.0 / 6, 8.0 / 6, 8.0 / 6, 4.0 / 6});
  CHECK(micro_batch_sizes(128, 8, 2) == std::vector<int64_t>{9, 19, 19, 18, 18, 18, 18, 9});
  CHECK(micro_batch_sizes(24, 6, 3) == std::vector<int64_t>{2, 4, 6, 6, 4, 2});
  // Depth 1 (no pipeline) and two micro-batches or fewer: as even as split_sizes.
  CHECK(micro_batch_sizes(10, 4, 1) == split_sizes(10, 4));
  CHECK(micro_batch_sizes(11, 2, 4) == std::vector<int64_t>{6, 5});
  CHECK(micro_batch_weights(3, 1) == std::vector<double>{1, 1, 1});
  // No empty micro-batch while there are samples enough: 5 over weights 1, 2, 3, 2, 1.
  CHECK(micro_batch_sizes(5, 5, 3) == std::vector<int64_t>{1, 1, 1, 1, 1});
  for (int64_t count : {1, 3, 7, 24, 100, 127, 128, 1000})
    for (int64_t parts : {1, 2, 3, 5, 8, 16})
      for (int depth : {1, 2, 3, 4, 8}) {
        INFO(count << " samples, " << parts << " parts, depth " << depth);
        const auto sizes = micro_batch_sizes(count, parts, depth);
        REQUIRE(static_cast<int64_t>(sizes.size()) == parts);
        CHECK(std::accumulate(sizes.begin(), sizes.end(), int64_t{0}) == count);
        if (count >= parts) CHECK(*std::min_element(sizes.begin(), sizes.end()) >= 1);
        const auto w = micro_batch_weights(parts, depth);
        CHECK(std::accumulate(w.begin(), w.end(), 0.0) == Approx(static_cast<double>(parts)));
        // Symmetric weights: a tapered micro-batch is never larger than its mirror image by more than rounding.
        for (int64_t i = 0; i < parts; ++i) CHECK(std::abs(sizes[i] - sizes[parts - 1 - i]) <= 1 + (count < parts));
      }
  CHECK_THROWS_AS(micro_batch_weights(0, 2), std::invalid_argument);
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
