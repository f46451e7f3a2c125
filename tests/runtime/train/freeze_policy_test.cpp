#include "runtime/train/freeze_policy.hpp"
#include "runtime/train/configured_policy.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

using namespace floe::runtime;

namespace {

std::vector<int> schedule_row(int layers, int num, int den, int epochs) {
  std::vector<int> row;
  for (int e = 0; e < epochs; ++e) row.push_back(schedule_frozen_count(layers, num, den, e));
  return row;
}

// ceil(L·(1 − (a/b)^e)) the obvious way, in 128 bits; valid while b^e·L fits.
int schedule_by_int128(int layers, int num, int den, int epoch) {
  __int128 a_pow = 1, b_pow = 1;
  for (int e = 0; e < epoch; ++e) {
    a_pow *= (den - num);
    b_pow *= den;
  }
  const __int128 numerator = static_cast<__int128>(layers) * (b_pow - a_pow);
  return static_cast<int>((numerator + b_pow - 1) / b_pow);
}

FreezeObservation observe(int epoch, int frozen, int layers, std::vector<double> norms = {}) {
  FreezeObservation obs;
  obs.epoch = epoch;
  obs.step = 100L * epoch;
  obs.frozen = frozen;
  obs.layers = layers;
  obs.grad_norms = std::move(norms);
  return obs;
}

}  // namespace

TEST_CASE("schedule_frozen_count reproduces the spec 2.3 table exactly", "[freeze]") {
  CHECK(schedule_row(12, 1, 3, 10) == std::vector<int>{0, 4, 7, 9, 10, 11, 11, 12, 12, 12});
  CHECK(schedule_row(12, 2, 5, 10) == std::vector<int>{0, 5, 8, 10, 11, 12, 12, 12, 12, 12});
  CHECK(schedule_row(12, 1, 2, 10) == std::vector<int>{0, 6, 9, 11, 12, 12, 12, 12, 12, 12});
  CHECK(schedule_row(12, 1, 4, 10) == std::vector<int>{0, 3, 6, 7, 9, 10, 10, 11, 11, 12});
  CHECK(schedule_row(12, 1, 5, 10) == std::vector<int>{0, 3, 5, 6, 8, 9, 9, 10, 10, 11});
  CHECK(schedule_row(24, 1, 3, 10) == std::vector<int>{0, 8, 14, 17, 20, 21, 22, 23, 24, 24});
}

TEST_CASE("schedule_frozen_count is exact on integer-valued steps", "[freeze]") {
  // L·(1 − (1−α)^e) is exactly 4, 6 and 9 here; a floating ceil can round these up by one.
  CHECK(schedule_frozen_count(12, 1, 3, 1) == 4);
  CHECK(schedule_frozen_count(12, 1, 2, 1) == 6);
  CHECK(schedule_frozen_count(12, 1, 2, 2) == 9);
  CHECK(schedule_frozen_count(12, 2, 6, 1) == 4);  // unreduced α = 2/6
}

TEST_CASE("schedule_frozen_count agrees with plain 128-bit arithmetic", "[freeze]") {
  for (int den = 1; den <= 12; ++den) {
    for (int num = 0; num <= den; ++num) {
      for (int layers : {0, 1, 7, 12, 24, 48}) {
        for (int epoch = 0; epoch <= 12; ++epoch) {
          INFO("alpha = " << num << "/" << den << ", L = " << layers << ", epoch = " << epoch);
          REQUIRE(schedule_frozen_count(layers, num, den, epoch) ==
                  schedule_by_int128(layers, num, den, epoch));
        }
      }
    }
  }
}

