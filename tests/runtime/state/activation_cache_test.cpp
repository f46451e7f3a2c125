// AutoCache store: cached rows are the computed rows, advance equals recomputation, the
// budget holds (spill to disk, then refusal), and invalidation drops what it must.
#include <torch/torch.h>

#include "models/model.hpp"
#include "models/vit.hpp"
#include "runtime/state/activation_cache.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <numeric>

using namespace floe;
using runtime::ActivationCache;

namespace {

struct Fixture {
  models::UnitList units;
  torch::Tensor raw;  // 16 samples, uid = row
  std::vector<int64_t> uids;
  int prefix_calls = 0;
  ActivationCache::Prefix prefix;

  Fixture() {
    torch::manual_seed(3);
    models::ModelConfig c;
    c.depth = 3;
    c.dim = 32;
    units = models::build_vit(c);
    for (auto& u : units) u.module->eval();
    raw = torch::randn({16, 1, 28, 28});
    uids.resize(16);
    std::iota(uids.begin(), uids.end(), 0);
    prefix = [this](int from, int to, torch::Tensor x) {
      ++prefix_calls;
      torch::NoGradGuard g;
      return models::forward_range(units, from, to, x);
    };
  }
  torch::Tensor reference(int level, const torch::Tensor& x) {
    torch::NoGradGuard g;
    return models::forward_range(units, 0, level, x);
  }
  std::vector<int64_t> range(int64_t a, int64_t b) {
    return std::vector<int64_t>(uids.begin() + a, uids.begin() + b);
  }
};

runtime::CacheLimits memory_only(int64_t bytes) {
  runtime::CacheLimits l;
  l.memory_budget = bytes;
  l.chunk_bytes = 64 << 10;
  return l;
}

constexpr int64_t kRowBytes = 50 * 32 * 4;  // 49 patches + class token, dim 32, float

}  // namespace

TEST_CASE("cached rows are bit-identical to the rows computed for them", "[cache]") {
  Fixture f;
  ActivationCache cache(memory_only(64 << 20));
  const int level = 3;  // embed, block0.attn, block0.mlp
  auto first = cache.fetch(0, f.uids, f.raw, level, true, f.prefix);  // the probe: computes and stores
  CHECK(torch::equal(first, f.reference(level, f.raw)));
  auto st = cache.stats();
  REQUIRE(st.bypassed_levels.empty());  // reading 16 rows is cheaper than three ViT units
  CHECK(st.misses == 16);
  CHECK(st.entries == 16);

  const int calls = f.prefix_calls;
  auto again = cache.fetch(0, f.uids, f.raw, level, true, f.prefix);
  CHECK(f.prefix_calls == calls);  // nothing recomputed
  CHECK(torch::equal(again, first));
  CHECK(cache.stats().hits == 16);

  // A mixed batch in another order: hits keep their bits, the new sample is computed.
  auto extra = torch::randn({1, 1, 28, 28});
  auto mixed_raw = torch::cat({f.raw[5].unsqueeze(0), extra, f.raw[2].unsqueeze(0)});
  auto mixed = cache.fetch(0, {5, 99, 2}, mixed_raw, level, true, f.prefix);
  CHECK(torch::equal(mixed[0], first[5]));
  CHECK(torch::equal(mixed[2], first[2]));
  CHECK(torch::equal(mixed[1], f.reference(level, extra)[0]));
  CHECK(cache.stats().hits == 18);
  CHECK(cache.stats().misses == 17);

  // The test split is another key space: uid 5 of the test set is not uid 5 of training.
  auto other = cache.fetch(1, {5}, extra, level, false, f.prefix);
  CHECK(torch::equal(other, f.reference(level, extra)));
}

TEST_CASE("incremental advance equals recomputation from scratch and releases the old level", "[cache]") {
  Fixture f;
  ActivationCache cache(memory_only(64 << 20));
  cache.fetch(0, f.uids, f.raw, 1, true, f.prefix);  // level 1: the embedding
  REQUIRE(cache.stats().entries == 16);
  cache.set_level(5);
  // The first batch at a level is its probe (computed from the raw input); the rest advance.
  cache.fetch(0, f.range(0, 4), f.raw.slice(0, 0, 4), 5, true, f.prefix);
  auto out = cache.fetch(0, f.range(4, 16), f.raw.slice(0, 4, 16), 5, true, f.prefix);
  const auto st = cache.stats();
  CHECK(st.advanced == 12);
  CHECK(st.entries == 16);  // 16 at level 5; level 1 released row by row and freed when empty
  CHECK(st.memory_bytes <= 2 * (64 << 10));
  auto expected = f.reference(5, f.raw.slice(0, 4, 16));
  INFO("max |advanced - recomputed| = " << (out - expected).abs().max().item<float>());
  CHECK(torch::allclose(out, expected, 1e-5, 1e-6));
  // Advancing the exact rows the level-1 entries hold gives the same bits as running the
  // whole prefix on them.
  torch::NoGradGuard g;
  auto l1 = models::forward_range(f.units, 0, 1, f.raw);
  CHECK(torch::equal(models::forward_range(f.units, 1, 5, l1), models::forward_range(f.units, 0, 5, f.raw)));
}

