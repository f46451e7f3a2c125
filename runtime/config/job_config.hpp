#pragma once
// The job's configuration: a TOML file plus `--set key=value` overrides, both addressed by
// dotted keys. Every key is declared once in a schema (name, meaning, default) that drives
// parsing, validation, `floe train --help` and docs/config.md.
#include "models/model.hpp"
#include "runtime/plan/schedule.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace floe::runtime {

struct DataConfig {
  std::string dataset = "fashion-mnist";  // fashion-mnist | synthetic | sst2
  std::string root;   // the dataset's files; empty = its default folder (default_data_root)
  std::string vocab;  // sst2: vocab.txt; empty = vocab.txt in the data folder
  double mlm_probability = 0.15;
  int64_t length_buckets = 0;  // text: batches of similar length from windows of this many batches (0 = off)
  std::string eval_split;  // sst2: "dev" (GLUE's convention) or "test"; empty = the dataset's own
  int64_t offset = 0;       // skip the first N training samples (before subset)
  int64_t subset = 0;       // use only the first N training samples (0 = all)
  int64_t test_subset = 0;  // use only the first N test samples (0 = all)
  std::string augment = "none";  // none | flip (random horizontal flip of training samples)
  std::vector<int> classes;      // train and evaluate on these labels only (empty = all)
};

struct PipelineConfig {
  int length = 2;          // K
  int micro_batches = 4;   // M (0: profiled per K, runtime/plan/microbatch_profile.hpp)
  std::string schedule = "gpipe";
  int virtual_stages = 0;  // v: chunks per device (0: what the schedule needs, runtime::chunks_for)
  std::vector<int> partition;  // units per stage; empty = balanced by parameter count
  std::string profile = "~/.cache/floe/micro_batches.json";  // where profiled M are kept ("" = this run only)
  bool span_nodes = false;  // a pipeline may span nodes (runtime/plan/placement.hpp)
  std::string taper = "auto";  // tapered micro-batches: "auto" | "on" | "off" (runtime::Taper)
  std::string tensor_plane = "ucx";  // how tensors cross processes: "ucx" or "caf" (messages)
};

// AutoCache (runtime/state/activation_cache.hpp).
struct CacheConfig {
  bool enabled = true;         // cache frozen-prefix outputs (when the probe finds it pays)
  std::string budget = "25%";  // memory tier: bytes ("2GiB") or a share of host memory ("25%")
  std::string disk_budget = "8GiB";  // disk tier beyond the memory budget ("0" = none)
  std::string dir;             // disk tier folder; empty = $TMPDIR (or /var/tmp) + /floe-cache
  bool frozen_augmentation = false;  // accept caching one augmented view per sample
};

struct OptimizerConfig {
  double lr = 2e-3;
  double min_lr = 1e-5;
  double weight_decay = 0.05;
  int64_t warmup = 200;  // steps
  double beta1 = 0.9, beta2 = 0.999;
};

struct FreezeConfig {
  std::string policy = "schedule";  // none | schedule | adaptive | manual | plasticity
  double alpha = 1.0 / 3.0;     // at most this fraction of the active blocks freezes per decision
  int interval = 1;             // epochs between freeze decisions
  int64_t interval_steps = 0;   // > 0: decide every N training steps, mid-epoch, instead (docs/freeze.md)
  int start = 2;                // schedule: the epoch its timesteps count from (warm-up before it)
  std::vector<int> script;      // manual: frozen blocks from epoch i on (index i)
  int64_t window_steps = 0;     // > 0: the adaptive rule's norms over a sliding window of about N steps
  bool guard = false;           // hold freezing while the evaluation loss is above its value at the last freeze
  double guard_tolerance = 0;   // relative rise the guard tolerates
  int64_t plasticity_steps = 50;     // plasticity: training steps between measurements
  double plasticity_threshold = 0.25;  // plasticity: converged at this share of a block's peak
  // "off" | "cosine" | "scaled": each block's rate decays to min_lr by its planned freeze
  // (schedule, manual; docs/freeze.md → Annealing to the freeze)
  std::string anneal = "off";
  int keep_top = 0;  // the top N blocks never freeze (0: every block may)
};

struct PlannerConfig {
  std::string mode = "optimal";     // optimal | paper
  bool strict = false;              // compress only when M(T) < M(0) instead of <=
  bool frozen_cost = true;          // weigh the frozen prefix by 1/6 on stage 0 (the paper's λ)
  // What a unit weighs: "parameters" (the paper's, spec §3.1) or "measured" (its forward and
  // backward time on the job's own micro-batches, timed when the job starts).
  std::string costs = "parameters";
};


