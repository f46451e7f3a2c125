#pragma once
// What every Transformer family shares: multi-head self-attention with a key-padding mask
// (and, for a decoder, a causal mask), the feed-forward layer, and the form in which a
// sequence travels between units.
//
// A unit takes and returns one tensor (the engine sends, caches and reduces single
// tensors), so a sequence travels as [N, L, D + 1]: the hidden state and, in the last
// channel, the key mask (1 = a real token, 0 = padding). The mask channel is carried, never
// learned: its gradient is ignored. Padded positions are never attended to, so a real
// token's output does not depend on how far its sequence was padded.
#include <torch/torch.h>

namespace floe::models {

struct Sequence {
  torch::Tensor hidden;  // [N, L, D]
  torch::Tensor mask;    // [N, L] bool, true = a real token
};

torch::Tensor pack_sequence(const torch::Tensor& hidden, const torch::Tensor& mask);
Sequence unpack_sequence(const torch::Tensor& x);

// Scaled dot-product attention over `heads` heads with separate query, key, value and
// output projections (BERT's layout; the names match its checkpoints' modulo prefixes).
struct SelfAttentionImpl : torch::nn::Module {
  SelfAttentionImpl(int64_t dim, int64_t heads, double dropout);
  // x [N, L, D]; key_mask [N, L] bool (true = may be attended to) or undefined; causal: a
  // position attends only to itself and those before it.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& key_mask, bool causal = false);

  torch::nn::Linear query{nullptr}, key{nullptr}, value{nullptr}, output{nullptr};
  torch::nn::Dropout drop{nullptr};
  int64_t heads;
};
TORCH_MODULE(SelfAttention);

// The same attention with the query, key and value projections stacked in one [3D, D] weight
// (rows q; k; v), one product instead of three (ViT's layout). The parameters are named, shaped
// and initialised as LibTorch's MultiheadAttention's (in_proj_weight, in_proj_bias,
// out_proj.*), whose place this takes: its C++ forward compared query, key and value element by
// element on every call and added each bias apart from its product.
struct StackedSelfAttentionImpl : torch::nn::Module {
  StackedSelfAttentionImpl(int64_t dim, int64_t heads);
  torch::Tensor forward(const torch::Tensor& x);  // x [N, L, D], every position attended to

  torch::Tensor in_proj_weight, in_proj_bias;
  torch::nn::Linear out_proj{nullptr};
  int64_t heads;
};
TORCH_MODULE(StackedSelfAttention);

// Linear -> GELU (erf form) -> Linear.
struct FeedForwardImpl : torch::nn::Module {
  FeedForwardImpl(int64_t dim, int64_t hidden);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Linear intermediate{nullptr}, output{nullptr};
};
TORCH_MODULE(FeedForward);

}  // namespace floe::models
