#include "runtime/comm/local_allreduce.hpp"

#include <stdexcept>

namespace floe::runtime {

LocalAllReduce::LocalAllReduce(int participants, std::chrono::milliseconds timeout)
    : participants_(participants), timeout_(timeout), slots_(static_cast<size_t>(participants)) {
  if (participants < 1) throw std::invalid_argument("LocalAllReduce: need at least one participant");
}

void LocalAllReduce::sum(int rank, std::vector<torch::Tensor>& tensors) {
  if (participants_ == 1 || tensors.empty()) return;
  torch::NoGradGuard no_grad;
  auto mine = flatten(tensors);

  std::unique_lock<std::mutex> lock(mu_);
  // A new round starts only when everyone has left the previous one.
  if (!cv_.wait_for(lock, timeout_, [&] { return departed_ == 0 || departed_ == participants_; }))
    throw std::runtime_error("all-reduce: previous round never finished");
  if (departed_ == participants_) departed_ = 0;
  const uint64_t round = generation_;
  slots_[rank] = mine;
  if (++arrived_ == participants_) {
    result_ = sum_in_rank_order(slots_);
    arrived_ = 0;
    ++generation_;
    cv_.notify_all();
  } else if (!cv_.wait_for(lock, timeout_, [&] { return generation_ != round; })) {
    throw std::runtime_error("all-reduce: timed out waiting for " + std::to_string(participants_ - arrived_) +
                             " of " + std::to_string(participants_) + " replicas");
  }
  auto result = result_;
  slots_[rank] = torch::Tensor();
  if (++departed_ == participants_) cv_.notify_all();
  lock.unlock();
  unflatten_into(result, tensors);
}

}  // namespace floe::runtime
