// Live transitions: as blocks freeze the pipeline shortens, replicas spawn on freed devices,
// and training continues with every weight, optimizer state and sample accounted for.
#include <torch/torch.h>

#include "launch/job.hpp"
#include "runtime/train/configured_policy.hpp"
#include "models/errors.hpp"

#include <catch2/catch.hpp>

using namespace floe;

namespace {

runtime::JobConfig tiny_elastic_job(int devices) {
  auto cfg = runtime::load_job_config(
      "", {"data.dataset=synthetic", "model.depth=4", "model.dim=16", "model.heads=2", "model.patch=7",
           "batch_size=64", "optimizer.warmup=4", "pipeline.micro_batches=4"});
  cfg.devices = devices;
  cfg.pipeline.length = devices;
  cfg.planner.frozen_cost = false;  // compress as eagerly as the original
  return cfg;
}

actors::CoordinatorSpec spec_for(const runtime::JobConfig& cfg, int64_t train_size) {
  auto data = models::make_synthetic(train_size, 256, 10, 5);
  actors::CoordinatorSpec spec;
  spec.config = cfg;
  spec.train = std::make_shared<const models::Dataset>(data.train);
  spec.test = std::make_shared<const models::Dataset>(data.test);
  spec.verify_replicas = true;
  return spec;
}

}  // namespace

TEST_CASE("freezing step by step on 8 devices shortens the pipeline and multiplies replicas", "[elastic]") {
  auto cfg = tiny_elastic_job(8);
  cfg.epochs = 5;
  cfg.freeze.policy = "manual";
  cfg.freeze.script = {0, 1, 2, 3, 4};
  auto s = launch::run_job(spec_for(cfg, 1000));

  REQUIRE(s.epochs.size() == 5);
  std::vector<int> ks;
  for (size_t e = 0; e < s.epochs.size(); ++e) {
    const auto& r = s.epochs[e];
    INFO("epoch " << e << " K=" << r.pipeline_length << " R=" << r.replicas << " F=" << r.frozen_layers);
    ks.push_back(r.pipeline_length);
    CHECK(r.frozen_layers == cfg.freeze.script[e]);
    CHECK(r.samples == 1000);                      // every sample, once, whatever R is
    CHECK(r.replicas_identical == 1);              // all-reduce kept the replicas in lockstep
    CHECK(r.pipeline_length * r.replicas <= 8);
    if (e > 0) {
      CHECK(r.pipeline_length <= s.epochs[e - 1].pipeline_length);
      CHECK(r.train_loss < s.epochs[e - 1].train_loss * 1.1);  // no jump: head, optimizer and LR carried over
    }
  }
  CHECK(ks.front() == 8);
  CHECK(ks.back() == 1);
  CHECK(s.epochs.back().replicas == 8);
  // Each transition starts from the plan the one before it left, and leaves the plan that the
  // epochs with its frozen blocks then ran on. (How long one takes is the machine's business,
  // not the test's: no wall-clock bound here.)
  int changes = 0;
  for (size_t i = 0; i < s.transitions.size(); ++i) {
    const auto& t = s.transitions[i];
    INFO("transition " << i << " at step " << t.step << " to F=" << t.frozen_layers << ": K " << t.from.pipeline_length
                       << " -> " << t.to.pipeline_length << ", " << t.seconds << " s");
    CHECK(t.ok);
    CHECK(t.error.empty());
    CHECK(t.cause == "freeze");
    if (t.to.pipeline_length != t.from.pipeline_length) ++changes;
    CHECK(t.to.replicas == 8 / t.to.pipeline_length);
    if (i > 0) {
      CHECK(t.step > s.transitions[i - 1].step);
      CHECK(t.from.pipeline_length == s.transitions[i - 1].to.pipeline_length);
      CHECK(t.from.replicas == s.transitions[i - 1].to.replicas);
    }
    int ran_on = 0;
    for (const auto& r : s.epochs)
      if (r.frozen_layers == t.frozen_layers) {
        ++ran_on;
        CHECK(r.pipeline_length == t.to.pipeline_length);
        CHECK(r.replicas == t.to.replicas);
      }
    CHECK(ran_on == 1);
  }
  CHECK(changes >= 2);
}

