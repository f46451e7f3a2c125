#pragma once
// The job protocol: whoever launches a job <-> the coordinator.
#include "messages/events.hpp"
#include "messages/membership.hpp"
#include "runtime/observe/summary.hpp"

#include <caf/all.hpp>

namespace floe::runtime {
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, EpochRecord& x) {
  return f(caf::meta::type_name("epoch_record"), x.epoch, msg::exact(x.train_loss), msg::exact(x.train_accuracy),
           msg::exact(x.test_loss), msg::exact(x.test_accuracy), msg::exact(x.seconds), msg::exact(x.train_seconds),
           msg::exact(x.samples_per_second), x.pipeline_length, x.replicas, x.micro_batches, x.frozen_layers,
           msg::exact(x.stage_busy_fraction), msg::exact(x.stage_bubble_fraction), x.samples, x.replicas_identical,
           x.cached, x.cache);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, Layout& x) {
  return f(caf::meta::type_name("layout"), x.pipeline_length, x.micro_batches, x.replicas);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, TransitionRecord& x) {
  return f(caf::meta::type_name("transition_record"), x.epoch, x.step, x.from, x.to, x.frozen_layers,
           msg::exact(x.seconds), x.ok, x.error, x.cause);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, TrainingSummary& x) {
  return f(caf::meta::type_name("training_summary"), msg::exact(x.final_test_accuracy), msg::exact(x.final_test_loss),
           msg::exact(x.total_seconds), msg::exact(x.setup_seconds), x.steps, x.epochs, x.transitions, x.config,
           x.resumed_from, x.resumed_at_step, x.checkpoints, msg::exact(x.checkpoint_seconds));
}
}  // namespace floe::runtime

namespace floe::msg {

using start_atom = caf::atom_constant<caf::atom("start")>;
// Take a checkpoint at the next step boundary (as SIGUSR1 does for `floe train`).
using checkpoint_atom = caf::atom_constant<caf::atom("ckpt")>;

// Runs the whole job and answers with its summary (or the error that stopped it). Hooks
// may attach observers, inject faults and script freezes (messages/events.hpp). A
// `node_ready` from this process (the registrar, or a test harness) adds a node to the
// running job at the next step boundary.
using coordinator_actor = caf::typed_actor<caf::replies_to<start_atom>::with<runtime::TrainingSummary>,
                                           caf::reacts_to<subscribe>, caf::reacts_to<inject_fault>,
                                           caf::reacts_to<scripted_freeze>, caf::reacts_to<checkpoint_atom>,
                                           caf::reacts_to<node_ready>>;

}  // namespace floe::msg
