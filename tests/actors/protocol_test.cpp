// One training step scripted message by message on CAF's deterministic test coordinator.
#include <torch/torch.h>

#include "actors/coordinator.hpp"
#include "actors/node_agent.hpp"
#include "actors/replica.hpp"
#include "launch/job.hpp"
#include "models/vit.hpp"
#include "messages/registry.hpp"

#include "tests/caf_catch_dsl.hpp"

using namespace floe;

namespace {

struct fixture : test_coordinator_fixture<msg::system_config> {};

}  // namespace

TEST_CASE_METHOD(fixture, "a K=2 M=2 GPipe step, message by message", "[protocol]") {
  models::ModelConfig cfg;
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

namespace {

// Runs a whole job (coordinator, freeze controller, event bus, a node agent, its stages; 2
// epochs of 4 steps, 1 of 2 blocks frozen after the first) on the test coordinator, one
// message at a time; returns "receiver <- message" per delivery, and the summary.
std::vector<std::string> job_messages(fixture& f, runtime::TrainingSummary& summary, bool* told_done = nullptr) {
  // elastic = false keeps R=1: two replicas' in-memory all-reduce would wait for each other
  // on the test coordinator's one thread.
  auto cfg = runtime::load_job_config("", {"data.dataset=\"synthetic\"", "data.subset=256", "data.test_subset=64",
                                           "model.depth=2", "model.dim=16", "model.heads=2", "model.patch=7",
                                           "batch_size=64", "epochs=2", "devices=2", "pipeline.length=2",
                                           "pipeline.micro_batches=2", "freeze.policy=\"manual\"",
                                           "freeze.script=[0, 1]", "cache.enabled=false", "elastic=false"});
  const auto data = launch::load_job_data(cfg);
  actors::NodeSpec node;
  node.config = cfg;
  node.train = std::make_shared<const models::Dataset>(data.train);
  node.test = std::make_shared<const models::Dataset>(data.test);
  node.devices = 2;
  node.detached_stages = false;
  node.job_done = std::make_shared<std::atomic<bool>>(false);
  actors::CoordinatorSpec spec;
  spec.config = cfg;
  spec.train = node.train;
  spec.test = node.test;
  spec.nodes.push_back({actors::spawn_node_agent(f.sys, node), 2, "local"});
  spec.detached_stages = false;
  f.self->send(actors::spawn_coordinator(f.sys, spec), msg::start_atom::value);
  std::vector<std::string> out;
  while (f.sched.has_job()) {
    auto& next = f.sched.next_job<caf::scheduled_actor>();
    const auto* m = next.mailbox().peek();
    const auto content = m ? caf::to_string(m->content()) : std::string("?");
    out.push_back(std::string(next.name()) + " <- " + content.substr(0, content.find('(', 1)));
    f.sched.run_once();
  }
  f.self->receive([&](runtime::TrainingSummary& s) { summary = s; },
                  [&](caf::error& e) { FAIL(f.sys.render(e)); });
  if (told_done) *told_done = node.job_done->load();
  return out;
}

}  // namespace

TEST_CASE_METHOD(fixture, "a whole job with a live freeze runs on the test coordinator in one exact message order",
                 "[protocol][scenario]") {
  runtime::TrainingSummary one, two;
  bool told_done = false;
  const auto first = job_messages(*this, one, &told_done);
  const auto second = job_messages(*this, two);
  REQUIRE(one.epochs.size() == 2);
  REQUIRE(one.transitions.size() == 1);
  CHECK(first == second);  // every delivery, in the same order
  for (size_t e = 0; e < 2; ++e) CHECK(one.epochs[e].train_loss == two.epochs[e].train_loss);
  // The transition, message by message: the decision, replica 0's state, the new pipeline,
  // then the old one stops and training goes on.
  const std::vector<std::string> transition = {
      "floe.freeze_controller <- (freeze_query", "floe.coordinator <- (freeze_decision",
      "floe.stage <- ('export')",                "floe.stage <- ('export')",
      "floe.coordinator <- (stage_state",        "floe.coordinator <- (stage_state",
      "floe.node_agent <- (pipelines_request",   "floe.stage <- (stage_links",
      "floe.stage <- (stage_links",              "floe.replica <- ?",
      "floe.coordinator <- (pipelines_built",    "floe.replica <- (exit_msg",
      "floe.stage <- (exit_msg",                 "floe.stage <- (exit_msg",
      "floe.replica <- (replica_step"};
  const auto at = std::search(first.begin(), first.end(), transition.begin(), transition.end());
  INFO([&] {
    std::string all;
    for (const auto& m : first) all += m + "\n";
    return all;
  }());
  CHECK(at != first.end());
  // The end: the node hears that the job finished well before the coordinator stops it.
  const auto done = std::find(first.begin(), first.end(), "floe.node_agent <- ('jobdone')");
  CHECK(done != first.end());
  CHECK(std::find(done, first.end(), "floe.node_agent <- (exit_msg") != first.end());
  CHECK(told_done);
}
