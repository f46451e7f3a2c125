#pragma once
// An in-memory labelled dataset of images or token sequences. The sample uid is its index.
#include <torch/torch.h>

#include <string>
#include <vector>

namespace floe::models {

// What masking needs to know of a vocabulary (token sequences only).
struct TokenInfo {
  int64_t vocab_size = 0;
  int64_t mask = -1;              // [MASK]
  std::vector<int64_t> specials;  // ids never masked nor drawn as random tokens ([PAD], [CLS], ...)
};

struct Dataset {
  std::string name;
  torch::Tensor inputs;  // images: float32 [N, C, H, W], normalised; text: int64 token ids [N, L], 0-padded
  torch::Tensor labels;  // int64 [N]
  TokenInfo tokens;      // text only

  bool sequences() const { return inputs.defined() && inputs.scalar_type() == torch::kInt64; }
  // Tokens per sample, padding excluded (token sequences only).
  std::vector<int64_t> lengths() const;

  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
  // The first n samples (n <= 0 or n >= size keeps all).
  Dataset head(int64_t n) const;
  // All but the first n samples (n <= 0 keeps all). Throws floe::InputError when n >= size.
  Dataset skip(int64_t n) const;
  // The samples whose label is in `classes`, in their order (empty keeps all).
  Dataset only_classes(const std::vector<int>& classes) const;
  // These rows, with this dataset's name and tokens.
  Dataset rows(torch::Tensor x, torch::Tensor y) const { return {name, std::move(x), std::move(y), tokens}; }
};

struct Batch {
  torch::Tensor x, y;
};

// Gathers the samples with the given uids (int64 tensor) in that order; token sequences are
// cut to the longest one among them (padding to the longest in the batch).
Batch gather(const Dataset& d, const torch::Tensor& uids);

struct TrainTest {
  Dataset train, test;
};

// Fashion-MNIST from the Debian package's gzipped IDX files in `root`
// (train-images-idx3-ubyte.gz, ...). Throws floe::InputError naming file and problem.
TrainTest load_fashion_mnist(const std::string& root);

// Deterministic learnable data: each class is a fixed random prototype plus noise, images of
// `channels` x `size` x `size` (any ViT's shape: benchmarks and simulations of large models).
TrainTest make_synthetic(int64_t train_size, int64_t test_size, int64_t classes, uint64_t seed, int64_t channels = 1,
                         int64_t size = 28);

// Reads one gzipped IDX file: magic, dimensions, then uint8 payload. Exposed for tests.
struct IdxFile {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};
IdxFile read_idx_gz(const std::string& path, uint32_t expected_magic);

}  // namespace floe::models
