#include "models/transformer.hpp"

#include "models/weight_grads.hpp"

#include <cmath>
#include <limits>

namespace floe::models {

torch::Tensor pack_sequence(const torch::Tensor& hidden, const torch::Tensor& mask) {
  return torch::cat({hidden, mask.to(hidden.scalar_type()).unsqueeze(-1)}, -1);
}

Sequence unpack_sequence(const torch::Tensor& x) {
  const int64_t d = x.size(-1) - 1;
  return {x.narrow(-1, 0, d), x.select(-1, d).detach() > 0.5};
}

namespace {

// softmax(q kᵀ / √hd) v over q, k, v [N, H, L, hd]; returns the context [N, L, H·hd].
torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     const torch::Tensor& key_mask, bool causal, torch::nn::Dropout* drop) {
  const int64_t n = q.size(0), l = q.size(2);
  // Scaled before the product: q has hd columns where the scores have L.
  auto scores = torch::matmul(q * (1.0 / std::sqrt(static_cast<double>(q.size(3)))), k.transpose(-2, -1));  // [N, H, L, L]
  // The lowest float rather than -inf: a fully masked row (a causal row of padding) stays finite.
  const double lowest = std::numeric_limits<float>::lowest();
  if (key_mask.defined()) scores = scores.masked_fill(key_mask.logical_not().view({n, 1, 1, l}), lowest);
  if (causal)
    scores = scores.masked_fill(torch::ones({l, l}, q.options().dtype(torch::kBool)).triu(1), lowest);
  auto probs = torch::softmax(scores, -1);
  if (drop) probs = (*drop)->forward(probs);
  return torch::matmul(probs, v).transpose(1, 2).reshape({n, l, -1});
}

}  // namespace

SelfAttentionImpl::SelfAttentionImpl(int64_t dim, int64_t heads_, double dropout) : heads(heads_) {
  query = register_module("query", torch::nn::Linear(dim, dim));
  key = register_module("key", torch::nn::Linear(dim, dim));
  value = register_module("value", torch::nn::Linear(dim, dim));
  output = register_module("output", torch::nn::Linear(dim, dim));
  drop = register_module("drop", torch::nn::Dropout(dropout));
}

torch::Tensor SelfAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& key_mask, bool causal) {
  const int64_t n = x.size(0), l = x.size(1), hd = x.size(2) / heads;
  auto split = [&](const torch::Tensor& t) { return t.view({n, l, heads, hd}).transpose(1, 2); };  // [N, H, L, hd]
  auto context = attend(split(linear(query, x)), split(linear(key, x)), split(linear(value, x)), key_mask, causal, &drop);
  return linear(output, context);
}

StackedSelfAttentionImpl::StackedSelfAttentionImpl(int64_t dim, int64_t heads_) : heads(heads_) {
  // MultiheadAttention's order of draws: out_proj's default initialisation, then Xavier for
  // in_proj_weight; both biases start at zero.
  in_proj_weight = register_parameter("in_proj_weight", torch::empty({3 * dim, dim}));
  in_proj_bias = register_parameter("in_proj_bias", torch::zeros({3 * dim}));
  out_proj = register_module("out_proj", torch::nn::Linear(dim, dim));
  torch::NoGradGuard no_grad;
  torch::nn::init::xavier_uniform_(in_proj_weight);
  out_proj->bias.zero_();
}

torch::Tensor StackedSelfAttentionImpl::forward(const torch::Tensor& x) {
  const int64_t n = x.size(0), l = x.size(1), hd = x.size(2) / heads;
  // unbind, not three selects: its backward stacks the three gradients once, where each
  // select's would fill a zero tensor of all three and autograd would add them up.
  const auto qkv = linear(in_proj_weight, in_proj_bias, x).view({n, l, 3, heads, hd}).permute({2, 0, 3, 1, 4}).unbind(0);
  return linear(out_proj, attend(qkv[0], qkv[1], qkv[2], {}, false, nullptr));
}

FeedForwardImpl::FeedForwardImpl(int64_t dim, int64_t hidden) {
  intermediate = register_module("intermediate", torch::nn::Linear(dim, hidden));
  output = register_module("output", torch::nn::Linear(hidden, dim));
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& x) {
  return linear(output, torch::gelu(linear(intermediate, x)));
}

}  // namespace floe::models
