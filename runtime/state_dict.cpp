#include "runtime/state_dict.hpp"

#include "runtime/errors.hpp"
#include "runtime/summary.hpp"

#include <fstream>
#include <iterator>

namespace floe::runtime {

void save_state_dict(const std::string& path, const std::map<std::string, torch::Tensor>& tensors) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [name, t] : tensors) dict.insert(name, t.detach().contiguous());
  const auto bytes = torch::pickle_save(dict);
  write_file_atomic(path, std::string(bytes.begin(), bytes.end()));
}

std::map<std::string, torch::Tensor> load_state_dict(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("state dict " + path + ": cannot open the file");
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  c10::IValue value;
  try {
    value = torch::pickle_load(bytes);
  } catch (const std::exception& e) {
    throw InputError("state dict " + path + ": not a pickled PyTorch object (" + std::string(e.what()).substr(0, 200) + ")");
  }
  if (!value.isGenericDict()) throw InputError("state dict " + path + ": expected a dict of name -> tensor");
  std::map<std::string, torch::Tensor> out;
  for (const auto& entry : value.toGenericDict()) {
    if (!entry.key().isString() || !entry.value().isTensor())
      throw InputError("state dict " + path + ": expected a dict of name -> tensor");
    out[entry.key().toStringRef()] = entry.value().toTensor();
  }
  return out;
}

}  // namespace floe::runtime