// Built-in observers (runtime/observe/event_writer.hpp): a path turns one on; empty = off.
struct ObserveConfig {
  std::string metrics;  // JSONL, a record per step and per epoch
  std::string trace;    // Chrome Trace Event / Perfetto JSON
  std::string report;   // self-contained HTML report
};

// Checkpoints (runtime/state/checkpoint.hpp, docs/checkpoints.md).
struct CheckpointConfig {
  std::string dir;            // write checkpoints here; empty = none
  int64_t interval = 1000;    // training steps between checkpoints (0 = only at the end and on demand)
  int keep = 2;               // newest checkpoints kept (older ones are removed)
  std::string resume;         // continue from this checkpoint folder (or the newest valid one in it)
};

struct JobConfig {
  models::ModelConfig model;  // with the task (key `task`)
  DataConfig data;
  int devices = 2;
  int threads_per_device = 1;
  PipelineConfig pipeline;
  int replicas = 0;  // R; 0 = "auto": as many pipelines as the devices hold, ⌊devices / K⌋ (AutoDP)
  FreezeConfig freeze;
  bool elastic = true;  // re-plan (K, R, partition) when layers freeze
  bool autodp = true;   // elastic: devices a shorter pipeline frees get new replicas (false: they idle)
  PlannerConfig planner;
  CacheConfig cache;
  OptimizerConfig optimizer;
  int64_t batch_size = 128;  // global mini-batch, split over the replicas
  int epochs = 5;
  uint64_t seed = 42;
  int64_t log_interval = 50;  // steps between progress lines (when not a terminal)
  ObserveConfig observe;
  double collective_timeout = 30;  // seconds a gradient all-reduce across nodes waits for a peer
  bool recover = true;  // on the loss of a node: re-plan over the rest and continue (docs/checkpoints.md)
  double step_timeout = 600;  // seconds a step may take before the job stops as hung (0 = no limit)
  std::string save_weights;  // write the final weights (a PyTorch state dict) here; empty = no
  std::string save_format = "pytorch";  // pytorch (floe's names) | hf (a Hugging Face folder)
  std::string init_weights;  // a state dict or a Hugging Face checkpoint (runtime/state/hf_checkpoint.hpp); empty = random
  std::vector<std::string> init_skip;  // name prefixes init_weights may lack or hold in excess
  CheckpointConfig checkpoint;
  std::vector<std::string> faults;  // fault script (runtime/control/faults.hpp), e.g. "slow stage=1 seconds=0.01 at=5"
};

struct ConfigKey {
  std::string name;         // dotted
  std::string type;         // "integer", "number", "string", "size", "boolean", "integer list"
  std::string default_value;
  std::string help;
};

// The schema, in documentation order.
const std::vector<ConfigKey>& config_keys();

// Reads `path` (if non-empty) then applies `overrides` ("key=value"), then validates.
// Throws floe::InputError naming the file / key, the value and what was expected.
JobConfig load_job_config(const std::string& path, const std::vector<std::string>& overrides);

// Cross-key checks (M ≤ per-replica batch, the partition, ...). Throws floe::InputError.
void validate(const JobConfig& cfg);

// planner.costs = "measured": samples per micro-batch to time the units on.
int64_t planner_micro_batch(const JobConfig& cfg);
// The checks that need the job's devices, once they are known: the `devices` key of a job in
// one process, the devices its nodes brought to a coordinator (`where` says which). K must fit
// and an explicit R must fit beside it. Throws floe::InputError.
void check_devices(const JobConfig& cfg, int devices, const std::string& where);
// R for `devices`: the explicit `replicas`, or ⌊devices / K⌋ (at least 1) when it is "auto".
int replicas_on(const JobConfig& cfg, int devices);

// Every key as a `key=value` override that load_job_config reads back to an equal config
// (how a coordinator hands its job to the nodes that join it).
std::vector<std::string> to_overrides(const JobConfig& cfg);

// The folder data.root names, or the dataset's default when it is empty.
std::string data_root(const DataConfig& data);
// The vocabulary of a text job: data.vocab; else the vocab.txt of an init_weights checkpoint
// folder (Hugging Face ships the tokenizer with the weights); else vocab.txt in data_root.
std::string vocab_path(const JobConfig& cfg);

// A TOML basic string: quoted, with quotes and backslashes escaped.
std::string toml_string(const std::string& s);

// Flat key -> value strings of the effective configuration (for summaries and logs).
std::map<std::string, std::string> to_flat_map(const JobConfig& cfg);

}  // namespace floe::runtime
