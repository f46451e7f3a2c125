#include "runtime/stage_compute.hpp"

#include <stdexcept>

namespace floe::runtime {

std::unique_ptr<torch::optim::AdamW> make_optimizer(const std::vector<torch::Tensor>& params,
                                                    const OptimizerConfig& cfg) {
  torch::optim::AdamWOptions o(cfg.lr);
  o.betas({cfg.beta1, cfg.beta2}).weight_decay(cfg.weight_decay);
  return std::make_unique<torch::optim::AdamW>(params, o);
}

void set_learning_rate(torch::optim::Optimizer& opt, double lr) {
  for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
}

StageCompute::StageCompute(models::UnitList units, bool first, bool last, const OptimizerConfig& opt,
                           std::shared_ptr<LocalAllReduce> group, int rank)
    : units_(std::move(units)), first_(first), last_(last), group_(std::move(group)), rank_(rank) {
  params_ = models::parameters_of(units_, 0, units_.size());
  optimizer_ = make_optimizer(params_, opt);
}

void StageCompute::begin_step(bool train) {
  train_ = train;
  saved_.clear();
  for (auto& u : units_) u.module->train(train);
  if (train) optimizer_->zero_grad();
}

torch::Tensor StageCompute::forward(int mb, torch::Tensor input) {
  if (!train_) {
    torch::NoGradGuard no_grad;
    return models::forward_range(units_, 0, units_.size(), input);
  }
  torch::AutoGradMode grad(true);
  // A received activation becomes a new leaf so that its gradient can be sent back.
  if (!first_) input = input.detach().requires_grad_(true);
  auto out = models::forward_range(units_, 0, units_.size(), input);
  saved_[mb] = {input, out};
  return out.detach();
}

void StageCompute::forward_loss(int mb, torch::Tensor input, torch::Tensor target, double scale, LossStats& stats) {
  if (!train_) {
    torch::NoGradGuard no_grad;
    auto logits = models::forward_range(units_, 0, units_.size(), input);
    stats.loss_sum += torch::nn::functional::cross_entropy(
                          logits, target, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                          .item<double>();
    stats.correct += logits.argmax(1).eq(target).sum().item<int64_t>();
    stats.samples += target.size(0);
    return;
  }
  torch::AutoGradMode grad(true);
  if (!first_) input = input.detach().requires_grad_(true);
  auto logits = models::forward_range(units_, 0, units_.size(), input);
  auto loss_sum = torch::nn::functional::cross_entropy(
      logits, target, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
  stats.loss_sum += loss_sum.item<double>();
  stats.correct += logits.detach().argmax(1).eq(target).sum().item<int64_t>();
  stats.samples += target.size(0);
  saved_[mb] = {input, loss_sum * scale};
}

torch::Tensor StageCompute::backward(int mb, torch::Tensor grad_output) {
  auto it = saved_.find(mb);
  if (it == saved_.end()) throw std::logic_error("backward of micro-batch " + std::to_string(mb) + " before its forward");
  torch::AutoGradMode grad(true);
  if (last_)
    it->second.output.backward();
  else
    it->second.output.backward(grad_output);
  auto g = first_ ? torch::Tensor() : it->second.input.grad();
  saved_.erase(it);
  return g;
}

void StageCompute::reduce() {
  auto grads = gradients();
  group_->sum(rank_, grads);
}

void StageCompute::step(double lr) {
  set_learning_rate(*optimizer_, lr);
  optimizer_->step();
}

std::vector<std::string> StageCompute::parameter_names() const {
  return models::parameter_names_of(units_, 0, units_.size());
}

std::vector<torch::Tensor> StageCompute::gradients() const {
  std::vector<torch::Tensor> out;
  for (auto& p : params_) {
    // A parameter that took no part in this step still reduces as zeros, so every
    // replica passes the same tensor list.
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    out.push_back(p.grad());
  }
  return out;
}

}  // namespace floe::runtime
