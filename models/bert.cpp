#include "models/bert.hpp"

#include "models/transformer.hpp"
#include "models/weight_grads.hpp"

namespace floe::models {
namespace {

namespace nn = torch::nn;

nn::LayerNorm layer_norm(const ModelConfig& c) { return nn::LayerNorm(nn::LayerNormOptions({c.dim}).eps(layer_norm_eps(c))); }

struct EmbeddingsUnit : UnitModule {
  nn::Embedding word{nullptr}, position{nullptr}, token_type{nullptr};
  nn::LayerNorm ln{nullptr};
  nn::Dropout drop{nullptr};
  explicit EmbeddingsUnit(const ModelConfig& c) {
    word = register_module("word", nn::Embedding(c.vocab_size, c.dim));
    position = register_module("position", nn::Embedding(c.max_len, c.dim));
    token_type = register_module("token_type", nn::Embedding(c.type_vocab_size, c.dim));
    ln = register_module("ln", layer_norm(c));
    drop = register_module("drop", nn::Dropout(c.dropout));
  }
  torch::Tensor forward(torch::Tensor x) override {
    const auto& ids = x;
    const int64_t l = ids.size(1);
    TORCH_CHECK(l <= position->weight.size(0), "a sequence of ", l, " tokens exceeds model.max_len = ",
                position->weight.size(0));
    auto positions = torch::arange(l, ids.options()).unsqueeze(0);
    auto h = word->forward(ids) + position->forward(positions) + token_type->forward(torch::zeros_like(ids));
    return pack_sequence(drop->forward(ln->forward(h)), ids != kPadId);
  }
};

struct AttentionUnit : UnitModule {
  SelfAttention attn{nullptr};
  nn::LayerNorm ln{nullptr};
  nn::Dropout drop{nullptr};
  explicit AttentionUnit(const ModelConfig& c) {
    attn = register_module("attn", SelfAttention(c.dim, c.heads, c.dropout));
    ln = register_module("ln", layer_norm(c));
    drop = register_module("drop", nn::Dropout(c.dropout));
  }
  torch::Tensor forward(torch::Tensor x) override {
    auto s = unpack_sequence(x);
    return pack_sequence(ln->forward(s.hidden + drop->forward(attn->forward(s.hidden, s.mask))), s.mask);
  }
};

struct FfnUnit : UnitModule {
  FeedForward ffn{nullptr};
  nn::LayerNorm ln{nullptr};
  nn::Dropout drop{nullptr};
  explicit FfnUnit(const ModelConfig& c) {
    ffn = register_module("ffn", FeedForward(c.dim, ffn_width(c)));
    ln = register_module("ln", layer_norm(c));
    drop = register_module("drop", nn::Dropout(c.dropout));
  }
  torch::Tensor forward(torch::Tensor x) override {
    auto s = unpack_sequence(x);
    return pack_sequence(ln->forward(s.hidden + drop->forward(ffn->forward(s.hidden))), s.mask);
  }
};

struct ClassifierHead : UnitModule {
  nn::Linear pooler{nullptr}, classifier{nullptr};
  nn::Dropout drop{nullptr};
  explicit ClassifierHead(const ModelConfig& c) {
    pooler = register_module("pooler", nn::Linear(c.dim, c.dim));
    classifier = register_module("classifier", nn::Linear(c.dim, c.classes));
    drop = register_module("drop", nn::Dropout(c.dropout));
  }
  torch::Tensor forward(torch::Tensor x) override {
    auto cls = unpack_sequence(x).hidden.select(1, 0);
    return linear(classifier, drop->forward(torch::tanh(linear(pooler, cls))));
  }
};

struct MlmHead : UnitModule {
  nn::Linear transform{nullptr}, decoder{nullptr};
  nn::LayerNorm ln{nullptr};
  explicit MlmHead(const ModelConfig& c) {
    transform = register_module("transform", nn::Linear(c.dim, c.dim));
    ln = register_module("ln", layer_norm(c));
    decoder = register_module("decoder", nn::Linear(c.dim, c.vocab_size));
  }
  torch::Tensor forward(torch::Tensor x) override {
    return linear(decoder, ln->forward(torch::gelu(linear(transform, unpack_sequence(x).hidden))));
  }
};

void init_like_bert(UnitModule& m) {
  torch::NoGradGuard no_grad;
  for (auto& item : m.named_parameters()) {
    const auto& name = item.key();
    auto& p = item.value();
    const bool norm = name.rfind("ln.", 0) == 0 || name.find(".ln.") != std::string::npos;
    if (norm)
      name.size() >= 6 && name.compare(name.size() - 6, 6, "weight") == 0 ? p.fill_(1) : p.zero_();
    else if (name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0)
      p.zero_();
    else
      p.normal_(0, 0.02);
  }
}

}  // namespace

UnitList build_bert(const ModelConfig& c) {
  validate(c);
  UnitList units;
  auto embed = std::make_shared<EmbeddingsUnit>(c);
  // Lookups cost next to nothing: the planner weighs the embeddings by their LayerNorm only.
  units.push_back({"embed", -1, embed, 2 * c.dim});
  for (int b = 0; b < c.depth; ++b) {
    units.push_back({"block" + std::to_string(b) + ".attn", b, std::make_shared<AttentionUnit>(c)});
    units.push_back({"block" + std::to_string(b) + ".ffn", b, std::make_shared<FfnUnit>(c)});
  }
  const int tail = static_cast<int>(c.depth);
  if (c.task == "mlm")
    units.push_back({"head", tail, std::make_shared<MlmHead>(c)});
  else
    units.push_back({"head", tail, std::make_shared<ClassifierHead>(c)});
  for (auto& u : units) init_like_bert(*u.module);
  return units;
}

}  // namespace floe::models