TEST_CASE("schedule_frozen_count stays exact past 128 bits and is monotone", "[freeze]") {
  // α = 1/1000: (999/1000)^e needs thousands of epochs to push L·q^e below 1.
  int previous = 0;
  for (int epoch = 0; epoch <= 3000; epoch += 50) {
    const int frozen = schedule_frozen_count(12, 1, 1000, epoch);
    REQUIRE(frozen >= previous);
    REQUIRE(frozen <= 12);
    previous = frozen;
  }
  // 12·0.999^e < 1 first at e = 2484 (ln 12 / −ln 0.999 = 2483.7).
  CHECK(schedule_frozen_count(12, 1, 1000, 2483) == 11);
  CHECK(schedule_frozen_count(12, 1, 1000, 2484) == 12);
  CHECK(schedule_frozen_count(12, 0, 5, 100) == 0);
  CHECK(schedule_frozen_count(12, 5, 5, 1) == 12);
}

TEST_CASE("schedule_frozen_count rejects bad inputs naming them", "[freeze]") {
  CHECK_THROWS_WITH(schedule_frozen_count(-1, 1, 3, 1), Catch::Contains("layers = -1"));
  CHECK_THROWS_WITH(schedule_frozen_count(12, 1, 3, -2), Catch::Contains("epoch = -2"));
  CHECK_THROWS_WITH(schedule_frozen_count(12, 4, 3, 1), Catch::Contains("alpha = 4/3"));
  CHECK_THROWS_AS(schedule_frozen_count(12, 1, 0, 1), std::invalid_argument);
}

TEST_CASE("adaptive_frozen_count freezes up to the most converged block, within the bound",
          "[freeze]") {
  const std::vector<double> prev(12, 10.0);
  std::vector<double> now(12, 5.0);  // every block changed by 50%

  SECTION("a converged block low in the stack freezes only up to it") {
    now[2] = 9.9;  // 1% change
    CHECK(adaptive_frozen_count(0, 12, 1.0 / 3.0, now, prev) == 3);
  }
  SECTION("a converged block high in the stack is capped by the alpha bound") {
    now[10] = 9.9;
    CHECK(adaptive_frozen_count(0, 12, 1.0 / 3.0, now, prev) == 4);  // 0 + floor(12/3)
    CHECK(adaptive_frozen_count(4, 12, 1.0 / 3.0, now, prev) == 6);  // 4 + floor(8/3)
  }
  SECTION("frozen blocks are never candidates") {
    now[1] = 10.0;  // unchanged, but already frozen
    now[7] = 9.0;
    CHECK(adaptive_frozen_count(5, 12, 1.0 / 2.0, now, prev) == 8);
  }
  SECTION("ties go to the lowest block") {
    CHECK(adaptive_frozen_count(3, 12, 1.0 / 2.0, now, prev) == 4);
  }
  SECTION("a small alpha still moves by one block") {
    now[11] = 10.0;
    CHECK(adaptive_frozen_count(10, 12, 0.1, now, prev) == 11);
  }
  SECTION("no movement without alpha, without a baseline or with nothing left") {
    CHECK(adaptive_frozen_count(3, 12, 0.0, now, prev) == 3);
    CHECK(adaptive_frozen_count(3, 12, 0.5, now, std::vector<double>(12, 0.0)) == 3);
    CHECK(adaptive_frozen_count(12, 12, 0.5, now, prev) == 12);
  }
  SECTION("inconsistent inputs throw, naming what was wrong") {
    CHECK_THROWS_WITH(adaptive_frozen_count(0, 12, 0.5, std::vector<double>(11, 1.0), prev),
                      Catch::Contains("grad_norms has 11 entries"));
    std::vector<double> negative = now;
    negative[4] = -1.0;
    CHECK_THROWS_WITH(adaptive_frozen_count(0, 12, 0.5, negative, prev),
                      Catch::Contains("grad_norms[4]"));
    CHECK_THROWS_WITH(adaptive_frozen_count(13, 12, 0.5, now, prev),
                      Catch::Contains("current_frozen = 13"));
    CHECK_THROWS_WITH(adaptive_frozen_count(0, 12, 1.5, now, prev), Catch::Contains("alpha"));
  }
}

