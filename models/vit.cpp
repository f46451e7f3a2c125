#include "models/vit.hpp"

#include <stdexcept>
#include <string>

namespace floe::models {
namespace {

namespace nn = torch::nn;

// patch conv + class token + position embedding: [N, C, H, W] -> [N, 1 + P, dim]
struct EmbeddingUnit : UnitModule {
  nn::Conv2d proj{nullptr};
  torch::Tensor cls, pos;
  EmbeddingUnit(const VitConfig& c) {
    const int64_t patches = (c.image_size / c.patch) * (c.image_size / c.patch);
    proj = register_module("proj", nn::Conv2d(nn::Conv2dOptions(c.channels, c.dim, c.patch).stride(c.patch)));
    cls = register_parameter("cls", torch::randn({1, 1, c.dim}) * 0.02);
    pos = register_parameter("pos", torch::randn({1, patches + 1, c.dim}) * 0.02);
  }
  torch::Tensor forward(torch::Tensor x) override {
    auto p = proj->forward(x).flatten(2).transpose(1, 2);
    return torch::cat({cls.expand({p.size(0), -1, -1}), p}, 1) + pos;
  }
};

// LN -> multi-head self-attention -> +x
struct AttentionUnit : UnitModule {
  nn::LayerNorm ln{nullptr};
  nn::MultiheadAttention attn{nullptr};
  AttentionUnit(const VitConfig& c) {
    ln = register_module("ln", nn::LayerNorm(nn::LayerNormOptions({c.dim})));
    attn = register_module("attn", nn::MultiheadAttention(nn::MultiheadAttentionOptions(c.dim, c.heads)));
  }
  torch::Tensor forward(torch::Tensor x) override {
    auto h = ln->forward(x).transpose(0, 1);  // LibTorch 1.13 MHA takes (L, N, E)
    auto a = std::get<0>(attn->forward(h, h, h, torch::Tensor(), /*need_weights=*/false));
    return x + a.transpose(0, 1);
  }
};

// LN -> Linear -> GELU -> Linear -> +x
struct MlpUnit : UnitModule {
  nn::LayerNorm ln{nullptr};
  nn::Linear fc1{nullptr}, fc2{nullptr};
  MlpUnit(const VitConfig& c) {
    ln = register_module("ln", nn::LayerNorm(nn::LayerNormOptions({c.dim})));
    fc1 = register_module("fc1", nn::Linear(c.dim, c.dim * c.mlp_ratio));
    fc2 = register_module("fc2", nn::Linear(c.dim * c.mlp_ratio, c.dim));
  }
  torch::Tensor forward(torch::Tensor x) override {
    return x + fc2->forward(torch::gelu(fc1->forward(ln->forward(x))));
  }
};

struct FinalNormUnit : UnitModule {
  nn::LayerNorm ln{nullptr};
  FinalNormUnit(const VitConfig& c) { ln = register_module("ln", nn::LayerNorm(nn::LayerNormOptions({c.dim}))); }
  torch::Tensor forward(torch::Tensor x) override { return ln->forward(x); }
};

// classifier on the class token
struct HeadUnit : UnitModule {
  nn::Linear fc{nullptr};
  HeadUnit(const VitConfig& c) { fc = register_module("fc", nn::Linear(c.dim, c.classes)); }
  torch::Tensor forward(torch::Tensor x) override { return fc->forward(x.select(1, 0)); }
};

void require(bool ok, const std::string& field, const std::string& expected, int64_t got) {
  if (!ok) throw std::invalid_argument("model." + field + ": expected " + expected + ", got " + std::to_string(got));
}

}  // namespace

void validate(const VitConfig& c) {
  require(c.image_size > 0, "image_size", "a positive integer", c.image_size);
  require(c.channels > 0, "channels", "a positive integer", c.channels);
  require(c.patch > 0 && c.image_size % c.patch == 0, "patch",
          "a positive divisor of the image size " + std::to_string(c.image_size), c.patch);
  require(c.depth > 0, "depth", "a positive integer", c.depth);
  require(c.heads > 0, "heads", "a positive integer", c.heads);
  require(c.dim > 0 && c.dim % c.heads == 0, "dim",
          "a positive multiple of model.heads (" + std::to_string(c.heads) + ")", c.dim);
  require(c.mlp_ratio > 0, "mlp_ratio", "a positive integer", c.mlp_ratio);
  require(c.classes > 1, "classes", "at least 2", c.classes);
}

UnitList build_vit(const VitConfig& c) {
  validate(c);
  UnitList units;
  units.push_back({"embed", -1, std::make_shared<EmbeddingUnit>(c)});
  for (int b = 0; b < c.depth; ++b) {
    units.push_back({"block" + std::to_string(b) + ".attn", b, std::make_shared<AttentionUnit>(c)});
    units.push_back({"block" + std::to_string(b) + ".mlp", b, std::make_shared<MlpUnit>(c)});
  }
  units.push_back({"norm", static_cast<int>(c.depth), std::make_shared<FinalNormUnit>(c)});
  units.push_back({"head", static_cast<int>(c.depth), std::make_shared<HeadUnit>(c)});
  return units;
}

}  // namespace floe::models
