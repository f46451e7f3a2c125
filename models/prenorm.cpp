#include "models/prenorm.hpp"

#include "models/weight_grads.hpp"

#include <ATen/Parallel.h>

#include <climits>
#include <cmath>
#include <optional>

// The BLAS that LibTorch itself calls (libblas.so.3: OpenBLAS on Debian).
extern "C" void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
                       const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
                       const float* beta, float* c, const int* ldc);

namespace floe::models {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// How the matrices of a [B, R, C] tensor lie for BLAS: rows contiguous (row-major) or columns
// contiguous (column-major), and the leading dimension; nothing when neither.
struct BlasLayout {
  bool row_major;
  int64_t ld;
};
std::optional<BlasLayout> blas_layout(const Tensor& t) {
  if (t.stride(2) == 1 && t.stride(1) >= std::max<int64_t>(1, t.size(2))) return BlasLayout{true, t.stride(1)};
  if (t.stride(1) == 1 && t.stride(2) >= std::max<int64_t>(1, t.size(1))) return BlasLayout{false, t.stride(2)};
  return std::nullopt;
}

// out[i] = alpha · a[i] b[i] for float a [B, m, k], b [B, k, n] (either may be a transposed view)
// into a contiguous out [B, m, n], one BLAS call per matrix on raw pointers, the batch spread
// over the device's intra-op threads. ATen's bmm (1.13, without MKL) makes three views and runs
// addmm's checks per matrix, one matrix after another: at the attention's 50 × 16 × 50 it took
// 1.9x as long for the same BLAS kernel and the same result. Other inputs go to ATen.
void batched_matmul(Tensor& out, const Tensor& a, const Tensor& b, double alpha) {
  TORCH_CHECK(a.dim() == 3 && b.dim() == 3 && out.dim() == 3 && a.size(0) == b.size(0) && a.size(2) == b.size(1) &&
                  out.sizes() == at::IntArrayRef({a.size(0), a.size(1), b.size(2)}),
              "batched_matmul: shapes ", a.sizes(), " x ", b.sizes(), " -> ", out.sizes(), " do not fit");
  const auto la = blas_layout(a), lb = blas_layout(b);
  const bool fits = a.size(1) < INT_MAX && a.size(2) < INT_MAX && b.size(2) < INT_MAX && la && lb &&
                    la->ld < INT_MAX && lb->ld < INT_MAX;
  if (!fits || a.scalar_type() != torch::kFloat || b.scalar_type() != torch::kFloat ||
      out.scalar_type() != torch::kFloat || !out.is_contiguous() || a.numel() == 0 || b.numel() == 0) {
    out.baddbmm_(a, b, 0.0, alpha);
    return;
  }
  const int m = static_cast<int>(a.size(1)), k = static_cast<int>(a.size(2)), n = static_cast<int>(b.size(2));
  const int lda = static_cast<int>(la->ld), ldb = static_cast<int>(lb->ld), ldc = n;
  // Column-major BLAS sees the row-major C = A B as Cᵀ = Bᵀ Aᵀ: b comes first. A row-major
  // matrix read column-major is its transpose already ('N'); a column-major one is not ('T').
  const char tb = lb->row_major ? 'N' : 'T', ta = la->row_major ? 'N' : 'T';
  const float al = static_cast<float>(alpha), beta = 0;
  const float *pa = a.data_ptr<float>(), *pb = b.data_ptr<float>();
  float* pc = out.data_ptr<float>();
  const int64_t sa = a.stride(0), sb = b.stride(0), sc = int64_t(m) * n;
  at::parallel_for(0, a.size(0), 8, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      sgemm_(&tb, &ta, &n, &m, &k, &al, pb + i * sb, &ldb, pa + i * sa, &lda, &beta, pc + i * sc, &ldc);
  });
}

// A fresh [B, m, n] = alpha · a b.
Tensor batched_matmul(const Tensor& a, const Tensor& b, double alpha = 1.0) {
  auto out = at::empty({a.size(0), a.size(1), b.size(2)}, a.options());
  batched_matmul(out, a, b, alpha);
  return out;
}

int64_t as_int(WeightGrads* grads) { return reinterpret_cast<int64_t>(grads); }
WeightGrads* as_grads(AutogradContext* ctx, const char* key) {
  return reinterpret_cast<WeightGrads*>(ctx->saved_data[key].toInt());
}

