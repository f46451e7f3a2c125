#pragma once
// The two sublayers of a pre-norm Transformer block, each one autograd node:
//
//   attention: x + out(MHA(LN(x)))          mlp: x + fc2(GELU(fc1(LN(x))))
//
// Built from LibTorch modules, one sublayer is 11 (MLP) to some 30 (attention) operations in
// the forward, each an autograd node and most of them views. At a micro-batch of 16 ViT
// images the dispatch of those nodes, not the arithmetic, is what a micro-batch costs beyond
// its share of the work: 2.1 ms of backward and 0.7 ms of forward per micro-batch of the demo
// model on this machine (docs/benchmarks.md). Here the forward is a dozen ATen calls on 2-D
// and 3-D tensors, and the backward is written out, with the same arithmetic: the results
// equal the modules' within float rounding (tests/models/prenorm_test.cpp).
//
// Inside a DeferWeightGrads scope the linear layers' weight gradients are deferred exactly as
// `linear` defers them (models/weight_grads.hpp): the forward records each layer's input, the
// backward hands over its output's gradient and returns the input's gradient only. Layer-norm
// parameters get their gradients in the backward, as with `linear`. Without gradients (a
// frozen sublayer, evaluation) the same forward runs and keeps nothing.
#include <torch/torch.h>

namespace floe::models {

struct LayerNormParams {
  torch::Tensor weight, bias;
  double eps;
};

// x [N, L, D] -> x + out_proj(attention(LN(x))) over `heads` heads, every position attended
// to. in_weight [3D, D] stacks the query, key and value rows (StackedSelfAttention's layout),
// in_bias [3D]; out_weight [D, D], out_bias [D].
torch::Tensor prenorm_attention(const torch::Tensor& x, const LayerNormParams& ln, const torch::Tensor& in_weight,
                                const torch::Tensor& in_bias, const torch::Tensor& out_weight,
                                const torch::Tensor& out_bias, int64_t heads);

// x [N, L, D] -> x + fc2(GELU(fc1(LN(x)))), GELU in its erf form; fc1 [F, D], fc2 [D, F].
torch::Tensor prenorm_mlp(const torch::Tensor& x, const LayerNormParams& ln, const torch::Tensor& fc1_weight,
                          const torch::Tensor& fc1_bias, const torch::Tensor& fc2_weight,
                          const torch::Tensor& fc2_bias);

}  // namespace floe::models