TEST_CASE("freeze decisions every N steps under ZB-H1: live transitions mid-epoch, every sample once per epoch",
          "[elastic]") {
  auto cfg = tiny_elastic_job(4);
  cfg.epochs = 2;
  cfg.pipeline.schedule = "zb-h1";  // split backward through the transitions
  cfg.freeze.policy = "schedule";
  cfg.freeze.alpha = 0.5;
  cfg.freeze.start = 1;
  cfg.freeze.interval_steps = 4;  // 1000 samples in batches of 64: 16 steps an epoch, 4 decisions
  auto s = launch::run_job(spec_for(cfg, 1000));

  REQUIRE(s.epochs.size() == 2);
  for (const auto& r : s.epochs) {
    CHECK(r.samples == 1000);          // the sampler reshards the rest of the epoch at each switch
    CHECK(r.replicas_identical == 1);
  }
  REQUIRE(!s.transitions.empty());
  int mid_epoch = 0, last_frozen = 0;
  for (const auto& t : s.transitions) {
    INFO("transition at step " << t.step << " to F=" << t.frozen_layers);
    CHECK(t.ok);
    CHECK(t.cause == "freeze");
    CHECK(t.step % 4 == 0);             // only at decision steps
    CHECK(t.frozen_layers > last_frozen);
    last_frozen = t.frozen_layers;
    if (t.step % 16 != 0) ++mid_epoch;
  }
  CHECK(mid_epoch >= 1);
  CHECK(s.epochs[0].frozen_layers > 0);  // the first epoch froze: decisions need no epoch's end
  CHECK(s.epochs[1].frozen_layers >= s.epochs[0].frozen_layers);
  CHECK(s.epochs[1].train_loss < s.epochs[0].train_loss * 1.1);
}

TEST_CASE("freeze.anneal: the planned freezes are the ones that happen, and training goes on through them",
          "[elastic][lr]") {
  auto cfg = tiny_elastic_job(2);
  cfg.epochs = 2;
  cfg.freeze.policy = "manual";
  cfg.freeze.script = {0, 1, 1, 3};
  cfg.freeze.interval_steps = 5;  // 16 steps an epoch: decisions at steps 5, 10, 15, 20, ...
  cfg.freeze.anneal = "scaled";
  const auto planned = runtime::planned_freeze_steps(cfg, 16);
  REQUIRE(planned == std::vector<int64_t>{5, 15, 15, 32});
  auto s = launch::run_job(spec_for(cfg, 1000));
  REQUIRE(s.epochs.size() == 2);
  REQUIRE(s.transitions.size() == 2);
  CHECK(s.transitions[0].step == 5);
  CHECK(s.transitions[0].frozen_layers == 1);
  CHECK(s.transitions[1].step == 15);
  CHECK(s.transitions[1].frozen_layers == 3);
  for (const auto& r : s.epochs) {
    CHECK(r.samples == 1000);
    CHECK(r.replicas_identical == 1);
    CHECK(std::isfinite(r.train_loss));
  }
  CHECK(s.epochs[1].train_loss < s.epochs[0].train_loss);
}

TEST_CASE("a transition that fails midway leaves training running on the old plan", "[elastic]") {
  auto cfg = tiny_elastic_job(4);
  cfg.epochs = 3;
  cfg.freeze.policy = "manual";
  cfg.freeze.script = {0, 4};  // everything but the head freezes after epoch 1: K 4 -> 1
  auto spec = spec_for(cfg, 512);
  int faults = 0;
  spec.transition_fault = [&faults](const std::string& phase) {
    if (phase == "spawn" && faults++ == 0) throw std::runtime_error("injected: device lost while spawning");
  };
  auto s = launch::run_job(spec);
  REQUIRE(s.epochs.size() == 3);
  REQUIRE(s.transitions.size() == 2);
  CHECK_FALSE(s.transitions[0].ok);
  CHECK_THAT(s.transitions[0].error, Catch::Contains("injected"));
  CHECK(s.epochs[1].pipeline_length == 4);  // the old plan went on
  CHECK(s.epochs[1].frozen_layers == 0);
  CHECK(s.epochs[1].replicas_identical == 1);
  CHECK(s.transitions[1].ok);  // the next decision point retried and succeeded
  CHECK(s.epochs[2].pipeline_length == 1);
  CHECK(s.epochs[2].replicas == 4);
  CHECK(s.epochs[2].frozen_layers == 4);
}

