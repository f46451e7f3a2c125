// The simulator's parts on cases whose times follow by hand, and a whole job driven by the
// real planner and freeze schedule.
#include "runtime/sim/simulator.hpp"

#include "models/errors.hpp"
#include "models/shapes.hpp"

#include <catch2/catch.hpp>

using namespace floe::runtime;

namespace {

// Units of uniform cost: at a micro-batch of `samples`, forward f, backward b (I, W halves).
CostModel uniform_costs(int units, double samples, double f, double b) {
  CostModel m;
  m.hardware.intra_bandwidth = m.hardware.inter_bandwidth = m.hardware.cache_bandwidth = 1e12;
  for (int i = 0; i < units; ++i) {
    UnitCost u;
    u.name = "u" + std::to_string(i);
    u.block = i;
    u.params = 1000;
    u.planner_cost = 1000;
    u.points = {{samples, UnitTimes{f, b, b / 2, b / 2, f}}};
    m.units.push_back(u);
  }
  return m;
}

Plan pipeline(int k, int m, int r, std::vector<int> units, int frozen_units = 0) {
  Plan p;
  p.stages = k;
  p.micro_batches = m;
  p.replicas = r;
  p.units_per_stage = std::move(units);
  p.frozen_units = frozen_units;
  return p;
}

}  // namespace

TEST_CASE("a ring all-reduce and a transfer cost what the formulas say", "[simulate]") {
  // 2 (n − 1) / n · bytes / bandwidth + 2 (n − 1) · latency
  CHECK(ring_allreduce_seconds(8e6, 4, 1e9, 1e-5) == Approx(2 * 3.0 / 4 * 8e-3 + 6e-5));
  CHECK(ring_allreduce_seconds(8e6, 1, 1e9, 1e-5) == 0);
  CHECK(transfer_seconds(1e6, 1e9, 1e-5) == Approx(1e-3 + 1e-5));
  CHECK(transfer_seconds(0, 1e9, 1e-5) == 0);
}

TEST_CASE("a K=2 GPipe step with uniform units takes (M + K − 1)(f + b)", "[simulate]") {
  const auto costs = uniform_costs(2, 8, 1.0, 2.0);
  StepInput in;
  in.replica_batch = 32;  // 4 micro-batches of 8
  const auto est = estimate_step(pipeline(2, 4, 1, {1, 1}), costs, in);
  CHECK(est.seconds == Approx((4 + 2 - 1) * (1.0 + 2.0)));
  CHECK(est.timeline.busy[0] == Approx(4 * 3.0));
  // Half the micro-batch, half the time (proportional below the measured point).
  in.replica_batch = 16;
  CHECK(estimate_step(pipeline(2, 4, 1, {1, 1}), costs, in).seconds == Approx(7.5));
  // Two replicas add their all-reduce: 1000 fp32 parameters per stage over 2 ranks.
  auto slow = costs;
  slow.hardware.intra_bandwidth = 4000;  // bytes/s
  in.replica_batch = 32;
  const auto dp = estimate_step(pipeline(2, 4, 2, {1, 1}), slow, in);
  CHECK(dp.seconds > 15);
  CHECK(dp.seconds == Approx(15 + ring_allreduce_seconds(4000, 2, 4000, 0) +
                             /* the last micro-batch's activations cross the slow link twice */ 0).margin(1e-9));
  CHECK_THROWS_AS(estimate_step(pipeline(2, 4, 1, {1, 2}), costs, in), std::invalid_argument);
}

