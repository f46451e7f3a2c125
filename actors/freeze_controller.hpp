#pragma once
// The freeze controller: receives the per-block gradient statistics of each freeze interval
// and answers with the new frozen-prefix length, decided by a policy (runtime/freeze_policy).
// Users plug in their own policy by subclassing runtime::FreezePolicy (docs/freeze.md).
#include "messages/freeze.hpp"
#include "runtime/freeze_policy.hpp"
#include "runtime/job_config.hpp"

namespace floe::actors {

msg::freeze_controller_actor spawn_freeze_controller(caf::actor_system& sys,
                                                     std::unique_ptr<runtime::FreezePolicy> policy);

// The policy that `freeze.*` of the job config names. Throws floe::InputError.
std::unique_ptr<runtime::FreezePolicy> make_configured_policy(const runtime::JobConfig& cfg);

}  // namespace floe::actors
