#include <torch/torch.h>

#include "models/bert.hpp"
#include "models/transformer.hpp"

#include <catch2/catch.hpp>

using namespace floe::models;

namespace {

ModelConfig small_bert(const std::string& task = "classify") {
  ModelConfig c;
  c.kind = "bert";
  c.task = task;
  c.vocab_size = 50;
  c.max_len = 24;
  c.dim = 32;
  c.depth = 2;
  c.heads = 4;
  c.ffn_dim = 48;
  c.classes = 3;
  return c;
}

// [CLS] 7 8 9 10 [SEP], then `pad` zeros.
torch::Tensor sentence(int64_t pad) {
  auto ids = torch::tensor({2, 7, 8, 9, 10, 3}, torch::kInt64);
  return torch::cat({ids, torch::zeros({pad}, torch::kInt64)}).unsqueeze(0);
}

}  // namespace

TEST_CASE("BERT decomposes into embeddings, an attention and an FFN unit per block, and a head", "[model][bert]") {
  torch::manual_seed(1);
  const auto c = small_bert();
  const auto units = build_model(c);
  REQUIRE(static_cast<int64_t>(units.size()) == unit_count(c));
  REQUIRE(units.size() == 6);
  CHECK(units[0].name == "embed");
  CHECK(units[0].block == -1);
  CHECK(units[1].name == "block0.attn");
  CHECK(units[2].name == "block0.ffn");
  CHECK(units[4].block == 1);
  CHECK(units[5].name == "head");
  CHECK(units[5].block == 2);
  // word + position + type tables and the LayerNorm
  CHECK(units[0].parameter_count() == 50 * 32 + 24 * 32 + 2 * 32 + 2 * 32);
  // the planner weighs a lookup by its LayerNorm only
  CHECK(units[0].planner_cost() == 2 * 32);
  // q, k, v, output projections and the LayerNorm
  CHECK(units[1].parameter_count() == 4 * (32 * 32 + 32) + 2 * 32);
  CHECK(units[2].parameter_count() == 32 * 48 + 48 + 48 * 32 + 32 + 2 * 32);
  CHECK(units[2].planner_cost() == units[2].parameter_count());
  const auto names = parameter_names_of(units, 0, units.size());
  CHECK(std::count(names.begin(), names.end(), "block0.attn.attn.query.weight") == 1);
  CHECK(std::count(names.begin(), names.end(), "head.pooler.weight") == 1);
  // post-LayerNorm with BERT's eps, weights as BERT initialises them
  auto ln = units[1].module->named_parameters()["ln.weight"];
  CHECK(ln.eq(1).all().item<bool>());
  CHECK(units[0].module->named_parameters()["word.weight"].std().item<double>() == Approx(0.02).epsilon(0.1));

  auto logits = forward_range(units, 0, units.size(), sentence(3).repeat({4, 1}));
  CHECK(logits.sizes() == torch::IntArrayRef({4, 3}));
}

TEST_CASE("the MLM head predicts every position over the vocabulary", "[model][bert]") {
  torch::manual_seed(1);
  const auto units = build_model(small_bert("mlm"));
  auto logits = forward_range(units, 0, units.size(), sentence(2).repeat({3, 1}));
  CHECK(logits.sizes() == torch::IntArrayRef({3, 8, 50}));
  const auto names = parameter_names_of(units, 0, units.size());
  CHECK(std::count(names.begin(), names.end(), "head.decoder.weight") == 1);
}

