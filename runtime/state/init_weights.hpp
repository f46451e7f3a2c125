#pragma once
// The weights a job starts from (`init_weights`, `init_skip`: a floe state dict, a safetensors
// file or a Hugging Face folder), matched to its model by name and shape, read once.
#include "models/unit.hpp"
#include "runtime/config/job_config.hpp"

#include <map>
#include <string>
#include <vector>

namespace floe::runtime {

// `weights` (read from `what`) as the model's parameters, in the model's order; logs which
// tensors the model kept (init_skip) and which of the file's it ignored. Throws
// floe::InputError naming the first missing, misshapen or unknown tensor.
models::WeightMatch model_weights(const models::UnitList& model, const std::map<std::string, torch::Tensor>& weights,
                                  const std::string& what, const std::vector<std::string>& skip = {});

// cfg.init_weights read and matched to the job's model, built as the coordinator builds it
// (seeded with cfg.seed, so that the tensors it keeps are the ones training starts from).
// Call before loading the data: a wrong file fails fast. Empty when init_weights is not set.
models::WeightMatch read_init_weights(const JobConfig& cfg);

}  // namespace floe::runtime
