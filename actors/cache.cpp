#include "actors/cache.hpp"

namespace floe::actors {
namespace {

struct CacheState {
  static inline const char* name = "floe.cache";
  std::shared_ptr<runtime::ActivationCache> store;
};

msg::cache_actor::behavior_type cache_behavior(msg::cache_actor::stateful_pointer<CacheState> self,
                                               std::shared_ptr<runtime::ActivationCache> store) {
  self->state.store = std::move(store);
  return {
      [=](msg::cache_level l) { self->state.store->set_level(l.frozen_units); },
      [=](msg::invalidate_atom) { self->state.store->invalidate(); },
      [=](msg::cache_stats_atom) { return self->state.store->stats(); },
  };
}

}  // namespace

msg::cache_actor spawn_cache(caf::actor_system& sys, std::shared_ptr<runtime::ActivationCache> store) {
  return sys.spawn(cache_behavior, std::move(store));
}

}  // namespace floe::actors
