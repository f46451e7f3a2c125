// Pipeline schedules side by side in one run: GPipe, 1F1B, ZB-H1 and ZB-H2 (split backward),
// interleaved 1F1B and ZB-V (two chunks per device) at K=2 on 2 devices (and K=4 on 4 one-thread devices, labelled oversubscribed when the
// machine has fewer cores), in alternating rounds. Per schedule: samples/s (median of the
// rounds), the measured bubble (the stage accounting of the summary), the programs' memory
// high-water marks in micro-batches of a device's layers, and the speedup over one device's K=1
// throughput at its best (the whole batch at once, or accumulated over each M of the run).
// Micro-batches follow pipeline.taper ("auto": tapered where the schedule's model gains);
// --compare-taper adds each schedule with M equal micro-batches (taper "off") beside it.
// Usage: schedules [--steps N] [--rounds R] [--micro-batches 4,8,16] [--k4] [--compare-taper] [--schedules a,b]
//                  [--config FILE] [--set key=value]... [--json out.json]
#include "launch/blas.hpp"
#include "launch/job.hpp"
#include "models/errors.hpp"
#include "models/files.hpp"
#include "runtime/observe/summary.hpp"
#include "runtime/plan/schedule.hpp"
#include "runtime/train/sampler.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <thread>

using namespace floe;

