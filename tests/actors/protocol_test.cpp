// One training step scripted message by message on CAF's deterministic test coordinator.
#include <torch/torch.h>

#include "actors/replica.hpp"
#include "messages/registry.hpp"

#include "tests/caf_catch_dsl.hpp"

using namespace floe;

namespace {

struct fixture : test_coordinator_fixture<msg::system_config> {};

}  // namespace

TEST_CASE_METHOD(fixture, "a K=2 M=2 GPipe step, message by message", "[protocol]") {
  models::VitConfig cfg;
  cfg.patch = 14;
  cfg.dim = 8;
  cfg.depth = 1;
  cfg.heads = 2;
  torch::manual_seed(0);
  auto data = models::make_synthetic(16, 4, 10, 1);
  auto train = std::make_shared<const models::Dataset>(data.train);
  actors::PipelineLayout layout;
  layout.units_per_stage = {2, 3};
  layout.micro_batches = 2;
  layout.detached = false;  // on the test coordinator
  auto pipes = actors::spawn_pipelines(sys, layout, {models::build_vit(cfg)}, {}, train, train);
  sched.run();  // initialise the actors and deliver the stage links
  auto rep = pipes[0].replica;
  auto s0 = pipes[0].stages[0], s1 = pipes[0].stages[1];

  self->send(rep, msg::replica_step{0, true, 1e-3, {0, 1, 2, 3, 4, 5}, 6});
  expect((msg::replica_step), from(self).to(rep).with(_));
  expect((msg::stage_task), from(rep).to(s0).with(_));  // s0 runs 0F0 0F1, then waits for gradients
  expect((msg::stage_task), from(rep).to(s1).with(_));  // s1 waits for activations
  expect((msg::activation), from(s0).to(s1).with(_));   // 1F0 (loss)
  expect((msg::activation), from(s0).to(s1).with(_));   // 1F1, then 1B0 1B1 1R 1S
  expect((msg::gradient), from(s1).to(s0).with(_));     // 0B0
  expect((msg::gradient), from(s1).to(s0).with(_));     // 0B1 0R 0S
  expect((msg::stage_report), from(s1).to(rep).with(_));
  expect((msg::stage_report), from(s0).to(rep).with(_));
  CHECK_FALSE(sched.has_job());
  self->receive([](msg::step_report& r) {
    CHECK(r.step == 0);
    CHECK(r.samples == 6);
    CHECK(r.loss_sum > 0);
    CHECK(r.stage_busy_seconds.size() == 2);
  });
  actors::shutdown(pipes);
  sched.run();
}
