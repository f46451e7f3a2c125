#pragma once
// The cache protocol: coordinator <-> a node agent, the owner of the node's AutoCache
// (runtime/activation_cache.hpp holds the store; the stages of the node read and fill it
// directly). The frozen boundary moves with every pipelines_request (messages/membership.hpp).
#include "messages/control.hpp"

#include <caf/all.hpp>

namespace floe::msg {

using cache_stats_atom = caf::atom_constant<caf::atom("cstats")>;
using invalidate_atom = caf::atom_constant<caf::atom("invalid")>;

using cache_actor = caf::typed_actor<caf::reacts_to<invalidate_atom>,
                                     caf::replies_to<cache_stats_atom>::with<runtime::CacheStats>>;

}  // namespace floe::msg