TEST_CASE("a user freeze policy plugs into the freeze controller", "[elastic]") {
  // One more block per decision, whatever the gradients say.
  struct OneMore : runtime::FreezePolicy {
    int decide(const runtime::FreezeObservation& o) override { return std::min(o.frozen + 1, o.layers); }
    std::string name() const override { return "one-more"; }
  };
  auto cfg = tiny_elastic_job(2);
  cfg.epochs = 3;
  cfg.elastic = false;  // freeze only: K and R stay
  auto spec = spec_for(cfg, 256);
  spec.freeze_policy = [] { return std::make_unique<OneMore>(); };
  auto s = launch::run_job(spec);
  REQUIRE(s.epochs.size() == 3);
  for (int e = 0; e < 3; ++e) {
    CHECK(s.epochs[e].frozen_layers == e);
    CHECK(s.epochs[e].pipeline_length == 2);
    CHECK(s.epochs[e].replicas == 1);
  }
  // freeze.anneal plans from the configured policy, which a plugged-in one replaces: refused.
  spec.config.freeze.anneal = "cosine";
  CHECK_THROWS_WITH(launch::run_job(spec), Catch::Contains("freeze.anneal") && Catch::Contains("one-more"));
}

TEST_CASE("the adaptive policy freezes from measured gradient norms", "[elastic]") {
  auto cfg = tiny_elastic_job(2);
  cfg.epochs = 4;
  cfg.freeze.policy = "adaptive";
  cfg.freeze.alpha = 0.5;
  auto s = launch::run_job(spec_for(cfg, 512));
  REQUIRE(s.epochs.size() == 4);
  for (size_t e = 1; e < s.epochs.size(); ++e) {
    CHECK(s.epochs[e].frozen_layers >= s.epochs[e - 1].frozen_layers);
    // α-bounded: at most half of the active blocks (at least one) per decision
    const int active = 4 - s.epochs[e - 1].frozen_layers;
    CHECK(s.epochs[e].frozen_layers - s.epochs[e - 1].frozen_layers <= std::max(1, active / 2));
  }
  CHECK(s.epochs.back().frozen_layers > 0);
}

TEST_CASE("the plasticity policy freezes from the stages' measurements", "[elastic][plasticity]") {
  auto cfg = tiny_elastic_job(2);
  cfg.epochs = 4;
  cfg.freeze.policy = "plasticity";
  cfg.freeze.alpha = 0.5;
  cfg.freeze.plasticity_steps = 2;        // 4 measurements per epoch of 8 steps
  cfg.freeze.plasticity_threshold = 0.9;  // converged below 90 % of the peak: as the learning rate decays
  auto s = launch::run_job(spec_for(cfg, 512));
  REQUIRE(s.epochs.size() == 4);
  CHECK(s.epochs[0].frozen_layers == 0);
  CHECK(s.epochs[1].frozen_layers == 0);  // the first decision with measurements records the peaks
  for (size_t e = 1; e < s.epochs.size(); ++e) {
    CHECK(s.epochs[e].frozen_layers >= s.epochs[e - 1].frozen_layers);
    const int active = 4 - s.epochs[e - 1].frozen_layers;
    CHECK(s.epochs[e].frozen_layers - s.epochs[e - 1].frozen_layers <= std::max(1, active / 2));
    CHECK(s.epochs[e].samples == 512);
    CHECK(s.epochs[e].replicas_identical == 1);
  }
  CHECK(s.epochs.back().frozen_layers > 0);  // measured values reached the policy
}

