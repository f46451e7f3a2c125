#pragma once
// AutoPipe planning as plain functions: partition the active units into pipeline stages, decide
// how far the pipeline compresses after a freeze, how many replicas fit, where each stage runs,
// and how many micro-batches a mini-batch is cut into.
//
// Costs are integer parameter counts (int64_t), never floats in millions: the spec's α = 2/5 run
// hits an exact tie between a candidate stage and M_GPU^(0) (spec §3.6), which only integers
// decide reliably. The paper's greedy is the one exception, because reproducing its partitions
// means reproducing its floating-point threshold (see greedy_partition_paper).

#include <cstdint>
#include <vector>

namespace floe::runtime {

// A contiguous split of an ordered unit list: stage k holds the next units_per_stage[k] units,
// whose parameter counts add up to cost_per_stage[k].
struct Partition {
  std::vector<int> units_per_stage;
  std::vector<int64_t> cost_per_stage;
};

// max_k cost_per_stage[k]; 0 for a partition without stages.
int64_t partition_bottleneck(const Partition& partition);

// The original `load_balance` (spec §3.2), F = 0 path, reproduced bit for bit: unit sizes are
// converted to millions of parameters (count / 1e6) and, for each stage k, units are taken while
// stage_cost + next < mean + variance, with mean = unassigned / (K − k) and variance = the
// population variance of the unassigned sizes / (K − k), summed as numpy does. The last stage
// takes the rest. Kept for reproducing the paper's numbers: it can leave stages EMPTY (BERT-base,
// K = 8 gives [0,0,0,1,6,6,6,7]) and overload the last stage (spec §8 items 5-6).
// Throws std::invalid_argument for stages < 1 or a negative size.
Partition greedy_partition_paper(int stages, const std::vector<int64_t>& sizes);

// Contiguous partition of `costs` into exactly `stages` non-empty stages that minimises the
// bottleneck max_k(cost_k), where stage 0 also carries `first_stage_extra` (e.g. the weighted
// frozen prefix that runs on the pipeline's first device); the extra is NOT included in
// cost_per_stage.
// Tie-breaking, so the same input always gives the same plan: among the partitions with the
// optimal bottleneck, the one with the smallest sum of squared stage costs (the most balanced;
// stage 0 including its extra), and among those the lexicographically smallest
// units_per_stage (cuts as early as possible, which keeps stage 0, home of the frozen prefix,
// light). Dynamic programming in O(stages · n²).
// Throws std::invalid_argument unless 1 <= stages <= costs.size() and all costs (and the extra)
// are >= 0; std::overflow_error if the total does not fit in int64_t.
Partition optimal_partition(int stages, const std::vector<int64_t>& costs,
                            int64_t first_stage_extra = 0);

// λ · params with λ = lambda_num / lambda_den (λ_frozen = 1/6 in the paper), rounded up so a
// frozen prefix is never under-counted. compress_pipeline does not round: it compares
// lambda_den-scaled costs exactly. Requires params >= 0, lambda_den > 0, 0 <= lambda_num <=
// lambda_den.
int64_t frozen_cost(int64_t params, int lambda_num, int lambda_den);

enum class PartitionMode {
  paper,    // greedy_partition_paper: reproduces the original's plans, empty stages included
  optimal,  // optimal_partition: minimal bottleneck, never an empty stage
};

struct CompressionOptions {
  PartitionMode mode = PartitionMode::paper;
  // Alg. 1 line 30 compresses when M^(T) < M^(0); the code uses <= (the default). The two differ
  // on the α = 2/5 tie at F = 5 (spec §3.6).
  bool strict_less = false;
  // Count the frozen prefix, weighted by λ, on stage 0. The original never does (spec §8 item 4),
  // so the paper's timelines need this off.
  bool apply_frozen_cost = false;
  int lambda_num = 1;
  int lambda_den = 6;
};

// Partition of the active units onto `stages` stages under `options` (the final placement after
// compression). With mode = optimal and apply_frozen_cost, stage 0 carries λ · frozen_size while
// choosing the cuts. Throws as the chosen partitioner does.
Partition partition_units(int stages, const std::vector<int64_t>& active_sizes, int64_t frozen_size,
                          const CompressionOptions& options);

// Virtual stages: the stages of `p` live on devices (`device_of_stage`), several per device, so
// a step is bounded by the busiest device (its stages summed) and, through the warm-up and the
// drain, by the widest stage. Minimises the sum of the two (then the busiest device): moves the
// cuts of `p` one unit at a time while that helps, then searches every other cut by branch and
// bound from there (exact within 2 million search nodes; past that, the best found). No stage
// is emptied. `stage0_extra` is what stage 0 carries besides its units (the frozen
// prefix's λ share). With one stage per device, `p` comes back as it is.
Partition balance_devices(Partition p, const std::vector<int64_t>& active_sizes, int64_t stage0_extra,
                          const std::vector<int>& device_of_stage);

// The halving rule of spec §3.3: starting from current_stages (K), while K >= 2, partition the
// active units onto K/2 stages; if its bottleneck (stage 0 plus λ · frozen_size when
// options.apply_frozen_cost) is <= m_gpu0 (< with strict_less), K = K/2, else stop. m_gpu0 is
// M_GPU^(0): the bottleneck of the K0-stage partition of all units with nothing frozen.
// In optimal mode K is first halved, unconditionally, until it is <= the number of active units,
// since a stage without units is a device doing nothing. Returns the new K (>= 1).
// With apply_frozen_cost, once λ · frozen_size alone exceeds m_gpu0 no K/2 partition can fit,
// so the rule stops compressing for good (the proxy budget is already broken on stage 0); this
// is the paper's rule applied literally, and callers that want otherwise must raise m_gpu0.
// Throws std::invalid_argument for current_stages < 1, negative sizes or m_gpu0 < 0, or a bad λ.
int compress_pipeline(int current_stages, const std::vector<int64_t>& active_sizes,
                      int64_t frozen_size, int64_t m_gpu0, const CompressionOptions& options);

// Data-parallel width R = floor(devices / K): every replica is a whole pipeline.
int replicas_for(int devices, int stages);

// Device ids per replica: replica r, stage k runs on device r·K + k, so a pipeline occupies
// consecutive devices (the original's local_rank·K + k). Requires replicas · stages <= devices.
std::vector<std::vector<int>> place_stages(int devices, int stages, int replicas);

// The micro-batch counts the paper's profiler sweeps for a K-stage pipeline: K, 2K, ..., 6K
// (spec §3.5, "enumerating M values ranging from K to 6K").
std::vector<int> micro_batch_table_paper(int stages);

// The original's hard-coded result of that profile: 16 for K = 8, 4 and 2; 4K otherwise.
int default_micro_batches(int stages);

}  // namespace floe::runtime
