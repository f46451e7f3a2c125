#include "runtime/state/state_dict.hpp"

#include "models/files.hpp"
#include "models/errors.hpp"
#include "runtime/observe/summary.hpp"

#include <fstream>
#include <iterator>

namespace floe::runtime {

std::string pickle_state_dict(const std::map<std::string, torch::Tensor>& tensors) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [name, t] : tensors) dict.insert(name, t.detach().contiguous());
  const auto bytes = torch::pickle_save(dict);
  return std::string(bytes.begin(), bytes.end());
}

std::map<std::string, torch::Tensor> unpickle_state_dict(const std::string& bytes, const std::string& what) {
  c10::IValue value;
  try {
    value = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end()));
  } catch (const std::exception& e) {
    throw InputError(what + ": not a pickled PyTorch object (" + std::string(e.what()).substr(0, 200) + ")");
  }
  if (!value.isGenericDict()) throw InputError(what + ": expected a dict of name -> tensor");
  std::map<std::string, torch::Tensor> out;
  for (const auto& entry : value.toGenericDict()) {
    if (!entry.key().isString() || !entry.value().isTensor())
      throw InputError(what + ": expected a dict of name -> tensor");
    out[entry.key().toStringRef()] = entry.value().toTensor();
  }
  return out;
}

void save_state_dict(const std::string& path, const std::map<std::string, torch::Tensor>& tensors) {
  write_file_atomic(path, pickle_state_dict(tensors));
}

std::map<std::string, torch::Tensor> load_state_dict(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("state dict " + path + ": cannot open the file");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return unpickle_state_dict(bytes, "state dict " + path);
}

}  // namespace floe::runtime