// A linear layer that defers records its input at the forward (entry -1: it does not).
int64_t record(WeightGrads* grads, const Tensor& weight, const Tensor& bias, const Tensor& input) {
  return grads ? static_cast<int64_t>(grads->record(weight, bias, input)) : -1;
}

// A linear layer's weight gradients in the backward, from its output's gradient `g` and its
// `input` (both 2-D): handed to its deferred entry, or computed where the weight (input
// `index` of the forward) and the bias (`index` + 1) need them.
void linear_weight_grads(AutogradContext* ctx, WeightGrads* grads, int64_t entry, const Tensor& g,
                         const Tensor& input, size_t index, Tensor& weight_grad, Tensor& bias_grad) {
  if (grads) return grads->set_output_grad(static_cast<size_t>(entry), g);
  if (ctx->needs_input_grad(index)) weight_grad = g.t().mm(input);
  if (ctx->needs_input_grad(index + 1)) bias_grad = g.sum(0);
}

// The layer norm's backward, plus the residual path's gradient `g` for x.
void layer_norm_backward(AutogradContext* ctx, const Tensor& gy, const Tensor& g, const Tensor& x,
                         const Tensor& mean, const Tensor& rstd, const Tensor& weight, const Tensor& bias,
                         Tensor& x_grad, Tensor& weight_grad, Tensor& bias_grad) {
  const std::array<bool, 3> need{ctx->needs_input_grad(0), ctx->needs_input_grad(1), ctx->needs_input_grad(2)};
  if (!need[0] && !need[1] && !need[2]) return;
  auto [gx, gw, gb] = at::native_layer_norm_backward(gy, x, {x.size(-1)}, mean, rstd, weight, bias, need);
  if (need[0]) x_grad = gx.add_(g);
  weight_grad = gw;
  bias_grad = gb;
}

// What the attention's backward needs beyond its inputs.
struct AttentionKept {
  Tensor mean, rstd, normed, qkv, probs, context;
};

// x [N, L, D] contiguous. `keep`: null without gradients.
Tensor attention_forward(const Tensor& x, const Tensor& ln_weight, const Tensor& ln_bias, double eps,
                         const Tensor& in_weight, const Tensor& in_bias, const Tensor& out_weight,
                         const Tensor& out_bias, int64_t heads, AttentionKept* keep) {
  const int64_t n = x.size(0), l = x.size(1), d = x.size(2), hd = d / heads;
  auto [y, mean, rstd] = at::native_layer_norm(x, {d}, ln_weight, ln_bias, eps);
  const auto normed = y.view({n * l, d});
  // [N·L, 3D] -> [3, N·H, L, hd]: query, key and value, the heads as batches (one copy).
  const auto qkv = at::addmm(in_bias, normed, in_weight.t())
                       .view({n, l, 3, heads, hd})
                       .permute({2, 0, 3, 1, 4})
                       .contiguous()
                       .view({3, n * heads, l, hd});
  // scores = (q kᵀ) / √hd, the scale applied by the GEMM, not by a pass of its own over [N·H, L, L]
  const auto scores = batched_matmul(qkv[0], qkv[1].transpose(1, 2), 1.0 / std::sqrt(static_cast<double>(hd)));
  auto probs = at::_softmax(scores, -1, false);
  // [N·H, L, hd] -> [N·L, D], the heads side by side (one copy).
  const auto context = batched_matmul(probs, qkv[2]).view({n, heads, l, hd}).transpose(1, 2).contiguous().view({n * l, d});
  auto out = at::addmm(out_bias, context, out_weight.t());
  out.add_(x.view({n * l, d}));
  if (keep) *keep = {mean, rstd, normed, qkv, probs, context};
  return at::_unsafe_view(out, {n, l, d});  // not a view: the node's output is its own tensor
}

