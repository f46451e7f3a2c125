#include "launch/simulate.hpp"

#include "actors/threads.hpp"
#include "launch/job.hpp"
#include "models/errors.hpp"
#include "models/files.hpp"
#include "runtime/config/breakdown.hpp"
#include "runtime/observe/event_writer.hpp"
#include "runtime/plan/planner.hpp"
#include "runtime/train/sampler.hpp"
#include "runtime/sim/profile.hpp"
#include "runtime/sim/simulator.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>
#include <memory>

namespace floe::launch {
namespace {

struct ProfileCommand {
  std::string config, hardware, out;
  std::vector<std::string> sets;
  std::vector<int64_t> micro_batches;
  int repeats = 5, concurrency = 0;
  int64_t calibrate_steps = 60;
};

struct SimulateCommand {
  std::string config, hardware, profile, cluster, json, trace, compare, rows;
  std::vector<std::string> sets;
  int64_t samples = 0, eval_samples = 0, sequence = 0;
  bool paper_batch = false;
};

// What `floe profile` assumes for what it does not measure, without --hardware: one process,
// devices that exchange tensors in memory (the copy bandwidth it measures), CAF's in-process
// message latency.
runtime::Hardware this_process() {
  runtime::Hardware h;
  h.name = "this machine (measured by floe profile)";
  h.intra_latency = 20e-6;
  h.sources["intra_latency"] = "an in-process CAF message, about 20 us (docs/simulator.md)";
  return h;
}

// The mean training step of a short real run of `probe` on `part`, after the first few steps
// (allocations, cold caches), from the run's metrics; 0 when none was recorded.
double mean_real_step(runtime::JobConfig probe, const models::TrainTest& part, int64_t steps) {
  const std::string metrics = (std::filesystem::temp_directory_path() /
                               ("floe-calibrate-" + std::to_string(::getpid()) + ".jsonl")).string();
  probe.observe.metrics = metrics;
  run_job(probe, part);
  const int64_t warm = std::min<int64_t>(5, steps / 4);
  double sum = 0;
  int64_t n = 0;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    const int64_t step = j.is_object() ? j.value("step", int64_t{-1}) : -1;
    if (j.is_object() && j.value("kind", "") == "step" && j.contains("seconds") && step >= warm && step < steps - 1) {
      sum += j["seconds"].get<double>();  // (the last step may be partial)
      ++n;
    }
  }
  std::filesystem::remove(metrics);
  return n > 0 ? sum / static_cast<double>(n) : 0;
}

// Units measured one by one miss what a running job adds around them: other micro-batches'
// activations in the caches, and per pipeline action the stage's messages and bookkeeping.
// Short real runs of the job's first plan (no freezing, no cache) at its micro-batch count
// and at twice it fit a scale for every unit time and a cost per action (fit_calibration);
// a one-stage plan fits the scale alone.
void calibrate(runtime::CostModel& m, const runtime::JobConfig& cfg, const models::TrainTest& data, int64_t steps) {
  auto probe = cfg;
  probe.epochs = 1;
  probe.freeze.policy = "none";
  probe.freeze.guard = false;
  probe.elastic = false;
  probe.cache.enabled = false;
  probe.init_weights.clear();
  probe.save_weights.clear();
  probe.checkpoint.dir.clear();
  probe.observe = {};
  if (probe.pipeline.micro_batches == 0) probe.pipeline.micro_batches = runtime::default_micro_batches(probe.pipeline.length);
  // A random share of the training set, so that text batches have the epoch's mix of lengths.
  const auto order = runtime::epoch_permutation(data.train.size(), cfg.seed, 0);
  const auto pick = torch::tensor(std::vector<int64_t>(order.begin(), order.begin() + std::min<int64_t>(
                                                                                         steps * cfg.batch_size, order.size())),
                                  torch::kInt64);
  models::TrainTest part{data.train.rows(data.train.inputs.index_select(0, pick), data.train.labels.index_select(0, pick)),
                         data.test.head(1)};
  runtime::SimulationOptions so;
  so.train_samples = part.train.size();
  so.eval_samples = 0;
  std::vector<int> counts{probe.pipeline.micro_batches};
  const int64_t replica_batch = cfg.batch_size / std::max(1, runtime::replicas_on(probe, probe.devices));
  if (probe.pipeline.length > 1 && 2 * counts[0] <= replica_batch) counts.push_back(2 * counts[0]);
  std::vector<double> measured, compute, actions;
  for (int mb : counts) {
    probe.pipeline.micro_batches = mb;
    spdlog::info("profile: calibrating on {} real training steps of the job's first plan, M = {}", steps, mb);
    const double t = mean_real_step(probe, part, steps);
    if (!(t > 0)) {
      spdlog::warn("profile: calibration found no step times; the unit costs stay as measured alone");
      return;
    }
    auto with = m;
    with.hardware.action_overhead = 1e-3;
    const double x = runtime::simulate_job(probe, m, so).step_seconds.at(0);
    const double y = (runtime::simulate_job(probe, with, so).step_seconds.at(0) - x) / 1e-3;
    measured.push_back(t);
    compute.push_back(x);
    actions.push_back(std::max(0.0, y));
  }
  const auto c = runtime::fit_calibration(measured, compute, actions);
  runtime::scale_compute(m, c.scale);
  m.hardware.action_overhead = c.action_overhead;
  std::string points;
  for (size_t i = 0; i < counts.size(); ++i)
    points += fmt::format("{}M = {}: {:.4f}s real, {:.4f}s of units measured alone", i ? "; " : "", counts[i],
                          measured[i], compute[i]);
  m.hardware.sources["calibration"] =
      fmt::format("floe profile: mean training steps of the job's first plan ({}): every unit time x {:.3f}", points, c.scale);
  m.hardware.sources["action_overhead"] = fmt::format("floe profile: fitted with the calibration, {:.2e}s", c.action_overhead);
  spdlog::info("profile: {}; {:.2e}s per pipeline action", m.hardware.sources["calibration"], c.action_overhead);
}

int profile(const ProfileCommand& o) {
  const auto cfg = runtime::load_job_config(o.config, o.sets);
  const auto hw = o.hardware.empty() ? this_process() : runtime::read_hardware(o.hardware);
  floe::write_file_atomic(o.out, "{}\n");  // fail early on a bad path
  actors::keep_thread_serial();
  spdlog::info("loading {} data", cfg.data.dataset);
  const auto data = load_job_data(cfg);
  runtime::ProfileOptions po;
  po.micro_batches = o.micro_batches;
  po.repeats = o.repeats;
  po.concurrency = o.concurrency;
  po.progress = [](const std::string& line) { spdlog::info("profile: {}", line); };
  auto m = runtime::profile_job(cfg, data, hw, po);
  if (o.calibrate_steps > 0) calibrate(m, cfg, data, o.calibrate_steps);
  floe::write_file_atomic(o.out, runtime::to_json(m) + "\n");
  spdlog::info("profile of {} units written to {}", m.units.size(), o.out);
  return 0;
}

std::vector<int> parse_cluster(const std::string& text) {
  const auto x = text.find('x');
  int nodes = 0, devices = 0;
  try {
    size_t a = 0, b = 0;
    if (x == std::string::npos) throw std::invalid_argument("no x");
    nodes = std::stoi(text.substr(0, x), &a);
    devices = std::stoi(text.substr(x + 1), &b);
    if (a != x || b != text.size() - x - 1) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    nodes = 0;
  }
  if (nodes < 1 || devices < 1 || nodes > 65536 || devices > 1024)
    throw InputError("--cluster " + text + ": expected NODESxDEVICES, e.g. 2x8");
  return std::vector<int>(nodes, devices);
}

// The simulated run as the trace observer writes a real one (runtime/observe/event_writer.hpp).
void write_trace(const std::string& path, const runtime::Simulation& sim) {
  using runtime::Event;
  using runtime::EventKind;
  auto w = runtime::make_trace_writer(path);
  auto us = [](double s) { return static_cast<int64_t>(s * 1e6); };
  Event job;
  job.kind = EventKind::job;
  job.detail = "simulated";
  w->on(job);
  for (size_t i = 0; i < sim.summary.epochs.size(); ++i) {
    const auto& e = sim.summary.epochs[i];
    Event ev;
    ev.kind = EventKind::epoch;
    ev.epoch = e.epoch;
    ev.start_us = us(sim.epoch_starts.at(i));
    ev.duration_us = us(e.seconds);
    ev.values = {{"K", e.pipeline_length}, {"R", e.replicas}, {"frozen", e.frozen_layers}};
    w->on(ev);
  }
  for (const auto& tr : sim.summary.transitions) {
    Event ev;
    ev.kind = EventKind::transition;
    ev.epoch = tr.epoch;
    ev.step = tr.step;
    ev.detail = "transition";
    ev.values = {{"K", tr.to.pipeline_length}, {"R", tr.to.replicas}, {"frozen", tr.frozen_layers}};
    // placed at the first traced step after it
    for (const auto& s : sim.trace)
      if (s.step >= tr.step) {
        ev.start_us = us(s.start - tr.seconds);
        break;
      }
    ev.duration_us = us(tr.seconds);
    w->on(ev);
  }
  for (const auto& s : sim.trace) {
    Event step;
    step.kind = EventKind::step;
    step.epoch = s.epoch;
    step.step = s.step;
    step.start_us = us(s.start);
    step.duration_us = us(s.timeline.makespan);
    w->on(step);
    const int k = static_cast<int>(s.timeline.actions.size());
    for (int r = 0; r < s.replicas; ++r)
      for (int st = 0; st < k; ++st)
        for (const auto& a : s.timeline.actions[st]) {
          Event ev;
          ev.epoch = s.epoch;
          ev.step = s.step;
          ev.replica = r;
          ev.stage = st;
          ev.device = r * k + st;
          ev.micro_batch = a.action.micro_batch;
          ev.start_us = us(s.start + a.start);
          ev.duration_us = us(a.end - a.start);
          switch (a.action.kind) {
            case runtime::ActionKind::forward: ev.kind = EventKind::forward; break;
            case runtime::ActionKind::backward: ev.kind = EventKind::backward; break;
            case runtime::ActionKind::input_backward: ev.kind = EventKind::backward; ev.detail = "I"; break;
            case runtime::ActionKind::weight_backward: ev.kind = EventKind::backward; ev.detail = "W"; break;
            case runtime::ActionKind::reduce: ev.kind = EventKind::reduce; break;
            case runtime::ActionKind::step: ev.kind = EventKind::optimizer; break;
          }
          if (ev.duration_us > 0) w->on(ev);
        }
  }
  w->flush();
}

// A measured run's configuration (its summary's flat map) as overrides.
std::vector<std::string> overrides_of(const nlohmann::json& config) {
  std::map<std::string, std::string> types;
  for (const auto& k : runtime::config_keys()) types[k.name] = k.type;
  std::vector<std::string> out;
  for (const auto& [key, value] : config.items()) {
    const auto type = types.find(key);
    if (type == types.end()) continue;  // a key of another version: its default
    const std::string v = value.get<std::string>();
    const bool quoted = type->second == "string" || type->second == "size" ||
                        (type->second.find("integer or") != std::string::npos && v == "auto");
    out.push_back(key + "=" + (quoted ? runtime::toml_string(v) : v));
  }
  return out;
}

// Every run in `path` (a summary, or bench/elastic's {"rows": [...]}) simulated with its own
// configuration, epoch by epoch beside what was measured.
int compare(const SimulateCommand& o, const std::vector<std::string>& extra, const runtime::CostModel& costs,
            const runtime::SimulationOptions& so) {
  nlohmann::json runs;
  const std::string text = runtime::read_text(o.compare, "--compare");
  try {
    const auto j = nlohmann::json::parse(text);
    runs = j.contains("rows") ? j.at("rows") : nlohmann::json::array({j});
    for (const auto& r : runs) {
      for (const auto& [k, v] : r.at("config").items()) (void)v.get<std::string>();
      for (const auto& e : r.at("epochs"))
        if (!(e.at("seconds").get<double>() > 0)) throw std::invalid_argument("an epoch of no seconds");
    }
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {
    throw InputError("--compare " + o.compare + ": expected a floe summary or bench/elastic JSON (" + e.what() + ")");
  }
  std::printf("%-18s %5s %-10s %10s %10s %7s\n", "run", "epoch", "plan", "measured", "simulated", "error");
  double first_measured = 0, first_simulated = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto& r = runs[i];
    auto sets = overrides_of(r.at("config"));
    sets.insert(sets.end(), extra.begin(), extra.end());
    const auto cfg = runtime::load_job_config("", sets);
    auto run_options = so;  // the samples the run trained on, unless --samples says otherwise
    if (run_options.train_samples <= 0 && !r["epochs"].empty())
      run_options.train_samples = r["epochs"][0].value("samples", int64_t{0});
    const auto sim = runtime::simulate_job(cfg, costs, run_options);
    const std::string name = r.value("name", "run " + std::to_string(i + 1));
    double measured = 0, simulated = 0, worst = 0;
    for (size_t e = 0; e < r.at("epochs").size() && e < sim.summary.epochs.size(); ++e) {
      const double m = r["epochs"][e].at("seconds"), p = sim.summary.epochs[e].seconds;
      const auto& se = sim.summary.epochs[e];
      const std::string plan = "K" + std::to_string(se.pipeline_length) + "R" + std::to_string(se.replicas) + "F" +
                               std::to_string(se.frozen_layers);
      std::printf("%-18s %5zu %-10s %10.2f %10.2f %+6.1f%%\n", name.c_str(), e + 1, plan.c_str(), m, p, 100 * (p / m - 1));
      measured += m;
      simulated += p;
      worst = std::max(worst, std::abs(p / m - 1));
    }
    if (i == 0) first_measured = measured, first_simulated = simulated;
    std::printf("%-18s %5s %-10s %10.2f %10.2f %+6.1f%%   speedup measured %.2fx, simulated %.2fx; worst epoch %.0f%%\n",
                name.c_str(), "all", "", measured, simulated, 100 * (simulated / measured - 1), first_measured / measured,
                first_simulated / simulated, 100 * worst);
  }
  return 0;
}

// The breakdown rows (runtime/config/breakdown.hpp) on the job, side by side: each row's
// epochs, total and speedup over the first row.
int simulate_rows(const SimulateCommand& o, const std::vector<std::string>& sets, const runtime::CostModel& costs,
                  const runtime::SimulationOptions& so) {
  double first = 0;
  std::printf("%-18s %10s %8s   %s\n", "row", "total s", "speedup", "per epoch: seconds (K, R, frozen)");
  for (const auto& row : runtime::select_rows(o.rows, "--rows")) {
    auto overrides = sets;
    overrides.insert(overrides.end(), row.sets.begin(), row.sets.end());
    const auto sim = runtime::simulate_job(runtime::load_job_config(o.config, overrides), costs, so);
    if (first == 0) first = sim.summary.total_seconds;
    std::string epochs;
    for (const auto& e : sim.summary.epochs)
      epochs += fmt::format(" {:.0f}(K{}R{}F{})", e.seconds, e.pipeline_length, e.replicas, e.frozen_layers);
    std::printf("%-18s %10.1f %7.2fx  %s\n", row.name.c_str(), sim.summary.total_seconds, first / sim.summary.total_seconds,
                epochs.c_str());
  }
  return 0;
}

int simulate(const SimulateCommand& o) {
  auto sets = o.sets;
  std::vector<int> nodes;
  if (!o.cluster.empty()) {
    nodes = parse_cluster(o.cluster);
    sets.push_back("devices=" + std::to_string(nodes.size() * nodes[0]));
  }
  const auto cfg = runtime::load_job_config(o.config, sets);
  runtime::CostModel costs;
  if (!o.profile.empty()) {
    costs = runtime::cost_model_from_json(runtime::read_text(o.profile, "--profile"), o.profile);
    if (!o.hardware.empty()) costs.hardware = runtime::with_links_of(costs.hardware, runtime::read_hardware(o.hardware));
  } else if (!o.hardware.empty()) {
    costs = runtime::analytic_costs(cfg.model, runtime::read_hardware(o.hardware), o.sequence);
  } else {
    throw InputError("simulate: give --profile (floe profile's file) or --hardware (a hardware TOML file)");
  }
  if (!o.json.empty()) floe::write_file_atomic(o.json, "{}\n");
  runtime::SimulationOptions so;
  so.node_devices = nodes;
  so.train_samples = o.samples;
  so.eval_samples = o.eval_samples;
  so.batch_per_replica = o.paper_batch;
  if (!o.compare.empty()) return compare(o, sets, costs, so);
  if (!o.rows.empty()) return simulate_rows(o, sets, costs, so);
  const auto sim = runtime::simulate_job(cfg, costs, so);

  std::printf("floe simulate: %s; %s; costs: %s%s\n", models::describe(cfg.model).c_str(),
              nodes.empty() ? (std::to_string(cfg.devices) + " devices").c_str()
                            : (std::to_string(nodes.size()) + " nodes x " + std::to_string(nodes[0]) + " devices").c_str(),
              costs.source.c_str(), costs.hardware.name.empty() ? "" : (", hardware " + costs.hardware.name).c_str());
  std::printf("%-6s %3s %4s %3s %3s %-10s %10s %10s %11s %9s %-14s\n", "epoch", "K", "R", "M", "F", "schedule",
              "seconds", "train s", "samples/s", "step ms", "bubble");
  for (size_t i = 0; i < sim.summary.epochs.size(); ++i) {
    const auto& e = sim.summary.epochs[i];
    std::string bubble;
    for (double b : e.stage_bubble_fraction) bubble += (bubble.empty() ? "" : "/") + std::to_string(std::lround(100 * b));
    std::printf("%-6d %3d %4d %3d %3d %-10s %10.2f %10.2f %11.1f %9.2f %-14s\n", e.epoch + 1, e.pipeline_length,
                e.replicas, e.micro_batches, e.frozen_layers, sim.schedules[i].c_str(), e.seconds, e.train_seconds,
                e.samples_per_second, 1e3 * sim.step_seconds[i], (bubble + "%").c_str());
  }
  for (const auto& t : sim.summary.transitions)
    std::printf("transition at step %lld (epoch %d): K%d R%d -> K%d R%d, %d frozen, %.3f s\n",
                static_cast<long long>(t.step), t.epoch + 1, t.from.pipeline_length, t.from.replicas,
                t.to.pipeline_length, t.to.replicas, t.frozen_layers, t.seconds);
  std::printf("total %.1f s simulated; planner %.3f ms; simulation %.3f s\n", sim.summary.total_seconds,
              1e3 * sim.planner_seconds, sim.seconds);
  if (!o.json.empty()) {
    auto j = nlohmann::json::parse(runtime::to_json(sim.summary));
    j["simulated"] = {{"costs", costs.source},
                      {"hardware", costs.hardware.name},
                      {"planner_seconds", sim.planner_seconds},
                      {"simulation_seconds", sim.seconds},
                      {"schedules", sim.schedules},
                      {"step_seconds", sim.step_seconds}};
    floe::write_file_atomic(o.json, j.dump(2) + "\n");
  }
  if (!o.trace.empty()) write_trace(o.trace, sim);
  return 0;
}

}  // namespace