TEST_CASE("adaptive freezing is monotone and alpha-bounded on random norms", "[freeze]") {
  std::mt19937 rng(20210721);
  std::uniform_real_distribution<double> norm(0.0, 5.0);
  for (double alpha : {0.1, 0.25, 1.0 / 3.0, 0.5, 0.9}) {
    for (int layers : {1, 6, 12, 24}) {
      AdaptivePolicy policy(alpha);
      int frozen = 0;
      for (int epoch = 0; epoch < 40; ++epoch) {
        std::vector<double> norms(static_cast<size_t>(layers));
        for (int l = 0; l < layers; ++l)
          norms[static_cast<size_t>(l)] = l < frozen ? 0.0 : norm(rng);
        const int next = policy.decide(observe(epoch, frozen, layers, norms));
        const int active = layers - frozen;
        const int allowed =
            active == 0 ? 0 : std::max(1, static_cast<int>(std::floor(alpha * active + 1e-9)));
        INFO("alpha " << alpha << " L " << layers << " epoch " << epoch << " F " << frozen);
        REQUIRE(next >= frozen);
        REQUIRE(next <= frozen + allowed);
        REQUIRE(next <= layers);
        frozen = next;
      }
    }
  }
}

TEST_CASE("AdaptivePolicy records a baseline before it freezes anything", "[freeze]") {
  AdaptivePolicy policy(0.5);
  std::vector<double> first(12, 4.0), second(12, 2.0);
  second[0] = 4.0;                                       // block 0 did not change at all
  CHECK(policy.decide(observe(0, 0, 12)) == 0);          // no statistics yet
  CHECK(policy.decide(observe(1, 0, 12, first)) == 0);   // baseline only
  CHECK(policy.decide(observe(2, 0, 12, second)) == 1);  // block 0 is the most converged
  CHECK(policy.name() == "adaptive");
  CHECK_THROWS_WITH(policy.decide(observe(3, 1, 12, std::vector<double>(10, 1.0))),
                    Catch::Contains("grad_norms has 10 entries"));
}

TEST_CASE("AdaptivePolicy restored from its state decides as the original would", "[freeze][checkpoint]") {
  AdaptivePolicy original(0.5), fresh(0.5), restored(0.5);
  std::vector<double> first(12, 4.0), second(12, 2.0);
  second[0] = 4.0;
  CHECK(original.decide(observe(1, 0, 12, first)) == 0);  // baseline only
  restored.restore(original.state());                       // as a checkpoint carries it
  CHECK(restored.decide(observe(2, 0, 12, second)) == 1);
  CHECK(fresh.decide(observe(2, 0, 12, second)) == 0);      // without it: a baseline again
  CHECK(SchedulePolicy(12, 1, 3).state().empty());          // stateless policies save nothing
}

TEST_CASE("SchedulePolicy follows the schedule and checks the layer count", "[freeze]") {
  SchedulePolicy policy(12, 1, 3);
  const std::vector<int> expected{0, 4, 7, 9, 10, 11, 11, 12, 12, 12};
  int frozen = 0;
  for (int epoch = 0; epoch < 10; ++epoch) {
    frozen = policy.decide(observe(epoch, frozen, 12));
    CHECK(frozen == expected[static_cast<size_t>(epoch)]);
  }
  // The original hard-coded L = 12 for every model; here a mismatch is an error, not a cap.
  CHECK_THROWS_WITH(policy.decide(observe(1, 0, 24)), Catch::Contains("built for 12 layers"));
  CHECK_THROWS_AS(SchedulePolicy(12, 2, 1), std::invalid_argument);
  // Never moves a prefix down, even when asked at an earlier epoch.
  CHECK(policy.decide(observe(1, 9, 12)) == 9);
  // With warm-up (first decision at epoch 3) the same table starts three epochs later.
  SchedulePolicy late(12, 1, 3, 3);
  frozen = 0;
  for (int epoch = 0; epoch < 8; ++epoch) {
    frozen = late.decide(observe(epoch, frozen, 12));
    CHECK(frozen == (epoch < 3 ? 0 : expected[static_cast<size_t>(epoch - 2)]));
  }
  CHECK_THROWS_AS(SchedulePolicy(12, 1, 3, 0), std::invalid_argument);
}