TEST_CASE("padding changes nothing: the same sentence padded to other lengths gives the same [CLS] output",
          "[model][bert]") {
  torch::manual_seed(2);
  const auto units = build_model(small_bert());
  torch::NoGradGuard no_grad;
  const auto short_out = forward_range(units, 0, units.size() - 1, sentence(0));
  const auto head_short = forward_range(units, units.size() - 1, units.size(), short_out);
  for (int64_t pad : {1, 5, 18}) {
    INFO("padded by " << pad);
    const auto out = forward_range(units, 0, units.size() - 1, sentence(pad));
    const auto real = unpack_sequence(out).hidden.narrow(1, 0, 6);
    CHECK((real - unpack_sequence(short_out).hidden).abs().max().item<double>() < 1e-6);
    CHECK(unpack_sequence(out).mask.sum().item<int64_t>() == 6);
    const auto head = forward_range(units, units.size() - 1, units.size(), out);
    CHECK((head - head_short).abs().max().item<double>() < 1e-6);
  }
}

TEST_CASE("a sequence longer than the position table is refused naming model.max_len", "[model][bert]") {
  const auto units = build_model(small_bert());
  CHECK_THROWS_WITH(units[0].module->forward(torch::ones({1, 25}, torch::kInt64)), Catch::Contains("model.max_len = 24"));
}

TEST_CASE("causal attention: a position never sees the ones after it (the decoder's door)", "[model]") {
  torch::manual_seed(3);
  SelfAttention attn(16, 2, 0.0);
  auto x = torch::randn({1, 5, 16});
  auto y = x.clone();
  y.narrow(1, 3, 2).normal_();  // change the last two positions only
  torch::NoGradGuard no_grad;
  const auto a = attn->forward(x, {}, true), b = attn->forward(y, {}, true);
  CHECK((a.narrow(1, 0, 3) - b.narrow(1, 0, 3)).abs().max().item<double>() < 1e-6);
  CHECK((a.narrow(1, 3, 2) - b.narrow(1, 3, 2)).abs().max().item<double>() > 1e-3);
}

TEST_CASE("bad BERT shapes name the key", "[model][bert]") {
  auto c = small_bert();
  c.vocab_size = 0;
  CHECK_THROWS_WITH(build_model(c), Catch::Contains("model.vocab_size"));
  c = small_bert();
  c.max_len = 1;
  CHECK_THROWS_WITH(build_model(c), Catch::Contains("model.max_len"));
  c = small_bert();
  c.dim = 30;
  CHECK_THROWS_WITH(build_model(c), Catch::Contains("model.dim"));
  c = small_bert();
  c.kind = "vit";
  c.task = "mlm";
  CHECK_THROWS_WITH(build_model(c), Catch::Contains("model.task") && Catch::Contains("bert"));
  c = small_bert();
  c.kind = "gpt";
  CHECK_THROWS_WITH(validate(c), Catch::Contains("model.kind"));
}

TEST_CASE("init weights: skipped prefixes may be missing, extra or of another shape; nothing else", "[model][bert]") {
  torch::manual_seed(5);
  auto three = small_bert();  // 3 classes
  auto two = small_bert();
  two.classes = 2;
  const auto from = build_model(three), to = build_model(two);
  std::map<std::string, torch::Tensor> weights;
  const auto names = parameter_names_of(from, 0, from.size());
  const auto params = parameters_of(from, 0, from.size());
  for (size_t i = 0; i < names.size(); ++i) weights[names[i]] = params[i].detach();
  weights["head.extra"] = torch::zeros({1});
  CHECK_THROWS_WITH(match_weights(to, weights, "w.pt"), Catch::Contains("w.pt") && Catch::Contains("head.classifier.weight"));
  const auto m = match_weights(to, weights, "w.pt", {"head.classifier.", "head.extra"});
  CHECK(m.kept == std::vector<std::string>{"head.classifier.weight", "head.classifier.bias"});
  CHECK(m.ignored == std::vector<std::string>{"head.extra"});
  // everything else comes from the weights
  for (size_t i = 0; i < m.names.size(); ++i)
    if (m.names[i].rfind("head.classifier.", 0) != 0) CHECK(torch::equal(m.values[i], weights.at(m.names[i])));
  weights.erase("embed.ln.bias");
  CHECK_THROWS_WITH(match_weights(to, weights, "w.pt", {"head."}), Catch::Contains("has no tensor 'embed.ln.bias'"));
}
