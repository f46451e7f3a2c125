#include "runtime/plan/planner.hpp"

#include <algorithm>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>

namespace floe::runtime {
namespace {

using wide = __int128;

void check_stages(int stages, const char* where) {
  if (stages < 1) {
    throw std::invalid_argument(std::string(where) + ": stages = " + std::to_string(stages) +
                                ", expected >= 1");
  }
}

void check_sizes(const std::vector<int64_t>& sizes, const char* where) {
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] < 0) {
      throw std::invalid_argument(std::string(where) + ": size[" + std::to_string(i) +
                                  "] = " + std::to_string(sizes[i]) + ", expected >= 0");
    }
  }
}

void check_lambda(int lambda_num, int lambda_den, const char* where) {
  if (lambda_den <= 0 || lambda_num < 0 || lambda_num > lambda_den) {
    throw std::invalid_argument(std::string(where) + ": lambda = " + std::to_string(lambda_num) +
                                "/" + std::to_string(lambda_den) +
                                ", expected a fraction in [0, 1] with a positive denominator");
  }
}

int64_t checked_add(int64_t lhs, int64_t rhs, const char* where) {
  int64_t sum = 0;
  if (__builtin_add_overflow(lhs, rhs, &sum)) {
    throw std::overflow_error(std::string(where) + ": total cost does not fit in int64_t");
  }
  return sum;
}

int64_t checked_mul(int64_t lhs, int64_t rhs, const char* where) {
  int64_t product = 0;
  if (__builtin_mul_overflow(lhs, rhs, &product)) {
    throw std::overflow_error(std::string(where) + ": scaled cost does not fit in int64_t");
  }
  return product;
}

// numpy's pairwise summation (add.reduce on a contiguous float64 array). The greedy's threshold
// is mean + variance, and numpy's np.var sums this way; matching it keeps the rare near-tie
// comparisons identical to the original.
double numpy_pairwise_sum(const double* values, size_t n) {
  constexpr size_t block = 128;
  if (n < 8) {
    double sum = 0.0;
    for (size_t i = 0; i < n; ++i) sum += values[i];
    return sum;
  }
  if (n <= block) {
    double r[8];
    for (size_t j = 0; j < 8; ++j) r[j] = values[j];
    size_t i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (size_t j = 0; j < 8; ++j) r[j] += values[i + j];
    }
    double sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) sum += values[i];
    return sum;
  }
  size_t half = n / 2;
  half -= half % 8;
  return numpy_pairwise_sum(values, half) + numpy_pairwise_sum(values + half, n - half);
}

double numpy_population_variance(const double* values, size_t n) {
  const double mean = numpy_pairwise_sum(values, n) / static_cast<double>(n);
  std::vector<double> squared(n);
  for (size_t i = 0; i < n; ++i) {
    const double deviation = values[i] - mean;
    squared[i] = deviation * deviation;
  }
  return numpy_pairwise_sum(squared.data(), n) / static_cast<double>(n);
}

std::vector<int64_t> stage_costs(const std::vector<int>& units_per_stage,
                                 const std::vector<int64_t>& sizes) {
  std::vector<int64_t> costs;
  costs.reserve(units_per_stage.size());
  size_t next = 0;
  for (int count : units_per_stage) {
    int64_t cost = 0;
    for (int u = 0; u < count; ++u) cost += sizes[next++];
    costs.push_back(cost);
  }
  return costs;
}

std::vector<int64_t> scaled(const std::vector<int64_t>& sizes, int64_t factor, const char* where) {
  std::vector<int64_t> out;
  out.reserve(sizes.size());
  for (int64_t size : sizes) out.push_back(checked_mul(size, factor, where));
  return out;
}

// Stage 0 cost plus λ·frozen, against M_GPU^(0), all multiplied by lambda_den so the comparison
// is exact.
bool fits(const Partition& candidate, int64_t frozen_size, int64_t m_gpu0,
          const CompressionOptions& options) {
  wide scale = 1;
  wide frozen_term = 0;
  if (options.apply_frozen_cost) {
    scale = options.lambda_den;
    frozen_term = static_cast<wide>(frozen_size) * options.lambda_num;
  }
  wide bottleneck = 0;
  for (size_t k = 0; k < candidate.cost_per_stage.size(); ++k) {
    wide cost = static_cast<wide>(candidate.cost_per_stage[k]) * scale;
    if (k == 0) cost += frozen_term;
    bottleneck = std::max(bottleneck, cost);
  }
  const wide limit = static_cast<wide>(m_gpu0) * scale;
  return options.strict_less ? bottleneck < limit : bottleneck <= limit;
}

}  // namespace

