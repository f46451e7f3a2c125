#include "models/shapes.hpp"

namespace floe::models {
namespace {

constexpr double kFloat = 4;  // bytes

// A linear layer on s tokens: 2·s·in·out flops; its parameters.
double linear_flops(double s, int64_t in, int64_t out) { return 2 * s * static_cast<double>(in) * static_cast<double>(out); }
int64_t linear_params(int64_t in, int64_t out) { return in * out + out; }

// Self-attention on s tokens: four projections, the scores and their weighted sum.
UnitShape attention(const ModelConfig& c, double s, const std::string& name, int block) {
  const double d = static_cast<double>(c.dim), h = static_cast<double>(c.heads);
  UnitShape u{name, block};
  u.params = 4 * linear_params(c.dim, c.dim) + 2 * c.dim;  // + the LayerNorm
  u.forward_flops = 4 * linear_flops(s, c.dim, c.dim) + 4 * s * s * d;
  // LN (read, write), scores: scale, mask, softmax, dropout (~4 passes over s²·h), residual (3).
  u.elementwise_bytes = kFloat * (5 * s * d + 4 * s * s * h);
  return u;
}

UnitShape feed_forward(const ModelConfig& c, double s, const std::string& name, int block) {
  const int64_t f = ffn_width(c);
  UnitShape u{name, block};
  u.params = linear_params(c.dim, f) + linear_params(f, c.dim) + 2 * c.dim;
  u.forward_flops = linear_flops(s, c.dim, f) + linear_flops(s, f, c.dim);
  // GELU (read, write s·f), LN and residual (5 s·d).
  u.elementwise_bytes = kFloat * (2 * s * static_cast<double>(f) + 5 * s * static_cast<double>(c.dim));
  return u;
}

}  // namespace

int64_t sequence_length(const ModelConfig& c, int64_t sequence) {
  if (c.kind == "bert") return sequence > 0 ? sequence : c.max_len;
  const int64_t side = c.image_size / c.patch;
  return side * side + 1;
}

std::vector<UnitShape> unit_shapes(const ModelConfig& c, int64_t sequence) {
  validate(c);
  const int64_t s = sequence_length(c, sequence);
  const double sd = static_cast<double>(s);
  const bool bert = c.kind == "bert";
  // BERT's hidden states carry a mask channel (models/transformer.hpp: pack_sequence).
  const int64_t hidden_out = s * (c.dim + (bert ? 1 : 0));
  std::vector<UnitShape> units;
  UnitShape embed{"embed", -1};
  if (bert) {
    embed.params = (c.vocab_size + c.max_len + c.type_vocab_size) * c.dim + 2 * c.dim;
    embed.planner_cost = 2 * c.dim;  // lookups: the planner weighs the LayerNorm only (models/bert.cpp)
    embed.elementwise_bytes = kFloat * 6 * sd * static_cast<double>(c.dim);
  } else {
    const int64_t patches = s - 1, k = c.channels * c.patch * c.patch;
    embed.params = k * c.dim + c.dim + c.dim + s * c.dim;  // conv, its bias, class token, positions
    embed.forward_flops = 2 * static_cast<double>(patches) * static_cast<double>(k) * static_cast<double>(c.dim);
    embed.elementwise_bytes = kFloat * 3 * sd * static_cast<double>(c.dim);
  }
  embed.output_elements = hidden_out;
  units.push_back(embed);
  for (int b = 0; b < c.depth; ++b) {
    const auto prefix = "block" + std::to_string(b);
    units.push_back(attention(c, sd, prefix + ".attn", b));
    units.push_back(feed_forward(c, sd, prefix + (bert ? ".ffn" : ".mlp"), b));
    units[units.size() - 2].output_elements = units.back().output_elements = hidden_out;
  }
  const int tail = static_cast<int>(c.depth);
  if (!bert) {
    UnitShape norm{"norm", tail};
    norm.params = 2 * c.dim;
    norm.elementwise_bytes = kFloat * 2 * sd * static_cast<double>(c.dim);
    norm.output_elements = s * c.dim;
    units.push_back(norm);
    UnitShape head{"head", tail};
    head.params = linear_params(c.dim, c.classes);
    head.forward_flops = linear_flops(1, c.dim, c.classes);
    head.output_elements = c.classes;
    units.push_back(head);
  } else if (c.task == "mlm") {
    UnitShape head{"head", tail};
    head.params = linear_params(c.dim, c.dim) + 2 * c.dim + linear_params(c.dim, c.vocab_size);
    head.forward_flops = linear_flops(sd, c.dim, c.dim) + linear_flops(sd, c.dim, c.vocab_size);
    head.elementwise_bytes = kFloat * (4 * sd * static_cast<double>(c.dim) + 2 * sd * static_cast<double>(c.vocab_size));
    head.output_elements = s * c.vocab_size;
    units.push_back(head);
  } else {
    UnitShape head{"head", tail};
    head.params = linear_params(c.dim, c.dim) + linear_params(c.dim, c.classes);
    head.forward_flops = linear_flops(1, c.dim, c.dim) + linear_flops(1, c.dim, c.classes);
    head.output_elements = c.classes;
    units.push_back(head);
  }
  for (auto& u : units)
    if (u.planner_cost == 0) u.planner_cost = u.params;
  return units;
}

}  // namespace floe::models
