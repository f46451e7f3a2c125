#include "actors/freeze_controller.hpp"

#include <spdlog/spdlog.h>

namespace floe::actors {
namespace {

struct FreezeControllerState {
  static inline const char* name = "floe.freeze_controller";
};

}  // namespace

msg::freeze_controller_actor spawn_freeze_controller(caf::actor_system& sys,
                                                     std::unique_ptr<runtime::FreezePolicy> policy) {
  auto shared = std::shared_ptr<runtime::FreezePolicy>(std::move(policy));
  return sys.spawn([shared](msg::freeze_controller_actor::stateful_pointer<FreezeControllerState> self)
                       -> msg::freeze_controller_actor::behavior_type {
    return {
        [=](msg::freeze_query& q) -> caf::result<msg::freeze_decision> {
          runtime::FreezeObservation obs{q.epoch, q.step, q.frozen, q.layers, q.grad_norms, q.plasticity, q.timestep, q.val_loss, q.evaluations};
          try {
            const int f = shared->decide(obs);
            if (f != q.frozen)
              spdlog::info("freeze: policy {} freezes {} of {} blocks from epoch {}, step {}", shared->name(), f, q.layers,
                           q.epoch + 1, q.step);
            return msg::freeze_decision{f, shared->state()};
          } catch (const std::exception& e) {
            return caf::make_error(caf::sec::runtime_error, std::string("freeze policy ") + shared->name() + ": " + e.what());
          }
        },
    };
  });
}

}  // namespace floe::actors
