#include "models/weight_grads.hpp"

#include <stdexcept>

namespace floe::models {
namespace {

thread_local WeightGrads* active = nullptr;

// The linear product whose backward returns the input gradient only and hands the output's
// gradient to the micro-batch's WeightGrads. The weight and bias are inputs so that the output
// requires a gradient even when x does not (a stage's first layer); they receive none here.
struct DeferredLinear : torch::autograd::Function<DeferredLinear> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor x, torch::Tensor weight,
                               torch::Tensor bias, int64_t grads, int64_t entry) {
    ctx->saved_data["grads"] = grads;
    ctx->saved_data["entry"] = entry;
    ctx->saved_data["x_grad"] = x.requires_grad();
    ctx->save_for_backward({weight});
    return torch::linear(x, weight, bias);
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grad_outputs) {
    auto* grads = reinterpret_cast<WeightGrads*>(ctx->saved_data["grads"].toInt());
    const auto g = grad_outputs[0];
    grads->set_output_grad(static_cast<size_t>(ctx->saved_data["entry"].toInt()), g);
    torch::Tensor gx;
    if (ctx->saved_data["x_grad"].toBool()) gx = g.matmul(ctx->get_saved_variables()[0]);
    return {gx, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

void accumulate(torch::Tensor param, torch::Tensor grad) {
  if (param.grad().defined())
    param.mutable_grad().add_(grad);
  else
    param.mutable_grad() = grad;
}

}  // namespace

size_t WeightGrads::record(torch::Tensor weight, torch::Tensor bias, torch::Tensor input) {
  entries_.push_back({std::move(weight), std::move(bias), std::move(input), {}});
  return entries_.size() - 1;
}

void WeightGrads::set_output_grad(size_t i, torch::Tensor grad) {
  if (i >= entries_.size()) throw std::logic_error("WeightGrads: no entry " + std::to_string(i));
  entries_[i].grad_output = std::move(grad);
}

void WeightGrads::apply() {
  torch::NoGradGuard no_grad;
  for (auto& e : entries_) {
    if (!e.grad_output.defined()) continue;  // the layer's output took no part in the loss
    const auto out = e.weight.size(0), in = e.weight.size(1);
    const auto g = e.grad_output.reshape({-1, out});
    accumulate(e.weight, g.t().mm(e.input.reshape({-1, in})));
    if (e.bias.defined()) accumulate(e.bias, g.sum(0));
  }
  entries_.clear();
}

int64_t WeightGrads::bytes() const {
  int64_t n = 0;
  for (const auto& e : entries_)
    for (const auto* t : {&e.input, &e.grad_output})
      if (t->defined()) n += t->numel() * t->element_size();
  return n;
}

DeferWeightGrads::DeferWeightGrads(WeightGrads* into) : previous_(active) { active = into; }
DeferWeightGrads::~DeferWeightGrads() { active = previous_; }

WeightGrads* deferring_weight_grads(const torch::Tensor& weight) {
  return active && torch::GradMode::is_enabled() && weight.requires_grad() ? active : nullptr;
}

torch::Tensor linear(const torch::Tensor& weight, const torch::Tensor& bias, const torch::Tensor& x) {
  auto* grads = deferring_weight_grads(weight);
  if (!grads) return torch::linear(x, weight, bias);
  const auto entry = grads->record(weight, bias, x.detach());
  return DeferredLinear::apply(x, weight, bias, reinterpret_cast<int64_t>(grads), static_cast<int64_t>(entry));
}

torch::Tensor linear(const torch::nn::Linear& layer, const torch::Tensor& x) {
  return linear(layer->weight, layer->bias, x);
}

}  // namespace floe::models
