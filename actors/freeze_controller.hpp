#pragma once
// The freeze controller: receives the per-block gradient statistics of each freeze interval
// and answers with the new frozen-prefix length, decided by a policy (runtime/freeze_policy).
// Users plug in their own policy by subclassing runtime::FreezePolicy (docs/freeze.md).
#include "messages/freeze.hpp"
#include "runtime/train/freeze_policy.hpp"

namespace floe::actors {

msg::freeze_controller_actor spawn_freeze_controller(caf::actor_system& sys,
                                                     std::unique_ptr<runtime::FreezePolicy> policy);

}  // namespace floe::actors