int64_t partition_bottleneck(const Partition& partition) {
  int64_t bottleneck = 0;
  for (int64_t cost : partition.cost_per_stage) bottleneck = std::max(bottleneck, cost);
  return bottleneck;
}

Partition greedy_partition_paper(int stages, const std::vector<int64_t>& sizes) {
  check_stages(stages, "greedy_partition_paper");
  check_sizes(sizes, "greedy_partition_paper");
  const size_t n = sizes.size();

  std::vector<double> millions(n);
  for (size_t i = 0; i < n; ++i) millions[i] = static_cast<double>(sizes[i]) / 1e6;

  double unassigned = 0.0;  // Python's sum(): left to right
  for (double size : millions) unassigned += size;

  Partition partition;
  partition.units_per_stage.assign(static_cast<size_t>(stages), 0);
  partition.cost_per_stage.assign(static_cast<size_t>(stages), 0);
  std::vector<double> stage_millions(static_cast<size_t>(stages), 0.0);

  size_t next = 0;
  for (int k = 0; k < stages; ++k) {
    const double stages_left = static_cast<double>(stages - k);
    const double mean = unassigned / stages_left;
    const double variance =
        next < n ? numpy_population_variance(millions.data() + next, n - next) / stages_left : 0.0;
    for (; next < n; ++next) {
      const double candidate = stage_millions[static_cast<size_t>(k)] + millions[next];
      if (k == stages - 1 || candidate < mean + variance) {
        stage_millions[static_cast<size_t>(k)] += millions[next];
        partition.units_per_stage[static_cast<size_t>(k)] += 1;
        partition.cost_per_stage[static_cast<size_t>(k)] += sizes[next];
        unassigned -= millions[next];
      } else {
        break;
      }
    }
  }
  return partition;
}

Partition optimal_partition(int stages, const std::vector<int64_t>& costs,
                            int64_t first_stage_extra) {
  check_stages(stages, "optimal_partition");
  check_sizes(costs, "optimal_partition");
  const int n = static_cast<int>(costs.size());
  if (stages > n) {
    throw std::invalid_argument("optimal_partition: stages = " + std::to_string(stages) + " for " +
                                std::to_string(n) +
                                " units, expected stages <= units (no stage may be empty)");
  }
  if (first_stage_extra < 0) {
    throw std::invalid_argument("optimal_partition: first_stage_extra = " +
                                std::to_string(first_stage_extra) + ", expected >= 0");
  }

  std::vector<int64_t> prefix(static_cast<size_t>(n) + 1, 0);
  for (int i = 0; i < n; ++i) {
    prefix[i + 1] = checked_add(prefix[i], costs[static_cast<size_t>(i)], "optimal_partition");
  }
  checked_add(prefix[n], first_stage_extra, "optimal_partition");
  const auto cost = [&](int begin, int end) {
    return prefix[end] - prefix[begin] + (begin == 0 ? first_stage_extra : 0);
  };

  // Suffix tables: row k, column i describe units i..n-1 split into k non-empty stages. Stage 0
  // is the only stage that can start at unit 0, so the extra is charged correctly.
  constexpr int64_t no_split = std::numeric_limits<int64_t>::max();
  std::vector<std::vector<int64_t>> bottleneck(
      static_cast<size_t>(stages) + 1, std::vector<int64_t>(static_cast<size_t>(n) + 1, no_split));
  bottleneck[0][n] = 0;
  for (int k = 1; k <= stages; ++k) {
    for (int i = 0; i <= n - k; ++i) {
      int64_t best = no_split;
      for (int end = i + 1; end <= n - k + 1; ++end) {
        const int64_t rest = bottleneck[k - 1][end];
        if (rest == no_split) continue;
        best = std::min(best, std::max(cost(i, end), rest));
      }
      bottleneck[k][i] = best;
    }
  }
  const int64_t optimum = bottleneck[stages][0];

  // Among splits whose every stage is <= optimum: smallest sum of squared stage costs.
  const wide no_fit = std::numeric_limits<wide>::max();
  std::vector<std::vector<wide>> squares(static_cast<size_t>(stages) + 1,
                                         std::vector<wide>(static_cast<size_t>(n) + 1, no_fit));
  squares[0][n] = 0;
  for (int k = 1; k <= stages; ++k) {
    for (int i = 0; i <= n - k; ++i) {
      wide best = no_fit;
      for (int end = i + 1; end <= n - k + 1; ++end) {
        const int64_t c = cost(i, end);
        if (c > optimum) break;  // costs are non-negative: longer stages only cost more
        const wide rest = squares[k - 1][end];
        if (rest == no_fit) continue;
        best = std::min(best, static_cast<wide>(c) * c + rest);
      }
      squares[k][i] = best;
    }
  }

  // Walk forward taking the shortest stage that stays on an optimal path: the lexicographically
  // smallest units_per_stage among the equally balanced optima.
  Partition partition;
  int begin = 0;
  for (int k = stages; k >= 1; --k) {
    int chosen = -1;
    for (int end = begin + 1; end <= n - k + 1; ++end) {
      const int64_t c = cost(begin, end);
      if (c > optimum) break;
      const wide rest = squares[k - 1][end];
      if (rest != no_fit && static_cast<wide>(c) * c + rest == squares[k][begin]) {
        chosen = end;
        break;
      }
    }
    // Unreachable by construction (squares[k][begin] is attained by some end); kept as a guard.
    if (chosen < 0) throw std::logic_error("optimal_partition: reconstruction lost the optimum");
    partition.units_per_stage.push_back(chosen - begin);
    partition.cost_per_stage.push_back(prefix[chosen] - prefix[begin]);
    begin = chosen;
  }
  return partition;
}

