#pragma once
// What a job asks the planner (runtime/plan/elastic_plan.hpp): its model's units, its
// devices and the `pipeline.*`, `planner.*`, `elastic` and `autodp` keys, for a frozen prefix.
#include "models/unit.hpp"
#include "runtime/config/job_config.hpp"
#include "runtime/plan/elastic_plan.hpp"

#include <vector>

namespace floe::runtime {

// The request with `frozen_blocks` frozen while the pipeline is `current_stages` long.
// `node_devices`: the devices of each node the job runs on now (empty: `cfg.devices` on one
// node, as `floe plan` shows). Then the pipeline fits the largest node, unless
// pipeline.span_nodes lets it run over all devices as one sequence: after a node is lost (or
// on resume elsewhere) a longer pipeline is shortened to fit.
PlanRequest plan_request(const JobConfig& cfg, const models::UnitList& units, int frozen_blocks, int current_stages,
                         const std::vector<int>& node_devices = {});
// The same from the units' planner costs and block indices (a model that is not built: runtime/sim).
PlanRequest plan_request(const JobConfig& cfg, const std::vector<int64_t>& unit_costs, const std::vector<int>& unit_blocks,
                         int frozen_blocks, int current_stages, const std::vector<int>& node_devices = {});

}  // namespace floe::runtime