TEST_CASE("ManualPolicy follows its script", "[freeze]") {
  ManualPolicy policy({{5, 6}, {2, 3}, {8, 20}});  // out of order on purpose; 20 > L clamps
  const std::vector<int> expected{0, 0, 3, 3, 3, 6, 6, 6, 12, 12, 12};
  int frozen = 0;
  for (int epoch = 0; epoch <= 10; ++epoch) {
    frozen = policy.decide(observe(epoch, frozen, 12));
    CHECK(frozen == expected[static_cast<size_t>(epoch)]);
  }
  CHECK(policy.decide(observe(3, 5, 12)) == 5);  // monotone: a lower scripted count is ignored
  CHECK_THROWS_WITH(ManualPolicy({{1, 4}, {3, 2}}), Catch::Contains("lowers the frozen count"));
  CHECK_THROWS_WITH(ManualPolicy({{1, 4}, {1, 5}}), Catch::Contains("epoch 1 appears twice"));
  CHECK_THROWS_AS(ManualPolicy({{-1, 4}}), std::invalid_argument);
}

TEST_CASE("NoFreeze keeps the current prefix and rejects bad observations", "[freeze]") {
  NoFreeze policy;
  CHECK(policy.decide(observe(3, 0, 12)) == 0);
  CHECK(policy.decide(observe(3, 5, 12)) == 5);
  CHECK_THROWS_WITH(policy.decide(observe(3, 13, 12)), Catch::Contains("frozen = 13"));
}

TEST_CASE("make_freeze_policy builds every named policy", "[freeze]") {
  FreezePolicyConfig config;
  config.layers = 12;
  config.alpha_num = 2;
  config.alpha_den = 5;
  config.script = {{1, 2}};
  for (const auto& name : freeze_policy_names()) {
    const auto policy = make_freeze_policy(name, config);
    REQUIRE(policy != nullptr);
    CHECK(policy->name() == name);
  }
  CHECK(make_freeze_policy("schedule", config)->decide(observe(1, 0, 12)) == 5);
  CHECK(make_freeze_policy("manual", config)->decide(observe(1, 0, 12)) == 2);
}

TEST_CASE("make_freeze_policy names an unknown policy and the valid ones", "[freeze]") {
  const FreezePolicyConfig config;
  CHECK_THROWS_AS(make_freeze_policy("gradual", config), std::invalid_argument);
  CHECK_THROWS_WITH(make_freeze_policy("gradual", config),
                    Catch::Contains("'gradual'") && Catch::Contains("none") &&
                        Catch::Contains("schedule") && Catch::Contains("adaptive") &&
                        Catch::Contains("manual"));
}

TEST_CASE("with decisions every N steps, schedules and scripts count the observation's timestep", "[freeze]") {
  // freeze.interval_steps: the coordinator sends the intervals of N steps so far as the
  // timestep; the epoch is where the job is, and the policies ignore it then.
  SchedulePolicy schedule(12, 1, 3, 1);
  auto obs = observe(0, 0, 12);  // still in the first epoch...
  obs.timestep = 1;              // ...at the first interval
  CHECK(schedule.decide(obs) == schedule_frozen_count(12, 1, 3, 1));
  obs.timestep = 3;
  CHECK(schedule.decide(obs) == schedule_frozen_count(12, 1, 3, 3));
  ManualPolicy manual({{0, 0}, {2, 3}, {5, 6}});
  obs = observe(0, 0, 12);
  obs.timestep = 2;
  CHECK(manual.decide(obs) == 3);
  obs.timestep = 4;
  CHECK(manual.decide(obs) == 3);
  obs.timestep = 5;
  CHECK(manual.decide(obs) == 6);
  obs.timestep = -1;  // no timestep: the epoch counts, as before
  CHECK(manual.decide(obs) == 0);
}