TEST_CASE("activations cross to the next stage and their gradients come back at the same size", "[simulate]") {
  // Stage 0 hands on 1,000 bytes a sample, the head 1 byte; the link moves 1,000 bytes/s.
  // F0 [0,1], 1 s on the link, F1 [2,3], B1 [3,5], the gradient of what F0 sent: 1 s back,
  // B0 [6,8].
  auto costs = uniform_costs(2, 1, 1.0, 2.0);
  costs.hardware.intra_bandwidth = 1000;
  costs.units[0].output_bytes = 1000;
  costs.units[1].output_bytes = 1;
  StepInput in;
  in.replica_batch = 1;
  CHECK(estimate_step(pipeline(2, 1, 1, {1, 1}), costs, in).seconds == Approx(8));
  // More micro-batches than samples: the replica cuts no empty ones.
  in.replica_batch = 2;
  CHECK(estimate_step(pipeline(2, 8, 1, {1, 1}), costs, in).timeline.actions[0].size() == 2 * 2 + 2);
}

TEST_CASE("a transition moves the state of the units that change device", "[simulate]") {
  auto costs = uniform_costs(3, 1, 1, 1);
  costs.hardware.intra_bandwidth = 12000;  // one unit's weights and moments per second
  costs.hardware.intra_latency = 0.25;
  // K=2 [1,2] -> K=1 R=2 with unit 0 frozen: units 1 and 2 move from stage 1 to stage 0
  // (24,000 bytes), and the new replica receives both (24,000 bytes); two latencies.
  const double t = transition_seconds(pipeline(2, 4, 1, {1, 2}), pipeline(1, 1, 2, {2}, 1), costs);
  CHECK(t == Approx(4.0 + 0.5));
  // Nothing moves, nothing new: the latencies only.
  CHECK(transition_seconds(pipeline(2, 4, 1, {1, 2}), pipeline(2, 4, 1, {1, 2}), costs) == Approx(0.5));
}

TEST_CASE("the cache model hits, advances, computes and bypasses as AutoCache does", "[simulate][cache]") {
  const std::vector<double> prefix{0, 1, 3, 4};  // seconds per sample of units [0, i)
  CacheModel c(true, 1.0, 1);
  auto u = c.use(2, 1.0, prefix, 0.5);
  CHECK(u.computed == 1);
  CHECK(u.per_sample == Approx(3.5));  // computed and stored
  CHECK(c.held(2) == Approx(1));
  u = c.use(2, 1.0, prefix, 0.5);
  CHECK(u.hits == 1);
  CHECK(u.per_sample == Approx(0.5));
  u = c.use(3, 1.0, prefix, 0.5);  // one more unit frozen: rows advance through it
  CHECK(u.advanced == 1);
  CHECK(u.per_sample == Approx(0.5 + 1));
  CHECK(c.held(3) == Approx(1));
  CHECK(c.held(2) == Approx(0));
  // A budget for half the samples: half hit from then on.
  CacheModel half(true, 0.5, 1);
  half.use(2, 1.0, prefix, 0.5);
  u = half.use(2, 1.0, prefix, 0.5);
  CHECK(u.hits == Approx(0.5));
  // Two nodes: a node sees half the samples an epoch.
  CacheModel two(true, 1.0, 2);
  two.use(2, 1.0, prefix, 0.5);
  CHECK(two.held(2) == Approx(0.5));
  // Reading no cheaper than computing: bypassed, nothing stored.
  CacheModel slow(true, 1.0, 1);
  u = slow.use(1, 1.0, prefix, 2.0);
  CHECK(u.bypassed);
  CHECK(u.per_sample == Approx(1));
  CHECK(slow.held(1) == 0);
  // Evaluation does not advance: a new level computes every row again.
  CacheModel eval(true, 1.0, 1);
  eval.use(2, 1.0, prefix, 0.5, false);
  u = eval.use(3, 1.0, prefix, 0.5, false);
  CHECK(u.computed == 1);
  CHECK(u.per_sample == Approx(4.5));
  CHECK(eval.held(2) == 0);
  // A node that joins holds nothing: with twice the nodes a sample finds its row half as often.
  CacheModel spread(true, 1.0, 1);
  spread.use(2, 1.0, prefix, 0.5);
  spread.spread(2);
  CHECK(spread.held(2) == Approx(0.5));
  // No room left: rows of a superseded level are evicted to admit the new level's.
  CacheModel full(true, 0.5, 1);
  full.use(2, 1.0, prefix, 0.5);  // the budget's half of the samples, held at level 2
  full.use(3, 0.5, prefix, 0.5);  // half an epoch: a quarter advanced, a quarter computed
  CHECK(full.held(2) == 0);       // evicted to admit the computed quarter
  CHECK(full.held(3) == Approx(0.5));
  // Off: the prefix every time.
  CacheModel off(false, 1.0, 1);
  off.use(2, 1.0, prefix, 0.5);
  CHECK(off.use(2, 1.0, prefix, 0.5).per_sample == Approx(3));
}

