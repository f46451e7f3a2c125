#include "runtime/plan/plan_request.hpp"

#include <algorithm>
#include <numeric>

namespace floe::runtime {

PlanRequest plan_request(const JobConfig& c, const models::UnitList& units, int frozen_blocks, int current_stages,
                         const std::vector<int>& node_devices) {
  PlanRequest q;
  q.unit_params = models::planner_costs(units);
  for (const auto& u : units) q.unit_blocks.push_back(u.block);
  q.devices = c.devices;
  q.initial_stages = c.pipeline.length;
  q.initial_replicas = c.replicas;
  q.current_stages = current_stages;
  q.frozen_blocks = frozen_blocks;
  q.micro_batches = c.pipeline.micro_batches;
  q.elastic = c.elastic;
  q.data_parallel = c.autodp;
  q.compression.mode = c.planner.mode == "paper" ? PartitionMode::paper : PartitionMode::optimal;
  q.compression.strict_less = c.planner.strict;
  q.compression.apply_frozen_cost = c.planner.frozen_cost;
  if (node_devices.empty()) return q;
  q.devices = std::accumulate(node_devices.begin(), node_devices.end(), 0);
  if (c.pipeline.span_nodes) {  // one sequence of devices
    q.current_stages = std::min(current_stages, q.devices);
  } else {
    q.node_devices = node_devices;
    q.current_stages = std::min(current_stages, *std::max_element(node_devices.begin(), node_devices.end()));
  }
  return q;
}

}  // namespace floe::runtime
