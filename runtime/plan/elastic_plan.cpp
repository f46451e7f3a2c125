#include "runtime/plan/elastic_plan.hpp"

#include "runtime/plan/placement.hpp"

#include <numeric>
#include <sstream>
#include <stdexcept>

namespace floe::runtime {

int frozen_unit_count(const std::vector<int>& blocks, int frozen_blocks) {
  if (frozen_blocks <= 0) return 0;
  int n = 0;
  while (n < static_cast<int>(blocks.size()) && blocks[n] < frozen_blocks) ++n;
  return n;
}

Plan make_plan(const PlanRequest& q) {
  const int n = static_cast<int>(q.unit_params.size());
  if (n == 0 || q.unit_blocks.size() != q.unit_params.size())
    throw std::invalid_argument("plan: need one block index per unit");
  if (q.devices < 1 || q.initial_stages < 1 || q.current_stages < 1 || q.initial_replicas < 1)
    throw std::invalid_argument("plan: needs devices, K0, K and R0 of at least 1");
  Plan p;
  p.frozen_blocks = q.frozen_blocks;
  p.frozen_units = frozen_unit_count(q.unit_blocks, q.frozen_blocks);
  const std::vector<int64_t> active(q.unit_params.begin() + p.frozen_units, q.unit_params.end());
  p.frozen_params = std::accumulate(q.unit_params.begin(), q.unit_params.begin() + p.frozen_units, int64_t(0));
  p.m_gpu0 = partition_bottleneck(partition_units(q.initial_stages, q.unit_params, 0, q.compression));
  const int active_units = static_cast<int>(active.size());
  if (q.elastic && p.frozen_units > 0) {
    // The frozen prefix sits on stage 0 whatever K is, so it cannot decide whether K halves:
    // λ weighs it when the cuts are placed, and the budget M_GPU(0) grows by the same amount.
    const auto& c = q.compression;
    const int64_t budget = p.m_gpu0 + (c.apply_frozen_cost ? frozen_cost(p.frozen_params, c.lambda_num, c.lambda_den) : 0);
    p.stages = std::min(compress_pipeline(q.current_stages, active, p.frozen_params, budget, c), active_units);
    const int fit = q.node_devices.empty() ? replicas_for(q.devices, p.stages) : replicas_on_nodes(q.node_devices, p.stages);
    p.replicas = q.data_parallel ? fit : std::min(q.initial_replicas, fit);
  } else {  // nothing frozen yet, or a static plan: R0, or fewer when fewer devices are left
    p.stages = std::min(q.current_stages, active_units);
    const int fit = q.node_devices.empty() ? replicas_for(q.devices, p.stages) : replicas_on_nodes(q.node_devices, p.stages);
    p.replicas = std::min(q.initial_replicas, fit);
  }
  if (p.replicas < 1)
    throw std::invalid_argument("plan: a pipeline of " + std::to_string(p.stages) + " stage(s) fits on none of the devices");
  p.chunks = p.stages > 1 && active_units >= p.stages * q.chunks ? std::max(1, q.chunks) : 1;
  auto part = partition_units(p.stages * p.chunks, active, p.frozen_params, q.compression);
  if (p.chunks > 1) {
    const auto& c = q.compression;
    std::vector<int> device;
    for (int s = 0; s < p.stages * p.chunks; ++s) device.push_back(device_of_stage(q.placement, p.stages, s));
    const int64_t extra = c.apply_frozen_cost ? frozen_cost(p.frozen_params, c.lambda_num, c.lambda_den) : 0;
    part = balance_devices(std::move(part), active, extra, device);
  }
  p.units_per_stage = part.units_per_stage;
  p.stage_costs = part.cost_per_stage;
  p.micro_batches = p.stages == 1 ? 1 : q.micro_batches > 0 ? q.micro_batches : default_micro_batches(p.stages);
  return p;
}

std::string describe(const Plan& p, const std::vector<std::string>& names, const std::string& cost_unit) {
  std::ostringstream s;
  s << "frozen blocks F=" << p.frozen_blocks << ": " << p.frozen_units << " unit(s), " << p.frozen_params << " "
    << cost_unit << ", run without gradients on each pipeline's first device\n";
  size_t u = p.frozen_units;
  for (size_t k = 0; k < p.units_per_stage.size(); ++k) {
    s << "  stage " << k << ": " << p.units_per_stage[k] << " unit(s), " << p.stage_costs[k] << " " << cost_unit << "  [";
    for (int i = 0; i < p.units_per_stage[k]; ++i, ++u) s << (i ? " " : "") << (u < names.size() ? names[u] : "?");
    s << "]\n";
  }
  s << "K=" << p.stages;
  if (p.chunks > 1) s << " v=" << p.chunks << " (chunks per device)";
  s << " M=" << p.micro_batches << " R=" << p.replicas << "  M_GPU(0)=" << p.m_gpu0
    << "  placement:";
  for (int r = 0; r < p.replicas; ++r) {
    s << " replica" << r << "->devices[";
    for (int k = 0; k < p.stages; ++k) s << (k ? "," : "") << r * p.stages + k;
    s << "]";
  }
  s << "\n";
  return s.str();
}

}  // namespace floe::runtime