TEST_CASE("the guard holds freezing while the evaluation loss is above its value at the last freeze", "[freeze]") {
  // A schedule of 12 blocks, α = 1/3, from epoch 1: 4, 7, 9, 10, ... at epochs 1, 2, 3, 4.
  GuardedPolicy guard(std::make_unique<SchedulePolicy>(12, 1, 3, 1));
  CHECK(guard.name() == "schedule+guard");
  // (epoch, evaluation loss after the previous epoch) -> frozen count.
  struct Row {
    int epoch;
    double loss;
    int expected;
  };
  const std::vector<Row> script{
      {0, -1, 0},    // no evaluation yet, the schedule's warm-up
      {1, 1.00, 4},  // freezes at loss 1.00
      {2, 1.10, 4},  // the loss rose after that freeze: hold
      {3, 1.05, 4},  // still above 1.00: hold again
      {4, 0.95, 7},  // back below: the schedule resumes where it stopped (its epoch 2), not at 10
      {5, 0.90, 9},  // below 0.95: on
      {6, 0.91, 9},  // above 0.90: hold
      {7, 0.80, 10},
  };
  int frozen = 0;
  for (size_t i = 0; i < script.size(); ++i) {
    auto obs = observe(script[i].epoch, frozen, 12);
    obs.val_loss = script[i].loss;
    obs.evaluations = script[i].epoch;
    frozen = guard.decide(obs);
    INFO("epoch " << script[i].epoch);
    CHECK(frozen == script[i].expected);
  }
  CHECK(guard.held() == 3);
}

TEST_CASE("the guard judges only fresh evaluations, tolerates a rise, and restores its state", "[freeze]") {
  auto make = [] { return GuardedPolicy(std::make_unique<ManualPolicy>(std::vector<std::pair<long, int>>{{1, 2}, {2, 4}, {3, 6}}), 0.05); };
  auto guard = make();
  auto at = [](int when, int frozen, double loss, int evaluations) {
    auto obs = observe(0, frozen, 12);
    obs.timestep = when;  // decisions in steps: the epoch stays 0
    obs.val_loss = loss;
    obs.evaluations = evaluations;
    return obs;
  };
  CHECK(guard.decide(at(1, 0, 1.0, 1)) == 2);  // freezes at loss 1.0 (evaluation 1)
  CHECK(guard.decide(at(2, 2, 1.0, 1)) == 4);  // no evaluation since: nothing to judge, on
  CHECK(guard.decide(at(3, 4, 1.04, 2)) == 6);  // +4 % is within the 5 % tolerance
  auto held = make();
  CHECK(held.decide(at(1, 0, 1.0, 1)) == 2);
  CHECK(held.decide(at(2, 2, 1.2, 2)) == 2);  // +20 %: hold
  CHECK(held.decide(at(3, 2, 1.2, 2)) == 2);  // no fresh evaluation: still holding
  // A fresh guard restored from the state decides as the original.
  auto resumed = make();
  resumed.restore(held.state());
  CHECK(resumed.held() == held.held());
  // Recovered: the script goes on two decisions behind (at 4 it says 4, not 6).
  CHECK(resumed.decide(at(4, 2, 0.9, 3)) == 4);
  CHECK(held.decide(at(4, 2, 0.9, 3)) == 4);
  CHECK_THROWS_AS(GuardedPolicy(nullptr), std::invalid_argument);
  CHECK_THROWS_AS(GuardedPolicy(std::make_unique<NoFreeze>(), -0.1), std::invalid_argument);
}

