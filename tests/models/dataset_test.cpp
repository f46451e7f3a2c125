#include <torch/torch.h>

#include "models/dataset.hpp"
#include "models/errors.hpp"
#include "tests/skip.hpp"

#include <catch2/catch.hpp>

#include <zlib.h>

#include <filesystem>

using namespace floe;

namespace {

void write_gz(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f);
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

std::vector<uint8_t> be32(uint32_t v) { return {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)}; }

std::vector<uint8_t> idx_images(uint32_t magic, uint32_t count, size_t payload) {
  std::vector<uint8_t> b;
  for (auto v : {magic, count, 28u, 28u})
    for (auto x : be32(v)) b.push_back(x);
  b.resize(b.size() + payload, 7);
  return b;
}

struct TempDir {
  std::string path;
  TempDir() {
    char name[] = "/tmp/floe-data-XXXXXX";
    path = mkdtemp(name);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

}  // namespace

TEST_CASE("an IDX file with the wrong magic number is rejected, naming the file", "[data]") {
  TempDir d;
  const auto path = d.path + "/train-images-idx3-ubyte.gz";
  write_gz(path, idx_images(0x00000801, 2, 2 * 784));
  CHECK_THROWS_WITH(models::read_idx_gz(path, 0x00000803),
                    Catch::Contains(path) && Catch::Contains("wrong magic number 0x00000801") &&
                        Catch::Contains("expected 0x00000803"));
}

TEST_CASE("a truncated IDX file is rejected with the sizes", "[data]") {
  TempDir d;
  const auto path = d.path + "/train-images-idx3-ubyte.gz";
  write_gz(path, idx_images(0x00000803, 3, 2 * 784 + 10));
  CHECK_THROWS_WITH(models::read_idx_gz(path, 0x00000803),
                    Catch::Contains(path) && Catch::Contains("truncated") && Catch::Contains("expected 2352 bytes") &&
                        Catch::Contains("found 1578"));
}

TEST_CASE("a corrupt gzip stream and a missing file are rejected", "[data]") {
  TempDir d;
  const auto path = d.path + "/t10k-images-idx3-ubyte.gz";
  auto good = idx_images(0x00000803, 1, 784);
  write_gz(path, good);
  // Cut the compressed file in half.
  std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
  CHECK_THROWS_AS(models::read_idx_gz(path, 0x00000803), InputError);
  CHECK_THROWS_WITH(models::load_fashion_mnist(d.path + "/nowhere"),
                    Catch::Contains("nowhere/train-images-idx3-ubyte.gz") && Catch::Contains("does not exist"));
}

TEST_CASE("labels and images must agree", "[data]") {
  TempDir d;
  write_gz(d.path + "/train-images-idx3-ubyte.gz", idx_images(0x00000803, 2, 2 * 784));
  std::vector<uint8_t> labels;
  for (auto v : {0x00000801u, 3u})
    for (auto x : be32(v)) labels.push_back(x);
  labels.insert(labels.end(), {1, 2, 3});
  write_gz(d.path + "/train-labels-idx1-ubyte.gz", labels);
  CHECK_THROWS_WITH(models::load_fashion_mnist(d.path), Catch::Contains("has 3 labels but"));
}

TEST_CASE("the Debian Fashion-MNIST package loads with its documented sizes", "[data][needs-fashion-mnist]") {
  const std::string root = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(root + "/train-images-idx3-ubyte.gz"))
    FLOE_SKIP(root + " is not there (make test installs Debian's dataset-fashion-mnist package)");
  auto tt = models::load_fashion_mnist(root);
  CHECK(tt.train.size() == 60000);
  CHECK(tt.test.size() == 10000);
  CHECK(tt.train.inputs.sizes() == torch::IntArrayRef({60000, 1, 28, 28}));
  CHECK(tt.train.labels.max().item<int64_t>() == 9);
  CHECK(std::abs(tt.train.inputs.mean().item<double>()) < 0.01);  // normalised
}

TEST_CASE("only_classes keeps the samples of the listed labels, in their order", "[data]") {
  models::Dataset d{"t", torch::arange(6, torch::kFloat32).view({6, 1, 1, 1}), torch::tensor({3, 0, 1, 3, 2, 0}, torch::kInt64)};
  const auto kept = d.only_classes({3, 0});
  REQUIRE(kept.size() == 4);
  CHECK(kept.labels.equal(torch::tensor({3, 0, 3, 0}, torch::kInt64)));
  CHECK(kept.inputs.flatten().equal(torch::tensor({0.f, 1.f, 3.f, 5.f})));
  CHECK(d.only_classes({}).size() == 6);
  CHECK(d.only_classes({7}).size() == 0);
  const auto rest = d.skip(4);
  CHECK(rest.labels.equal(torch::tensor({2, 0}, torch::kInt64)));
  CHECK(d.skip(0).size() == 6);
  CHECK_THROWS_WITH(d.skip(6), Catch::Contains("data.offset = 6") && Catch::Contains("all 6"));
}
