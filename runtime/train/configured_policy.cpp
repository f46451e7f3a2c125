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
    if (!cfg.freeze.guard) return policy;
    return std::make_unique<GuardedPolicy>(std::move(policy), cfg.freeze.guard_tolerance);
  } catch (const std::invalid_argument& e) {
    throw InputError(std::string("config: freeze: ") + e.what());
  }
}

}  // namespace floe::runtime
