#include "runtime/sim/cost_model.hpp"

#include "models/errors.hpp"
#include "models/shapes.hpp"
#include "runtime/state/activation_cache.hpp"

#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <iterator>

namespace floe::runtime {
namespace {

// The keys of a hardware file: name, kind ("rate" or "size" accept "15.75GB"-like strings),
// where the value goes.
struct HardwareKey {
  const char* name;
  bool size;  // a byte count or rate: a number or a size string
  std::function<double&(Hardware&)> ref;
};

const std::vector<HardwareKey>& hardware_keys() {
  static const std::vector<HardwareKey> keys{
      {"device_flops", false, [](Hardware& h) -> double& { return h.device_flops; }},
      {"efficiency", false, [](Hardware& h) -> double& { return h.efficiency; }},
      {"saturation_rows", false, [](Hardware& h) -> double& { return h.saturation_rows; }},
      {"memory_bandwidth", true, [](Hardware& h) -> double& { return h.memory_bandwidth; }},
      {"device_memory", true, [](Hardware& h) -> double& { return h.device_memory; }},
      {"host_memory", true, [](Hardware& h) -> double& { return h.host_memory; }},
      {"intra_bandwidth", true, [](Hardware& h) -> double& { return h.intra_bandwidth; }},
      {"intra_latency", false, [](Hardware& h) -> double& { return h.intra_latency; }},
      {"inter_bandwidth", true, [](Hardware& h) -> double& { return h.inter_bandwidth; }},
      {"inter_latency", false, [](Hardware& h) -> double& { return h.inter_latency; }},
      {"cache_bandwidth", true, [](Hardware& h) -> double& { return h.cache_bandwidth; }},
      {"bytes_per_value", false, [](Hardware& h) -> double& { return h.bytes_per_value; }},
      {"action_overhead", false, [](Hardware& h) -> double& { return h.action_overhead; }},
      {"step_overhead", false, [](Hardware& h) -> double& { return h.step_overhead; }},
  };
  return keys;
}

UnitTimes mix(const UnitTimes& a, const UnitTimes& b, double t) {  // a + t (b − a)
  auto f = [t](double x, double y) { return x + t * (y - x); };
  return {f(a.forward, b.forward), f(a.backward, b.backward), f(a.input, b.input), f(a.weight, b.weight),
          f(a.frozen, b.frozen)};
}

UnitTimes scaled(const UnitTimes& a, double s) { return mix({}, a, s); }

}  // namespace

Hardware parse_hardware(const std::string& text, const std::string& where) {
  toml::table t;
  try {
    t = toml::parse(text, where);
  } catch (const toml::parse_error& e) {
    throw InputError(where + ": not a TOML file: " + std::string(e.description()));
  }
  Hardware h;
  auto bad = [&](const std::string& key, const std::string& expected) {
    return InputError(where + ": " + key + ": expected " + expected);
  };
  for (const auto& [k, node] : t) {
    const std::string key(k.str());
    if (key == "name") {
      if (!node.is_string()) throw bad(key, "a string");
      h.name = node.as_string()->get();
      continue;
    }
    if (key == "devices_per_node") {
      if (!node.is_integer() || node.as_integer()->get() < 1) throw bad(key, "a positive integer");
      h.devices_per_node = static_cast<int>(node.as_integer()->get());
      continue;
    }
    if (key == "sources") {
      if (!node.is_table()) throw bad(key, "a table of key = \"where the value comes from\"");
      for (const auto& [sk, sv] : *node.as_table()) {
        if (!sv.is_string()) throw bad("sources." + std::string(sk.str()), "a string");
        h.sources[std::string(sk.str())] = sv.as_string()->get();
      }
      continue;
    }
    auto it = std::find_if(hardware_keys().begin(), hardware_keys().end(),
                           [&](const HardwareKey& hk) { return key == hk.name; });
    if (it == hardware_keys().end()) {
      std::string known = "name, devices_per_node, sources";
      for (const auto& hk : hardware_keys()) known += std::string(", ") + hk.name;
      throw InputError(where + ": unknown key " + key + " (known: " + known + ")");
    }
    double v = 0;
    if (node.is_integer()) v = static_cast<double>(node.as_integer()->get());
    else if (node.is_floating_point()) v = node.as_floating_point()->get();
    else if (it->size && node.is_string()) {
      try {
        v = static_cast<double>(parse_size(node.as_string()->get(), 0));
      } catch (const std::invalid_argument& e) {
        throw bad(key, std::string("a number or a size (") + e.what() + ")");
      }
    } else {
      throw bad(key, it->size ? "a number or a size such as \"15.75GB\"" : "a number");
    }
    if (!std::isfinite(v) || v < 0) throw bad(key, "a finite number >= 0");
    it->ref(h) = v;
  }
  if (h.efficiency <= 0 || h.efficiency > 1) throw bad("efficiency", "a share of the peak in (0, 1]");
  if (h.bytes_per_value <= 0) throw bad("bytes_per_value", "a positive number (4 for fp32, 2 for fp16)");
  if (h.intra_bandwidth <= 0) throw bad("intra_bandwidth", "a positive rate (bytes/s between devices of a node)");
  if (h.cache_bandwidth <= 0) h.cache_bandwidth = h.intra_bandwidth;
  if (h.inter_bandwidth <= 0) h.inter_bandwidth = h.intra_bandwidth;
  return h;
}

std::string read_text(const std::string& path, const std::string& what) {
  std::ifstream in(path);
  if (!in) throw InputError(what + " " + path + ": cannot be read (expected an existing file)");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

Hardware read_hardware(const std::string& path) { return parse_hardware(read_text(path, "hardware file"), path); }

Hardware with_links_of(Hardware h, const Hardware& file) {
  h.name = file.name;
  h.devices_per_node = file.devices_per_node;
  h.intra_bandwidth = file.intra_bandwidth;
  h.intra_latency = file.intra_latency;
  h.inter_bandwidth = file.inter_bandwidth;
  h.inter_latency = file.inter_latency;
  h.action_overhead = file.action_overhead;
  h.step_overhead = file.step_overhead;
  for (const auto& [k, v] : file.sources) h.sources[k] = v;
  return h;
}

std::vector<int64_t> measured_planner_costs(const CostModel& m, double samples) {
  std::vector<int64_t> out;
  for (const auto& u : m.units) {
    const auto t = u.at(samples);
    out.push_back(std::max<int64_t>(1, std::llround(1e9 * (t.forward + t.backward))));
  }
  return out;
}

UnitTimes UnitCost::at(double samples) const {
  if (points.empty()) return {};
  if (samples <= points.front().first) return scaled(points.front().second, samples / points.front().first);
  for (size_t i = 1; i < points.size(); ++i)
    if (samples <= points[i].first) {
      const auto& [x0, t0] = points[i - 1];
      const auto& [x1, t1] = points[i];
      return mix(t0, t1, (samples - x0) / (x1 - x0));
    }
  if (points.size() == 1) return scaled(points.back().second, samples / points.back().first);
  const auto& [x0, t0] = points[points.size() - 2];
  const auto& [x1, t1] = points.back();
  return mix(t0, t1, (samples - x0) / (x1 - x0));
}

CostModel analytic_costs(const models::ModelConfig& model, const Hardware& hw, int64_t sequence) {
  if (hw.device_flops <= 0 || hw.memory_bandwidth <= 0)
    throw InputError("hardware " + hw.name + ": device_flops and memory_bandwidth are needed to price a model from its "
                     "shapes (or give a profile from floe profile)");
  CostModel m;
  m.source = "analytic: " + hw.name;
  m.hardware = hw;
  m.model = models::describe(model);
  const double value = hw.bytes_per_value / 4;  // the shapes count fp32 bytes
  const double rows = static_cast<double>(models::sequence_length(model, sequence));  // per sample
  for (const auto& s : models::unit_shapes(model, sequence)) {
    UnitCost u;
    u.name = s.name;
    u.block = s.block;
    u.params = s.params;
    u.planner_cost = s.planner_cost;
    u.output_bytes = static_cast<double>(s.output_elements) * hw.bytes_per_value;
    u.step_seconds = 28.0 * static_cast<double>(s.params) / hw.memory_bandwidth;
    // Per micro-batch of b samples: b (arithmetic + elementwise) + arithmetic · saturation / rows,
    // affine in b: two points and the line through them.
    const double arithmetic = s.forward_flops / (hw.device_flops * hw.efficiency);
    const double elementwise = s.elementwise_bytes * value / hw.memory_bandwidth;
    for (double b : {1.0, 2.0}) {
      const double f = b * (arithmetic + elementwise) + arithmetic * hw.saturation_rows / rows;
      const double half = s.block < 0 ? 0 : f;  // nothing flows back into the embedding's input
      u.points.push_back({b, UnitTimes{f, f + half, half, f, f}});
    }
    m.units.push_back(std::move(u));
  }
  return m;
}

std::string to_json(const CostModel& m) {
  nlohmann::json j;
  j["version"] = 1;
  j["source"] = m.source;
  j["model"] = m.model;
  j["train_samples"] = m.train_samples;
  j["eval_samples"] = m.eval_samples;
  j["calibration"] = m.calibration;
  nlohmann::json hw;
  hw["name"] = m.hardware.name;
  hw["devices_per_node"] = m.hardware.devices_per_node;
  for (const auto& k : hardware_keys()) hw[k.name] = k.ref(const_cast<Hardware&>(m.hardware));
  hw["sources"] = m.hardware.sources;
  j["hardware"] = hw;
  j["units"] = nlohmann::json::array();
  for (const auto& u : m.units) {
    nlohmann::json ju{{"name", u.name},   {"block", u.block},           {"params", u.params},
                      {"planner_cost", u.planner_cost}, {"output_bytes", u.output_bytes}, {"step_seconds", u.step_seconds}};
    ju["points"] = nlohmann::json::array();
    for (const auto& [n, t] : u.points)
      ju["points"].push_back({{"samples", n}, {"forward", t.forward}, {"backward", t.backward}, {"input", t.input},
                              {"weight", t.weight}, {"frozen", t.frozen}});
    j["units"].push_back(ju);
  }
  return j.dump(1);
}

CostModel cost_model_from_json(const std::string& text, const std::string& where) {
  const std::string expected = "a profile that floe profile wrote ({\"version\": 1, \"units\": [...], ...})";
  CostModel m;
  try {
    const auto j = nlohmann::json::parse(text);
    if (j.at("version").get<int>() != 1) throw InputError(where + ": version " + j.at("version").dump() + ", expected 1");
    m.source = j.value("source", "profile " + where);
    m.model = j.value("model", "");
    m.train_samples = j.value("train_samples", int64_t{0});
    m.eval_samples = j.value("eval_samples", int64_t{0});
    m.calibration = j.value("calibration", 1.0);
    const auto& hw = j.at("hardware");
    m.hardware.name = hw.value("name", "");
    m.hardware.devices_per_node = hw.value("devices_per_node", 1);
    for (const auto& k : hardware_keys()) k.ref(m.hardware) = hw.value(k.name, k.ref(m.hardware));
    m.hardware.sources = hw.value("sources", std::map<std::string, std::string>{});
    for (const auto& ju : j.at("units")) {
      UnitCost u;
      u.name = ju.at("name");
      u.block = ju.at("block");
      u.params = ju.at("params");
      u.planner_cost = ju.at("planner_cost");
      u.output_bytes = ju.at("output_bytes");
      u.step_seconds = ju.at("step_seconds");
      for (const auto& p : ju.at("points")) {
        UnitTimes t{p.at("forward"), p.at("backward"), p.at("input"), p.at("weight"), p.at("frozen")};
        for (double v : {t.forward, t.backward, t.input, t.weight, t.frozen})
          if (!std::isfinite(v) || v < 0) throw InputError(where + ": unit " + u.name + ": a time that is not a finite number >= 0");
        const double n = p.at("samples");
        if (!(n > 0) || (!u.points.empty() && n <= u.points.back().first))
          throw InputError(where + ": unit " + u.name + ": points must have ascending positive \"samples\"");
        u.points.emplace_back(n, t);
      }
      if (u.points.empty()) throw InputError(where + ": unit " + u.name + ": no measured points");
      m.units.push_back(std::move(u));
    }
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {
    throw InputError(where + ": expected " + expected + " (" + e.what() + ")");
  }
  if (m.units.empty()) throw InputError(where + ": expected " + expected + " (no units)");
  return m;
}

void scale_compute(CostModel& m, double factor) {
  for (auto& u : m.units) {
    u.step_seconds *= factor;
    for (auto& [n, t] : u.points) t = scaled(t, factor);
  }
  m.calibration *= factor;
}

Calibration fit_calibration(const std::vector<double>& t, const std::vector<double>& x, const std::vector<double>& y) {
  if (t.empty() || t.size() > 2 || x.size() != t.size() || y.size() != t.size())
    throw std::invalid_argument("fit_calibration: one or two points, each with a measured, compute and actions value");
  for (size_t i = 0; i < t.size(); ++i)
    if (!(t[i] > 0) || !(x[i] > 0) || !(y[i] >= 0))
      throw std::invalid_argument("fit_calibration: measured and compute must be positive, actions not negative");
  Calibration c{t[0] / x[0], 0};
  if (t.size() == 2) {
    const double det = x[0] * y[1] - x[1] * y[0];
    if (std::abs(det) > 1e-12 * x[0] * std::max(y[0], y[1])) {
      const double s = (t[0] * y[1] - t[1] * y[0]) / det, a = (x[0] * t[1] - x[1] * t[0]) / det;
      if (s >= 1 && a >= 0) c = {s, a};
    }
  }
  return c;
}

double ring_allreduce_seconds(double bytes, int ranks, double bandwidth, double latency) {
  if (ranks <= 1 || bytes <= 0) return 0;
  const double n = ranks;
  return 2 * (n - 1) / n * bytes / bandwidth + 2 * (n - 1) * latency;
}

double transfer_seconds(double bytes, double bandwidth, double latency) {
  return bytes <= 0 ? 0 : latency + bytes / bandwidth;
}

}  // namespace floe::runtime
