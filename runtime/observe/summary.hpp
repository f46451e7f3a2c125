#pragma once
// The machine-readable record of a run (`--summary out.json`).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace floe::runtime {

// AutoCache counters (runtime/state/activation_cache.hpp). In an epoch record, the counts and
// seconds are that epoch's; the bytes are held at its end.
struct CacheStats {
  int64_t hits = 0;        // rows served at the asked level
  int64_t misses = 0;      // rows computed from the raw input
  int64_t advanced = 0;    // rows carried from a lower level
  int64_t rejected = 0;    // rows not admitted for lack of room
  int64_t evicted = 0;     // rows dropped: dead levels, an unfreeze, an invalidation
  int64_t entries = 0;     // rows held now
  int64_t memory_bytes = 0, disk_bytes = 0;  // arena bytes held now, per tier
  int64_t peak_memory_bytes = 0;
  double advance_seconds = 0;  // time spent advancing rows
  double compute_seconds = 0;  // time spent computing missed rows from the raw input
  double read_seconds = 0;     // time spent copying hit rows out of the arenas
  std::vector<int32_t> bypassed_levels;  // levels the probe found not worth caching
};

// The statistics of several nodes' caches as one.
CacheStats cache_sum(const std::vector<CacheStats>& nodes);

// `now` with its counters and seconds made relative to `before` (bytes stay as in `now`).
CacheStats cache_delta(const CacheStats& now, const CacheStats& before);

struct EpochRecord {
  int epoch = 0;
  double train_loss = 0;
  double train_accuracy = 0;
  double test_loss = 0;
  double test_accuracy = 0;
  double seconds = 0;          // training + evaluation
  double train_seconds = 0;
  double samples_per_second = 0;  // training samples / train_seconds
  int pipeline_length = 0;
  int chunks = 1;  // stages per device (virtual stages)
  int replicas = 0;
  int micro_batches = 0;
  int frozen_layers = 0;
  std::vector<double> stage_busy_fraction;  // per device of a pipeline, averaged over replicas
  std::vector<double> stage_bubble_fraction;  // per device: idle share of the replicas' step time
  int64_t samples = 0;                      // training samples used this epoch
  int replicas_identical = -1;              // -1 not checked; 1 all replicas bit-identical at epoch end
  bool cached = false;                      // AutoCache was on
  CacheStats cache;
};

struct Layout {
  int pipeline_length = 0, micro_batches = 0, replicas = 0;
};

// A live re-plan after a freeze decision (or its failure, after which the old plan stays).
struct TransitionRecord {
  int epoch = 0;       // the first epoch on the new plan
  int64_t step = 0;    // global step at which it happened
  Layout from, to;
  int frozen_layers = 0;
  double seconds = 0;
  bool ok = true;
  std::string error;
  std::string cause = "freeze";  // or "recovery: <what was lost>"
};

struct TrainingSummary {
  double final_test_accuracy = 0;
  double final_test_loss = 0;
  double total_seconds = 0;
  double setup_seconds = 0;
  int64_t steps = 0;
  std::vector<EpochRecord> epochs;
  std::vector<TransitionRecord> transitions;
  std::map<std::string, std::string> config;
  std::string resumed_from;     // the checkpoint this run continued ("" = a fresh start)
  int64_t resumed_at_step = 0;  // its global step
  int checkpoints = 0;          // written by this run
  double checkpoint_seconds = 0;  // training time they took (collecting state and writing)
};

std::string to_json(const TrainingSummary& s, int indent = 2);

// Reads what to_json wrote (a checkpoint carries the summary so far). Throws
// std::invalid_argument or nlohmann's exceptions on text that is not such a summary.
TrainingSummary summary_from_json(const std::string& text);

}  // namespace floe::runtime
