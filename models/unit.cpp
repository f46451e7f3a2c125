#include "models/unit.hpp"

#include <stdexcept>

namespace floe::models {

int64_t Unit::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : module->parameters()) n += p.numel();
  return n;
}

torch::Tensor forward_range(const UnitList& units, size_t begin, size_t end, torch::Tensor x) {
  for (size_t i = begin; i < end; ++i) x = units[i].module->forward(x);
  return x;
}

std::vector<torch::Tensor> parameters_of(const UnitList& units, size_t begin, size_t end) {
  std::vector<torch::Tensor> out;
  for (size_t i = begin; i < end; ++i)
    for (const auto& p : units[i].module->parameters()) out.push_back(p);
  return out;
}

std::vector<std::string> parameter_names_of(const UnitList& units, size_t begin, size_t end) {
  std::vector<std::string> out;
  for (size_t i = begin; i < end; ++i)
    for (const auto& item : units[i].module->named_parameters()) out.push_back(units[i].name + "." + item.key());
  return out;
}

void copy_parameters(const UnitList& from, const UnitList& to) {
  if (from.size() != to.size())
    throw std::invalid_argument("copy_parameters: models differ in unit count");
  torch::NoGradGuard no_grad;
  auto src = parameters_of(from, 0, from.size());
  auto dst = parameters_of(to, 0, to.size());
  if (src.size() != dst.size())
    throw std::invalid_argument("copy_parameters: models differ in parameter count");
  for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
}

std::vector<int64_t> parameter_counts(const UnitList& units) {
  std::vector<int64_t> out;
  for (const auto& u : units) out.push_back(u.parameter_count());
  return out;
}

}  // namespace floe::models

namespace floe::models {

void load_parameters(const UnitList& units, const std::map<std::string, torch::Tensor>& values) {
  torch::NoGradGuard no_grad;
  const auto names = parameter_names_of(units, 0, units.size());
  auto params = parameters_of(units, 0, units.size());
  for (size_t i = 0; i < params.size(); ++i) {
    auto it = values.find(names[i]);
    if (it == values.end()) throw std::invalid_argument("load_parameters: no value for " + names[i]);
    if (it->second.sizes() != params[i].sizes())
      throw std::invalid_argument("load_parameters: " + names[i] + " has another shape");
    params[i].copy_(it->second);
  }
}

}  // namespace floe::models