TEST_CASE("a simulated job follows the real planner and freeze schedule", "[simulate]") {
  auto cfg = load_job_config("", {"epochs=4", "freeze.start=1", "devices=2", "cache.enabled=true"});
  Hardware hw;
  hw.name = "test";
  hw.device_flops = 1e10;
  hw.memory_bandwidth = 1e10;
  hw.intra_bandwidth = hw.inter_bandwidth = hw.cache_bandwidth = 1e10;
  const auto costs = analytic_costs(cfg.model, hw);
  SimulationOptions o;
  o.train_samples = 6000;
  o.eval_samples = 1000;
  const auto sim = simulate_job(cfg, costs, o);
  REQUIRE(sim.summary.epochs.size() == 4);
  // α = 1/3 over 6 blocks from epoch 1: 0, 2, 4, 5 frozen (schedule_frozen_count).
  std::vector<int> frozen;
  for (const auto& e : sim.summary.epochs) frozen.push_back(e.frozen_layers);
  CHECK(frozen == std::vector<int>{0, 2, 4, 5});
  CHECK(sim.summary.transitions.size() == 3);
  CHECK(sim.summary.epochs[0].pipeline_length == 2);
  CHECK(sim.summary.epochs.back().replicas == 2);  // compressed to K = 1, two replicas
  // Freezing makes epochs faster; the cache serves the frozen prefix once it is stored.
  CHECK(sim.summary.epochs[3].train_seconds < sim.summary.epochs[0].train_seconds);
  CHECK(sim.summary.epochs[2].cache.advanced > 0);
  CHECK(sim.summary.steps == 4 * 47);
  auto fixed = cfg;
  fixed.freeze.policy = "none";
  const auto base = simulate_job(fixed, costs, o);
  CHECK(base.summary.total_seconds > sim.summary.total_seconds);
  CHECK(base.summary.transitions.empty());
}

TEST_CASE("simulate refuses what it cannot know", "[simulate]") {
  Hardware hw;
  hw.device_flops = hw.memory_bandwidth = hw.intra_bandwidth = hw.cache_bandwidth = hw.inter_bandwidth = 1e10;
  auto cfg = load_job_config("", {"freeze.policy=\"adaptive\""});
  const auto costs = analytic_costs(cfg.model, hw);
  SimulationOptions o;
  o.train_samples = 100;
  CHECK_THROWS_AS(simulate_job(cfg, costs, o), floe::InputError);  // gradient norms
  cfg = load_job_config("", {"model.depth=4"});
  CHECK_THROWS_AS(simulate_job(cfg, costs, o), floe::InputError);  // costs of another model
  cfg = load_job_config("", {});
  CHECK_THROWS_AS(simulate_job(cfg, costs, {}), floe::InputError);  // no sample count
}

