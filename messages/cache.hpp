#pragma once
// The cache protocol: coordinator <-> the node's cache actor (runtime/activation_cache.hpp
// holds the store; the stages of the node read and fill it directly).
#include "messages/control.hpp"

#include <caf/all.hpp>

namespace floe::msg {

using cache_stats_atom = caf::atom_constant<caf::atom("cstats")>;
using invalidate_atom = caf::atom_constant<caf::atom("invalid")>;

// The frozen boundary moved to `frozen_units` (an unfreeze drops the levels above it).
struct cache_level {
  int32_t frozen_units = 0;
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cache_level& x) {
  return f(caf::meta::type_name("cache_level"), x.frozen_units);
}

using cache_actor = caf::typed_actor<caf::reacts_to<cache_level>, caf::reacts_to<invalidate_atom>,
                                     caf::replies_to<cache_stats_atom>::with<runtime::CacheStats>>;

}  // namespace floe::msg
