#include "runtime/train/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace floe::runtime {

uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

bool flip_of(uint64_t seed, int epoch, int64_t uid) {
  uint64_t state = seed ^ (uint64_t(uint32_t(epoch)) << 40) ^ uint64_t(uid) * 0x9E3779B97F4A7C15ull;
  return (splitmix64(state) >> 63) != 0;
}

std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  uint64_t state = seed * 0x100000001b3ull + static_cast<uint64_t>(epoch) + 1;
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(splitmix64(state) % static_cast<uint64_t>(i + 1));
    std::swap(p[i], p[j]);
  }
  return p;
}

std::vector<int64_t> length_bucketed(const std::vector<int64_t>& perm, const std::vector<int64_t>& lengths,
                                     int64_t batch_size, int64_t window, uint64_t seed, int64_t epoch) {
  if (batch_size <= 0 || window <= 0) throw std::invalid_argument("length_bucketed: batch size and window must be positive");
  auto sorted = perm;
  const int64_t n = static_cast<int64_t>(perm.size()), span = batch_size * window;
  for (int64_t a = 0; a < n; a += span) {
    const auto b = sorted.begin() + a, e = sorted.begin() + std::min(n, a + span);
    std::stable_sort(b, e, [&](int64_t x, int64_t y) { return lengths[x] < lengths[y]; });
  }
  const int64_t full = n / batch_size;
  std::vector<int64_t> batches(static_cast<size_t>(full));
  std::iota(batches.begin(), batches.end(), 0);
  uint64_t state = seed * 0x100000001b3ull + static_cast<uint64_t>(epoch) + 0x5bd1e995ull;
  for (int64_t i = full - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(splitmix64(state) % static_cast<uint64_t>(i + 1));
    std::swap(batches[i], batches[j]);
  }
  std::vector<int64_t> out;
  out.reserve(perm.size());
  for (int64_t bi : batches) out.insert(out.end(), sorted.begin() + bi * batch_size, sorted.begin() + (bi + 1) * batch_size);
  out.insert(out.end(), sorted.begin() + full * batch_size, sorted.end());
  return out;
}

int64_t steps_per_epoch(int64_t samples, int64_t batch_size) {
  if (batch_size <= 0) throw std::invalid_argument("steps_per_epoch: batch_size must be positive");
  return (samples + batch_size - 1) / batch_size;
}

std::vector<int64_t> split_sizes(int64_t count, int64_t parts) {
  if (parts <= 0) throw std::invalid_argument("split_sizes: parts must be positive");
  std::vector<int64_t> out(static_cast<size_t>(parts), count / parts);
  for (int64_t i = 0; i < count % parts; ++i) ++out[i];
  return out;
}

std::vector<int64_t> micro_batch_sizes(int64_t count, int64_t parts, int depth) {
  if (depth <= 1) return split_sizes(count, parts);
  const auto w = micro_batch_weights(parts, depth);
  std::vector<int64_t> out(w.size());
  std::vector<std::pair<double, size_t>> rest;  // (−remainder, index): largest first, ties to the earlier
  int64_t given = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    const double exact = static_cast<double>(count) * w[i] / static_cast<double>(parts);
    out[i] = static_cast<int64_t>(std::floor(exact));
    given += out[i];
    rest.push_back({-(exact - static_cast<double>(out[i])), i});
  }
  std::sort(rest.begin(), rest.end());
  for (size_t j = 0; given < count; ++j, ++given) ++out[rest[j % rest.size()].second];
  // No empty micro-batch while there are samples enough: the largest gives one.
  if (count >= parts)
    for (auto& x : out)
      if (x == 0) {
        --*std::max_element(out.begin(), out.end());
        x = 1;
      }
  return out;
}

std::vector<int64_t> shard_of_step(const std::vector<int64_t>& perm, int64_t step, int64_t batch_size,
                                   int replica, int replicas) {
  const int64_t n = static_cast<int64_t>(perm.size());
  const int64_t begin = step * batch_size;
  if (begin >= n || step < 0) throw std::out_of_range("shard_of_step: step beyond the epoch");
  const int64_t count = std::min(batch_size, n - begin);
  const auto sizes = split_sizes(count, replicas);
  int64_t offset = begin;
  for (int r = 0; r < replica; ++r) offset += sizes[r];
  return {perm.begin() + offset, perm.begin() + offset + sizes[replica]};
}

}  // namespace floe::runtime