namespace {

struct Measure {
  double samples_per_second = 0, bubble = 0;
  std::vector<double> per_device;  // each device's bubble: how evenly the stages load them
};

// One epoch of `steps` steps on layout (k, m, 1) with `schedule`.
Measure run(runtime::JobConfig cfg, const models::TrainTest& data, int k, int m, const std::string& schedule,
            const std::string& taper) {
  cfg.pipeline.length = k;
  cfg.pipeline.micro_batches = m;
  cfg.pipeline.schedule = schedule;
  cfg.pipeline.taper = taper;
  cfg.pipeline.virtual_stages = 0;  // what the schedule needs
  cfg.pipeline.partition.clear();
  cfg.replicas = 1;
  cfg.devices = k;  // one device per stage: the K=1 row is one device
  cfg.epochs = 1;
  cfg.freeze.policy = "none";
  runtime::validate(cfg);
  const auto s = launch::run_job(cfg, data);
  const auto& e = s.epochs.at(0);
  Measure out{e.samples_per_second, 0, e.stage_bubble_fraction};
  for (double b : e.stage_bubble_fraction) out.bubble += b / e.stage_bubble_fraction.size();
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  floe::launch::use_fast_blas_kernels();  // (may restart the process: launch/blas.hpp)
  CLI::App app{"floe schedules benchmark: GPipe, 1F1B, ZB-H1, ZB-H2, interleaved 1F1B, ZB-V side by side"};
  int64_t steps = 40;
  int rounds = 3;
  bool k4 = false, compare_taper = false;
  std::vector<int> micro_batches{4, 8, 16};
  const std::vector<std::string> all{"gpipe", "1f1b", "zb-h1", "zb-h2", "interleaved", "zb-v"};
  auto kinds = all;
  std::string config, json_out;
  std::vector<std::string> sets;
  app.add_option("--steps", steps, "training steps per measurement")->check(CLI::PositiveNumber);
  app.add_option("--rounds", rounds, "alternating rounds; each figure is the median")->check(CLI::PositiveNumber);
  app.add_option("--micro-batches", micro_batches, "values of M")->delimiter(',')->check(CLI::PositiveNumber);
  app.add_flag("--k4", k4, "also K=4 on 4 one-thread devices");
  app.add_option("--schedules", kinds, "the schedules to run (default: all six)")
      ->delimiter(',')
      ->check(CLI::IsMember(all));
  app.add_flag("--compare-taper", compare_taper, "also each schedule on M equal micro-batches (pipeline.taper = \"off\")");
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
    const unsigned cores = std::thread::hardware_concurrency();
    std::printf("model: %s depth %lld dim %lld; batch %lld; %lld steps per measurement; %d thread(s) per device; "
                "%u cores; median of %d alternating rounds\n",
                cfg.model.kind.c_str(), (long long)cfg.model.depth, (long long)cfg.model.dim,
                (long long)cfg.batch_size, (long long)steps, cfg.threads_per_device, cores, rounds);

    struct Row {
      int k, m;
      std::string schedule;
      std::string taper;
      std::vector<double> sps, bubble;
      std::vector<std::vector<double>> per_device;  // [device][round]
    };
    std::vector<Row> rows;
    std::vector<int> ks{2};
    if (k4) ks.push_back(4);
    for (int k : ks)
      for (int m : micro_batches)
        for (const auto& kind : kinds) {
          rows.push_back({k, m, kind, cfg.pipeline.taper, {}, {}, {}});
          if (compare_taper && cfg.pipeline.taper != "off") rows.push_back({k, m, kind, "off", {}, {}, {}});
        }
    // One device, K=1, on the whole batch (M=1) and on each M of the run (accumulating the
    // gradient): the speedups divide by the fastest of them, one device at its best.
    std::vector<int> base_m{1};
    for (int m : micro_batches)
      if (m > 1) base_m.push_back(m);
    std::vector<std::vector<double>> base(base_m.size());
    const auto measure_base = [&] {
      for (size_t i = 0; i < base_m.size(); ++i)
        base[i].push_back(run(cfg, data, 1, base_m[i], "gpipe", "off").samples_per_second);
    };
    // Rounds alternate the order (forward, then backward) so that drift favours no schedule.
    for (int round = 0; round < rounds; ++round) {
      std::fprintf(stderr, "round %d/%d\n", round + 1, rounds);
      if (round % 2 == 0) measure_base();
      std::vector<size_t> order(rows.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = round % 2 ? order.size() - 1 - i : i;
      for (size_t i : order) {
        auto& r = rows[i];
        auto c = cfg;
        if (r.k > 2) c.threads_per_device = 1;
        const auto got = run(c, data, r.k, r.m, r.schedule, r.taper);
        std::fprintf(stderr, "  K=%d M=%d %-11s %-7s %8.1f samples/s, bubble %.3f\n", r.k, r.m, r.schedule.c_str(),
                     r.taper.c_str(), got.samples_per_second, got.bubble);
        r.sps.push_back(got.samples_per_second);
        r.bubble.push_back(got.bubble);
        r.per_device.resize(std::max(r.per_device.size(), got.per_device.size()));
        for (size_t d = 0; d < got.per_device.size(); ++d) r.per_device[d].push_back(got.per_device[d]);
      }
      if (round % 2 == 1) measure_base();
    }
    double one = 0;
    int one_m = 1;
    std::printf("\n");
    nlohmann::json one_device = nlohmann::json::array();
    for (size_t i = 0; i < base_m.size(); ++i) {
      const double sps = median(base[i]);
      std::printf("one device, K=1 M=%d: %.1f samples/s\n", base_m[i], sps);
      one_device.push_back({{"M", base_m[i]}, {"samples_per_second", sps}, {"runs", base[i]}});
      if (sps > one) one = sps, one_m = base_m[i];
    }
    std::printf("speedups below are over one device at its best: K=1 M=%d, %.1f samples/s\n\n", one_m, one);
    std::printf("| K | M | schedule | micro-batches | samples/s | vs one device | per device | bubble | bubble by device | activations | held W | note |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    nlohmann::json j{{"one_device_samples_per_second", one}, {"one_device_micro_batches", one_m},
                     {"one_device", one_device}, {"cores", cores}, {"rows", nlohmann::json::array()}};
    for (const auto& r : rows) {
      const auto kind = runtime::parse_schedule_kind(r.schedule);
      const int v = runtime::chunks_for(kind, 0);
      const auto programs = runtime::make_schedule(kind, r.k, r.m, v);
      // In micro-batches of a device's layers: a chunk's is 1/v of one.
      double act = 0, held = 0;
      for (const auto& p : programs) {
        act = std::max(act, runtime::peak_memory(p).activations / double(v));
        held = std::max(held, runtime::peak_memory(p).held / double(v));
      }
      const double sps = median(r.sps), bubble = median(r.bubble);
      std::vector<double> per_device;
      std::string devices;
      for (const auto& d : r.per_device) {
        per_device.push_back(median(d));
        char b[16];
        std::snprintf(b, sizeof b, "%s%.1f", devices.empty() ? "" : " / ", 100 * per_device.back());
        devices += b;
      }
      const std::string note = static_cast<unsigned>(r.k) > cores ? "oversubscribed" : "";
      const bool tapered = runtime::tapers(runtime::parse_taper(r.taper), kind, r.k, r.m, v);
      const auto w = runtime::micro_batch_weights(r.m, tapered ? r.k : 1);
      const double largest = *std::max_element(w.begin(), w.end());
      char mbs[32];
      std::snprintf(mbs, sizeof mbs, tapered ? "tapered (x%.2f)" : "even", largest);
      std::printf("| %d | %d | %s | %s | %.1f | %.2fx | %.2f | %.1f %% | %s %% | %g | %g | %s |\n", r.k, r.m,
                  r.schedule.c_str(), mbs, sps, sps / one, sps / (r.k * one), 100 * bubble, devices.c_str(), act, held,
                  note.c_str());
      j["rows"].push_back({{"K", r.k}, {"M", r.m}, {"schedule", r.schedule}, {"taper", r.taper}, {"tapered", tapered},
                           {"largest_micro_batch_weight", largest}, {"samples_per_second", sps},
                           {"runs", r.sps}, {"speedup_vs_one_device", sps / one}, {"bubble", bubble},
                           {"bubble_per_device", per_device},
                           {"peak_activations_micro_batches", act}, {"peak_held_micro_batches", held},
                           {"oversubscribed", !note.empty()}});
    }
    std::printf("\nbubble: the devices' mean; bubble by device: each device's own (medians over the rounds), "
                "device 0 first: a device that waits more than the others does less of the work\n");
    std::printf("\nactivations, held W: the programs' high-water marks on the busiest device, in micro-batches of a "
                "device's layers (interleaved and ZB-V count a chunk's as 1/2; held W: a linear layer's input and "
                "output gradient per micro-batch awaiting its weight gradient); tapered (xW): the largest "
                "micro-batch is W times the mean, and so are those high-water marks in samples at most\n");
    if (!json_out.empty()) floe::write_file_atomic(json_out, j.dump(2) + "\n");
    return 0;
  });
}
