#include "actors/freeze_controller.hpp"

#include "runtime/errors.hpp"

#include <spdlog/spdlog.h>

#include <cmath>

namespace floe::actors {
namespace {

struct FreezeControllerState {
  static inline const char* name = "floe.freeze_controller";
};

// α as an exact fraction (1/3 stays 1/3) so that the schedule's integer arithmetic applies.
std::pair<int, int> as_fraction(double alpha) {
  for (int den = 1; den <= 1000; ++den) {
    const double num = std::round(alpha * den);
    if (std::abs(alpha - num / den) < 1e-9) return {static_cast<int>(num), den};
  }
  return {static_cast<int>(std::round(alpha * 1000000)), 1000000};
}

}  // namespace

std::unique_ptr<runtime::FreezePolicy> make_configured_policy(const runtime::JobConfig& cfg) {
  runtime::FreezePolicyConfig pc;
  pc.layers = static_cast<int>(cfg.model.depth);
  std::tie(pc.alpha_num, pc.alpha_den) = as_fraction(cfg.freeze.alpha);
  pc.start = cfg.freeze.start;
  for (size_t i = 0; i < cfg.freeze.script.size(); ++i) pc.script.emplace_back(static_cast<long>(i), cfg.freeze.script[i]);
  try {
    return runtime::make_freeze_policy(cfg.freeze.policy, pc);
  } catch (const std::invalid_argument& e) {
    throw InputError(std::string("config: freeze: ") + e.what());
  }
}

msg::freeze_controller_actor spawn_freeze_controller(caf::actor_system& sys,
                                                     std::unique_ptr<runtime::FreezePolicy> policy) {
  auto shared = std::shared_ptr<runtime::FreezePolicy>(std::move(policy));
  return sys.spawn([shared](msg::freeze_controller_actor::stateful_pointer<FreezeControllerState> self)
                       -> msg::freeze_controller_actor::behavior_type {
    return {
        [=](msg::freeze_query& q) -> caf::result<msg::freeze_decision> {
          runtime::FreezeObservation obs{q.epoch, q.step, q.frozen, q.layers, q.grad_norms};
          try {
            const int f = shared->decide(obs);
            if (f != q.frozen) spdlog::info("freeze: policy {} freezes {} of {} blocks from epoch {}", shared->name(), f, q.layers, q.epoch + 1);
            return msg::freeze_decision{f, shared->state()};
          } catch (const std::exception& e) {
            return caf::make_error(caf::sec::runtime_error, std::string("freeze policy ") + shared->name() + ": " + e.what());
          }
        },
    };
  });
}

}  // namespace floe::actors
