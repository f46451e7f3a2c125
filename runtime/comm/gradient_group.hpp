#pragma once
// The data-parallel gradient all-reduce of one pipeline position: the stages at the same
// position in all replicas sum their gradients. In one process the replicas meet in memory
// (LocalAllReduce); across processes they use c10d's ProcessGroupGloo (GlooGroup). A group
// is built for one membership and replaced on every transition (the paper's "active group").
#include <torch/torch.h>

#include <vector>

namespace floe::runtime {

class GradientGroup {
 public:
  virtual ~GradientGroup() = default;
  virtual int size() const = 0;
  // Replaces each tensor with the element-wise sum over all participants; blocks the calling
  // device thread until every rank has contributed. Every participant passes tensors of the
  // same shapes in the same order, and every participant gets bit-identical results.
  virtual void sum(int rank, std::vector<torch::Tensor>& tensors) = 0;
};

// What every group is made of. A group reduces one flat buffer per step, not one per
// parameter, and adds the ranks' parts in rank order, ((x0 + x1) + x2) + ..., so that all
// groups give the same bits whatever the membership's spread over processes.
torch::Tensor flatten(const std::vector<torch::Tensor>& tensors);
void unflatten_into(const torch::Tensor& flat, std::vector<torch::Tensor>& tensors);
torch::Tensor sum_in_rank_order(const std::vector<torch::Tensor>& parts);

}  // namespace floe::runtime
