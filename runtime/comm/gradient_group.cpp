#include "runtime/comm/gradient_group.hpp"

namespace floe::runtime {

torch::Tensor flatten(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> flat;
  for (const auto& t : tensors) flat.push_back(t.reshape(-1));
  return torch::cat(flat);
}

void unflatten_into(const torch::Tensor& flat, std::vector<torch::Tensor>& tensors) {
  int64_t offset = 0;
  for (auto& t : tensors) {
    const int64_t n = t.numel();
    t.copy_(flat.slice(0, offset, offset + n).view_as(t));
    offset += n;
  }
}

torch::Tensor sum_in_rank_order(const std::vector<torch::Tensor>& parts) {
  auto total = parts.at(0).clone();
  for (size_t r = 1; r < parts.size(); ++r) total.add_(parts[r]);
  return total;
}

}  // namespace floe::runtime
