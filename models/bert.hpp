#pragma once
// A BERT encoder (Devlin et al., 2019) as the original builds it, decomposed at the paper's
// granularity: [embeddings], per block [attention unit, FFN unit], [head].
//   embeddings: word + position + token type, then LayerNorm (eps 1e-12) and dropout;
//   attention unit: LN(x + dropout(attention(x)))    (post-LayerNorm, as BERT)
//   FFN unit:       LN(x + dropout(W2 gelu(W1 x)))   (GELU in its erf form)
//   head, task classify: pooler (dense + tanh on [CLS]) then classifier, logits [N, classes];
//   head, task mlm: dense + GELU + LN, then the decoder over the vocabulary, logits [N, L, V].
// Input: token ids [N, L] (int64; id 0 is [PAD]), one segment (token type 0; sentence pairs
// need a second row of types through batches and the cache first). Between units a sequence
// travels with its mask (models/transformer.hpp).
// Weights start as BERT's: normal(0, 0.02), zero biases, LayerNorm one and zero.
#include "models/model.hpp"

namespace floe::models {

inline constexpr int64_t kPadId = 0;  // [PAD], as in BERT's vocabularies and floe's own
inline constexpr int64_t kIgnoreTarget = -100;  // an MLM target that is not predicted

UnitList build_bert(const ModelConfig& c);

inline int64_t bert_unit_count(const ModelConfig& c) { return 2 * c.depth + 2; }

}  // namespace floe::models
