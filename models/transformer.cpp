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

SelfAttentionImpl::SelfAttentionImpl(int64_t dim, int64_t heads_, double dropout) : heads(heads_) {
  query = register_module("query", torch::nn::Linear(dim, dim));
  key = register_module("key", torch::nn::Linear(dim, dim));
  value = register_module("value", torch::nn::Linear(dim, dim));
  output = register_module("output", torch::nn::Linear(dim, dim));
  drop = register_module("drop", torch::nn::Dropout(dropout));
}

torch::Tensor SelfAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& key_mask, bool causal) {
  const int64_t n = x.size(0), l = x.size(1), d = x.size(2), hd = d / heads;
  auto split = [&](const torch::Tensor& t) { return t.view({n, l, heads, hd}).transpose(1, 2); };  // [N, H, L, hd]
  auto q = split(linear(query, x)), k = split(linear(key, x)), v = split(linear(value, x));
  auto scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(hd));  // [N, H, L, L]
  // The lowest float rather than -inf: a fully masked row (a causal row of padding) stays finite.
  const double lowest = std::numeric_limits<float>::lowest();
  if (key_mask.defined()) scores = scores.masked_fill(key_mask.logical_not().view({n, 1, 1, l}), lowest);
  if (causal)
    scores = scores.masked_fill(torch::ones({l, l}, x.options().dtype(torch::kBool)).triu(1), lowest);
  auto probs = drop->forward(torch::softmax(scores, -1));
  auto context = torch::matmul(probs, v).transpose(1, 2).reshape({n, l, d});
  return linear(output, context);
}

FeedForwardImpl::FeedForwardImpl(int64_t dim, int64_t hidden) {
  intermediate = register_module("intermediate", torch::nn::Linear(dim, hidden));
  output = register_module("output", torch::nn::Linear(hidden, dim));
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& x) {
  return linear(output, torch::gelu(linear(intermediate, x)));
}

}  // namespace floe::models
