#pragma once
// The units of a model as numbers, without building it: parameters, the planner's weight,
// the arithmetic and memory traffic of a forward pass, and the size of what a unit hands on.
// What the simulator (runtime/sim) plans and prices when no real model may be built (a
// BERT-large or a ViT-B/16 here would take gigabytes); build_model's units are the truth
// these counts are tested against.
#include "models/model.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace floe::models {

struct UnitShape {
  std::string name;  // as build_model names it
  int block = -1;    // as build_model numbers it: -1 the embedding, depth the tail
  int64_t params = 0;
  int64_t planner_cost = 0;  // Unit::planner_cost()
  // Per sample, forward: floating-point operations (a multiply-add counts 2) and the bytes
  // of activations read and written by the operations that are not matrix products
  // (normalisation, softmax, activation functions, residual adds, dropout), in fp32.
  double forward_flops = 0;
  double elementwise_bytes = 0;
  int64_t output_elements = 0;  // per sample: what the unit hands to the next (fp32 values)
};

// `sequence`: tokens per sample for a text model (the padded length a batch has; 0 = model.max_len);
// ignored for ViT, whose sequence is its patches and the class token.
// Throws std::invalid_argument as models::validate does.
std::vector<UnitShape> unit_shapes(const ModelConfig& c, int64_t sequence = 0);

// The sequence a unit sees: patches + 1 for ViT, `sequence` (or max_len) for BERT.
int64_t sequence_length(const ModelConfig& c, int64_t sequence = 0);

}  // namespace floe::models
