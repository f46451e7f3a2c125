#pragma once
// A partitionable unit: the atom that AutoPipe places on stages (spec §3.1). A model is an
// ordered list of units; a stage owns a contiguous range of them.
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace floe::models {

// The computation of one unit. Units keep their residual connection inside, so a stage
// boundary never cuts a skip connection.
struct UnitModule : torch::nn::Module {
  virtual torch::Tensor forward(torch::Tensor x) = 0;
};

struct Unit {
  std::string name;    // e.g. "block3.attn"
  int block = -1;      // transformer block index; -1 for the embedding, depth for the tail
  std::shared_ptr<UnitModule> module;
  int64_t cost = -1;  // the planner's weight for it; -1 = its parameter count (spec §3.1)

  int64_t parameter_count() const;
  int64_t planner_cost() const { return cost >= 0 ? cost : parameter_count(); }
};

using UnitList = std::vector<Unit>;

// Runs units [begin, end) in order.
torch::Tensor forward_range(const UnitList& units, size_t begin, size_t end, torch::Tensor x);

std::vector<torch::Tensor> parameters_of(const UnitList& units, size_t begin, size_t end);

// Parameter names qualified by unit name ("block0.attn.ln.weight"), in parameters_of order.
std::vector<std::string> parameter_names_of(const UnitList& units, size_t begin, size_t end);

// Copies parameter values from one model instance into another of the same shape.
void copy_parameters(const UnitList& from, const UnitList& to);

std::vector<int64_t> parameter_counts(const UnitList& units);
// What the planner balances: planner_cost() per unit.
std::vector<int64_t> planner_costs(const UnitList& units);

// The model's parameters, in parameters_of order, taken from `weights` by qualified name.
// A tensor whose name starts with one of `skip` may be missing or of another shape (the
// model keeps its own value: `kept`) or extra (`ignored`); any other missing, extra or mis-shaped tensor throws
// floe::InputError naming `what`, the tensor and both shapes.
struct WeightMatch {
  std::vector<std::string> names;
  std::vector<torch::Tensor> values;
  std::vector<std::string> kept, ignored;
};
WeightMatch match_weights(const UnitList& model, const std::map<std::string, torch::Tensor>& weights,
                          const std::string& what, const std::vector<std::string>& skip = {});

// Sets every parameter from `values` by qualified name; throws std::invalid_argument naming
// a parameter that is missing or has another shape.
void load_parameters(const UnitList& units, const std::map<std::string, torch::Tensor>& values);

}  // namespace floe::models
