#include "models/text_dataset.hpp"

#include "models/errors.hpp"

#include <algorithm>

namespace floe::models {

Dataset encode_texts(const std::vector<LabelledText>& texts, const WordPiece& tokenizer, int64_t max_len,
                     const std::string& name) {
  std::vector<std::vector<int64_t>> rows;
  rows.reserve(texts.size());
  size_t longest = 2;
  for (const auto& t : texts) {
    rows.push_back(tokenizer.encode(t.text, max_len));
    longest = std::max(longest, rows.back().size());
  }
  const auto n = static_cast<int64_t>(texts.size());
  auto ids = torch::zeros({n, static_cast<int64_t>(longest)}, torch::kInt64);
  auto labels = torch::empty({n}, torch::kInt64);
  auto* x = ids.data_ptr<int64_t>();
  auto* y = labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    std::copy(rows[i].begin(), rows[i].end(), x + i * static_cast<int64_t>(longest));
    y[i] = texts[i].label;
  }
  const auto& v = tokenizer.vocab();
  TokenInfo tokens{static_cast<int64_t>(v.size()), v.mask, {v.pad, v.cls, v.sep, v.mask}};
  return {name, ids, labels, tokens};
}

TrainTest load_sst2_dataset(const std::string& root, const std::string& vocab_path, int64_t vocab_size, int64_t max_len,
                            const std::string& eval_split, bool sentences) {
  auto vocab = read_vocab(vocab_path);
  if (vocab.pad != 0)
    throw InputError("vocabulary " + vocab_path + ": [PAD] is on line " + std::to_string(vocab.pad + 1) +
                     ", expected line 1 (id 0, as in BERT's vocabularies)");
  if (static_cast<int64_t>(vocab.size()) > vocab_size)
    throw InputError("vocabulary " + vocab_path + " has " + std::to_string(vocab.size()) +
                     " tokens, more than model.vocab_size = " + std::to_string(vocab_size));
  const WordPiece tokenizer(std::move(vocab));
  const bool test = eval_split == "test";
  if (sentences) {
    auto texts = [&](const std::string& file) {
      std::vector<LabelledText> out;
      for (auto& t : read_sst_texts(root + "/" + file)) out.push_back({std::move(t), 0});
      return out;
    };
    return {encode_texts(texts("train.txt"), tokenizer, max_len, "sst/train-text"),
            encode_texts(texts(test ? "test.txt" : "dev.txt"), tokenizer, max_len, test ? "sst/test-text" : "sst/dev-text")};
  }
  const auto sst = load_sst2(root);
  return {encode_texts(sst.train, tokenizer, max_len, "sst2/train"),
          encode_texts(test ? sst.test : sst.dev, tokenizer, max_len, test ? "sst2/test" : "sst2/dev")};
}

}  // namespace floe::models
