#include "models/unit.hpp"

#include "models/errors.hpp"

#include <algorithm>
#include <set>
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

std::vector<int64_t> planner_costs(const UnitList& units) {
  std::vector<int64_t> out;
  for (const auto& u : units) out.push_back(u.planner_cost());
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

namespace {
bool skippable(const std::string& name, const std::vector<std::string>& skip) {
  return std::any_of(skip.begin(), skip.end(), [&](const std::string& p) { return name.rfind(p, 0) == 0; });
}
}  // namespace

WeightMatch match_weights(const UnitList& model, const std::map<std::string, torch::Tensor>& weights,
                          const std::string& what, const std::vector<std::string>& skip) {
  WeightMatch out;
  out.names = parameter_names_of(model, 0, model.size());
  const auto params = parameters_of(model, 0, model.size());
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& name = out.names[i];
    const auto it = weights.find(name);
    if (it == weights.end()) {
      if (!skippable(name, skip))
        throw InputError(what + ": has no tensor '" + name + "' (the model's parameter " + std::to_string(i) +
                         "; init_skip lists name prefixes that may be missing)");
      out.kept.push_back(name);
      out.values.push_back(params[i].detach().clone());
      continue;
    }
    const auto& t = it->second;
    if ((t.sizes() != params[i].sizes() || t.scalar_type() != params[i].scalar_type()) && skippable(name, skip)) {
      out.kept.push_back(name);  // e.g. a classifier for other classes: a fresh one
      out.values.push_back(params[i].detach().clone());
      continue;
    }
    if (t.sizes() != params[i].sizes() || t.scalar_type() != params[i].scalar_type()) {
      // The position table is where a longer model.max_len shows up: say so.
      if (name == "embed.position.weight" && t.dim() == 2 && params[i].dim() == 2 && t.size(0) < params[i].size(0))
        throw InputError("model.max_len = " + std::to_string(params[i].size(0)) + " exceeds the position table of " +
                         what + " (" + std::to_string(t.size(0)) + " positions)");
      throw InputError(what + ": tensor '" + name + "' is " + c10::str(t.scalar_type(), t.sizes()) +
                       ", the model expects " + c10::str(params[i].scalar_type(), params[i].sizes()));
    }
    out.values.push_back(t);
  }
  const std::set<std::string> known(out.names.begin(), out.names.end());
  for (const auto& [name, t] : weights) {
    if (known.count(name)) continue;
    if (!skippable(name, skip))
      throw InputError(what + ": tensor '" + name + "' is not a parameter of this model (model.* differs?)");
    out.ignored.push_back(name);
  }
  return out;
}

}  // namespace floe::models
