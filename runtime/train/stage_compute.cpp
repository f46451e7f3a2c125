#include "runtime/train/stage_compute.hpp"

#include "models/bert.hpp"
#include "models/weight_grads.hpp"

#include <algorithm>
#include <stdexcept>

namespace floe::runtime {

std::unique_ptr<torch::optim::AdamW> make_optimizer(std::vector<torch::optim::OptimizerParamGroup> groups,
                                                    const OptimizerConfig& cfg) {
  torch::optim::AdamWOptions o(cfg.lr);
  o.betas({cfg.beta1, cfg.beta2}).weight_decay(cfg.weight_decay);
  return std::make_unique<torch::optim::AdamW>(std::move(groups), o);
}

std::unique_ptr<torch::optim::AdamW> make_optimizer(const std::vector<torch::Tensor>& params,
                                                    const OptimizerConfig& cfg) {
  return make_optimizer(std::vector<torch::optim::OptimizerParamGroup>{torch::optim::OptimizerParamGroup(params)}, cfg);
}

void set_learning_rate(torch::optim::Optimizer& opt, double lr) {
  for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
}

LossTerms loss_terms(const torch::Tensor& logits, const torch::Tensor& target) {
  namespace F = torch::nn::functional;
  const auto flat_logits = logits.dim() == 3 ? logits.reshape({-1, logits.size(-1)}) : logits;
  const auto flat_target = target.reshape({-1});
  LossTerms t;
  t.loss_sum = F::cross_entropy(flat_logits, flat_target,
                                F::CrossEntropyFuncOptions().reduction(torch::kSum).ignore_index(models::kIgnoreTarget));
  const auto scored = flat_target != models::kIgnoreTarget;
  t.targets = scored.sum().item<int64_t>();
  t.correct = (flat_logits.detach().argmax(1).eq(flat_target) & scored).sum().item<int64_t>();
  return t;
}

namespace {
std::string state_key(const torch::Tensor& p) { return c10::guts::to_string(p.unsafeGetTensorImpl()); }
}  // namespace

StageCompute::StageCompute(models::UnitList frozen, models::UnitList units, bool first, bool last,
                           const OptimizerConfig& opt, std::shared_ptr<GradientGroup> group, int rank,
                           const NamedTensors& optimizer_state, std::shared_ptr<ActivationCache> cache)
    : frozen_(std::move(frozen)), units_(std::move(units)), first_(first), last_(last), group_(std::move(group)),
      rank_(rank), cache_(std::move(cache)) {
  for (auto& u : frozen_) {
    u.module->eval();
    for (auto& p : u.module->parameters()) p.set_requires_grad(false);
  }
  params_ = models::parameters_of(units_, 0, units_.size());
  std::vector<torch::optim::OptimizerParamGroup> groups;
  for (size_t i = 0; i < units_.size(); ++i) {
    auto p = units_[i].module->parameters();
    if (p.empty()) continue;
    if (group_blocks_.empty() || group_blocks_.back() != units_[i].block) {
      group_blocks_.push_back(units_[i].block);
      groups.emplace_back(std::vector<torch::Tensor>{});
    }
    for (auto& t : p) groups.back().params().push_back(t);
  }
  if (groups.empty()) groups.emplace_back(std::vector<torch::Tensor>{});  // nothing to train
  optimizer_ = make_optimizer(std::move(groups), opt);
  if (optimizer_state.empty()) return;
  const auto names = parameter_names();
  for (size_t i = 0; i < params_.size(); ++i) {
    auto step = optimizer_state.find(names[i] + "#step");
    if (step == optimizer_state.end()) continue;  // never stepped before
    auto st = std::make_unique<torch::optim::AdamWParamState>();
    st->step(step->second.item<int64_t>());
    st->exp_avg(optimizer_state.at(names[i] + "#exp_avg").clone());
    st->exp_avg_sq(optimizer_state.at(names[i] + "#exp_avg_sq").clone());
    optimizer_->state()[state_key(params_[i])] = std::move(st);
  }
}

NamedTensors StageCompute::export_parameters() const {
  NamedTensors out;
  for (const auto* list : {&frozen_, &units_}) {
    auto names = models::parameter_names_of(*list, 0, list->size());
    auto params = models::parameters_of(*list, 0, list->size());
    for (size_t i = 0; i < params.size(); ++i) out[names[i]] = params[i].detach().clone();
  }
  return out;
}

NamedTensors StageCompute::export_optimizer_state() const {
  NamedTensors out;
  const auto names = parameter_names();
  auto& state = optimizer_->state();
  for (size_t i = 0; i < params_.size(); ++i) {
    auto it = state.find(state_key(params_[i]));
    if (it == state.end()) continue;
    const auto& st = static_cast<const torch::optim::AdamWParamState&>(*it->second);
    out[names[i] + "#step"] = torch::tensor(st.step(), torch::kInt64);
    out[names[i] + "#exp_avg"] = st.exp_avg().clone();
    out[names[i] + "#exp_avg_sq"] = st.exp_avg_sq().clone();
  }
  return out;
}

int64_t StageCompute::optimizer_step() const {
  if (params_.empty()) return -1;
  int64_t step = 0;  // a parameter that never had a gradient has no state
  auto& state = optimizer_->state();
  for (const auto& p : params_)
    if (auto it = state.find(state_key(p)); it != state.end())
      step = std::max<int64_t>(step, static_cast<const torch::optim::AdamWParamState&>(*it->second).step());
  return step;
}

std::map<int, double> StageCompute::block_gradient_norms_sq() const {
  std::map<int, double> out;
  for (const auto& u : units_)
    for (const auto& p : u.module->parameters())
      if (p.grad().defined()) out[u.block] += p.grad().pow(2).sum().item<double>();
  return out;
}

bool splits_backward(const std::vector<Action>& program) {
  return std::any_of(program.begin(), program.end(),
                     [](const Action& a) { return a.kind == ActionKind::weight_backward; });
}

std::map<int, double> StageCompute::block_plasticity() {
  std::map<int, double> out;
  if (!probe_.defined() || units_.empty()) return out;
  torch::NoGradGuard no_grad;
  auto x = probe_;
  probe_ = torch::Tensor();
  const bool measure = reference_.size() == units_.size();
  std::vector<std::vector<torch::Tensor>> now(units_.size());
  std::map<int, std::pair<double, double>> sums;  // block -> (moved², reference²)
  for (size_t i = 0; i < units_.size(); ++i) {
    auto& module = *units_[i].module;
    const bool training = module.is_training();
    module.eval();  // dropout would measure noise
    auto params = module.parameters();
    for (const auto& p : params) now[i].push_back(p.detach().clone());
    const auto y = models::forward_range(units_, i, i + 1, x);
    if (measure) {
      for (size_t k = 0; k < params.size(); ++k) params[k].detach().copy_(reference_[i][k]);
      const auto then = models::forward_range(units_, i, i + 1, x);
      for (size_t k = 0; k < params.size(); ++k) params[k].detach().copy_(now[i][k]);
      auto& [moved, base] = sums[units_[i].block];
      moved += (y - then).pow(2).sum().item<double>();
      base += then.pow(2).sum().item<double>();
    }
    module.train(training);
    x = y;
  }
  reference_ = std::move(now);
  for (const auto& [block, s] : sums) out[block] = s.second > 0 ? s.first / s.second : 0.0;
  return out;
}

void StageCompute::keep_probe(const torch::Tensor& input) {
  if (!probe_wanted_ || probe_.defined()) return;
  probe_ = input.detach().narrow(0, 0, std::min<int64_t>(64, input.size(0))).clone();
}

void StageCompute::begin_step(bool train, bool split, bool probe) {
  train_ = train;
  split_ = train && split;
  probe_wanted_ = train && probe;
  probe_ = torch::Tensor();
  saved_.clear();
  for (auto& u : units_) u.module->train(train);  // frozen units stay in eval mode
  if (train) optimizer_->zero_grad();
}

torch::Tensor StageCompute::forward(int mb, torch::Tensor input, const torch::Tensor& uids) {
  input = run_frozen(input, uids);
  if (!train_) {
    torch::NoGradGuard no_grad;
    return models::forward_range(units_, 0, units_.size(), input);
  }
  torch::AutoGradMode grad(true);
  keep_probe(input);
  // A received activation becomes a new leaf so that its gradient can be sent back.
  if (!first_) input = input.detach().requires_grad_(true);
  auto out = run_units(mb, input);
  saved_[mb].input = input;
  saved_[mb].output = out;
  return out.detach();
}

torch::Tensor StageCompute::run_units(int mb, const torch::Tensor& input) {
  auto& saved = saved_[mb];
  saved = {};
  if (!split_) return models::forward_range(units_, 0, units_.size(), input);
  saved.weights = std::make_shared<models::WeightGrads>();
  models::DeferWeightGrads defer(saved.weights.get());
  return models::forward_range(units_, 0, units_.size(), input);
}

void StageCompute::forward_loss(int mb, torch::Tensor input, torch::Tensor target, double scale, LossStats& stats,
                                const torch::Tensor& uids) {
  input = run_frozen(input, uids);
  if (!train_) {
    torch::NoGradGuard no_grad;
    const auto logits = models::forward_range(units_, 0, units_.size(), input);
    auto terms = loss_terms(logits, target);
    if (stats.keep_probabilities && logits.dim() == 2)
      stats.probabilities[mb] = torch::softmax(logits.to(torch::kFloat), 1);
    stats.loss_sum += terms.loss_sum.item<double>();
    stats.correct += terms.correct;
    stats.targets += terms.targets;
    stats.samples += target.size(0);
    return;
  }
  torch::AutoGradMode grad(true);
  keep_probe(input);
  if (!first_) input = input.detach().requires_grad_(true);
  auto terms = loss_terms(run_units(mb, input), target);
  stats.loss_sum += terms.loss_sum.item<double>();
  stats.correct += terms.correct;
  stats.targets += terms.targets;
  stats.samples += target.size(0);
  saved_[mb].input = input;
  saved_[mb].output = terms.loss_sum * scale;
}

torch::Tensor StageCompute::run_frozen(torch::Tensor x, const torch::Tensor& uids) const {
  if (frozen_.empty()) return x;
  torch::NoGradGuard no_grad;
  if (!cache_ || !uids.defined()) return models::forward_range(frozen_, 0, frozen_.size(), x);
  auto ids = uids.contiguous();
  std::vector<int64_t> v(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
  // Training data may advance entries from a lower level; evaluation reads its exact level.
  return cache_->fetch(train_ ? 0 : 1, v, x, static_cast<int>(frozen_.size()), train_,
                       [this](int from, int to, torch::Tensor in) {
                         torch::NoGradGuard guard;
                         return models::forward_range(frozen_, from, to, in);
                       });
}

torch::Tensor StageCompute::backprop(Saved& saved, const torch::Tensor& grad_output) {
  if (!saved.output.defined()) throw std::logic_error("backward of a micro-batch twice");
  torch::AutoGradMode grad(true);
  if (last_)
    saved.output.backward();
  else
    saved.output.backward(grad_output);
  auto g = first_ ? torch::Tensor() : saved.input.grad();
  saved.input = saved.output = torch::Tensor();  // the graph is gone; only the held weight gradients stay
  return g;
}

torch::Tensor StageCompute::backward(int mb, torch::Tensor grad_output) {
  auto it = saved_.find(mb);
  if (it == saved_.end()) throw std::logic_error("backward of micro-batch " + std::to_string(mb) + " before its forward");
  auto g = backprop(it->second, grad_output);
  if (it->second.weights) it->second.weights->apply();
  saved_.erase(it);
  return g;
}

torch::Tensor StageCompute::backward_input(int mb, torch::Tensor grad_output) {
  auto it = saved_.find(mb);
  if (it == saved_.end()) throw std::logic_error("I of micro-batch " + std::to_string(mb) + " before its forward");
  return backprop(it->second, grad_output);
}

void StageCompute::backward_weight(int mb) {
  auto it = saved_.find(mb);
  if (it == saved_.end() || it->second.output.defined())
    throw std::logic_error("W of micro-batch " + std::to_string(mb) + " before its I");
  if (it->second.weights) it->second.weights->apply();
  saved_.erase(it);
}

void StageCompute::reduce() {
  auto grads = gradients();
  group_->sum(rank_, grads);
}

void StageCompute::step(double lr, const std::vector<double>& block_lr) {
  if (params_.empty()) return;
  auto& groups = optimizer_->param_groups();
  for (size_t g = 0; g < groups.size(); ++g) {
    const int b = std::max(0, group_blocks_[g]);
    const double rate = static_cast<size_t>(b) < block_lr.size() ? block_lr[static_cast<size_t>(b)] : lr;
    static_cast<torch::optim::AdamWOptions&>(groups[g].options()).lr(rate);
  }
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
