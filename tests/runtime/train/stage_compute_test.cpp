// StageCompute's plasticity measurement: nothing moves when the weights did not, something
// when they did, and measuring changes neither the weights nor the units' mode.
#include "models/model.hpp"
#include "models/vit.hpp"
#include "runtime/train/stage_compute.hpp"

#include <catch2/catch.hpp>

using namespace floe;

namespace {

// One training step of the whole model as one stage, keeping a probe.
void train_step(runtime::StageCompute& stage, const torch::Tensor& x, const torch::Tensor& y, double lr) {
  stage.begin_step(true, false, true);
  runtime::LossStats stats;
  stage.forward_loss(0, x, y, 1.0 / double(x.size(0)), stats);
  stage.backward(0, {});
  stage.step(lr);
}

}  // namespace

TEST_CASE("plasticity: how far each block's output moved since the last measurement", "[plasticity]") {
  torch::manual_seed(5);
  models::ModelConfig c;
  c.depth = 2;
  c.dim = 16;
  c.heads = 2;
  c.classes = 10;
  auto units = models::build_vit(c);
  runtime::OptimizerConfig opt;
  opt.weight_decay = 0;
  runtime::StageCompute stage({}, units, true, true, opt, nullptr, 0);
  const auto x = torch::randn({8, 1, 28, 28});
  const auto y = torch::randint(0, 10, {8}, torch::kInt64);

  train_step(stage, x, y, 1e-2);
  CHECK(stage.block_plasticity().empty());  // the first call takes the reference

  train_step(stage, x, y, 0.0);  // weights unchanged: nothing moved
  for (const auto& [block, p] : stage.block_plasticity()) CHECK(p == 0.0);

  train_step(stage, x, y, 1e-2);
  const auto before = stage.export_parameters();
  const auto moved = stage.block_plasticity();
  REQUIRE(moved.count(0) == 1);
  REQUIRE(moved.count(1) == 1);
  CHECK(moved.at(0) > 0.0);
  CHECK(moved.at(1) > 0.0);
  CHECK(moved.at(0) < 1.0);  // one small step moves an output by a small share of itself
  // Measuring left the weights as they were and the units in training mode.
  for (const auto& [name, t] : stage.export_parameters()) CHECK(torch::equal(t, before.at(name)));
  for (const auto& u : units) CHECK(u.module->is_training());

  // A step without a probe measures nothing.
  stage.begin_step(true, false, false);
  runtime::LossStats stats;
  stage.forward_loss(0, x, y, 1.0 / 8, stats);
  stage.backward(0, {});
  stage.step(1e-2);
  CHECK(stage.block_plasticity().empty());
}

TEST_CASE("freeze.anneal: the optimizer steps each block at its own rate", "[lr]") {
  models::ModelConfig c;
  c.depth = 2;
  c.dim = 16;
  c.heads = 2;
  c.classes = 10;
  runtime::OptimizerConfig opt;
  const auto x = torch::randn({8, 1, 28, 28});
  const auto y = torch::randint(0, 10, {8}, torch::kInt64);
  auto one_step = [&](const std::vector<double>& block_lr, models::UnitList& units) {
    runtime::StageCompute stage({}, units, true, true, opt, nullptr, 0);
    const auto before = stage.export_parameters();
    stage.begin_step(true);
    runtime::LossStats stats;
    stage.forward_loss(0, x, y, 1.0 / 8, stats);
    stage.backward(0, {});
    stage.step(1e-2, block_lr);
    std::map<std::string, bool> moved;
    for (const auto& [name, t] : stage.export_parameters()) moved[name] = !torch::equal(t, before.at(name));
    return std::make_pair(moved, stage.export_parameters());
  };

  torch::manual_seed(7);
  auto units = models::build_vit(c);
  auto [moved, after] = one_step({0.0, 1e-2}, units);  // block 0 (and the embedding) at rate 0
  int still = 0, changed = 0;
  for (const auto& [name, m] : moved) {
    INFO(name);
    const bool block0 = name.rfind("embed", 0) == 0 || name.rfind("block0.", 0) == 0;
    CHECK(m == !block0);
    (m ? changed : still)++;
  }
  CHECK(still > 0);
  CHECK(changed > 0);

  // Without per-block rates every unit steps as one AdamW over all parameters would.
  torch::manual_seed(7);
  auto plain = models::build_vit(c);
  auto reference = models::build_vit(c);
  models::copy_parameters(plain, reference);
  auto [unused, grouped] = one_step({}, plain);
  auto params = models::parameters_of(reference, 0, reference.size());
  auto adamw = runtime::make_optimizer(params, opt);
  runtime::set_learning_rate(*adamw, 1e-2);
  for (auto& u : reference) u.module->train();
  runtime::LossStats stats;
  auto logits = models::forward_range(reference, 0, reference.size(), x);
  (runtime::loss_terms(logits, y).loss_sum * (1.0 / 8)).backward();
  adamw->step();
  const auto names = models::parameter_names_of(reference, 0, reference.size());
  for (size_t i = 0; i < names.size(); ++i) {
    INFO(names[i]);
    CHECK(torch::equal(grouped.at(names[i]), params[i]));
  }
}
