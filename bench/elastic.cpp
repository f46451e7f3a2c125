// bench/elastic: the paper's comparison, measured side by side in one run on this machine.
// Same model, data, epochs and seed for every row of runtime/config/breakdown.hpp (baseline,
// freeze-only, freeze-cache, freeze-pipe-cache, freeze-elastic, elastic-schedule,
// elastic-annealed, elastic-adaptive, elastic-plasticity).
// Prints total and per-epoch time, final accuracy, time to reach the target accuracy and
// the speedup of each row over the baseline; then a 4-device run showing K 4 -> 2 -> 1.
// With --pretrain N every row fine-tunes, as in the paper, from the weights of one pre-training
// run of N epochs instead of training from scratch: pre-trained on other labels
// (--pretrain-classes), or on the first samples with the rows fine-tuning on the rest
// (--pretrain-samples).
// With --model bert the job is docs/examples/sst2.toml (a BERT on SST-2) and --pretrain N is
// masked-language modelling on the SST training text; every row then fine-tunes from it.
// Usage: elastic [--model vit|bert] [--config FILE] [--set key=value]... [--rows a,b,...] [--pretrain N]
//                [--json out.json]
#include "launch/blas.hpp"
#include "models/files.hpp"
#include "launch/job.hpp"
#include "models/errors.hpp"
#include "runtime/config/breakdown.hpp"
#include "runtime/observe/summary.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/fmt/fmt.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <sstream>
#include <unistd.h>

using namespace floe;

