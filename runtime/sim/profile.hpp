#pragma once
// `floe profile`: the cost model of a job measured on this machine. Every unit of the
// configured model runs on micro-batches of the job's own data at several sizes: its forward
// with autograd, backward, the input and weight halves of backward, the forward without
// gradients, and its AdamW step, each the median of repeats, averaged over devices measured
// at once (the job's devices compete for memory bandwidth and caches). Text is measured at a
// grid of sequence lengths and priced at the padded lengths of the job's batches in epoch 0.
#include "models/dataset.hpp"
#include "runtime/config/job_config.hpp"
#include "runtime/sim/cost_model.hpp"

#include <functional>
#include <string>
#include <vector>

namespace floe::runtime {

struct ProfileOptions {
  std::vector<int64_t> micro_batches;  // samples per measured micro-batch; empty: batch / 16 ... batch
  int repeats = 5;                     // per measurement, the median is kept
  // Devices measured at once, each a thread with its own copy of the model, as a job's
  // devices share the machine's memory and caches (0: the job's devices, at most the cores).
  int concurrency = 0;
  std::function<void(const std::string&)> progress;  // one line per size measured
};

// `hardware` gives what a profile does not measure (links between processes and nodes,
// overheads); memory_bandwidth and cache_bandwidth are measured (a large copy) and
// host_memory read from the machine. Throws floe::InputError for bad options.
CostModel profile_job(const JobConfig& cfg, const models::TrainTest& data, const Hardware& hardware,
                      const ProfileOptions& options = {});

// planner.costs = "measured": times every unit of the job's model on one device, on a
// micro-batch of the job's own data (planner_micro_batch samples, the median of 3), and sets
// each unit's planner cost (models::Unit::cost) in `units` to its forward and backward
// nanoseconds. Returns the costs set; with "parameters" sets nothing and returns none.
std::vector<int64_t> apply_planner_costs(const JobConfig& cfg, const models::TrainTest& data, models::UnitList& units);

}  // namespace floe::runtime
