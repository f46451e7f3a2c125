// What checkpoints cost: the same job with and without them, in alternating rounds in one
// process (the machine drifts by +-20 %). Prints the training time of each side, the time
// per checkpoint, the overhead measured at --every, and that overhead projected to the
// default interval (checkpoint.interval). Goal: < 3 % at the default interval.
// Usage: checkpoint [--steps N] [--every N] [--rounds N] [--set key=value]... [--json out.json]
#include "launch/blas.hpp"
#include "models/files.hpp"
#include "launch/job.hpp"
#include "runtime/state/checkpoint.hpp"
#include "models/errors.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>

using namespace floe;
namespace fs = std::filesystem;

int main(int argc, char** argv) {
  floe::launch::use_fast_blas_kernels();  // (may restart the process: launch/blas.hpp)
  CLI::App app{"floe: the cost of checkpoints, side by side"};
  int64_t steps = 200, every = 50;
  int rounds = 3;
  std::string json_out;
  std::vector<std::string> sets;
  app.add_option("--steps", steps, "training steps per run");
  app.add_option("--every", every, "checkpoint interval of the measured runs (steps)");
  app.add_option("--rounds", rounds, "alternating rounds per side");
  app.add_option("--set", sets, "override a config key of the job (default: the demo's model, Fashion-MNIST)")->take_all();
  app.add_option("--json", json_out, "write the results as JSON");
  CLI11_PARSE(app, argc, argv);
  return exit_code_of([&] {
    const auto dir = fs::temp_directory_path() / "floe-bench-checkpoint";
    std::vector<std::string> overrides = {"epochs=1", "data.test_subset=128", "data.subset=" + std::to_string(steps * 128),
                                          "batch_size=128", "log_interval=1000000"};
    overrides.insert(overrides.end(), sets.begin(), sets.end());
    const auto base = runtime::load_job_config("", overrides);
    const int64_t default_interval = runtime::JobConfig{}.checkpoint.interval;
    const auto data = launch::load_job_data(base);
    struct Side {
      std::vector<double> seconds, per_checkpoint;
    } plain, saved;
    auto run = [&](bool with) {
      auto cfg = base;
      if (with) {
        fs::remove_all(dir);
        cfg.checkpoint.dir = dir.string();
        cfg.checkpoint.interval = every;
      }
      const auto s = launch::run_job(cfg, data);
      auto& side = with ? saved : plain;
      side.seconds.push_back(s.epochs.at(0).train_seconds);
      if (with) side.per_checkpoint.push_back(s.checkpoint_seconds / std::max(1, s.checkpoints));
      return s;
    };
    std::printf("job: %lld steps of batch 128, checkpoints every %lld steps, %d rounds\n", (long long)steps,
                (long long)every, rounds);
    for (int r = 0; r < rounds; ++r) {
      if (r % 2 == 0) run(false);
      run(true);
      if (r % 2 == 1) run(false);
      std::printf("  round %d: without %.2fs, with %.2fs (%.1f ms per checkpoint)\n", r + 1, plain.seconds.back(),
                  saved.seconds.back(), 1e3 * saved.per_checkpoint.back());
      std::fflush(stdout);
    }
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    const double without = median(plain.seconds), with = median(saved.seconds), each = median(saved.per_checkpoint);
    const double step_seconds = without / steps;
    const double measured = with / without - 1;
    const double projected = each / (default_interval * step_seconds);
    // The size of one checkpoint: the newest folder the last run left.
    double megabytes = 0;
    for (const auto& e : fs::recursive_directory_iterator(dir / runtime::checkpoint_name(steps)))
      if (e.is_regular_file()) megabytes += e.file_size() / 1e6;
    std::printf("\ntraining seconds (median)\n  without checkpoints   %8.2f\n  every %-5lld steps     %8.2f   (%+.2f %%)\n"
                "  per checkpoint        %8.4f   (%.1f MB of weights, optimizer state and job state)\n"
                "  at the default interval of %lld steps: %.3f %% of training time (goal < 3 %%)\n",
                without, (long long)every, with, 100 * measured, each, megabytes, (long long)default_interval,
                100 * projected);
    if (!json_out.empty())
      floe::write_file_atomic(json_out, nlohmann::json{{"without_seconds", plain.seconds},
                                                          {"with_seconds", saved.seconds},
                                                          {"seconds_per_checkpoint", saved.per_checkpoint},
                                                          {"every", every},
                                                          {"overhead_measured", measured},
                                                          {"default_interval", default_interval},
                                                          {"overhead_at_default_interval", projected}}
                                                   .dump(2) + "\n");
    fs::remove_all(dir);
    return 0;
  });
}