struct PrenormAttention : torch::autograd::Function<PrenormAttention> {
  static Tensor forward(AutogradContext* ctx, Tensor x, Tensor ln_weight, Tensor ln_bias, Tensor in_weight,
                        Tensor in_bias, Tensor out_weight, Tensor out_bias, double eps, int64_t heads,
                        int64_t in_grads, int64_t out_grads) {
    AttentionKept k;
    auto out = attention_forward(x, ln_weight, ln_bias, eps, in_weight, in_bias, out_weight, out_bias, heads, &k);
    auto* gin = reinterpret_cast<WeightGrads*>(in_grads);
    auto* gout = reinterpret_cast<WeightGrads*>(out_grads);
    ctx->saved_data["heads"] = heads;
    ctx->saved_data["in_grads"] = in_grads;
    ctx->saved_data["out_grads"] = out_grads;
    ctx->saved_data["in_entry"] = record(gin, in_weight, in_bias, k.normed);
    ctx->saved_data["out_entry"] = record(gout, out_weight, out_bias, k.context);
    ctx->save_for_backward({x, ln_weight, ln_bias, in_weight, out_weight, k.mean, k.rstd, k.normed, k.qkv, k.probs,
                            k.context});
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grad_outputs) {
    const auto s = ctx->get_saved_variables();
    const auto &x = s[0], &in_weight = s[3], &out_weight = s[4], &qkv = s[8], &probs = s[9];
    const int64_t heads = ctx->saved_data["heads"].toInt();
    const int64_t n = x.size(0), l = x.size(1), d = x.size(2), hd = d / heads;
    const auto g = grad_outputs[0].contiguous();
    const auto g2 = g.view({n * l, d});
    tensor_list out(11);  // x, ln weight, ln bias, in weight, in bias, out weight, out bias; 4 non-tensors
    linear_weight_grads(ctx, as_grads(ctx, "out_grads"), ctx->saved_data["out_entry"].toInt(), g2, s[10], 5, out[5],
                        out[6]);
    const auto gcontext = g2.mm(out_weight).view({n, l, heads, hd}).transpose(1, 2).contiguous().view({n * heads, l, hd});
    auto gqkv = at::empty({3, n * heads, l, hd}, g.options());
    auto gq = gqkv[0], gk = gqkv[1], gv = gqkv[2];
    batched_matmul(gv, probs.transpose(1, 2), gcontext, 1.0);
    const auto gscores =
        at::_softmax_backward_data(batched_matmul(gcontext, qkv[2].transpose(1, 2)), probs, -1, probs.scalar_type());
    const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
    batched_matmul(gq, gscores, qkv[1], scale);
    batched_matmul(gk, gscores.transpose(1, 2), qkv[0], scale);
    // [3, N·H, L, hd] -> [N·L, 3D]: the inverse of the forward's permutation (one copy).
    const auto gstacked = gqkv.view({3, n, heads, l, hd}).permute({1, 3, 0, 2, 4}).contiguous().view({n * l, 3 * d});
    linear_weight_grads(ctx, as_grads(ctx, "in_grads"), ctx->saved_data["in_entry"].toInt(), gstacked, s[7], 3, out[3],
                        out[4]);
    layer_norm_backward(ctx, gstacked.mm(in_weight).view({n, l, d}), g, x, s[5], s[6], s[1], s[2], out[0], out[1],
                        out[2]);
    return out;
  }
};

struct MlpKept {
  Tensor mean, rstd, normed, hidden, activated;
};

Tensor mlp_forward(const Tensor& x, const Tensor& ln_weight, const Tensor& ln_bias, double eps,
                   const Tensor& fc1_weight, const Tensor& fc1_bias, const Tensor& fc2_weight, const Tensor& fc2_bias,
                   MlpKept* keep) {
  const int64_t n = x.size(0), l = x.size(1), d = x.size(2);
  auto [y, mean, rstd] = at::native_layer_norm(x, {d}, ln_weight, ln_bias, eps);
  const auto normed = y.view({n * l, d});
  auto hidden = at::addmm(fc1_bias, normed, fc1_weight.t());
  auto activated = at::gelu(hidden);
  auto out = at::addmm(fc2_bias, activated, fc2_weight.t());
  out.add_(x.view({n * l, d}));
  if (keep) *keep = {mean, rstd, normed, hidden, activated};
  return at::_unsafe_view(out, {n, l, d});
}