TEST_CASE("the gradient window sums an interval, or slides over about the last W steps", "[freeze]") {
  GradientWindow interval(3, 0);  // the sums since the previous decision
  interval.add_step({0, 1, 2}, {1, 4, 9});
  interval.add_step({0, 2, 7}, {3, 7, 100});  // block 7 does not exist: ignored
  CHECK(interval.take() == std::vector<double>{2, 2, 4});
  CHECK(interval.take() == std::vector<double>{0, 0, 0});  // restarted at the decision
  GradientWindow sliding(2, 4);  // each step scales the sums by 3/4 first
  sliding.add_step({0, 1}, {16, 1});
  sliding.add_step({0}, {4});  // block 1 frozen or without a gradient: it only decays
  auto norms = sliding.take();
  CHECK(norms[0] == Approx(std::sqrt(16 * 0.75 + 4)));
  CHECK(norms[1] == Approx(std::sqrt(0.75)));
  sliding.add_step({0, 1}, {0, 0});  // nothing restarted: the next decision's window overlaps
  CHECK(sliding.take()[0] == Approx(std::sqrt((16 * 0.75 + 4) * 0.75)));
  // A constant stream converges to W times a step's value: a window of about W steps.
  GradientWindow steady(1, 10);
  for (int i = 0; i < 500; ++i) steady.add_step({0}, {2.0});
  CHECK(steady.sums()[0] == Approx(20.0));
  GradientWindow resumed(1, 10);
  resumed.restore(steady.sums());
  CHECK(resumed.take() == steady.take());
  CHECK_THROWS_AS(resumed.restore({1, 2}), std::invalid_argument);
  CHECK_THROWS_AS(resumed.restore({-1}), std::invalid_argument);
  CHECK_THROWS_AS(resumed.add_step({0}, {}), std::invalid_argument);
  CHECK_THROWS_AS(GradientWindow(2, -1), std::invalid_argument);
}

TEST_CASE("the plasticity policy freezes the bottom blocks whose output stopped moving, within the bound",
          "[freeze][plasticity]") {
  auto with = [](int frozen, std::vector<double> plasticity) {
    auto obs = observe(1, frozen, 4);
    obs.plasticity = std::move(plasticity);
    return obs;
  };
  PlasticityPolicy all(1.0, 0.25);
  CHECK(all.signal() == BlockSignal::plasticity);
  CHECK(all.decide(observe(1, 0, 4)) == 0);                  // nothing measured yet
  CHECK(all.decide(with(0, {1.0, 2.0, 1.0, 1.0})) == 0);     // the first measurements are the peaks
  CHECK(all.decide(with(0, {0.3, 0.1, 0.1, 0.1})) == 0);     // block 0 at 30 % of its peak: not yet
  CHECK(all.decide(with(0, {0.2, 0.5, 0.3, 0.1})) == 2);     // blocks 0 and 1 at 25 %; block 2 at 30 % stops the prefix
  CHECK(all.decide(with(2, {-1.0, -1.0, -1.0, 0.1})) == 2);  // block 2 not measured: the prefix stops there
  CHECK(all.decide(with(2, {-1.0, -1.0, 0.25, 0.1})) == 4);
  // A rise raises the peak: 0.5 is a quarter of the new peak 2.0, not of the old 1.0.
  PlasticityPolicy one(1.0, 0.25);
  one.decide(with(0, {1.0, 1.0, 1.0, 1.0}));
  CHECK(one.decide(with(0, {2.0, 1.0, 1.0, 1.0})) == 0);
  CHECK(one.decide(with(0, {0.5, 1.0, 1.0, 1.0})) == 1);
  // α bounds a decision: max(1, floor(α · active)) blocks.
  PlasticityPolicy third(1.0 / 3.0, 0.25);
  third.decide(with(0, {1.0, 1.0, 1.0, 1.0}));
  CHECK(third.decide(with(0, {0.1, 0.1, 0.1, 0.1})) == 1);
  CHECK(third.decide(with(1, {0.1, 0.1, 0.1, 0.1})) == 2);
  // A policy restored from the state decides as the original.
  PlasticityPolicy restored(1.0 / 3.0, 0.25);
  restored.restore(third.state());
  CHECK(restored.decide(with(2, {0.1, 0.1, 0.1, 0.1})) == third.decide(with(2, {0.1, 0.1, 0.1, 0.1})));
  CHECK_THROWS_WITH(PlasticityPolicy(0.5, 0.0), Catch::Contains("threshold"));
  CHECK_THROWS_WITH(PlasticityPolicy(0.5, 1.5), Catch::Contains("threshold"));
  CHECK_THROWS_WITH(all.decide(with(0, {1.0})), Catch::Contains("one per layer"));
}

