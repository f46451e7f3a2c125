#pragma once
// The model a job trains, chosen by model.kind, as the ordered list of partitionable units
// that the planner places, the freeze policies freeze and the cache caches: the engine knows
// units, never the family. A family is a `build_*` function over this one configuration
// (models/vit.hpp, models/bert.hpp); adding one is a new file and a line in build_model.
#include "models/unit.hpp"

#include <string>

namespace floe::models {

struct ModelConfig {
  std::string kind = "vit";       // vit | bert
  std::string task = "classify";  // classify | mlm (masked-language modelling, bert only)
  int64_t dim = 64;
  int64_t depth = 6;
  int64_t heads = 4;
  int64_t mlp_ratio = 2;  // FFN width = dim * mlp_ratio, unless ffn_dim is set
  int64_t ffn_dim = 0;    // FFN width; 0 = dim * mlp_ratio
  int64_t classes = 10;
  double dropout = 0;     // bert: hidden and attention-probability dropout while training
  double layer_norm_eps = 0;  // 0 = the family's own: vit 1e-5 (LibTorch's), bert 1e-12 (BERT's)
  // vit
  int64_t image_size = 28;
  int64_t channels = 1;
  int64_t patch = 4;
  // bert
  int64_t vocab_size = 0;  // 0 = the size of data.vocab
  int64_t max_len = 128;   // position table: the longest sequence, [CLS] and [SEP] included
  int64_t type_vocab_size = 2;
};

inline int64_t ffn_width(const ModelConfig& c) { return c.ffn_dim > 0 ? c.ffn_dim : c.dim * c.mlp_ratio; }
inline double layer_norm_eps(const ModelConfig& c) {
  return c.layer_norm_eps > 0 ? c.layer_norm_eps : c.kind == "bert" ? 1e-12 : 1e-5;
}

// Throws std::invalid_argument naming the key ("model.dim: expected ..., got ...").
void validate(const ModelConfig& c);

// The units of the configured family; weights come from torch's global generator, so seed
// it first (torch::manual_seed) for reproducible models.
UnitList build_model(const ModelConfig& c);

// How many units build_model makes, without building them.
int64_t unit_count(const ModelConfig& c);

// One line naming the family and every shape key (logs, micro-batch profile keys).
std::string describe(const ModelConfig& c);

}  // namespace floe::models