struct PrenormMlp : torch::autograd::Function<PrenormMlp> {
  static Tensor forward(AutogradContext* ctx, Tensor x, Tensor ln_weight, Tensor ln_bias, Tensor fc1_weight,
                        Tensor fc1_bias, Tensor fc2_weight, Tensor fc2_bias, double eps, int64_t fc1_grads,
                        int64_t fc2_grads) {
    MlpKept k;
    auto out = mlp_forward(x, ln_weight, ln_bias, eps, fc1_weight, fc1_bias, fc2_weight, fc2_bias, &k);
    ctx->saved_data["fc1_grads"] = fc1_grads;
    ctx->saved_data["fc2_grads"] = fc2_grads;
    ctx->saved_data["fc1_entry"] = record(reinterpret_cast<WeightGrads*>(fc1_grads), fc1_weight, fc1_bias, k.normed);
    ctx->saved_data["fc2_entry"] = record(reinterpret_cast<WeightGrads*>(fc2_grads), fc2_weight, fc2_bias, k.activated);
    ctx->save_for_backward({x, ln_weight, ln_bias, fc1_weight, fc2_weight, k.mean, k.rstd, k.normed, k.hidden,
                            k.activated});
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grad_outputs) {
    const auto s = ctx->get_saved_variables();
    const auto& x = s[0];
    const int64_t n = x.size(0), l = x.size(1), d = x.size(2);
    const auto g = grad_outputs[0].contiguous();
    const auto g2 = g.view({n * l, d});
    tensor_list out(10);  // x, ln weight, ln bias, fc1 weight, fc1 bias, fc2 weight, fc2 bias; 3 non-tensors
    linear_weight_grads(ctx, as_grads(ctx, "fc2_grads"), ctx->saved_data["fc2_entry"].toInt(), g2, s[9], 5, out[5],
                        out[6]);
    const auto ghidden = at::gelu_backward(g2.mm(s[4]), s[8]);
    linear_weight_grads(ctx, as_grads(ctx, "fc1_grads"), ctx->saved_data["fc1_entry"].toInt(), ghidden, s[7], 3,
                        out[3], out[4]);
    layer_norm_backward(ctx, ghidden.mm(s[3]).view({n, l, d}), g, x, s[5], s[6], s[1], s[2], out[0], out[1], out[2]);
    return out;
  }
};

bool any_requires_grad(std::initializer_list<const Tensor*> ts) {
  for (const auto* t : ts)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}

}  // namespace

torch::Tensor prenorm_attention(const torch::Tensor& x, const LayerNormParams& ln, const torch::Tensor& in_weight,
                                const torch::Tensor& in_bias, const torch::Tensor& out_weight,
                                const torch::Tensor& out_bias, int64_t heads) {
  const auto xc = x.contiguous();
  if (!torch::GradMode::is_enabled() ||
      !any_requires_grad({&x, &ln.weight, &ln.bias, &in_weight, &in_bias, &out_weight, &out_bias}))
    return attention_forward(xc, ln.weight, ln.bias, ln.eps, in_weight, in_bias, out_weight, out_bias, heads, nullptr);
  return PrenormAttention::apply(xc, ln.weight, ln.bias, in_weight, in_bias, out_weight, out_bias, ln.eps, heads,
                                 as_int(deferring_weight_grads(in_weight)), as_int(deferring_weight_grads(out_weight)));
}

torch::Tensor prenorm_mlp(const torch::Tensor& x, const LayerNormParams& ln, const torch::Tensor& fc1_weight,
                          const torch::Tensor& fc1_bias, const torch::Tensor& fc2_weight,
                          const torch::Tensor& fc2_bias) {
  const auto xc = x.contiguous();
  if (!torch::GradMode::is_enabled() ||
      !any_requires_grad({&x, &ln.weight, &ln.bias, &fc1_weight, &fc1_bias, &fc2_weight, &fc2_bias}))
    return mlp_forward(xc, ln.weight, ln.bias, ln.eps, fc1_weight, fc1_bias, fc2_weight, fc2_bias, nullptr);
  return PrenormMlp::apply(xc, ln.weight, ln.bias, fc1_weight, fc1_bias, fc2_weight, fc2_bias, ln.eps,
                           as_int(deferring_weight_grads(fc1_weight)), as_int(deferring_weight_grads(fc2_weight)));
}

}  // namespace floe::models
