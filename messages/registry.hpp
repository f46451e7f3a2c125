#pragma once
// Registers every message type with an actor system: a type that crosses a process must be
// known to CAF by name (an unregistered one only fails at run time).
#include "messages/cache.hpp"
#include "messages/control.hpp"
#include "messages/events.hpp"
#include "messages/freeze.hpp"
#include "messages/membership.hpp"
#include "messages/training.hpp"

namespace floe::msg {

inline void register_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<wire_tensor>("floe.wire_tensor");
  cfg.add_message_type<runtime::Action>("floe.action");
  cfg.add_message_type<activation>("floe.activation");
  cfg.add_message_type<gradient>("floe.gradient");
  cfg.add_message_type<stage_links>("floe.stage_links");
  cfg.add_message_type<stage_task>("floe.stage_task");
  cfg.add_message_type<stage_report>("floe.stage_report");
  cfg.add_message_type<named_tensors>("floe.named_tensors");
  cfg.add_message_type<stage_state>("floe.stage_state");
  cfg.add_message_type<replica_step>("floe.replica_step");
  cfg.add_message_type<step_report>("floe.step_report");
  cfg.add_message_type<runtime::EpochRecord>("floe.epoch_record");
  cfg.add_message_type<runtime::Layout>("floe.layout");
  cfg.add_message_type<runtime::TransitionRecord>("floe.transition_record");
  cfg.add_message_type<runtime::TrainingSummary>("floe.training_summary");
  cfg.add_message_type<freeze_query>("floe.freeze_query");
  cfg.add_message_type<freeze_decision>("floe.freeze_decision");
  cfg.add_message_type<runtime::CacheStats>("floe.cache_stats");
  cfg.add_message_type<runtime::Event>("floe.event");
  cfg.add_message_type<runtime::Fault>("floe.fault");
  cfg.add_message_type<event_batch>("floe.event_batch");
  cfg.add_message_type<subscribe>("floe.subscribe");
  cfg.add_message_type<inject_fault>("floe.inject_fault");
  cfg.add_message_type<scripted_freeze>("floe.scripted_freeze");
  cfg.add_message_type<pipelines_request>("floe.pipelines_request");
  cfg.add_message_type<pipelines_built>("floe.pipelines_built");
  cfg.add_message_type<pipelines_join>("floe.pipelines_join");
  cfg.add_message_type<join_request>("floe.join_request");
  cfg.add_message_type<join_welcome>("floe.join_welcome");
  cfg.add_message_type<node_ready>("floe.node_ready");
  cfg.add_message_type<std::vector<int64_t>>("std::vector<int64_t>");

}

// The actor system configuration floe runs with.
struct system_config : caf::actor_system_config {
  explicit system_config(int scheduler_threads = 2) {
    register_types(*this);
    set("scheduler.max-threads", scheduler_threads);
    set("logger.verbosity", caf::atom("quiet"));
  }
};

}  // namespace floe::msg
