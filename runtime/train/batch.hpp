#pragma once
// What a replica feeds its pipeline for a step: the samples gathered (token sequences cut to
// the longest of the batch), images flipped where data.augment asks for it, and for
// masked-language modelling the tokens masked as BERT does, with the targets to predict.
// Every random choice is a seeded function of (seed, epoch, uid), so a sample gets the same
// view on every replica, after a transition and after a resume.
#include "models/dataset.hpp"
#include "runtime/config/job_config.hpp"

#include <cstdint>
#include <vector>

namespace floe::runtime {

struct BatchRecipe {
  bool flip = false;  // data.augment = "flip" (training steps)
  bool mlm = false;   // task = "mlm": inputs masked, targets [N, L]
  double mlm_probability = 0.15;
  uint64_t seed = 0;
};

BatchRecipe batch_recipe(const JobConfig& cfg);

// Evaluation masks with this epoch whatever the training epoch: one fixed test set.
inline constexpr int kEvalEpoch = -1;

models::Batch make_batch(const models::Dataset& data, const std::vector<int64_t>& uids, bool train, int epoch,
                         const BatchRecipe& recipe);

// BERT's masking of token ids [N, L]: each token that is not special is chosen with
// `probability` (at least one per sequence that has any); a chosen token becomes [MASK]
// with probability 0.8, a random non-special token with 0.1, and stays itself with 0.1.
// Returns the masked ids and the targets: the original id where chosen, else
// models::kIgnoreTarget.
struct Masked {
  torch::Tensor ids, targets;
};
Masked mask_tokens(const torch::Tensor& ids, const std::vector<int64_t>& uids, const models::TokenInfo& tokens,
                   double probability, uint64_t seed, int epoch);

}  // namespace floe::runtime