namespace {

// Removes a temporary file when the benchmark ends, however it ends.
struct RemoveAtEnd {
  std::string path;
  ~RemoveAtEnd() {
    if (!path.empty()) std::filesystem::remove(path);
  }
};

// The paper's protocol: the rows fine-tune the weights of one pre-training run.
struct Pretraining {
  int epochs = 0;                        // 0: the rows train from scratch
  bool mlm = false;                      // masked-language modelling on the training text
  std::vector<int> classes{0, 1, 2, 3, 4};  // the pre-training task: these labels only,
  int64_t samples = 0;                   // or, when > 0, the first N samples (rows: the rest)
  std::vector<std::string> sets;         // overrides for the pre-training only
  std::string out;                       // where its weights go
};

// Runs the pre-training job (no freezing) and saves its weights to p.out.
runtime::TrainingSummary pretrain(const std::string& config, std::vector<std::string> overrides, const Pretraining& p) {
  std::string classes;
  for (int c : p.classes) classes += (classes.empty() ? "" : ", ") + std::to_string(c);
  const std::string task = p.mlm           ? "the training text (masked-language modelling)"
                           : p.samples > 0 ? "the first " + std::to_string(p.samples) + " samples"
                                           : "the samples of labels [" + classes + "]";
  for (const auto& s : {"freeze.policy=none", "elastic=false", "cache.enabled=false"}) overrides.push_back(s);
  overrides.push_back("epochs=" + std::to_string(p.epochs));
  if (p.mlm)
    overrides.push_back("task=mlm");
  else
    overrides.push_back(p.samples > 0 ? "data.subset=" + std::to_string(p.samples) : "data.classes=[" + classes + "]");
  overrides.push_back("save_weights=" + nlohmann::json(p.out).dump());
  overrides.insert(overrides.end(), p.sets.begin(), p.sets.end());
  const auto cfg = runtime::load_job_config(config, overrides);
  std::fprintf(stderr, "pre-training %d epochs on %s ...\n", p.epochs, task.c_str());
  auto s = launch::run_job(cfg, launch::load_job_data(cfg));
  std::printf("pre-training: %d epochs on %s, %.1f s, final test accuracy %.2f%%\n", p.epochs, task.c_str(),
              s.total_seconds, 100 * s.final_test_accuracy);
  std::fflush(stdout);
  return s;
}

double time_to(const runtime::TrainingSummary& s, double target) {
  double t = 0;
  for (const auto& e : s.epochs) {
    t += e.seconds;
    if (e.test_accuracy >= target) return t;
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  floe::launch::use_fast_blas_kernels();  // (may restart the process: launch/blas.hpp)
  CLI::App app{"floe elastic benchmark: static pipeline vs. freezing with live re-planning, side by side"};
  std::string config, json_out, rows_arg = "baseline,freeze-only,freeze-elastic,elastic-schedule";
  std::vector<std::string> sets;
  double target = 0.88;
  bool four = true;
  std::string model = "vit";
  app.add_option("--model", model, "vit: the demo's job; bert: docs/examples/sst2.toml, --pretrain is MLM")
      ->check(CLI::IsMember({"vit", "bert"}));
  app.add_option("--config", config, "TOML job file (default: the demo's job, or with --model bert the SST-2 one)")
      ->check(CLI::ExistingFile);
  app.add_option("--set", sets, "override a config key for every row")->take_all();
  app.add_option("--rows", rows_arg, "rows to run, comma separated");
  app.add_option("--target", target, "test accuracy for the time-to-accuracy column");
  app.add_flag("!--no-four-devices", four, "skip the 4-device K 4->2->1 run");
  app.add_option("--json", json_out, "write all results as JSON");
  Pretraining pre;
  app.add_option("--pretrain", pre.epochs,
                 "pre-train for N epochs on --pretrain-classes only (no freezing); every row then fine-tunes "
                 "from those weights on all classes")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--pretrain-classes", pre.classes, "labels of the pre-training task, e.g. 0,1,2,3,4")
      ->delimiter(',')
      ->check(CLI::NonNegativeNumber);
  auto* by_samples =
      app.add_option("--pretrain-samples", pre.samples,
                     "pre-train on the first N training samples (all labels) instead; the rows fine-tune on the rest")
          ->check(CLI::PositiveNumber);
  app.get_option("--pretrain-classes")->excludes(by_samples);
  app.add_option("--pretrain-set", pre.sets, "override a config key for the pre-training only (after --set)")
      ->take_all();
  app.add_option("--pretrain-out", pre.out, "keep the pre-trained weights here (default: a temporary file)");
  CLI11_PARSE(app, argc, argv);
  if (model == "bert") {
    if (config.empty()) config = FLOE_SOURCE_DIR "/docs/examples/sst2.toml";
    pre.mlm = true;
    four = false;  // the 4-device run shows transitions on the demo's job
    if (app.count("--target") == 0) target = 0.80;  // the issue's bar for SST-2 dev accuracy
  }
  return exit_code_of([&] {
    // Each row's progress (steps, epochs, transitions) on stderr; the table on stdout.
    spdlog::set_default_logger(spdlog::stderr_color_mt("elastic"));
    auto base_cfg = runtime::load_job_config(config, sets);
    auto data = launch::load_job_data(base_cfg);
    nlohmann::json j{{"rows", nlohmann::json::array()}};
    RemoveAtEnd remove_at_end;
    if (pre.epochs > 0) {
      if (pre.out.empty()) {
        pre.out = (std::filesystem::temp_directory_path() / ("floe-pretrain-" + std::to_string(getpid()) + ".pt")).string();
        remove_at_end.path = pre.out;
      }
      const auto s = pretrain(config, sets, pre);
      j["pretrain"] = nlohmann::json::parse(runtime::to_json(s, -1));
      sets.push_back("init_weights=" + nlohmann::json(pre.out).dump());
      if (pre.samples > 0) {
        sets.push_back("data.offset=" + std::to_string(pre.samples));
        data = launch::load_job_data(runtime::load_job_config(config, sets));
      }
    }
    std::vector<std::pair<std::string, runtime::TrainingSummary>> results;
    for (const auto& row : runtime::select_rows(rows_arg, "--rows")) {
      auto overrides = sets;
      overrides.insert(overrides.end(), row.sets.begin(), row.sets.end());
      const auto cfg = runtime::load_job_config(config, overrides);
      std::fprintf(stderr, "running %s ...\n", row.name.c_str());
      auto s = launch::run_job(cfg, data);
      std::ostringstream line;
      for (const auto& e : s.epochs)
        line << "  e" << e.epoch + 1 << " " << int(e.seconds) << "s K" << e.pipeline_length << "R" << e.replicas << "F"
             << e.frozen_layers << " " << 100 * e.test_accuracy << "%";
      std::fprintf(stderr, "%s:%s\n", row.name.c_str(), line.str().c_str());
      results.emplace_back(row.name, s);
      j["rows"].push_back(nlohmann::json::parse(runtime::to_json(s, -1)));
      j["rows"].back()["name"] = row.name;
    }
    const auto& base = results.front().second;
    // Time to the baseline's final accuracy minus half a point (the paper's "equal accuracy")
    // and minus 0.3 point (issue 20's measure), each with the speedup over the baseline's own
    // time to it: the question a user asks of freezing is whether the job gets there sooner.
    const double near_base = base.final_test_accuracy - 0.005, close_to_base = base.final_test_accuracy - 0.003;
    std::printf("\n%-18s %9s %9s %11s %10s %12s %12s %9s %13s\n", "row", "total s", "train s", "final acc",
                "t->target", "t->base-0.5", "t->base-0.3", "speedup", "vs base acc");
    auto seconds = [](double t) { return t < 0 ? std::string("never") : std::to_string(int(t)) + "s"; };
    auto sooner = [&](const runtime::TrainingSummary& s, double acc) {
      const double t = time_to(s, acc), b = time_to(base, acc);
      if (t < 0) return std::string("never");
      return std::to_string(int(t)) + "s" + (b > 0 ? " " + fmt::format("{:.2f}x", b / t) : std::string());
    };
    for (size_t i = 0; i < results.size(); ++i) {
      const auto& [name, s] = results[i];
      double train = 0;
      for (const auto& e : s.epochs) train += e.train_seconds;
      std::printf("%-18s %9.1f %9.1f %10.2f%% %10s %12s %12s %8.2fx %+12.2f\n", name.c_str(), s.total_seconds, train,
                  100 * s.final_test_accuracy, seconds(time_to(s, target)).c_str(), sooner(s, near_base).c_str(),
                  sooner(s, close_to_base).c_str(), base.total_seconds / s.total_seconds,
                  100 * (s.final_test_accuracy - base.final_test_accuracy));
      // -1: never reached
      j["rows"][i]["seconds_to_base_minus_0_5"] = time_to(s, near_base);
      j["rows"][i]["seconds_to_base_minus_0_3"] = time_to(s, close_to_base);
    }
    std::printf("\nper-epoch seconds (K, R, frozen blocks):\n");
    for (const auto& [name, s] : results) {
      std::printf("  %-18s", name.c_str());
      for (const auto& e : s.epochs)
        std::printf(" %6.1f(K%dR%dF%d)", e.seconds, e.pipeline_length, e.replicas, e.frozen_layers);
      std::printf("\n");
    }
    std::printf("\ntraining throughput per epoch, samples/s (x baseline epoch):\n");
    for (const auto& [name, s] : results) {
      std::printf("  %-18s", name.c_str());
      for (size_t e = 0; e < s.epochs.size(); ++e) {
        const double b = e < base.epochs.size() ? base.epochs[e].samples_per_second : 0;
        std::printf(" %7.0f(%.2fx)", s.epochs[e].samples_per_second, b > 0 ? s.epochs[e].samples_per_second / b : 0);
      }
      std::printf("\n");
    }
    std::printf("\ncache per epoch (hits / advanced / computed, MiB in memory):\n");
    for (const auto& [name, s] : results) {
      if (s.epochs.empty() || !s.epochs.front().cached) continue;
      std::printf("  %-18s", name.c_str());
      for (const auto& e : s.epochs)
        std::printf(" %lld/%lld/%lld %.0f", static_cast<long long>(e.cache.hits), static_cast<long long>(e.cache.advanced),
                    static_cast<long long>(e.cache.misses), e.cache.memory_bytes / 1048576.0);
      std::printf("\n");
    }
    if (four) {
      auto overrides = sets;
      for (auto s : {"devices=4", "pipeline.length=4", "replicas=1", "freeze.policy=schedule", "elastic=true",
                     "data.subset=6000", "data.test_subset=2000"})
        overrides.push_back(s);
      const auto cfg = runtime::load_job_config(config, overrides);
      auto subset = launch::load_job_data(cfg);
      auto s = launch::run_job(cfg, subset);
      std::printf("\n4 devices (6000-sample subset), schedule freezing: transitions\n");
      for (const auto& t : s.transitions)
        std::printf("  before epoch %d: F=%d  K %d->%d  M %d->%d  R %d->%d  %.3fs%s\n", t.epoch + 1, t.frozen_layers,
                    t.from.pipeline_length, t.to.pipeline_length, t.from.micro_batches, t.to.micro_batches,
                    t.from.replicas, t.to.replicas, t.seconds, t.ok ? "" : (" FAILED: " + t.error).c_str());
      j["four_devices"] = nlohmann::json::parse(runtime::to_json(s, -1));
    }
    if (!json_out.empty()) floe::write_file_atomic(json_out, j.dump(2) + "\n");
    return 0;
  });
}