TEST_CASE("hardware files and profiles: bad input names the key", "[simulate]") {
  const std::string ok = "name = \"x\"\ndevice_flops = 1e12\nmemory_bandwidth = \"100GB\"\nintra_bandwidth = \"15.754GB\"\n"
                         "devices_per_node = 8\n[sources]\ndevice_flops = \"a datasheet\"\n";
  const auto hw = parse_hardware(ok, "hw.toml");
  CHECK(hw.memory_bandwidth == Approx(100e9));
  CHECK(hw.intra_bandwidth == Approx(15.754e9));
  CHECK(hw.inter_bandwidth == hw.intra_bandwidth);  // one node: the same link
  CHECK(hw.devices_per_node == 8);
  CHECK(hw.sources.at("device_flops") == "a datasheet");
  CHECK_THROWS_WITH(parse_hardware("foo = 1\n" + ok, "hw.toml"), Catch::Contains("unknown key foo"));
  CHECK_THROWS_WITH(parse_hardware("intra_bandwidth = \"fast\"\n", "hw.toml"), Catch::Contains("intra_bandwidth"));
  CHECK_THROWS_WITH(parse_hardware("intra_bandwidth = 1\nefficiency = 2\n", "hw.toml"), Catch::Contains("efficiency"));
  CHECK_THROWS_WITH(parse_hardware("device_flops = -1\n", "hw.toml"), Catch::Contains("device_flops"));
  CHECK_THROWS_AS(parse_hardware("[[", "hw.toml"), floe::InputError);

  // A profile round-trips through its JSON; a damaged one is refused.
  auto m = analytic_costs(load_job_config("", {}).model, hw);
  m.train_samples = 60000;
  const auto back = cost_model_from_json(to_json(m), "p.json");
  REQUIRE(back.units.size() == m.units.size());
  CHECK(back.units[3].at(7).forward == Approx(m.units[3].at(7).forward));
  CHECK(back.train_samples == 60000);
  CHECK(back.hardware.intra_bandwidth == Approx(hw.intra_bandwidth));
  // A hardware file given with a profile brings its links, not its arithmetic.
  Hardware links;
  links.name = "links";
  links.intra_bandwidth = 7;
  links.memory_bandwidth = 1;
  const auto mixed = with_links_of(back.hardware, links);
  CHECK(mixed.intra_bandwidth == 7);
  CHECK(mixed.memory_bandwidth == Approx(hw.memory_bandwidth));
  CHECK_THROWS_WITH(cost_model_from_json("{\"version\": 1}", "p.json"), Catch::Contains("p.json"));
  CHECK_THROWS_AS(cost_model_from_json("not json", "p.json"), floe::InputError);
}

TEST_CASE("calibration: a scale and a per-action overhead from steps at two micro-batch counts", "[simulate]") {
  // Truth: scale 1.5 and 2 ms per action; at M = 4 the step is 100 ms of units and 12 actions
  // on its critical path, at M = 8 96 ms and 20.
  const std::vector<double> compute{0.100, 0.096}, actions{12, 20};
  const std::vector<double> measured{1.5 * 0.100 + 0.002 * 12, 1.5 * 0.096 + 0.002 * 20};
  const auto c = fit_calibration(measured, compute, actions);
  CHECK(c.scale == Approx(1.5));
  CHECK(c.action_overhead == Approx(0.002));
  // One point: the scale alone.
  const auto one = fit_calibration({0.15}, {0.1}, {12});
  CHECK(one.scale == Approx(1.5));
  CHECK(one.action_overhead == 0);
  // A negative overhead is no explanation: the scale of the first point.
  const auto neg = fit_calibration({0.15, 0.10}, {0.1, 0.1}, {12, 20});
  CHECK(neg.action_overhead == 0);
  CHECK(neg.scale == Approx(1.5));
  // Units faster inside a job than alone is no explanation either.
  const auto fast = fit_calibration({0.157, 0.178}, {0.159, 0.121}, {12, 20});
  CHECK(fast.action_overhead == 0);
  CHECK(fast.scale == Approx(0.157 / 0.159));
  CHECK_THROWS_AS(fit_calibration({}, {}, {}), std::invalid_argument);
  CHECK_THROWS_AS(fit_calibration({0.1}, {0}, {1}), std::invalid_argument);
}
