#include "runtime/plan/plan_request.hpp"

#include "models/model.hpp"

#include <catch2/catch.hpp>

using namespace floe;

TEST_CASE("plan_request: the job's keys, and a pipeline that fits the nodes as they are", "[plan]") {
  runtime::JobConfig cfg;
  cfg.devices = 4;
  cfg.pipeline.length = 4;
  cfg.pipeline.micro_batches = 8;
  cfg.planner.mode = "paper";
  torch::manual_seed(0);
  const auto units = models::build_model(cfg.model);
  auto q = runtime::plan_request(cfg, units, 1, 4);
  CHECK(q.devices == 4);
  CHECK(q.initial_stages == 4);
  CHECK(q.current_stages == 4);
  CHECK(q.frozen_blocks == 1);
  CHECK(q.micro_batches == 8);
  CHECK(q.node_devices.empty());
  CHECK(q.compression.mode == runtime::PartitionMode::paper);
  CHECK(q.unit_params.size() == units.size());
  CHECK(q.unit_blocks.size() == units.size());

  // Two nodes left, of 2 and 1 devices: the pipeline shortens to the larger node.
  q = runtime::plan_request(cfg, units, 1, 4, {2, 1});
  CHECK(q.devices == 3);
  CHECK(q.node_devices == std::vector<int>{2, 1});
  CHECK(q.current_stages == 2);
  // Pipelines that may span nodes see one sequence of devices.
  cfg.pipeline.span_nodes = true;
  q = runtime::plan_request(cfg, units, 1, 4, {2, 1});
  CHECK(q.node_devices.empty());
  CHECK(q.current_stages == 3);
}

TEST_CASE("replicas = \"auto\": as many pipelines as the devices hold, once K fits the nodes", "[plan]") {
  runtime::JobConfig cfg;  // replicas = "auto" by default
  REQUIRE(cfg.replicas == 0);
  cfg.devices = 5;
  cfg.pipeline.length = 2;
  torch::manual_seed(0);
  const auto units = models::build_model(cfg.model);
  CHECK(runtime::plan_request(cfg, units, 0, 2).initial_replicas == 2);
  CHECK(runtime::make_plan(runtime::plan_request(cfg, units, 0, 2)).replicas == 2);
  // Three nodes of one device: K=2 fits on none, so the plan runs K=1 on all three.
  auto q = runtime::plan_request(cfg, units, 0, 2, {1, 1, 1});
  CHECK(q.current_stages == 1);
  CHECK(q.initial_replicas == 3);
  auto p = runtime::make_plan(q);
  CHECK(p.stages == 1);
  CHECK(p.replicas == 3);
  // Nodes of 2 and 3 devices: one K=2 pipeline on each.
  CHECK(runtime::make_plan(runtime::plan_request(cfg, units, 0, 2, {2, 3})).replicas == 2);
  // An explicit count stays the user's cap.
  cfg.replicas = 1;
  CHECK(runtime::make_plan(runtime::plan_request(cfg, units, 0, 2, {1, 1, 1})).replicas == 1);
}
