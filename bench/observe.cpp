// Observation overhead, measured side by side in one run: the same job without observers
// and with every built-in observer on (metrics JSONL, Perfetto trace, HTML report), in
// alternating rounds (the machine drifts by +-20 %). Goal: under 2 % of step time. Besides
// best-of and mean, the median of the rounds' paired ratios (each round runs both sides back
// to back), which cancels drift slower than a round.
// Usage: observe [--steps N] [--rounds N] [--config FILE] [--set key=value]... [--json out.json]
#include "launch/blas.hpp"
#include "models/files.hpp"
#include "launch/job.hpp"
#include "models/errors.hpp"
#include "runtime/observe/summary.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <numeric>

using namespace floe;

int main(int argc, char** argv) {
  floe::launch::use_fast_blas_kernels();  // (may restart the process: launch/blas.hpp)
  CLI::App app{"floe observation overhead: the same job with and without every built-in observer"};
  int64_t steps = 100;
  int rounds = 3;
  std::string config, json_out;
  std::vector<std::string> sets;
  app.add_option("--steps", steps, "training steps per measurement");
  app.add_option("--rounds", rounds, "alternating rounds per side");
  app.add_option("--config", config, "TOML job file (default: the demo's model on 2 devices, K=2 M=4)");
  app.add_option("--set", sets, "override a config key")->take_all();
  app.add_option("--json", json_out, "write the results as JSON");
  CLI11_PARSE(app, argc, argv);
  return exit_code_of([&] {
    spdlog::set_level(spdlog::level::warn);
    auto cfg = runtime::load_job_config(config, sets);
    cfg.epochs = 1;
    cfg.freeze.policy = "none";
    cfg.data.subset = steps * cfg.batch_size;
    cfg.data.test_subset = cfg.batch_size;
    const auto data = launch::load_job_data(cfg);
    const auto dir = std::filesystem::temp_directory_path() / "floe-bench-observe";
    std::filesystem::create_directories(dir);
    auto run = [&](bool observed) {
      auto c = cfg;
      if (observed) {
        c.observe.metrics = (dir / "metrics.jsonl").string();
        c.observe.trace = (dir / "trace.json").string();
        c.observe.report = (dir / "report.html").string();
      }
      return launch::run_job(c, data).epochs.at(0).train_seconds / steps;
    };
    std::printf("model: ViT depth %lld dim %lld; batch %lld; K=%d M=%d R=%d on %d devices; %lld steps x %d rounds\n",
                (long long)cfg.model.depth, (long long)cfg.model.dim, (long long)cfg.batch_size, cfg.pipeline.length,
                cfg.pipeline.micro_batches, runtime::replicas_on(cfg, cfg.devices), cfg.devices, (long long)steps, rounds);
    std::vector<double> off, on;
    for (int r = 0; r < rounds; ++r) {
      if (r % 2 == 0) off.push_back(run(false));
      on.push_back(run(true));
      if (r % 2 == 1) off.push_back(run(false));
    }
    auto best = [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); };
    auto mean = [](const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / v.size(); };
    std::printf("\nseconds per training step\n  no observers           %8.4f   (runs:", best(off));
    for (double x : off) std::printf(" %.4f", x);
    std::printf(")\n  metrics+trace+report   %8.4f   (runs:", best(on));
    for (double x : on) std::printf(" %.4f", x);
    const double overhead = best(on) / best(off) - 1, overhead_mean = mean(on) / mean(off) - 1;
    std::vector<double> paired;  // per round: with / without, run back to back
    for (size_t r = 0; r < on.size(); ++r) paired.push_back(on[r] / off[r] - 1);
    std::sort(paired.begin(), paired.end());
    auto quantile = [&](double q) { return paired[static_cast<size_t>(q * (paired.size() - 1) + 0.5)]; };
    const double overhead_paired = quantile(0.5);
    std::printf(")\n  overhead               %+7.2f %%  best-of, %+.2f %% mean   (goal < 2 %%)\n", 100 * overhead,
                100 * overhead_mean);
    std::printf("  paired, per round      %+7.2f %%  median (quartiles %+.2f %% .. %+.2f %%, %zu rounds)\n",
                100 * overhead_paired, 100 * quantile(0.25), 100 * quantile(0.75), paired.size());
    std::printf("  trace of the last round: %s (%.1f MiB)\n", (dir / "trace.json").c_str(),
                std::filesystem::file_size(dir / "trace.json") / 1048576.0);
    if (!json_out.empty())
      floe::write_file_atomic(json_out, nlohmann::json{{"step_seconds_off", off},
                                                          {"step_seconds_on", on},
                                                          {"overhead_best", overhead},
                                                          {"overhead_mean", overhead_mean},
                                                          {"overhead_paired_median", overhead_paired}}
                                                   .dump(2) + "\n");
    return 0;
  });
}
