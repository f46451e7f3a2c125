#pragma once
// Split backward (zero-bubble pipeline schedules): a micro-batch's backward in two halves.
// I computes the gradient with respect to the stage's input (the pipeline's critical path);
// W later computes the weight gradients of the linear layers from what I kept, filling what
// would otherwise be a bubble. Every linear layer of the models goes through `linear` below,
// or records itself the same way inside a fused sublayer (models/prenorm.hpp); other parameters
// (norms, embeddings, the ViT's patch projection) are small and get their gradients in I.
#include <torch/torch.h>

#include <vector>

namespace floe::models {

// The weight gradients of one micro-batch, held back: per linear layer its input (recorded by
// the forward) and its output's gradient (recorded by I).
class WeightGrads {
 public:
  // Forward: a linear layer ran on `input`; returns its entry's index.
  size_t record(torch::Tensor weight, torch::Tensor bias, torch::Tensor input);
  // I: the gradient of entry `i`'s output.
  void set_output_grad(size_t i, torch::Tensor grad);
  // W: accumulates every entry's weight and bias gradient into the parameters' .grad and
  // releases what the entries held.
  void apply();
  bool empty() const { return entries_.empty(); }
  // Bytes held now (inputs and output gradients), for the schedules' memory accounting.
  int64_t bytes() const;

 private:
  struct Entry {
    torch::Tensor weight, bias, input, grad_output;
  };
  std::vector<Entry> entries_;
};

// While alive on this thread, the forwards of `linear` with gradients record into `into`, and
// their backwards compute the input gradient only. Scopes nest; the innermost wins.
class DeferWeightGrads {
 public:
  explicit DeferWeightGrads(WeightGrads* into);
  ~DeferWeightGrads();
  DeferWeightGrads(const DeferWeightGrads&) = delete;
  DeferWeightGrads& operator=(const DeferWeightGrads&) = delete;

 private:
  WeightGrads* previous_;
};

// y = x Wᵀ + b: ATen's linear (one addmm on a contiguous 3-D input, as PyTorch's F.linear;
// LibTorch's C++ functional linear does a matmul and a separate bias add), or, inside a
// DeferWeightGrads scope with gradients on, the same product whose backward defers the weight
// gradients. `bias` may be undefined.
torch::Tensor linear(const torch::Tensor& weight, const torch::Tensor& bias, const torch::Tensor& x);
// The same through `layer`'s parameters.
torch::Tensor linear(const torch::nn::Linear& layer, const torch::Tensor& x);

// Where a linear layer with `weight` defers its weight gradients now: the innermost
// DeferWeightGrads scope's WeightGrads, or nullptr (no scope, gradients off, or a frozen
// weight). For fused products that record their linear layers themselves (models/prenorm.hpp).
WeightGrads* deferring_weight_grads(const torch::Tensor& weight);

}  // namespace floe::models
