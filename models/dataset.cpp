#include "models/dataset.hpp"

#include "models/errors.hpp"

#include <zlib.h>

#include <filesystem>
#include <iomanip>
#include <memory>
#include <sstream>

namespace floe::models {

std::vector<int64_t> Dataset::lengths() const {
  const auto l = inputs.ne(0).sum(1).to(torch::kInt64).contiguous();
  return {l.data_ptr<int64_t>(), l.data_ptr<int64_t>() + l.numel()};
}

Dataset Dataset::head(int64_t n) const {
  if (n <= 0 || n >= size()) return *this;
  return rows(inputs.slice(0, 0, n), labels.slice(0, 0, n));
}

Dataset Dataset::skip(int64_t n) const {
  if (n <= 0) return *this;
  if (n >= size())
    throw InputError("data.offset = " + std::to_string(n) + " skips all " + std::to_string(size()) + " training samples");
  return rows(inputs.slice(0, n), labels.slice(0, n));
}

Dataset Dataset::only_classes(const std::vector<int>& classes) const {
  if (classes.empty()) return *this;
  auto keep = torch::zeros_like(labels, torch::kBool);
  for (int c : classes) keep |= labels == c;
  const auto idx = keep.nonzero().squeeze(1);
  return rows(inputs.index_select(0, idx), labels.index_select(0, idx));
}

Batch gather(const Dataset& d, const torch::Tensor& uids) {
  auto x = d.inputs.index_select(0, uids);
  if (d.sequences() && x.size(0) > 0) {
    const int64_t longest = x.ne(0).any(0).nonzero().max().item<int64_t>() + 1;  // last position any sample uses
    x = x.narrow(1, 0, longest);
  }
  return {x, d.labels.index_select(0, uids)};
}

namespace {

struct GzCloser {
  void operator()(gzFile f) const { gzclose(f); }
};

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw InputError("data file " + path + ": " + what);
}

// Reads exactly n bytes or reports where the file ended.
void read_exact(gzFile f, const std::string& path, void* dst, size_t n, const char* what) {
  size_t got = 0;
  auto* out = static_cast<char*>(dst);
  while (got < n) {
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - got, 1u << 30));
    const int r = gzread(f, out + got, chunk);
    if (r < 0) {
      int code = 0;
      fail(path, std::string("corrupt gzip stream while reading ") + what + " at byte " + std::to_string(got) + ": " +
                     gzerror(f, &code));
    }
    if (r == 0) {
      fail(path, std::string("truncated: expected ") + std::to_string(n) + " bytes of " + what + ", found " +
                     std::to_string(got));
    }
    got += static_cast<size_t>(r);
  }
}

uint32_t big_endian(const uint8_t* b) { return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | b[3]; }

std::string hex(uint32_t v) {
  std::ostringstream s;
  s << "0x" << std::hex << std::setw(8) << std::setfill('0') << v;
  return s.str();
}

}  // namespace

IdxFile read_idx_gz(const std::string& path, uint32_t expected_magic) {
  if (!std::filesystem::exists(path)) fail(path, "does not exist (install the Debian package dataset-fashion-mnist, or set data.root)");
  std::unique_ptr<gzFile_s, GzCloser> f(gzopen(path.c_str(), "rb"));
  if (!f) fail(path, "cannot be opened");
  uint8_t head[4];
  read_exact(f.get(), path, head, 4, "header");
  const uint32_t magic = big_endian(head);
  if (magic != expected_magic)
    fail(path, "wrong magic number " + hex(magic) + ", expected " + hex(expected_magic) + " (not an IDX file of this kind)");
  IdxFile out;
  const int ndims = head[3];
  size_t total = 1;
  for (int i = 0; i < ndims; ++i) {
    uint8_t b[4];
    read_exact(f.get(), path, b, 4, "dimension sizes");
    out.dims.push_back(big_endian(b));
    total *= out.dims.back();
  }
  out.data.resize(total);
  read_exact(f.get(), path, out.data.data(), total, "payload");
  uint8_t extra;
  if (gzread(f.get(), &extra, 1) > 0) fail(path, "has trailing bytes after the " + std::to_string(total) + "-byte payload");
  return out;
}

TrainTest load_fashion_mnist(const std::string& root) {
  auto load = [&](const std::string& stem, const std::string& name) {
    const auto img_path = root + "/" + stem + "-images-idx3-ubyte.gz";
    const auto lbl_path = root + "/" + stem + "-labels-idx1-ubyte.gz";
    auto img = read_idx_gz(img_path, 0x00000803);
    auto lbl = read_idx_gz(lbl_path, 0x00000801);
    if (img.dims.size() != 3 || img.dims[1] != 28 || img.dims[2] != 28)
      fail(img_path, "expected images of 28x28 pixels");
    if (lbl.dims.size() != 1 || lbl.dims[0] != img.dims[0])
      fail(lbl_path, "has " + std::to_string(lbl.dims.empty() ? 0 : lbl.dims[0]) + " labels but " + img_path + " has " +
                         std::to_string(img.dims[0]) + " images");
    for (size_t i = 0; i < lbl.data.size(); ++i)
      if (lbl.data[i] > 9) fail(lbl_path, "label " + std::to_string(lbl.data[i]) + " at index " + std::to_string(i) + " is not in 0..9");
    const int64_t n = img.dims[0];
    auto x = torch::from_blob(img.data.data(), {n, 1, 28, 28}, torch::kUInt8).to(torch::kFloat32).div_(255.0);
    x.sub_(0.2860).div_(0.3530);  // Fashion-MNIST mean / std
    auto y = torch::from_blob(lbl.data.data(), {n}, torch::kUInt8).to(torch::kInt64);
    return Dataset{name, x, y};
  };
  return {load("train", "fashion-mnist/train"), load("t10k", "fashion-mnist/test")};
}

TrainTest make_synthetic(int64_t train_size, int64_t test_size, int64_t classes, uint64_t seed, int64_t channels,
                         int64_t size) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto protos = torch::randn({classes, channels, size, size}, gen);
  auto make = [&](int64_t n, const std::string& name) {
    auto y = torch::randint(classes, {n}, gen, torch::kInt64);
    auto x = protos.index_select(0, y) + 1.5 * torch::randn({n, channels, size, size}, gen);
    return Dataset{name, x, y};
  };
  auto train = make(train_size, "synthetic/train");
  return {train, make(test_size, "synthetic/test")};
}

}  // namespace floe::models
