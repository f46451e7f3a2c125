#include "runtime/train/configured_policy.hpp"

#include "models/errors.hpp"

#include <cmath>
#include <stdexcept>

namespace floe::runtime {
namespace {

// α as an exact fraction (1/3 stays 1/3) so that the schedule's integer arithmetic applies.
std::pair<int, int> as_fraction(double alpha) {
  for (int den = 1; den <= 1000; ++den) {
    const double num = std::round(alpha * den);
    if (std::abs(alpha - num / den) < 1e-9) return {static_cast<int>(num), den};
  }
  return {static_cast<int>(std::round(alpha * 1000000)), 1000000};
}

}  // namespace

std::unique_ptr<FreezePolicy> configured_freeze_policy(const JobConfig& cfg) {
  FreezePolicyConfig pc;
  pc.layers = static_cast<int>(cfg.model.depth);
  std::tie(pc.alpha_num, pc.alpha_den) = as_fraction(cfg.freeze.alpha);
  pc.start = cfg.freeze.start;
  pc.threshold = cfg.freeze.plasticity_threshold;
  for (size_t i = 0; i < cfg.freeze.script.size(); ++i) pc.script.emplace_back(static_cast<long>(i), cfg.freeze.script[i]);
  try {
    auto policy = make_freeze_policy(cfg.freeze.policy, pc);
    if (cfg.freeze.guard) policy = std::make_unique<GuardedPolicy>(std::move(policy), cfg.freeze.guard_tolerance);
    if (cfg.freeze.keep_top > 0) policy = std::make_unique<KeepTopPolicy>(std::move(policy), cfg.freeze.keep_top);
    return policy;
  } catch (const std::invalid_argument& e) {
    throw InputError(std::string("config: freeze: ") + e.what());
  }
}

std::vector<int64_t> planned_freeze_steps(const JobConfig& cfg, int64_t steps_per_epoch) {
  JobConfig plain = cfg;
  plain.freeze.guard = false;
  auto policy = configured_freeze_policy(plain);
  if (policy->signal() != BlockSignal::none)
    throw InputError("config: freeze.anneal needs a policy that decides ahead of time (none, schedule, manual); \"" +
                     cfg.freeze.policy + "\" decides from what training measures");
  const int layers = static_cast<int>(cfg.model.depth);
  const int64_t total = steps_per_epoch * cfg.epochs;
  std::vector<int64_t> out(static_cast<size_t>(layers), total);
  const int64_t every = cfg.freeze.interval_steps > 0 ? cfg.freeze.interval_steps : steps_per_epoch * cfg.freeze.interval;
  int frozen = 0;
  for (int64_t step = every; step < total && frozen < layers && every > 0; step += every) {
    FreezeObservation obs;
    obs.epoch = static_cast<int>(step / steps_per_epoch);
    obs.step = step;
    obs.frozen = frozen;
    obs.layers = layers;
    if (cfg.freeze.interval_steps > 0) obs.timestep = static_cast<int>(step / cfg.freeze.interval_steps);
    const int next = clamp_frozen_count(policy->decide(obs), frozen, layers);
    for (int b = frozen; b < next; ++b) out[static_cast<size_t>(b)] = step;
    frozen = next;
  }
  return out;
}

}  // namespace floe::runtime
