// Side-by-side throughput in one run:
//  1. runtime overhead: floe with K=1, M=1, R=1 against a plain LibTorch loop over the same
//     units, batch, data order and thread count (samples/s ratio; goal >= 0.97);
//  2. samples/s of floe for several (K, M, R) layouts on the configured devices.
// Usage: throughput [--steps N] [--config FILE] [--set key=value]... [--json out.json]
#include "launch/blas.hpp"
#include "models/files.hpp"
#include "actors/coordinator.hpp"
#include "launch/job.hpp"
#include "models/errors.hpp"
#include "runtime/train/lr_schedule.hpp"
#include "runtime/train/sampler.hpp"
#include "runtime/train/stage_compute.hpp"
#include "runtime/observe/summary.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <algorithm>
#include <cstdio>
#include <numeric>

using namespace floe;

namespace {

// The plain loop: the same units, optimizer, LR schedule position and data order as floe's
// first epoch, one process, no actors.
double plain_samples_per_second(const runtime::JobConfig& cfg, const models::Dataset& train) {
  torch::set_num_threads(cfg.threads_per_device);
  torch::manual_seed(cfg.seed);
  auto units = models::build_model(cfg.model);
  auto params = models::parameters_of(units, 0, units.size());
  auto opt = runtime::make_optimizer(params, cfg.optimizer);
  const auto order = runtime::epoch_permutation(train.size(), cfg.seed, 0);
  const int64_t steps = runtime::steps_per_epoch(train.size(), cfg.batch_size);
  runtime::WarmupCosine lr{cfg.optimizer.lr, cfg.optimizer.min_lr, cfg.optimizer.warmup, steps * cfg.epochs};
  for (auto& u : units) u.module->train(true);
  const auto start = std::chrono::steady_clock::now();
  for (int64_t s = 0; s < steps; ++s) {
    auto uids = runtime::shard_of_step(order, s, cfg.batch_size, 0, 1);
    auto b = models::gather(train, torch::tensor(uids));
    opt->zero_grad();
    auto loss = torch::nn::functional::cross_entropy(models::forward_range(units, 0, units.size(), b.x), b.y);
    loss.backward();
    runtime::set_learning_rate(*opt, lr.at(s));
    opt->step();
  }
  return double(train.size()) / std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double floe_samples_per_second(runtime::JobConfig cfg, const models::TrainTest& data, int k, int m, int r) {
  cfg.pipeline.length = k;
  cfg.pipeline.micro_batches = m;
  cfg.replicas = r;
  cfg.pipeline.partition.clear();
  cfg.epochs = 1;
  runtime::validate(cfg);
  auto s = launch::run_job(cfg, data);
  return s.epochs.at(0).samples_per_second;
}

}  // namespace

int main(int argc, char** argv) {
  floe::launch::use_fast_blas_kernels();  // (may restart the process: launch/blas.hpp)
  CLI::App app{"floe throughput benchmark: runtime overhead and (K, M, R) layouts, measured side by side"};
  int64_t steps = 60;
  std::string config, json_out;
  std::vector<std::string> sets;
  app.add_option("--steps", steps, "training steps per measurement");
  app.add_option("--config", config, "TOML job file")->check(CLI::ExistingFile);
  app.add_option("--set", sets, "override a config key")->take_all();
  app.add_option("--json", json_out, "write the results as JSON");
  CLI11_PARSE(app, argc, argv);
  return exit_code_of([&] {
    spdlog::set_level(spdlog::level::warn);
    auto cfg = runtime::load_job_config(config, sets);
    cfg.data.subset = steps * cfg.batch_size;
    cfg.data.test_subset = cfg.batch_size;
    const auto data = launch::load_job_data(cfg);
    std::printf("model: ViT depth %lld dim %lld heads %lld patch %lld; batch %lld; %lld steps per measurement; "
                "%d devices x %d thread(s)\n",
                (long long)cfg.model.depth, (long long)cfg.model.dim, (long long)cfg.model.heads,
                (long long)cfg.model.patch, (long long)cfg.batch_size, (long long)steps, cfg.devices,
                cfg.threads_per_device);

    // 1. Overhead: three rounds in alternating order (the machine drifts by +-20 %); the
    // best of each side is its figure, the ratio of the means is printed beside it.
    std::vector<double> plain_runs, floe_runs;
    for (int round = 0; round < 3; ++round) {
      if (round % 2 == 0) plain_runs.push_back(plain_samples_per_second(cfg, data.train));
      floe_runs.push_back(floe_samples_per_second(cfg, data, 1, 1, 1));
      if (round % 2 == 1) plain_runs.push_back(plain_samples_per_second(cfg, data.train));
    }
    auto best = [](const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); };
    auto mean = [](const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / v.size(); };
    const double plain = best(plain_runs), floe1 = best(floe_runs);
    std::printf("\nruntime overhead (1 device, same units, batch, order, threads; best of 3 alternating rounds)\n");
    std::printf("  plain LibTorch loop      %8.1f samples/s   (runs:", plain);
    for (double x : plain_runs) std::printf(" %.1f", x);
    std::printf(")\n  floe K=1 M=1 R=1         %8.1f samples/s   (runs:", floe1);
    for (double x : floe_runs) std::printf(" %.1f", x);
    std::printf(")\n  ratio floe / plain       %8.3f   best-of, %.3f mean   (goal >= 0.97)\n", floe1 / plain,
                mean(floe_runs) / mean(plain_runs));

    // 2. Layouts on the configured devices.
    nlohmann::json j{{"plain_samples_per_second", plain}, {"floe_111_samples_per_second", floe1},
                     {"overhead_ratio", floe1 / plain}, {"layouts", nlohmann::json::array()}};
    std::printf("\nlayouts on %d devices\n  %-3s %-3s %-3s %12s %10s\n", cfg.devices, "K", "M", "R", "samples/s",
                "vs K1M1R1");
    const int layouts[][3] = {{1, 1, 1}, {2, 4, 1}, {2, 8, 1}, {1, 1, 2}};
    double base = 0;
    for (const auto& l : layouts) {
      if (l[0] * l[2] > cfg.devices) continue;
      const double sps = floe_samples_per_second(cfg, data, l[0], l[1], l[2]);
      if (base == 0) base = sps;
      std::printf("  %-3d %-3d %-3d %12.1f %10.3f\n", l[0], l[1], l[2], sps, sps / base);
      j["layouts"].push_back({{"K", l[0]}, {"M", l[1]}, {"R", l[2]}, {"samples_per_second", sps}});
    }
    if (!json_out.empty()) floe::write_file_atomic(json_out, j.dump(2) + "\n");
    return 0;
  });
}
