#pragma once
// What things cost, for the simulator: a hardware description (a TOML file: the devices'
// arithmetic, memory and links, each value with its source) and per-unit times of a model —
// measured on this machine by `floe profile` (a JSON file), or derived from the model's
// shapes (models/shapes.hpp) and the hardware. Plain functions and data; no torch.
#include "models/model.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace floe::runtime {

struct Hardware {
  std::string name;
  double device_flops = 0;       // peak FLOP/s of one device at the precision trained
  double efficiency = 0.5;       // the share of the peak that matrix products reach
  // Matrix products on few rows run below that: a unit's arithmetic on a micro-batch of r
  // rows (samples x tokens) takes (1 + saturation_rows / r) times its full-efficiency time
  // (0: no such loss; analytic costs only).
  double saturation_rows = 0;
  double memory_bandwidth = 0;   // bytes/s of one device's memory (the non-matmul operations)
  double device_memory = 0;      // bytes of one device
  double host_memory = 0;        // bytes of one node's memory (AutoCache's budget share)
  int devices_per_node = 1;
  double intra_bandwidth = 0, intra_latency = 0;  // device to device within a node (bytes/s, s)
  double inter_bandwidth = 0, inter_latency = 0;  // node to node
  double cache_bandwidth = 0;    // bytes/s from AutoCache (host memory) into a device
  double bytes_per_value = 4;    // activations and gradients as stored and sent (4 fp32, 2 fp16)
  double action_overhead = 0;    // seconds each pipeline action costs beyond its arithmetic
  double step_overhead = 0;      // seconds each training step costs beyond its actions
  std::map<std::string, std::string> sources;  // key -> where its value comes from
};

// Reads a hardware file (docs/simulator.md): top-level keys as in Hardware, sizes in bytes or
// with a unit ("16GiB"), rates as numbers, and a [sources] table. Throws floe::InputError
// naming the file, the key and what was expected.
Hardware read_hardware(const std::string& path);
Hardware parse_hardware(const std::string& toml_text, const std::string& where);
// `measured` (a profile's) with the links, overheads and name of `file` (a hardware file).
Hardware with_links_of(Hardware measured, const Hardware& file);
// A whole text file; throws floe::InputError naming `what` and the path when it cannot be read.
std::string read_text(const std::string& path, const std::string& what);

// The seconds of one unit's actions on one micro-batch.
struct UnitTimes {
  double forward = 0;   // with autograd recording (training)
  double backward = 0;  // B: input and weight gradients
  double input = 0;     // I: the input gradient only
  double weight = 0;    // W: the weight gradient only
  double frozen = 0;    // forward without gradients (the frozen prefix, evaluation)
};

struct UnitCost {
  std::string name;
  int block = -1;
  int64_t params = 0, planner_cost = 0;
  double output_bytes = 0;  // per sample, what the unit hands on
  double step_seconds = 0;  // its optimizer step (AdamW over its parameters)
  // Times measured (or modelled) at micro-batches of these many samples, ascending.
  std::vector<std::pair<double, UnitTimes>> points;
  // Piecewise linear in the samples between points; proportional below the first; beyond
  // the last, on the line through the last two (proportional with one point).
  UnitTimes at(double samples) const;
};

struct CostModel {
  std::string source;  // what the costs come from ("profile FILE", "analytic: HARDWARE")
  std::vector<UnitCost> units;
  Hardware hardware;
  int64_t train_samples = 0, eval_samples = 0;  // per epoch; 0 = unknown
  std::string model;  // models::describe of the model they are for
  // floe profile: measured / modelled training step of a short real run of the job, by which
  // every unit time was multiplied (1: not calibrated).
  double calibration = 1;
};

// planner.costs = "measured": what the planner balances per unit, its forward and backward
// time on `samples` samples, in nanoseconds (at least 1).
std::vector<int64_t> measured_planner_costs(const CostModel& m, double samples);

// Every unit time and optimizer step multiplied by `factor` (and the factor recorded).
void scale_compute(CostModel& m, double factor);

// What a short real run says about the units measured alone: a real step i took measured[i],
// modelled as scale · compute[i] + action_overhead · actions[i] (compute: the modelled step
// of the units as measured; actions: how much that step grows per second of overhead on each
// pipeline action). Two points (two micro-batch counts) give both; one point, or two whose
// solution has units faster inside a job than alone (scale < 1) or a negative overhead —
// what this model cannot explain — the first point's scale alone. Throws std::invalid_argument on sizes or
// non-positive inputs.
struct Calibration {
  double scale = 1, action_overhead = 0;
};
Calibration fit_calibration(const std::vector<double>& measured, const std::vector<double>& compute,
                            const std::vector<double>& actions);

// Costs from the model's shapes on `hw`: a unit's forward is its flops at the efficiency
// (slowed on micro-batches of few rows, saturation_rows) plus its elementwise bytes at the
// memory bandwidth; backward twice that (I and W one each,
// the embedding's I nothing); the frozen forward as the forward; AdamW reads and writes
// 28 bytes per parameter. `sequence`: tokens per sample of a text model (0: max_len).
CostModel analytic_costs(const models::ModelConfig& model, const Hardware& hw, int64_t sequence = 0);

// The profile file `floe profile` writes: {"version": 1, "model", "train_samples",
// "eval_samples", "hardware": {...}, "units": [{"name", "block", "params", "planner_cost",
// "output_bytes", "step_seconds", "points": [{"samples", "forward", "backward", "input",
// "weight", "frozen"}]}]}.
std::string to_json(const CostModel& m);
// Throws floe::InputError naming `where` and what was expected.
CostModel cost_model_from_json(const std::string& text, const std::string& where);

// Ring all-reduce of `bytes` over `ranks`: 2(n−1) steps, each moving bytes/n over the ring's
// slowest link: 2(n−1)/n · bytes / bandwidth + 2(n−1) · latency; 0 for one rank.
double ring_allreduce_seconds(double bytes, int ranks, double bandwidth, double latency);
// A point-to-point transfer: latency + bytes / bandwidth (0 for no bytes).
double transfer_seconds(double bytes, double bandwidth, double latency);

}  // namespace floe::runtime
