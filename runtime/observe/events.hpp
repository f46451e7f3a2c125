#pragma once
// The event stream: what every actor reports about the run (steps, micro-batch forward and
// backward spans per stage, tensor transfers, all-reduces, optimizer steps, freeze
// decisions, transitions and their phases, cache statistics, faults). One plain record
// type, so that observers (metrics, trace, report, user hooks) are plain code.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace floe::runtime {

enum class EventKind : int8_t {
  job,         // the job started (start_us is the clock origin); detail: model and plan
  step,        // a training step over all replicas: duration, loss, samples, per_stage bubble
  eval,        // an evaluation step
  forward,     // one micro-batch's forward on one stage
  backward,    // one micro-batch's backward on one stage
  reduce,      // a stage's gradient all-reduce with its peers
  optimizer,   // a stage's optimizer step
  transfer,    // an activation or gradient from one stage to the next: bytes, send to receipt
  stage_step,  // a stage's whole step: duration from task to report, values.busy_us
  epoch,       // an epoch ended: losses, accuracies, K, M, R, frozen, per_stage bubble
  freeze,      // the freeze controller decided: values.frozen
  transition,  // a live re-plan (detail "export", "spawn", "cache" for phases; "" for the whole)
  cache,       // AutoCache counters of an epoch
  fault,       // a fault was injected or detected; detail says which
  checkpoint,  // a checkpoint was written: duration, values.bytes; detail: its folder
};

const char* kind_name(EventKind k);

struct Event {
  EventKind kind = EventKind::step;
  int64_t start_us = 0;     // steady clock, microseconds (runtime::now_us)
  int64_t duration_us = 0;  // 0 for instants
  int32_t epoch = -1;
  int64_t step = -1;        // global training step, or evaluation batch
  int32_t replica = -1, stage = -1, device = -1, micro_batch = -1;
  std::string detail;
  std::map<std::string, double> values;  // named figures (loss, samples, bytes, K, ...)
  std::vector<double> per_stage;         // step, epoch: bubble fraction per pipeline position
};

// Microseconds on the steady clock that every actor of the process shares.
int64_t now_us();

// One JSON object on one line (the metrics file's format), times relative to `origin_us`.
std::string to_json_line(const Event& e, int64_t origin_us);

// Bubble accounting: per pipeline position, the share of the replicas' step wall time that
// the stage at that position was idle. `busy[s]` is the compute time of position s summed
// over replicas (and steps), `makespan` the replicas' step times summed the same way.
std::vector<double> bubble_fractions(const std::vector<double>& busy, double makespan);

}  // namespace floe::runtime
