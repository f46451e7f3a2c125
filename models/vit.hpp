#pragma once
// Vision Transformer for small single-channel images (Fashion-MNIST), decomposed at the
// paper's granularity: [embedding], per block [attention unit, MLP unit], [final LN], [head].
#include "models/unit.hpp"

namespace floe::models {

struct VitConfig {
  int64_t image_size = 28;
  int64_t channels = 1;
  int64_t patch = 4;
  int64_t dim = 64;
  int64_t depth = 6;
  int64_t heads = 4;
  int64_t mlp_ratio = 2;
  int64_t classes = 10;
};

// Throws std::invalid_argument naming the field when the configuration cannot form a ViT.
void validate(const VitConfig& cfg);

// Builds the unit list; weights come from torch's global generator, so seed it first
// (torch::manual_seed) for reproducible models.
UnitList build_vit(const VitConfig& cfg);

// 2·depth + 3 units.
inline int64_t vit_unit_count(const VitConfig& cfg) { return 2 * cfg.depth + 3; }

}  // namespace floe::models
