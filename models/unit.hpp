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

  int64_t parameter_count() const;
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

// Sets every parameter from `values` by qualified name; throws std::invalid_argument naming
// a parameter that is missing or has another shape.
void load_parameters(const UnitList& units, const std::map<std::string, torch::Tensor>& values);

}  // namespace floe::models