std::function<int()> add_simulator_commands(CLI::App& app) {
  auto p = std::make_shared<ProfileCommand>();
  auto* pc = app.add_subcommand("profile", "measure every unit of a job's model on its data here: the simulator's costs");
  pc->add_option("--config", p->config, "TOML job file")->check(CLI::ExistingFile);
  pc->add_option("--set", p->sets, "override a config key: --set key=value (repeatable)")->take_all();
  pc->add_option("--hardware", p->hardware, "hardware TOML for what is not measured (links, overheads)")
      ->check(CLI::ExistingFile);
  pc->add_option("--micro-batches", p->micro_batches, "micro-batch sizes to measure, e.g. 8,16,32 (default batch/16 ... batch)")
      ->delimiter(',')->check(CLI::PositiveNumber);
  pc->add_option("--repeats", p->repeats, "repeats per measurement (the median counts)")->capture_default_str()
      ->check(CLI::PositiveNumber);
  pc->add_option("--concurrency", p->concurrency,
                 "devices measured at once (default: the job's devices, at most the cores)")->check(CLI::NonNegativeNumber);
  pc->add_option("--calibrate", p->calibrate_steps,
                 "real training steps of the job's first plan to calibrate the unit costs on (0: none)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  pc->add_option("--out", p->out, "where to write the profile (JSON)")->required();
  auto s = std::make_shared<SimulateCommand>();
  auto* sc = app.add_subcommand("simulate", "run a job on a cost model: plans, transitions, epoch times (docs/simulator.md)");
  sc->add_option("--config", s->config, "TOML job file")->check(CLI::ExistingFile);
  sc->add_option("--set", s->sets, "override a config key: --set key=value (repeatable)")->take_all();
  sc->add_option("--profile", s->profile, "costs measured by floe profile")->check(CLI::ExistingFile);
  sc->add_option("--hardware", s->hardware, "hardware TOML: costs from the model's shapes (or links for --profile)")
      ->check(CLI::ExistingFile);
  sc->add_option("--cluster", s->cluster, "NODESxDEVICES, e.g. 2x8 (default: the job's devices on one node)");
  sc->add_option("--samples", s->samples, "training samples per epoch (default: the profile's)")->check(CLI::PositiveNumber);
  sc->add_option("--eval-samples", s->eval_samples, "evaluation samples per epoch (default: the profile's)")
      ->check(CLI::PositiveNumber);
  sc->add_option("--sequence", s->sequence, "text models priced from shapes: tokens per sample (default model.max_len)")
      ->check(CLI::PositiveNumber);
  sc->add_flag("--paper-batch", s->paper_batch,
               "batch_size is per pipeline, as in the original PipeTransformer (floe: the global batch)");
  sc->add_option("--compare", s->compare,
                 "simulate every run of a summary or bench/elastic JSON with its own configuration, beside what was "
                 "measured")->check(CLI::ExistingFile);
  sc->add_option("--rows", s->rows,
                 "simulate these breakdown rows of the job side by side (baseline, freeze-only, freeze-cache, "
                 "freeze-pipe-cache, freeze-elastic, elastic-schedule)");
  sc->add_option("--json", s->json, "write the summary JSON (a real run's schema, plus \"simulated\")");
  sc->add_option("--trace", s->trace, "write a Perfetto trace of the first step of every epoch");
  return [=]() -> int {
    if (*pc) return profile(*p);
    if (*sc) return simulate(*s);
    return -1;
  };
}

}  // namespace floe::launch
