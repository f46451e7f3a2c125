#pragma once
// Vision Transformer for small single-channel images (Fashion-MNIST), decomposed at the
// paper's granularity: [embedding], per block [attention unit, MLP unit], [final LN], [head].
// Pre-LayerNorm blocks (x + attention(LN(x)); x + MLP(LN(x))), the attention with stacked
// q, k, v projections named as LibTorch's MultiheadAttention's; keys model.image_size,
// channels, patch, dim, depth, heads, mlp_ratio or ffn_dim, classes.
#include "models/model.hpp"

namespace floe::models {

// Builds the unit list; weights come from torch's global generator, so seed it first
// (torch::manual_seed) for reproducible models.
UnitList build_vit(const ModelConfig& cfg);

// 2·depth + 3 units.
inline int64_t vit_unit_count(const ModelConfig& cfg) { return 2 * cfg.depth + 3; }

}  // namespace floe::models
