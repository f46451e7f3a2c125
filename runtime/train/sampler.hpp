#pragma once
// Which samples each step trains on. One global order per epoch (a seeded shuffle that
// is the same on every platform); each step takes the next global batch and splits it
// contiguously over the replicas, so every sample is used exactly once per epoch whatever
// the replica count is at each step.
#include "runtime/plan/schedule.hpp"

#include <cstdint>
#include <vector>

namespace floe::runtime {

// The next value of the splitmix64 sequence at `state` (portable, seedable randomness).
uint64_t splitmix64(uint64_t& state);

// Whether training sample `uid` is flipped in `epoch` (data.augment = "flip"): a seeded,
// portable coin per (seed, epoch, uid), the same on every replica and after a transition.
bool flip_of(uint64_t seed, int epoch, int64_t uid);

// Fisher-Yates over 0..n-1 driven by splitmix64(seed, epoch): portable and deterministic.
std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch);

// `perm` regrouped so that each batch holds texts of similar length (less padding, since a
// batch is padded to its longest): every window of `window` consecutive batches is sorted by
// `lengths` and cut into batches again, then the full batches are shuffled by (seed, epoch);
// a last partial batch stays last. Still every sample exactly once.
std::vector<int64_t> length_bucketed(const std::vector<int64_t>& perm, const std::vector<int64_t>& lengths,
                                     int64_t batch_size, int64_t window, uint64_t seed, int64_t epoch);

int64_t steps_per_epoch(int64_t samples, int64_t batch_size);

// Sizes of `parts` near-equal contiguous pieces of `count` (the first ones get the remainder).
std::vector<int64_t> split_sizes(int64_t count, int64_t parts);

// `count` samples cut into `parts` micro-batches weighed as runtime::micro_batch_weights says
// (tapered to a pipeline of `depth` devices): the shares rounded by largest
// remainder (ties to the earlier micro-batch), each at least 1 when count ≥ parts. With
// depth ≤ 1, split_sizes.
std::vector<int64_t> micro_batch_sizes(int64_t count, int64_t parts, int depth);

// The uids of replica r's shard of global step `step` within the epoch's permutation.
std::vector<int64_t> shard_of_step(const std::vector<int64_t>& perm, int64_t step, int64_t batch_size,
                                   int replica, int replicas);

}  // namespace floe::runtime
