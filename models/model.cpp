#include "models/model.hpp"

#include "models/bert.hpp"
#include "models/vit.hpp"

#include <fmt/format.h>

#include <stdexcept>

namespace floe::models {
namespace {

void require(bool ok, const std::string& field, const std::string& expected, const std::string& got) {
  if (!ok) throw std::invalid_argument("model." + field + ": expected " + expected + ", got " + got);
}
void require(bool ok, const std::string& field, const std::string& expected, int64_t got) {
  require(ok, field, expected, std::to_string(got));
}

}  // namespace

void validate(const ModelConfig& c) {
  require(c.kind == "vit" || c.kind == "bert", "kind", "\"vit\" or \"bert\"", "\"" + c.kind + "\"");
  require(c.task == "classify" || (c.task == "mlm" && c.kind == "bert"), "task",
          c.kind == "bert" ? "\"classify\" or \"mlm\"" : "\"classify\" (masked-language modelling needs model.kind = \"bert\")",
          "\"" + c.task + "\"");
  require(c.depth > 0, "depth", "a positive integer", c.depth);
  require(c.heads > 0, "heads", "a positive integer", c.heads);
  require(c.dim > 0 && c.dim % c.heads == 0, "dim", "a positive multiple of model.heads (" + std::to_string(c.heads) + ")",
          c.dim);
  require(c.mlp_ratio > 0, "mlp_ratio", "a positive integer", c.mlp_ratio);
  require(c.ffn_dim >= 0, "ffn_dim", "a positive integer, or 0 for dim x mlp_ratio", c.ffn_dim);
  require(c.classes > 1, "classes", "at least 2", c.classes);
  require(c.layer_norm_eps >= 0 && c.layer_norm_eps < 1, "layer_norm_eps", "a small positive number, or 0 for the family's own",
          fmt::format("{}", c.layer_norm_eps));
  require(c.dropout >= 0 && c.dropout < 1, "dropout", "a probability in [0, 1)", fmt::format("{}", c.dropout));
  if (c.kind == "vit") {
    require(c.image_size > 0, "image_size", "a positive integer", c.image_size);
    require(c.channels > 0, "channels", "a positive integer", c.channels);
    require(c.patch > 0 && c.image_size % c.patch == 0, "patch",
            "a positive divisor of the image size " + std::to_string(c.image_size), c.patch);
  } else {
    require(c.vocab_size > 5, "vocab_size", "the vocabulary's size (more than its 5 special tokens)", c.vocab_size);
    require(c.max_len >= 2, "max_len", "at least 2 ([CLS] and [SEP])", c.max_len);
    require(c.type_vocab_size > 0, "type_vocab_size", "a positive integer", c.type_vocab_size);
  }
}

UnitList build_model(const ModelConfig& c) { return c.kind == "bert" ? build_bert(c) : build_vit(c); }

int64_t unit_count(const ModelConfig& c) { return c.kind == "bert" ? bert_unit_count(c) : vit_unit_count(c); }

std::string describe(const ModelConfig& c) {
  const auto common = fmt::format("depth={} dim={} heads={} ffn={} classes={}", c.depth, c.dim, c.heads, ffn_width(c),
                                  c.classes);
  if (c.kind == "bert")
    return fmt::format("bert {} task={} vocab={} max_len={} types={} dropout={}", common, c.task, c.vocab_size,
                       c.max_len, c.type_vocab_size, c.dropout);
  return fmt::format("vit {} image={}x{} patch={}", common, c.image_size, c.channels, c.patch);
}

}  // namespace floe::models
