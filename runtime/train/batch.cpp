#include "runtime/train/batch.hpp"

#include "models/bert.hpp"
#include "runtime/train/sampler.hpp"

#include <algorithm>

namespace floe::runtime {
namespace {

double uniform(uint64_t& state) { return double(splitmix64(state) >> 11) * 0x1p-53; }

}  // namespace

BatchRecipe batch_recipe(const JobConfig& cfg) {
  return {cfg.data.augment == "flip", cfg.model.task == "mlm", cfg.data.mlm_probability, cfg.seed};
}

Masked mask_tokens(const torch::Tensor& ids_in, const std::vector<int64_t>& uids, const models::TokenInfo& tokens,
                   double probability, uint64_t seed, int epoch) {
  auto ids = ids_in.contiguous().clone();
  auto targets = torch::full_like(ids, models::kIgnoreTarget);
  const int64_t n = ids.size(0), l = ids.size(1);
  auto* x = ids.data_ptr<int64_t>();
  auto* t = targets.data_ptr<int64_t>();
  std::vector<bool> special(static_cast<size_t>(tokens.vocab_size), false);
  for (int64_t s : tokens.specials)
    if (s >= 0 && s < tokens.vocab_size) special[s] = true;
  std::vector<int64_t> ordinary;  // what a random replacement draws from
  for (int64_t v = 0; v < tokens.vocab_size; ++v)
    if (!special[v]) ordinary.push_back(v);
  auto is_special = [&](int64_t v) { return v < 0 || v >= tokens.vocab_size || special[v]; };
  for (int64_t i = 0; i < n; ++i) {
    uint64_t state = seed ^ (uint64_t(uint32_t(epoch)) << 40) ^ uint64_t(uids[i]) * 0xD1B54A32D192ED03ull;
    int64_t* row = x + i * l;
    std::vector<int64_t> candidates, chosen;
    for (int64_t j = 0; j < l; ++j) {
      if (is_special(row[j])) continue;
      candidates.push_back(j);
      if (uniform(state) < probability) chosen.push_back(j);
    }
    if (chosen.empty() && !candidates.empty() && probability > 0)
      chosen.push_back(candidates[splitmix64(state) % candidates.size()]);
    for (int64_t j : chosen) {
      t[i * l + j] = row[j];
      const double r = uniform(state);
      if (r < 0.8)
        row[j] = tokens.mask;
      else if (r < 0.9 && !ordinary.empty())
        row[j] = ordinary[splitmix64(state) % ordinary.size()];
    }
  }
  return {ids, targets};
}

models::Batch make_batch(const models::Dataset& data, const std::vector<int64_t>& uids, bool train, int epoch,
                         const BatchRecipe& recipe) {
  auto batch = models::gather(data, torch::tensor(uids, torch::kInt64));
  const int64_t n = static_cast<int64_t>(uids.size());
  if (train && recipe.flip && !data.sequences()) {
    std::vector<uint8_t> flip;
    for (auto uid : uids) flip.push_back(flip_of(recipe.seed, epoch, uid));
    auto mask = torch::tensor(flip, torch::kBool).view({n, 1, 1, 1});
    batch.x = torch::where(mask, batch.x.flip({3}), batch.x);
  }
  if (recipe.mlm && data.sequences()) {
    auto m = mask_tokens(batch.x, uids, data.tokens, recipe.mlm_probability, recipe.seed, train ? epoch : kEvalEpoch);
    batch.x = m.ids;
    batch.y = m.targets;
  }
  return batch;
}

}  // namespace floe::runtime