TEST_CASE("the plasticity window averages an interval's measurements per block", "[freeze][plasticity]") {
  PlasticityWindow w(3);
  CHECK(w.take().empty());  // nothing measured: the policy sees no observation
  w.add({0, 1, 7, -1}, {0.5, 0.25, 9.0, 9.0});  // blocks outside [0, 3) (embedding, head) are ignored
  w.add({0}, {1.5});
  CHECK(w.take() == std::vector<double>{1.0, 0.25, -1.0});
  CHECK(w.take().empty());  // it restarts
  CHECK_THROWS_WITH(w.add({0, 1}, {1.0}), Catch::Contains("2 blocks with 1 values"));
}

TEST_CASE("planned_freeze_steps: when each block's freeze is due, asked as the coordinator asks", "[freeze][lr]") {
  auto cfg = floe::runtime::load_job_config("", {});
  cfg.model.depth = 6;
  cfg.epochs = 5;
  cfg.freeze.policy = "schedule";  // α = 1/3 from epoch 2: F = 0, 0, 2, 4, 5 in epochs 1..5
  CHECK(planned_freeze_steps(cfg, 469) == std::vector<int64_t>{938, 938, 1407, 1407, 1876, 2345});

  cfg.freeze.policy = "manual";  // decisions every 100 steps: timestep k from step 100k on
  cfg.freeze.script = {0, 0, 1, 1, 3, 6};
  cfg.freeze.interval_steps = 100;
  CHECK(planned_freeze_steps(cfg, 469) == std::vector<int64_t>{200, 400, 400, 500, 500, 500});

  cfg.freeze.interval_steps = 0;  // every second epoch: the script is read at epochs 2 and 4
  cfg.freeze.interval = 2;
  CHECK(planned_freeze_steps(cfg, 469) == std::vector<int64_t>{938, 1876, 1876, 2345, 2345, 2345});

  cfg.freeze.policy = "none";
  CHECK(planned_freeze_steps(cfg, 469) == std::vector<int64_t>(6, 2345));

  cfg.freeze.policy = "adaptive";
  CHECK_THROWS_WITH(planned_freeze_steps(cfg, 469), Catch::Contains("freeze.anneal") && Catch::Contains("adaptive"));
}

TEST_CASE("keep_top: the top blocks never freeze, whatever the inner policy decides", "[freeze]") {
  KeepTopPolicy capped(std::make_unique<SchedulePolicy>(6, 1, 2, 1), 1);  // α = 1/2: 3, 5, 6, 6, ...
  CHECK(capped.name() == "schedule+keep1");
  CHECK(capped.signal() == BlockSignal::none);
  int frozen = 0;
  std::vector<int> seen;
  for (int e = 1; e <= 5; ++e) {
    FreezeObservation obs;
    obs.epoch = e;
    obs.frozen = frozen;
    obs.layers = 6;
    frozen = capped.decide(obs);
    seen.push_back(frozen);
  }
  CHECK(seen == std::vector<int>{3, 5, 5, 5, 5});
  FreezeObservation already;  // frozen beyond the cap before (a resumed job with another config): kept
  already.epoch = 6;
  already.frozen = 6;
  already.layers = 6;
  CHECK(capped.decide(already) == 6);
  CHECK_THROWS_WITH(KeepTopPolicy(std::make_unique<NoFreeze>(), -1), Catch::Contains("keep_top"));
  CHECK_THROWS_WITH(KeepTopPolicy(nullptr, 1), Catch::Contains("keep_top"));

  auto cfg = floe::runtime::load_job_config("", {});
  cfg.model.depth = 6;
  cfg.epochs = 5;
  cfg.freeze.alpha = 0.5;
  cfg.freeze.start = 1;
  cfg.freeze.keep_top = 1;
  CHECK(configured_freeze_policy(cfg)->name() == "schedule+keep1");
  CHECK(planned_freeze_steps(cfg, 100) == std::vector<int64_t>{100, 100, 100, 200, 200, 500});
  CHECK_THROWS_WITH(floe::runtime::load_job_config("", {"freeze.keep_top=7"}), Catch::Contains("freeze.keep_top"));
}
