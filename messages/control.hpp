#pragma once
// The job protocol: whoever launches a job <-> the coordinator.
#include "messages/events.hpp"
#include "runtime/summary.hpp"

#include <caf/all.hpp>

namespace floe::runtime {
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, CacheStats& x) {
  return f(caf::meta::type_name("cache_stats"), x.hits, x.misses, x.advanced, x.rejected, x.evicted, x.entries,
           x.memory_bytes, x.disk_bytes, x.peak_memory_bytes, x.advance_seconds, x.compute_seconds, x.read_seconds,
           x.bypassed_levels);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, EpochRecord& x) {
  return f(caf::meta::type_name("epoch_record"), x.epoch, x.train_loss, x.train_accuracy, x.test_loss,
           x.test_accuracy, x.seconds, x.train_seconds, x.samples_per_second, x.pipeline_length, x.replicas,
           x.micro_batches, x.frozen_layers, x.stage_busy_fraction, x.stage_bubble_fraction, x.samples,
           x.replicas_identical, x.cached, x.cache);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, Layout& x) {
  return f(caf::meta::type_name("layout"), x.pipeline_length, x.micro_batches, x.replicas);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, TransitionRecord& x) {
  return f(caf::meta::type_name("transition_record"), x.epoch, x.step, x.from, x.to, x.frozen_layers, x.seconds,
           x.ok, x.error, x.cause);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, TrainingSummary& x) {
  return f(caf::meta::type_name("training_summary"), x.final_test_accuracy, x.final_test_loss, x.total_seconds,
           x.setup_seconds, x.steps, x.epochs, x.transitions, x.config, x.resumed_from, x.resumed_at_step,
           x.checkpoints, x.checkpoint_seconds);
}
}  // namespace floe::runtime

namespace floe::msg {

using start_atom = caf::atom_constant<caf::atom("start")>;
// Take a checkpoint at the next step boundary (as SIGUSR1 does for `floe train`).
using checkpoint_atom = caf::atom_constant<caf::atom("ckpt")>;

// Runs the whole job and answers with its summary (or the error that stopped it). Hooks
// may attach observers, inject faults and script freezes (messages/events.hpp).
using coordinator_actor = caf::typed_actor<caf::replies_to<start_atom>::with<runtime::TrainingSummary>,
                                           caf::reacts_to<subscribe>, caf::reacts_to<inject_fault>,
                                           caf::reacts_to<scripted_freeze>, caf::reacts_to<checkpoint_atom>>;

}  // namespace floe::msg
