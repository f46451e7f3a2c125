#pragma once
// Model weights as a PyTorch state dict: a pickled Dict[str, Tensor] (torch::pickle_save),
// the format Python's torch.load reads and torch.save writes.
#include <torch/torch.h>

#include <map>
#include <string>

namespace floe::runtime {

// The pickled bytes of a state dict, and back. `what` names the input in errors: a bad one
// throws floe::InputError ("<what>: not a pickled PyTorch object", "expected a dict ...").
std::string pickle_state_dict(const std::map<std::string, torch::Tensor>& tensors);
std::map<std::string, torch::Tensor> unpickle_state_dict(const std::string& bytes, const std::string& what);

// Writes atomically (temporary file, then rename). Throws std::runtime_error naming the file.
void save_state_dict(const std::string& path, const std::map<std::string, torch::Tensor>& tensors);

// Throws floe::InputError naming the file when it is missing or not a state dict.
std::map<std::string, torch::Tensor> load_state_dict(const std::string& path);

}  // namespace floe::runtime
