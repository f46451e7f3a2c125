#pragma once
// The cache protocol: coordinator <-> a node agent, the owner of the node's AutoCache
// (runtime/state/activation_cache.hpp holds the store; the stages of the node read and fill it
// directly). The frozen boundary moves with every pipelines_request (messages/membership.hpp).
#include "messages/exact.hpp"
#include "runtime/observe/summary.hpp"

#include <caf/all.hpp>

namespace floe::runtime {
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, CacheStats& x) {
  return f(caf::meta::type_name("cache_stats"), x.hits, x.misses, x.advanced, x.rejected, x.evicted, x.entries,
           x.memory_bytes, x.disk_bytes, x.peak_memory_bytes, msg::exact(x.advance_seconds),
           msg::exact(x.compute_seconds), msg::exact(x.read_seconds), x.bypassed_levels);
}
}  // namespace floe::runtime

namespace floe::msg {

using cache_stats_atom = caf::atom_constant<caf::atom("cstats")>;
using invalidate_atom = caf::atom_constant<caf::atom("invalid")>;

using cache_actor = caf::typed_actor<caf::reacts_to<invalidate_atom>,
                                     caf::replies_to<cache_stats_atom>::with<runtime::CacheStats>>;

}  // namespace floe::msg