int64_t frozen_cost(int64_t params, int lambda_num, int lambda_den) {
  check_lambda(lambda_num, lambda_den, "frozen_cost");
  if (params < 0) {
    throw std::invalid_argument("frozen_cost: params = " + std::to_string(params) +
                                ", expected >= 0");
  }
  const wide numerator = static_cast<wide>(params) * lambda_num;
  return static_cast<int64_t>((numerator + lambda_den - 1) / lambda_den);
}

Partition partition_units(int stages, const std::vector<int64_t>& active_sizes, int64_t frozen_size,
                          const CompressionOptions& options) {
  if (options.mode == PartitionMode::paper) return greedy_partition_paper(stages, active_sizes);
  if (!options.apply_frozen_cost) return optimal_partition(stages, active_sizes);

  check_lambda(options.lambda_num, options.lambda_den, "partition_units");
  if (frozen_size < 0) {
    throw std::invalid_argument("partition_units: frozen_size = " + std::to_string(frozen_size) +
                                ", expected >= 0");
  }
  // Scale by λ's denominator so the weighted frozen prefix is an exact integer.
  Partition partition =
      optimal_partition(stages, scaled(active_sizes, options.lambda_den, "partition_units"),
                        checked_mul(frozen_size, options.lambda_num, "partition_units"));
  partition.cost_per_stage = stage_costs(partition.units_per_stage, active_sizes);
  return partition;
}

int compress_pipeline(int current_stages, const std::vector<int64_t>& active_sizes,
                      int64_t frozen_size, int64_t m_gpu0, const CompressionOptions& options) {
  check_stages(current_stages, "compress_pipeline");
  check_sizes(active_sizes, "compress_pipeline");
  check_lambda(options.lambda_num, options.lambda_den, "compress_pipeline");
  if (frozen_size < 0 || m_gpu0 < 0) {
    throw std::invalid_argument("compress_pipeline: frozen_size = " + std::to_string(frozen_size) +
                                ", m_gpu0 = " + std::to_string(m_gpu0) + ", expected both >= 0");
  }

  int stages = current_stages;
  if (options.mode == PartitionMode::optimal) {
    const int units = std::max(1, static_cast<int>(active_sizes.size()));
    while (stages > units) stages /= 2;
  }
  while (stages >= 2) {
    const Partition candidate = partition_units(stages / 2, active_sizes, frozen_size, options);
    if (!fits(candidate, frozen_size, m_gpu0, options)) break;
    stages /= 2;
  }
  return stages;
}

int replicas_for(int devices, int stages) {
  check_stages(stages, "replicas_for");
  if (devices < 0) {
    throw std::invalid_argument("replicas_for: devices = " + std::to_string(devices) +
                                ", expected >= 0");
  }
  return devices / stages;
}

std::vector<std::vector<int>> place_stages(int devices, int stages, int replicas) {
  check_stages(stages, "place_stages");
  if (replicas < 0 || devices < 0 ||
      static_cast<int64_t>(replicas) * stages > static_cast<int64_t>(devices)) {
    throw std::invalid_argument(
        "place_stages: " + std::to_string(replicas) + " replicas of " + std::to_string(stages) +
        " stages on " + std::to_string(devices) +
        " devices, expected replicas >= 0 and replicas * stages <= devices");
  }
  std::vector<std::vector<int>> placement(static_cast<size_t>(replicas));
  for (int r = 0; r < replicas; ++r) {
    for (int k = 0; k < stages; ++k) placement[static_cast<size_t>(r)].push_back(r * stages + k);
  }
  return placement;
}