TEST_CASE("the memory budget holds: rows spill to disk, then are refused, results unchanged", "[cache]") {
  Fixture f;
  const auto dir = std::filesystem::temp_directory_path() / ("floe-cache-test-" + std::to_string(::getpid()));
  runtime::CacheLimits l = memory_only(5 * kRowBytes + 100);
  l.disk_budget = 4 * kRowBytes;
  l.dir = dir.string();
  {
    ActivationCache cache(l);
    auto first = cache.fetch(0, f.uids, f.raw, 3, true, f.prefix);
    auto st = cache.stats();
    CHECK(st.memory_bytes <= l.memory_budget);
    CHECK(st.peak_memory_bytes <= l.memory_budget);
    CHECK(st.disk_bytes == 4 * kRowBytes);
    CHECK(st.entries == 9);
    CHECK(st.rejected == 7);
    auto again = cache.fetch(0, f.uids, f.raw, 3, true, f.prefix);
    // Held rows (memory and disk) come back bit for bit; refused rows are recomputed, in a
    // smaller batch, which BLAS may round differently.
    CHECK(torch::equal(again.slice(0, 0, 9), first.slice(0, 0, 9)));
    CHECK(torch::allclose(again.slice(0, 9, 16), first.slice(0, 9, 16), 1e-5, 1e-6));
    st = cache.stats();
    CHECK(st.hits == 9);
    CHECK(st.misses == 16 + 7);
    CHECK(st.memory_bytes <= l.memory_budget);
    // The disk tier's files are unlinked at once: nothing is left in the folder.
    CHECK(std::filesystem::is_empty(dir));
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("when the budget is full, superseded levels make room for the current one", "[cache]") {
  Fixture f;
  const auto budget = 5 * kRowBytes + 100;
  ActivationCache cache(memory_only(budget));
  cache.fetch(0, f.uids, f.raw, 3, true, f.prefix);
  REQUIRE(cache.stats().entries == 5);
  cache.set_level(5);
  cache.fetch(0, f.range(0, 4), f.raw.slice(0, 0, 4), 5, true, f.prefix);  // probe at the new level
  auto st = cache.stats();
  CHECK(st.entries == 4);  // level 3 evicted for them
  CHECK(st.evicted == 5);
  auto out = cache.fetch(0, f.uids, f.raw, 5, true, f.prefix);
  st = cache.stats();
  CHECK(st.hits == 4);
  CHECK(st.entries == 5);
  CHECK(st.peak_memory_bytes <= budget);
  CHECK(torch::allclose(out, f.reference(5, f.raw), 1e-5, 1e-6));
}

TEST_CASE("an unfreeze and an invalidation drop the affected levels; evaluation reads its exact level", "[cache]") {
  Fixture f;
  ActivationCache cache(memory_only(64 << 20));
  cache.fetch(0, f.uids, f.raw, 5, true, f.prefix);
  cache.fetch(1, f.range(0, 8), f.raw.slice(0, 0, 8), 3, false, f.prefix);
  CHECK(cache.stats().entries == 24);
  cache.set_level(3);  // level 5 is above the new boundary
  CHECK(cache.stats().entries == 8);
  CHECK(cache.stats().evicted == 16);
  // Evaluation at another level neither advances nor keeps the dead level.
  cache.fetch(1, f.range(0, 8), f.raw.slice(0, 0, 8), 1, false, f.prefix);
  auto st = cache.stats();
  CHECK(st.advanced == 0);
  CHECK(st.entries == 8);  // level 1 now, level 3 gone
  cache.invalidate();
  CHECK(cache.stats().entries == 0);
  CHECK(cache.stats().memory_bytes == 0);
}

TEST_CASE("a level not worth caching is bypassed", "[cache]") {
  Fixture f;
  ActivationCache cache(memory_only(64 << 20));
  // A prefix that costs nothing: reading it back can never be measurably cheaper.
  auto free_prefix = [](int, int, torch::Tensor x) { return x; };
  auto big = torch::randn({16, 4096});
  auto out = cache.fetch(0, f.uids, big, 2, true, free_prefix);
  CHECK(torch::equal(out, big));
  const auto st = cache.stats();
  REQUIRE(st.bypassed_levels == std::vector<int32_t>{2});
  CHECK(st.entries == 0);
  CHECK(st.memory_bytes == 0);
}

TEST_CASE("sizes parse with units and percentages", "[cache]") {
  CHECK(runtime::parse_size("4096", 0) == 4096);
  CHECK(runtime::parse_size("2GiB", 0) == (int64_t(2) << 30));
  CHECK(runtime::parse_size("512MiB", 0) == (int64_t(512) << 20));
  CHECK(runtime::parse_size("1.5GB", 0) == 1500000000);
  CHECK(runtime::parse_size("25%", 1000) == 250);
  CHECK_THROWS_WITH(runtime::parse_size("lots", 0), Catch::Contains("512MiB"));
  CHECK_THROWS_WITH(runtime::parse_size("3 parsecs", 0), Catch::Contains("3 parsecs"));
  CHECK_THROWS_WITH(runtime::parse_size("150%", 0), Catch::Contains("percentage"));
  // Found by tests/fuzz: these parse as NaN and infinity, whose conversion to bytes was undefined.
  CHECK_THROWS_WITH(runtime::parse_size("nanGiB", 0), Catch::Contains("\"nanGiB\""));
  CHECK_THROWS_WITH(runtime::parse_size("1e308TiB", 0), Catch::Contains("below 8 EiB"));
  CHECK_THROWS(runtime::parse_size("nan%", 100));
}

TEST_CASE("token sequences: rows are kept at their own length and read back padded or cut to each batch's",
          "[cache][bert]") {
  torch::manual_seed(4);
  models::ModelConfig c;
  c.kind = "bert";
  c.vocab_size = 30;
  c.max_len = 10;
  c.dim = 8;
  c.depth = 2;
  c.heads = 2;
  auto units = models::build_model(c);
  for (auto& u : units) u.module->eval();
  auto prefix = [&](int from, int to, torch::Tensor x) {
    torch::NoGradGuard g;
    return models::forward_range(units, from, to, x);
  };
  // Two texts of 4 and 6 tokens, first in a batch padded to 6, then one in a batch of 9.
  auto a = torch::tensor({2, 7, 8, 3, 0, 0}, torch::kInt64), b = torch::tensor({2, 9, 10, 11, 12, 3}, torch::kInt64);
  runtime::CacheLimits l = memory_only(1 << 20);
  l.sequences = true;
  l.chunk_bytes = 1;  // a chunk per row: the bytes held are the rows' own
  ActivationCache cache(l);
  const int level = 3;
  const auto first = cache.fetch(0, {0, 1}, torch::stack({a, b}), level, true, prefix);
  REQUIRE(first.sizes() == torch::IntArrayRef({2, 6, 9}));
  REQUIRE(cache.stats().bypassed_levels.empty());
  const int64_t position_bytes = (c.dim + 1) * 4;
  CHECK(cache.stats().memory_bytes == (4 + 6) * position_bytes);  // not 2 x 6, nor 2 x max_len
  auto longer = torch::zeros({2, 9}, torch::kInt64);
  longer[0].narrow(0, 0, 6).copy_(a);
  longer[1] = torch::tensor({2, 5, 6, 7, 8, 9, 10, 11, 3}, torch::kInt64);  // a new sample, uid 5
  const auto again = cache.fetch(0, {0, 5}, longer, level, true, prefix);
  REQUIRE(again.sizes() == torch::IntArrayRef({2, 9, 9}));
  CHECK(cache.stats().hits == 1);
  CHECK(torch::equal(again[0].narrow(0, 0, 4), first[0].narrow(0, 0, 4)));  // the real tokens, bit for bit
  CHECK(again[0].narrow(0, 4, 5).eq(0).all().item<bool>());                 // padding: zeros, mask 0
  CHECK(torch::allclose(again[1], prefix(0, level, longer[1].unsqueeze(0))[0]));
  // Padding never changes a real token's output: the next frozen unit gives the same [CLS]
  // whether it reads the cached row or the computed one.
  CHECK(torch::allclose(prefix(level, level + 1, again.narrow(0, 0, 1)).select(1, 0),
                        prefix(level, level + 1, first.narrow(0, 0, 1)).select(1, 0), 1e-6, 1e-6));
  // and cut shorter than the batch it was stored from
  const auto shorter = cache.fetch(0, {0}, a.narrow(0, 0, 4).unsqueeze(0), level, true, prefix);
  CHECK(torch::equal(shorter[0], first[0].narrow(0, 0, 4)));
}
