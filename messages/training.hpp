#pragma once
// The training protocol: replica <-> stages, stage <-> stage, coordinator <-> replicas.
#include "messages/events.hpp"
#include "messages/exact.hpp"
#include "messages/tensor.hpp"
#include "runtime/plan/schedule.hpp"

#include <caf/all.hpp>

#include <map>
#include <string>
#include <vector>

namespace floe::runtime {
// Actions travel inside stage tasks; the struct itself lives in the pure core.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, Action& x) {
  auto kind = static_cast<int8_t>(x.kind);
  auto load = caf::meta::load_callback([&]() -> caf::error {
    if (std::string("FBIWRS").find(static_cast<char>(kind)) == std::string::npos)
      return caf::make_error(caf::sec::invalid_argument, "action: unknown kind");
    x.kind = static_cast<ActionKind>(static_cast<char>(kind));
    return caf::none;
  });
  return f(caf::meta::type_name("action"), x.stage, kind, x.micro_batch, load);
}
}  // namespace floe::runtime

namespace floe::msg {

using params_atom = caf::atom_constant<caf::atom("params")>;
using grads_atom = caf::atom_constant<caf::atom("grads")>;
using export_atom = caf::atom_constant<caf::atom("export")>;
// A chunk of a device to another (virtual stages): the device's turn is yours.
using turn_atom = caf::atom_constant<caf::atom("turn")>;

// Stage k -> stage k+1 (with virtual stages, the stage after k, on the next device or the
// same one): the output of micro-batch `micro_batch` of `step`. Between stages
// of different processes with a tensor plane, `value` is empty and `ticket` says how to
// receive it over UCX.
struct activation {
  int64_t step = 0;
  int32_t micro_batch = 0;
  wire_tensor value;
  int64_t sent_us = 0;  // runtime::now_us at sending, when the job is observed (transfer events)
  tensor_ticket ticket;
};

// Stage k+1 -> stage k: the gradient of the loss with respect to that output.
struct gradient {
  int64_t step = 0;
  int32_t micro_batch = 0;
  wire_tensor value;
  int64_t sent_us = 0;
  tensor_ticket ticket;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, activation& x) {
  return f(caf::meta::type_name("activation"), x.step, x.micro_batch, x.value, x.sent_us, x.ticket);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, gradient& x) {
  return f(caf::meta::type_name("gradient"), x.step, x.micro_batch, x.value, x.sent_us, x.ticket);
}

// What a stage's neighbours (and, with virtual stages, the other chunks of its device) may send it.
using stage_peer = caf::typed_actor<caf::reacts_to<activation>, caf::reacts_to<gradient>, caf::reacts_to<turn_atom>>;

// A stage's neighbours; an invalid handle at either end of the pipeline. A neighbour in
// another process comes with the UCX worker address of that process when it has a tensor
// plane (empty: tensors travel inside the messages). With virtual stages, `chunks` are the
// stages of the same device (this one included) by their index in `chunk_stages`.
struct stage_links {
  stage_peer prev;
  stage_peer next;
  std::string prev_address;  // bytes (a std::string: CAF checks its length against the input)
  std::string next_address;
  std::vector<stage_peer> chunks;
  std::vector<int32_t> chunk_stages;
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stage_links& x) {
  return f(caf::meta::type_name("stage_links"), x.prev, x.next, x.prev_address, x.next_address, x.chunks,
           x.chunk_stages);
}

// A stage to itself, never across processes: a tensor from a neighbour could not be received
// over UCX, so the step fails with `error`.
struct transfer_failed {
  int64_t step = 0;
  std::string error;
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, transfer_failed& x) {
  return f(caf::meta::type_name("transfer_failed"), x.step, x.error);
}

// Replica -> stage: one step's program and the data this stage consumes.
struct stage_task {
  int64_t step = 0;
  bool train = true;
  double lr = 0;
  double loss_scale = 1;            // 1 / samples in the global batch
  std::vector<runtime::Action> program;
  std::vector<wire_tensor> inputs;   // first stage: one per micro-batch
  std::vector<wire_tensor> uids;     // first stage: the inputs' sample uids (int64), for AutoCache
  std::vector<wire_tensor> targets;  // last stage: one per micro-batch
  int8_t signal = 0;                 // runtime::BlockSignal the freeze policy reads: report it per block
  int32_t epoch = 0;
  bool predictions = false;          // last stage, evaluation: report each sample's class probabilities
  // Virtual stages: the program of this stage's device (all its chunks' actions, in the order
  // the device runs them); `program` is this stage's part of it. Empty: one stage per device.
  std::vector<runtime::Action> device_program;
  // freeze.anneal: the rate of each block 0..L−1 (the embedding takes block 0's; the head and
  // any block past the end take `lr`). Empty: every unit at `lr`.
  std::vector<double> block_lr;
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stage_task& x) {
  return f(caf::meta::type_name("stage_task"), x.step, x.train, exact(x.lr), exact(x.loss_scale), x.program,
           x.inputs, x.uids, x.targets, x.signal, x.epoch, x.predictions, x.device_program, exact(x.block_lr));
}

// Stage -> replica when its program has run. Loss and accuracy come from the last stage.
struct stage_report {
  int64_t step = 0;
  int32_t stage = 0;
  double loss_sum = 0;   // sum of the losses of its targets
  int64_t correct = 0;   // targets predicted right
  int64_t samples = 0;
  int64_t targets = 0;   // predictions scored: one per sample, or per masked token (MLM)
  double busy_seconds = 0;
  // stage_task::signal, per block of this stage: the squared gradient norm (after the
  // all-reduce) or the plasticity (runtime/train/stage_compute.hpp).
  std::vector<int32_t> blocks;
  std::vector<double> block_values;
  // stage_task::predictions: per micro-batch, softmax of the logits [n, classes] (float).
  std::vector<wire_tensor> probabilities;
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stage_report& x) {
  return f(caf::meta::type_name("stage_report"), x.step, x.stage, exact(x.loss_sum), x.correct, x.samples,
           x.targets, exact(x.busy_seconds), x.blocks, exact(x.block_values), x.probabilities);
}

// Parameters (or their gradients) of a stage, by qualified name.
struct named_tensors {
  std::vector<std::string> names;
  std::vector<wire_tensor> values;
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, named_tensors& x) {
  return f(caf::meta::type_name("named_tensors"), x.names, x.values);
}

// To and from the name -> tensor maps of the cores (runtime::NamedTensors).
inline named_tensors from_map(const std::map<std::string, torch::Tensor>& m) {
  named_tensors out;
  for (const auto& [name, t] : m) {
    out.names.push_back(name);
    out.values.push_back({t});
  }
  return out;
}
inline std::map<std::string, torch::Tensor> to_map(const named_tensors& x) {
  std::map<std::string, torch::Tensor> out;
  for (size_t i = 0; i < x.names.size() && i < x.values.size(); ++i) out[x.names[i]] = x.values[i].t;
  return out;
}

// Everything a stage holds, for moving its units to another stage: every parameter
// (frozen ones too) and the AdamW state of the trainable ones ("<name>#exp_avg", ...).
// `optimizer_steps`: the optimizer steps the stage has applied, one entry per stage (a
// replica's merged state has one per stage); -1 for a stage with nothing to train. Recovery
// reads whether the step in flight was applied from it (runtime/control/recovery.hpp).
struct stage_state {
  named_tensors parameters;
  named_tensors optimizer;
  std::vector<int64_t> optimizer_steps;
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stage_state& x) {
  return f(caf::meta::type_name("stage_state"), x.parameters, x.optimizer, x.optimizer_steps);
}

// Adds a stage's exported state into a replica's: the stages hold disjoint units.
inline void add_to(stage_state& replica, const stage_state& stage) {
  for (auto [dst, src] : {std::pair{&replica.parameters, &stage.parameters}, std::pair{&replica.optimizer, &stage.optimizer}}) {
    dst->names.insert(dst->names.end(), src->names.begin(), src->names.end());
    dst->values.insert(dst->values.end(), src->values.begin(), src->values.end());
  }
  replica.optimizer_steps.insert(replica.optimizer_steps.end(), stage.optimizer_steps.begin(),
                                 stage.optimizer_steps.end());
}

// A fault to apply (runtime/control/faults.hpp); sent by the coordinator at the fault's step.
using stage_actor = stage_peer::extend<caf::replies_to<stage_task>::with<stage_report>, caf::reacts_to<runtime::Fault>,
                                       caf::reacts_to<stage_links>, caf::reacts_to<transfer_failed>,
                                       caf::replies_to<params_atom>::with<named_tensors>,
                                       caf::replies_to<grads_atom>::with<named_tensors>,
                                       caf::replies_to<export_atom>::with<stage_state>>;

enum class split : int8_t { train = 0, test = 1 };

// Coordinator -> replica: train on (or evaluate) these samples as one step.
struct replica_step {
  int64_t step = 0;
  bool train = true;
  double lr = 0;
  std::vector<int64_t> uids;   // this replica's shard
  int64_t global_samples = 0;  // samples in the whole step over all replicas
  int8_t signal = 0;           // runtime::BlockSignal the stages report per block this step
  int32_t epoch = 0;           // for per-epoch augmentation
  int32_t micro_batches = 0;   // M for this step (0: the replica's own); the profiler varies it
  bool predictions = false;    // evaluation: report each sample's class probabilities
  int8_t taper = 0;            // runtime::Taper: 0 off, 1 on, 2 auto (training steps; runtime::micro_batch_sizes)
  std::vector<double> block_lr;  // freeze.anneal: per block (stage_task::block_lr); empty: all at lr
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, replica_step& x) {
  return f(caf::meta::type_name("replica_step"), x.step, x.train, exact(x.lr), x.uids, x.global_samples, x.signal,
           x.epoch, x.micro_batches, x.predictions, x.taper, exact(x.block_lr));
}

struct step_report {
  int64_t step = 0;
  double seconds = 0;  // the replica's step time (summed over replicas once joined)
  double loss_sum = 0;
  int64_t correct = 0;
  int64_t samples = 0;
  int64_t targets = 0;
  std::vector<double> stage_busy_seconds;  // per device of the pipeline (its chunks' busy time summed)
  std::vector<int32_t> blocks;  // replica_step::signal per block, over all stages
  std::vector<double> block_values;
  // replica_step::predictions: the samples and their class probabilities [n, classes].
  std::vector<int64_t> uids;
  std::vector<wire_tensor> probabilities;
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, step_report& x) {
  return f(caf::meta::type_name("step_report"), x.step, exact(x.seconds), exact(x.loss_sum), x.correct, x.samples,
           x.targets, exact(x.stage_busy_seconds), x.blocks, exact(x.block_values), x.uids, x.probabilities);
}

// Adds `r` (another replica's report of the same step, or the next step's) into `sum`: times,
// losses and counts add up, busy time per stage position too, predictions are appended. The
// per-block values are the first replica's: gradient norms are all-reduced, the same on every
// replica, and one replica's plasticity measures the weights that all of them share.
inline void add_to(step_report& sum, const step_report& r) {
  sum.seconds += r.seconds;
  sum.loss_sum += r.loss_sum;
  sum.correct += r.correct;
  sum.samples += r.samples;
  sum.targets += r.targets;
  if (sum.stage_busy_seconds.size() < r.stage_busy_seconds.size())
    sum.stage_busy_seconds.resize(r.stage_busy_seconds.size(), 0.0);
  for (size_t s = 0; s < r.stage_busy_seconds.size(); ++s) sum.stage_busy_seconds[s] += r.stage_busy_seconds[s];
  if (sum.blocks.empty()) {
    sum.blocks = r.blocks;
    sum.block_values = r.block_values;
  }
  sum.uids.insert(sum.uids.end(), r.uids.begin(), r.uids.end());
  sum.probabilities.insert(sum.probabilities.end(), r.probabilities.begin(), r.probabilities.end());
}

using replica_actor = caf::typed_actor<caf::replies_to<replica_step>::with<step_report>>;

}  // namespace floe::msg