std::vector<int> micro_batch_table_paper(int stages) {
  check_stages(stages, "micro_batch_table_paper");
  std::vector<int> candidates;
  for (int multiple = 1; multiple <= 6; ++multiple) candidates.push_back(multiple * stages);
  return candidates;
}

int default_micro_batches(int stages) {
  check_stages(stages, "default_micro_batches");
  if (stages == 8 || stages == 4 || stages == 2) return 16;
  return 4 * stages;
}

Partition balance_devices(Partition p, const std::vector<int64_t>& sizes, int64_t stage0_extra,
                          const std::vector<int>& device_of_stage) {
  const size_t v = p.units_per_stage.size();
  if (device_of_stage.size() != v) throw std::invalid_argument("balance_devices: one device per stage");
  const int devices = *std::max_element(device_of_stage.begin(), device_of_stage.end()) + 1;
  if (static_cast<size_t>(devices) == v) return p;
  // A partition's weight: the busiest device's load plus the widest stage's (a step takes the
  // busiest device's work, and the warm-up and drain grow with the widest stage), then the
  // busiest device's alone.
  auto loads = [&](const std::vector<int>& units, std::vector<int64_t>* per_stage) {
    std::vector<int64_t> stage(v, 0), device(devices, 0);
    size_t u = 0;
    for (size_t s = 0; s < v; ++s) {
      for (int i = 0; i < units[s]; ++i) stage[s] += sizes[u++];
      if (s == 0) stage[s] += stage0_extra;
      device[device_of_stage[s]] += stage[s];
    }
    if (per_stage) *per_stage = stage;
    const int64_t busiest = *std::max_element(device.begin(), device.end());
    return std::make_pair(busiest + *std::max_element(stage.begin(), stage.end()), busiest);
  };
  auto best = loads(p.units_per_stage, nullptr);
  for (bool better = true; better;) {
    better = false;
    for (size_t cut = 0; cut + 1 < v && !better; ++cut)  // between stage `cut` and `cut + 1`
      for (int shift : {-1, 1}) {
        auto units = p.units_per_stage;
        units[cut] += shift;
        units[cut + 1] -= shift;
        if (units[cut] < 1 || units[cut + 1] < 1) continue;
        const auto got = loads(units, nullptr);
        if (got < best) {
          best = got;
          p.units_per_stage = units;
          better = true;
          break;
        }
      }
  }
  // Then every other cut, branch and bound from the best found so far (within a budget of
  // search nodes, so that long models keep the local optimum).
  const size_t n = sizes.size();
  std::vector<int64_t> prefix(n + 1, 0);
  for (size_t i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + sizes[i];
  std::vector<int> units(v, 0);
  std::vector<int64_t> device(devices, 0);
  int64_t budget = 2'000'000;
  std::function<void(size_t, size_t, int64_t)> search = [&](size_t s, size_t begin, int64_t widest) {
    if (--budget < 0) return;
    if (s + 1 == v) {  // the last stage takes the rest
      const int64_t cost = prefix[n] - prefix[begin] + (s == 0 ? stage0_extra : 0);
      const int64_t busiest = std::max(*std::max_element(device.begin(), device.end()), device[device_of_stage[s]] + cost);
      const std::pair<int64_t, int64_t> got{busiest + std::max(widest, cost), busiest};
      if (got < best) {
        best = got;
        units[s] = static_cast<int>(n - begin);
        p.units_per_stage = units;
      }
      return;
    }
    for (size_t end = begin + 1; end + (v - s - 1) <= n; ++end) {
      const int64_t cost = prefix[end] - prefix[begin] + (s == 0 ? stage0_extra : 0);
      auto& load = device[device_of_stage[s]];
      // What this stage alone already makes the weight at least (it only grows with `end`).
      if (std::max(*std::max_element(device.begin(), device.end()), load + cost) + std::max(widest, cost) >= best.first)
        break;
      load += cost;
      units[s] = static_cast<int>(end - begin);
      search(s + 1, end, std::max(widest, cost));
      load -= cost;
    }
  };
  search(0, 0, 0);
  std::vector<int64_t> stage;
  loads(p.units_per_stage, &stage);
  if (stage0_extra > 0) stage[0] -= stage0_extra;  // as partition_units reports them: units only
  p.cost_per_stage = stage;
  return p;
}

}  // namespace floe::runtime
