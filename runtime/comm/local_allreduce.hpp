#pragma once
// In-process gradient all-reduce for the stages at the same pipeline position in R replicas
// (each on its own device thread). Sums in rank order, so the result is identical on every
// participant and independent of arrival order. Blocks the calling device thread, as a
// Gloo all-reduce would; a participant that never arrives makes the others fail after
// `timeout` instead of hanging forever.
#include "runtime/comm/gradient_group.hpp"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

namespace floe::runtime {

class LocalAllReduce : public GradientGroup {
 public:
  explicit LocalAllReduce(int participants, std::chrono::milliseconds timeout = std::chrono::minutes(10));

  int size() const override { return participants_; }

  // Replaces each tensor with the element-wise sum over all participants. Every participant
  // passes tensors of the same shapes in the same order.
  void sum(int rank, std::vector<torch::Tensor>& tensors) override;

 private:
  const int participants_;
  const std::chrono::milliseconds timeout_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<torch::Tensor> slots_;
  torch::Tensor result_;
  int arrived_ = 0;
  int departed_ = 0;
  uint64_t generation_ = 0;
};

}  // namespace floe::runtime
