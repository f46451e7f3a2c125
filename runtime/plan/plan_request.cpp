#include "runtime/plan/plan_request.hpp"

#include "runtime/plan/placement.hpp"
#include "runtime/plan/planner.hpp"
#include "runtime/plan/schedule.hpp"

#include <algorithm>
#include <numeric>

namespace floe::runtime {

PlanRequest plan_request(const JobConfig& c, const models::UnitList& units, int frozen_blocks, int current_stages,
                         const std::vector<int>& node_devices) {
  std::vector<int> blocks;
  for (const auto& u : units) blocks.push_back(u.block);
  return plan_request(c, models::planner_costs(units), blocks, frozen_blocks, current_stages, node_devices);
}

PlanRequest plan_request(const JobConfig& c, const std::vector<int64_t>& unit_costs, const std::vector<int>& unit_blocks,
                         int frozen_blocks, int current_stages, const std::vector<int>& node_devices) {
  PlanRequest q;
  q.unit_params = unit_costs;
  q.unit_blocks = unit_blocks;
  q.devices = c.devices;
  q.initial_stages = c.pipeline.length;
  q.current_stages = current_stages;
  q.frozen_blocks = frozen_blocks;
  q.micro_batches = c.pipeline.micro_batches;
  q.elastic = c.elastic;
  q.data_parallel = c.autodp;
  const auto kind = parse_schedule_kind(c.pipeline.schedule);
  q.chunks = chunks_for(kind, c.pipeline.virtual_stages);
  q.placement = placement_of(kind, q.chunks);
  q.compression.mode = c.planner.mode == "paper" ? PartitionMode::paper : PartitionMode::optimal;
  q.compression.strict_less = c.planner.strict;
  q.compression.apply_frozen_cost = c.planner.frozen_cost;
  // replicas = "auto": as many pipelines of K0 as the devices hold, K0 cut to fit them as the
  // plan will cut it (a node of one device runs K=1 pipelines whatever pipeline.length says).
  auto automatic = [&](int longest) {
    const int k0 = std::max(1, std::min(c.pipeline.length, longest));
    return std::max(1, q.node_devices.empty() ? replicas_for(q.devices, k0) : replicas_on_nodes(q.node_devices, k0));
  };
  if (node_devices.empty()) {
    q.initial_replicas = c.replicas > 0 ? c.replicas : automatic(q.devices);
    return q;
  }
  q.devices = std::accumulate(node_devices.begin(), node_devices.end(), 0);
  if (c.pipeline.span_nodes) {  // one sequence of devices
    q.current_stages = std::min(current_stages, q.devices);
  } else {
    q.node_devices = node_devices;
    q.current_stages = std::min(current_stages, *std::max_element(node_devices.begin(), node_devices.end()));
  }
  q.initial_replicas = c.replicas > 0 ? c.replicas
                                      : automatic(q.node_devices.empty() ? q.devices
                                                                         : *std::max_element(node_devices.begin(), node_devices.end()));
  return q;
}

}  // namespace floe::runtime
