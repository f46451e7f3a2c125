#pragma once
// The cache actor: one per node, the owner of the node's AutoCache store. Stages share the
// store itself (reads and fills are memory copies, not messages); the actor takes the
// control traffic: frozen-boundary moves, invalidation, statistics.
#include "messages/cache.hpp"
#include "runtime/activation_cache.hpp"

namespace floe::actors {

msg::cache_actor spawn_cache(caf::actor_system& sys, std::shared_ptr<runtime::ActivationCache> store);

}  // namespace floe::actors
