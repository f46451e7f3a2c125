#pragma once
// Checkpoints: everything a job needs to continue where it stopped, in one folder per step.
//
//   DIR/step-000000120/
//     parameters.pt   the whole model as a PyTorch state dict (torch.load reads it)
//     optimizer.pt    AdamW state per trainable parameter: "<name>#step|#exp_avg|#exp_avg_sq"
//     job.json        the coordinator's state (JobState below) and the summary so far
//     config.toml     the job's configuration, one `key = value` per line
//     MANIFEST        written last: each file's size and the SHA-256 of each 1 MiB chunk
//
// A checkpoint is written into a hidden temporary folder, every file fsync'ed, then renamed
// into place and the parent fsync'ed: a crash leaves either the old set or the new one. A
// folder without a MANIFEST, or whose files differ from it, is never loaded; the error names
// the file and the byte offset of the first chunk that differs.
#include "runtime/config/job_config.hpp"

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace floe::runtime {

// Where the coordinator stood when the checkpoint was taken: always at a step boundary.
struct JobState {
  int epoch = 0;             // the epoch in progress (== epochs when the job had ended)
  int64_t step = 0;          // training steps of that epoch already done
  int64_t global_step = 0;   // training steps of the whole job already done
  bool decided = false;      // this epoch's freeze decision is made (false: make it on resume)
  // The plan in use (the frozen boundary is its frozen_blocks).
  int frozen_blocks = 0;
  std::vector<int> units_per_stage;  // K·v stages
  int chunks = 1;                    // v: stages per device
  int micro_batches = 0;
  int replicas = 0;
  std::vector<int> node_devices;      // devices per node it ran on
  std::vector<double> block_grad_sq;  // gradient statistics of the freeze interval so far
  std::vector<double> policy_state;   // the freeze policy's (FreezePolicy::state)
  // The epoch so far, so that its record comes out whole.
  double loss_sum = 0;
  int64_t correct = 0, samples = 0, targets = 0;
  std::vector<double> busy;
  double makespan = 0;
  double epoch_seconds = 0;
  std::string summary_json;  // the run's summary so far (runtime::to_json)
};

struct Checkpoint {
  JobState job;
  std::map<std::string, torch::Tensor> parameters, optimizer;
  std::vector<std::string> config;  // key = value lines (runtime::to_overrides)
  std::string path;                 // the folder it was read from or written to
};

// A MANIFEST: the chunk size and, per file, its size and the SHA-256 of each chunk.
struct ManifestFile {
  int64_t bytes = 0;
  std::vector<std::string> sha256;
};
struct Manifest {
  int64_t chunk_bytes = 0;
  std::map<std::string, ManifestFile> files;  // every file of a checkpoint, by name
};

// The parsers read_checkpoint applies to a folder's files; `what` names the file in errors.
// Each throws InputError for anything but what write_checkpoint writes.
Manifest parse_manifest(const std::string& text, const std::string& what);
JobState job_state_from_json(const std::string& text, const std::string& what);

// "step-000000120" for global step 120.
std::string checkpoint_name(int64_t global_step);

// Writes DIR/step-<global_step> atomically (replacing one of the same step), then removes all
// but the newest `keep` checkpoints. Returns the folder. Throws InputError naming the path.
std::string write_checkpoint(const std::string& dir, const Checkpoint& c, int keep);

// Reads one checkpoint folder and verifies it against its MANIFEST. Throws InputError naming
// the file and what is wrong (missing, truncated, the offset of a corrupt chunk, bad JSON).
Checkpoint read_checkpoint(const std::string& folder);

// The checkpoint to resume from: `path` itself when it is a checkpoint folder, else the newest
// of its step-* folders that verifies. Each newer one passed over is described in `skipped`.
// Throws InputError when there is none.
Checkpoint read_latest_checkpoint(const std::string& path, std::vector<std::string>* skipped = nullptr);

// A resumed job keeps its model, data and batch: throws InputError naming the first `model.*`,
// `batch_size`, `seed`, `data.dataset`, `data.subset` or `data.augment` key whose value in
// `now` differs from the checkpoint's configuration.
void check_resumable(const Checkpoint& c, const JobConfig& now);

// On-demand checkpoints from a signal handler (async-signal-safe): the coordinator takes one
// at its next step boundary.
void request_checkpoint() noexcept;
bool take_checkpoint_request() noexcept;  // true once per request

}  // namespace floe::runtime