TEST_CASE("AutoCache: replicas spawned by a transition read what the old ones cached; results match no cache",
          "[elastic][cache]") {
  auto cfg = tiny_elastic_job(4);
  cfg.epochs = 4;
  cfg.freeze.policy = "manual";
  cfg.freeze.script = {0, 2, 2, 4};
  auto cached = launch::run_job(spec_for(cfg, 512));
  REQUIRE(cached.epochs.size() == 4);
  const auto& e1 = cached.epochs[1];
  const auto& e2 = cached.epochs[2];
  const auto& e3 = cached.epochs[3];
  REQUIRE(e1.cached);
  CHECK(e1.cache.misses == 512 + 256);  // first epoch at the level: every train and test sample computed once
  CHECK(e2.cache.hits == 512 + 256);    // same level: nothing recomputed
  CHECK(e2.cache.misses == 0);
  // F 2 -> 4 spawned new replicas; they advanced the entries the old ones wrote.
  CHECK(e3.replicas > e2.replicas);
  CHECK(e3.cache.advanced > 0);
  CHECK(e3.cache.advanced + e3.cache.misses == 512 + 256);
  CHECK(e3.replicas_identical == 1);

  cfg.cache.enabled = false;
  auto plain = launch::run_job(spec_for(cfg, 512));
  for (size_t e = 0; e < 4; ++e) {
    INFO("epoch " << e << ": loss " << cached.epochs[e].train_loss << " cached vs " << plain.epochs[e].train_loss);
    CHECK_FALSE(plain.epochs[e].cached);
    // Cached rows were computed in other batches than a recomputation would use; BLAS
    // rounding is the only difference.
    CHECK(std::abs(cached.epochs[e].train_loss - plain.epochs[e].train_loss) < 1e-3 * plain.epochs[e].train_loss);
    CHECK(std::abs(cached.epochs[e].test_accuracy - plain.epochs[e].test_accuracy) <= 0.01);
  }

  // A budget far below the data: most rows are refused, training goes on, same results.
  cfg.cache.enabled = true;
  cfg.cache.budget = "64KiB";
  cfg.cache.disk_budget = "0";
  auto tight = launch::run_job(spec_for(cfg, 512));
  for (size_t e = 1; e < 4; ++e) {
    CHECK(tight.epochs[e].cache.peak_memory_bytes <= 64 * 1024);
    CHECK(tight.epochs[e].cache.disk_bytes == 0);
    CHECK(std::abs(tight.epochs[e].train_loss - plain.epochs[e].train_loss) < 1e-3 * plain.epochs[e].train_loss);
  }
  CHECK(tight.epochs[2].cache.rejected > 0);
  CHECK(tight.epochs[2].cache.hits > 0);
}

TEST_CASE("ZB-V (two chunks per device) through freezes: the chunks repartition, then one chunk on one device",
          "[elastic]") {
  auto cfg = tiny_elastic_job(4);
  cfg.epochs = 3;
  cfg.pipeline.schedule = "zb-v";
  cfg.planner.costs = "measured";  // the units timed at the start; the devices balanced on those times
  cfg.freeze.policy = "manual";
  cfg.freeze.script = {0, 2, 4};
  auto s = launch::run_job(spec_for(cfg, 512));

  REQUIRE(s.epochs.size() == 3);
  CHECK(s.epochs[0].pipeline_length == 4);
  CHECK(s.epochs[0].chunks == 2);  // 8 stages on 4 devices
  CHECK(s.epochs[0].stage_bubble_fraction.size() == 4);  // per device, its chunks together
  for (size_t e = 0; e < s.epochs.size(); ++e) {
    const auto& r = s.epochs[e];
    INFO("epoch " << e << " K=" << r.pipeline_length << " v=" << r.chunks << " R=" << r.replicas);
    CHECK(r.samples == 512);
    CHECK(r.replicas_identical == 1);
    CHECK(r.frozen_layers == cfg.freeze.script[e]);
    if (r.pipeline_length == 1) CHECK(r.chunks == 1);
    if (e > 0) CHECK(r.train_loss < s.epochs[e - 1].train_loss * 1.1);
  }
  CHECK(s.epochs.back().pipeline_length < 4);
  for (const auto& t : s.transitions) CHECK(t.ok);
}
