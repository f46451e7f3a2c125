#include "runtime/sim/profile.hpp"

#include "actors/threads.hpp"
#include "models/errors.hpp"
#include "models/bert.hpp"
#include "models/model.hpp"
#include "runtime/state/activation_cache.hpp"
#include "runtime/train/batch.hpp"
#include "runtime/train/sampler.hpp"
#include "runtime/train/stage_compute.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <exception>
#include <thread>

namespace floe::runtime {
namespace {

using clock_type = std::chrono::steady_clock;

double median_seconds(int repeats, const std::function<void()>& f) {
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    const auto a = clock_type::now();
    f();
    t.push_back(std::chrono::duration<double>(clock_type::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Bytes per second of a large copy (what reading cached rows and in-process transfers cost).
double copy_bandwidth() {
  auto src = torch::ones({16 << 20});  // 64 MiB
  auto dst = torch::empty_like(src);
  const double s = median_seconds(5, [&] { dst.copy_(src); });
  return 2.0 * static_cast<double>(src.numel()) * 4 / s;  // read and write
}

// Every unit at every size on the job's own batches, on this thread (one device).
std::vector<UnitCost> measure_units(const JobConfig& cfg, const models::TrainTest& data, const std::vector<int64_t>& sizes,
                                    const ProfileOptions& o, const std::function<void(const std::string&)>& progress) {
  actors::use_intra_op_threads(cfg.threads_per_device);
  torch::manual_seed(cfg.seed);
  auto units = models::build_model(cfg.model);
  for (auto& u : units) u.module->train();

  std::vector<UnitCost> costs;
  for (const auto& u : units) {
    UnitCost c;
    c.name = u.name;
    c.block = u.block;
    c.params = u.parameter_count();
    c.planner_cost = u.planner_cost();
    costs.push_back(c);
  }

  // The job's first batches of epoch 0, in its order (length buckets included).
  auto order = epoch_permutation(data.train.size(), cfg.seed, 0);
  if (cfg.data.length_buckets > 0 && data.train.sequences())
    order = length_bucketed(order, data.train.lengths(), cfg.batch_size, cfg.data.length_buckets, cfg.seed, 0);
  const auto recipe = batch_recipe(cfg);

  // AdamW's step over each unit's parameters, gradients set.
  for (size_t i = 0; i < units.size(); ++i) {
    auto params = units[i].module->parameters();
    for (auto& p : params) p.mutable_grad() = torch::randn_like(p) * 1e-3;
    auto opt = make_optimizer(params, cfg.optimizer);
    costs[i].step_seconds = median_seconds(o.repeats, [&] { opt->step(); });
    for (auto& p : params) p.mutable_grad() = torch::Tensor();
  }

  // A text batch costs what its padded length makes it cost: units are measured at a grid of
  // lengths and priced at the lengths of the epoch's batches (each padded to its longest, as
  // the job pads it), interpolated. Images have one length.
  std::map<int64_t, double> batch_lengths;  // padded length -> share of the epoch's batches
  std::vector<int64_t> grid{0};            // 0: as the data is
  if (data.train.sequences()) {
    const auto len = data.train.lengths();
    const int64_t steps = steps_per_epoch(static_cast<int64_t>(order.size()), cfg.batch_size);
    int64_t longest = 2;
    for (int64_t s = 0; s < steps; ++s) {
      int64_t l = 2;
      for (int64_t j = s * cfg.batch_size; j < std::min<int64_t>((s + 1) * cfg.batch_size, order.size()); ++j)
        l = std::max(l, len[order[j]]);
      batch_lengths[l] += 1.0 / static_cast<double>(steps);
      longest = std::max(longest, l);
    }
    grid.clear();
    for (int64_t l = 4; l < longest; l *= 2) grid.push_back(l);
    grid.push_back(longest);
  }
  if (static_cast<int64_t>(order.size()) < sizes.back())
    throw InputError("profile: the training data has " + std::to_string(order.size()) + " samples, fewer than the " +
                     std::to_string(sizes.back()) + " of the largest micro-batch to measure");
  std::vector<int64_t> uids(order.begin(), order.begin() + sizes.back());
  const auto batch = make_batch(data.train, uids, true, 0, recipe);

  for (const int64_t b : sizes) {
    // times[g][i]: unit i at grid length g; bytes[g][i]: what it hands on per sample.
    std::vector<std::vector<UnitTimes>> times(grid.size(), std::vector<UnitTimes>(units.size()));
    std::vector<std::vector<double>> bytes(grid.size(), std::vector<double>(units.size()));
    for (size_t g = 0; g < grid.size(); ++g) {
      torch::Tensor x = batch.x.slice(0, 0, b), target = batch.y.slice(0, 0, b);
      if (grid[g] > 0) {  // token ids cut or padded (id 0) to the grid's length
        x = x.slice(1, 0, std::min<int64_t>(grid[g], x.size(1)));
        if (x.size(1) < grid[g]) x = torch::cat({x, torch::zeros({x.size(0), grid[g] - x.size(1)}, x.options())}, 1);
        if (target.dim() == 2) target = target.slice(1, 0, std::min<int64_t>(grid[g], target.size(1)));
        if (target.dim() == 2 && target.size(1) < grid[g])
          target = torch::cat({target, torch::full({target.size(0), grid[g] - target.size(1)}, models::kIgnoreTarget,
                                                   target.options())}, 1);
      }
      for (size_t i = 0; i < units.size(); ++i) {
        auto& mod = *units[i].module;
        const bool last = i + 1 == units.size();
        const bool grad_in = x.is_floating_point() && i > 0;
        auto input = x.detach();
        if (grad_in) input.requires_grad_(true);
        auto params = mod.parameters();
        auto loss_of = [&](const torch::Tensor& y) {
          return last ? loss_terms(y, target).loss_sum : (y * torch::ones_like(y)).sum();
        };
        auto& t = times[g][i];
        t.forward = median_seconds(o.repeats, [&] { loss_of(mod.forward(input)); });
        // Each repeat below runs a forward first: it is subtracted.
        t.backward = std::max(0.0, median_seconds(o.repeats, [&] { loss_of(mod.forward(input)).backward(); }) - t.forward);
        std::vector<torch::Tensor> wrt_input{input};
        t.input = !grad_in ? 0
                           : std::max(0.0, median_seconds(o.repeats, [&] {
                                             torch::autograd::grad({loss_of(mod.forward(input))}, wrt_input);
                                           }) - t.forward);
        t.weight = std::max(0.0, median_seconds(o.repeats, [&] {
                                   torch::autograd::grad({loss_of(mod.forward(input))}, params);
                                 }) - t.forward);
        torch::NoGradGuard no_grad;
        mod.eval();
        torch::Tensor y;
        t.frozen = median_seconds(o.repeats, [&] { y = mod.forward(input); });
        mod.train();
        bytes[g][i] = static_cast<double>(y.numel()) / static_cast<double>(b) * 4;
        for (auto& p : params) p.mutable_grad() = torch::Tensor();
        x = y;
      }
    }
    // Priced at the epoch's batch lengths (images: the one measurement).
    auto weights = [&](int64_t length) {  // grid index -> weight for one batch length
      std::vector<double> w(grid.size(), 0);
      if (grid.size() == 1 || length <= grid.front()) {
        w.front() = 1;
        return w;
      }
      for (size_t g = 1; g < grid.size(); ++g)
        if (length <= grid[g]) {
          const double f = static_cast<double>(length - grid[g - 1]) / static_cast<double>(grid[g] - grid[g - 1]);
          w[g - 1] = 1 - f;
          w[g] = f;
          return w;
        }
      w.back() = 1;
      return w;
    };
    std::vector<double> share(grid.size(), 0);
    if (batch_lengths.empty()) share[0] = 1;
    for (const auto& [length, part] : batch_lengths) {
      const auto w = weights(length);
      for (size_t g = 0; g < grid.size(); ++g) share[g] += part * w[g];
    }
    for (size_t i = 0; i < units.size(); ++i) {
      UnitTimes e;
      double out = 0;
      for (size_t g = 0; g < grid.size(); ++g) {
        const auto& t = times[g][i];
        e.forward += share[g] * t.forward;
        e.backward += share[g] * t.backward;
        e.input += share[g] * t.input;
        e.weight += share[g] * t.weight;
        e.frozen += share[g] * t.frozen;
        out += share[g] * bytes[g][i];
      }
      costs[i].points.emplace_back(static_cast<double>(b), e);
      costs[i].output_bytes = out;
    }
    if (progress)
      progress("micro-batch " + std::to_string(b) + ": " + std::to_string(units.size()) + " units measured" +
               (grid.size() > 1 ? " at " + std::to_string(grid.size()) + " sequence lengths" : ""));
  }
  return costs;
}

}  // namespace

CostModel profile_job(const JobConfig& cfg, const models::TrainTest& data, const Hardware& hardware,
                      const ProfileOptions& o) {
  if (o.repeats < 1) throw InputError("profile: --repeats must be at least 1");
  std::vector<int64_t> sizes = o.micro_batches;
  if (sizes.empty())
    for (int64_t d = 16; d >= 1; d /= 2)
      if (cfg.batch_size / d >= 1) sizes.push_back(cfg.batch_size / d);
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  for (auto b : sizes)
    if (b < 1 || b > cfg.batch_size)
      throw InputError("profile: micro-batch " + std::to_string(b) + ": expected 1.." + std::to_string(cfg.batch_size) +
                       " (batch_size)");
  CostModel m;
  m.source = "profile";
  m.model = models::describe(cfg.model);
  m.train_samples = data.train.size();
  m.eval_samples = data.test.size();
  m.hardware = hardware;
  m.hardware.memory_bandwidth = m.hardware.cache_bandwidth = copy_bandwidth();
  if (m.hardware.intra_bandwidth <= 0) m.hardware.intra_bandwidth = m.hardware.memory_bandwidth;
  m.hardware.host_memory = static_cast<double>(host_memory_bytes());
  m.hardware.sources["memory_bandwidth"] = m.hardware.sources["cache_bandwidth"] = "measured by floe profile (a 64 MiB copy)";
  m.hardware.sources["host_memory"] = "this machine (sysconf)";
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int n = o.concurrency > 0 ? o.concurrency : std::max(1, std::min(cfg.devices, cores));
  std::vector<std::vector<UnitCost>> each(n);
  std::vector<std::exception_ptr> errors(n);
  std::vector<std::thread> threads;
  for (int t = 0; t < n; ++t)
    threads.emplace_back([&, t] {
      try {
        each[t] = measure_units(cfg, data, sizes, o, t == 0 ? o.progress : nullptr);
      } catch (...) {
        errors[t] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  m.units = each[0];
  for (size_t u = 0; u < m.units.size(); ++u) {
    auto& c = m.units[u];
    c.step_seconds = 0;
    for (auto& p : c.points) p.second = {};
    for (int t = 0; t < n; ++t) {
      c.step_seconds += each[t][u].step_seconds / n;
      for (size_t i = 0; i < c.points.size(); ++i) {
        const auto& x = each[t][u].points[i].second;
        auto& y = c.points[i].second;
        y.forward += x.forward / n;
        y.backward += x.backward / n;
        y.input += x.input / n;
        y.weight += x.weight / n;
        y.frozen += x.frozen / n;
      }
    }
  }
  m.hardware.sources["units"] = "floe profile: " + std::to_string(n) + " device(s) measured at once";
  return m;
}

std::vector<int64_t> apply_planner_costs(const JobConfig& cfg, const models::TrainTest& data, models::UnitList& units) {
  if (cfg.planner.costs != "measured") return {};
  ProfileOptions o;
  o.micro_batches = {std::min<int64_t>(planner_micro_batch(cfg), static_cast<int64_t>(data.train.size()))};
  o.repeats = 3;
  o.concurrency = 1;
  const auto model = profile_job(cfg, data, Hardware{}, o);
  const auto costs = measured_planner_costs(model, static_cast<double>(o.micro_batches.front()));
  if (costs.size() != units.size())
    throw std::logic_error("planner.costs: measured " + std::to_string(costs.size()) + " units of a model of " +
                           std::to_string(units.size()));
  for (size_t i = 0; i < units.size(); ++i) units[i].cost = costs[i];
  return costs;
}

}  // namespace floe::runtime
