#pragma once
// Labelled texts as a Dataset of token ids: each text WordPiece-encoded as
// [CLS] pieces [SEP], truncated to max_len, rows 0-padded ([PAD] = 0) to the longest text
// (models::gather then cuts each batch to its own longest).
#include "models/dataset.hpp"
#include "models/sst.hpp"
#include "models/wordpiece.hpp"

namespace floe::models {

Dataset encode_texts(const std::vector<LabelledText>& texts, const WordPiece& tokenizer, int64_t max_len,
                     const std::string& name);

// SST-2 (models/sst.hpp) from the tree files in `root`, tokenized with the vocabulary at
// `vocab_path`: train = GLUE's phrases, test = the dev sentences (eval_split "dev") or the test
// sentences ("test"). For masked-language modelling (`sentences`): the text alone, train = every
// training sentence (neutral ones too), test = every dev or test sentence; labels 0. Throws floe::InputError naming the file: a vocabulary whose [PAD] is not
// id 0, or that has more tokens than `vocab_size`.
TrainTest load_sst2_dataset(const std::string& root, const std::string& vocab_path, int64_t vocab_size, int64_t max_len,
                            const std::string& eval_split, bool sentences = false);

}  // namespace floe::models
