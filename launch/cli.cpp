#include "launch/cli.hpp"

#include "actors/threads.hpp"

#include "launch/cluster.hpp"
#include "launch/job.hpp"
#include "launch/simulate.hpp"
#include "models/errors.hpp"
#include "models/files.hpp"
#include "models/sst.hpp"
#include "models/wordpiece.hpp"
#include "runtime/comm/gloo_group.hpp"
#include "runtime/observe/summary.hpp"
#include "runtime/plan/plan_request.hpp"
#include "runtime/sim/profile.hpp"
#include "runtime/state/checkpoint.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <iostream>

namespace floe::launch {
namespace {

std::string config_reference() {
  std::string s = "\nConfiguration keys (TOML file or --set key=value):\n";
  for (const auto& k : runtime::config_keys()) {
    std::string line = "  " + k.name;
    line.resize(std::max<size_t>(line.size() + 1, 28), ' ');
    const auto shown = k.type == "string" || k.type == "size" ? "\"" + k.default_value + "\"" : k.default_value;
    s += line + k.help + " [" + k.type + ", default " + shown + "]\n";
  }
  return s;
}

struct TrainOptions {
  std::string config;
  std::vector<std::string> sets;
  std::string summary, metrics, trace, report, save_weights, resume;
  std::vector<std::string> faults;
};

// The options `floe train` and `floe coordinator` share.
void add_train_options(CLI::App* cmd, TrainOptions& t) {
  cmd->add_option("--config", t.config, "TOML job file (defaults are the demo's)")->check(CLI::ExistingFile);
  cmd->add_option("--set", t.sets, "override a config key: --set key=value (repeatable)")->take_all();
  cmd->add_option("--summary", t.summary, "write a JSON summary of the run to this file");
  cmd->add_option("--metrics", t.metrics, "write JSONL metrics (a record per step and per epoch) to this file");
  cmd->add_option("--trace", t.trace, "write a Perfetto / Chrome trace of every stage and micro-batch to this file");
  cmd->add_option("--report", t.report, "write a self-contained HTML report to this file");
  cmd->add_option("--save-weights", t.save_weights,
                  "write the final weights to this file (a PyTorch state dict), or with --set save_format=hf to this "
                  "folder as a Hugging Face checkpoint");
  cmd->add_option("--resume", t.resume,
                  "continue the job of this checkpoint folder (or of the newest valid one in it); its config applies, "
                  "--set changes keys (docs/checkpoints.md)");
  cmd->add_option("--fault", t.faults, "inject a fault, e.g. \"slow stage=1 seconds=0.01 at=5\" (repeatable; docs/hooks.md)");
  cmd->footer(config_reference());
}

using Runner = std::function<runtime::TrainingSummary(actors::CoordinatorSpec)>;

int train(const TrainOptions& o, const Runner& run) {
  auto sets = o.sets;  // the shortcut flags are overrides like any other, applied last
  if (!o.resume.empty()) {  // the checkpoint's configuration first, then the user's changes
    if (!o.config.empty())
      throw InputError("--config " + o.config + " with --resume: a resumed job keeps the configuration in its checkpoint; "
                       "change keys with --set");
    std::vector<std::string> skipped;
    const auto ck = runtime::read_latest_checkpoint(o.resume, &skipped);
    for (const auto& why : skipped) spdlog::warn("skipping a damaged checkpoint: {}", why);
    sets.insert(sets.begin(), ck.config.begin(), ck.config.end());
    sets.push_back("checkpoint.resume=" + runtime::toml_string(ck.path));
  }
  if (!o.metrics.empty()) sets.push_back("observe.metrics=" + runtime::toml_string(o.metrics));
  if (!o.trace.empty()) sets.push_back("observe.trace=" + runtime::toml_string(o.trace));
  if (!o.report.empty()) sets.push_back("observe.report=" + runtime::toml_string(o.report));
  if (!o.save_weights.empty()) sets.push_back("save_weights=" + runtime::toml_string(o.save_weights));
  if (!o.faults.empty()) {
    std::string list = "faults=[";
    for (size_t i = 0; i < o.faults.size(); ++i) list += (i ? ", " : "") + runtime::toml_string(o.faults[i]);
    sets.push_back(list + "]");
  }
  const auto cfg = runtime::load_job_config(o.config, sets);
  if (!o.summary.empty()) floe::write_file_atomic(o.summary, "{}\n");  // fail early on a bad path
  actors::keep_thread_serial();  // the main thread loads data, then waits; devices set their own
  std::signal(SIGUSR1, [](int) { runtime::request_checkpoint(); });  // a checkpoint at the next step
  auto init = read_init_weights(cfg);
  spdlog::info("loading {} data", cfg.data.dataset);
  const auto data = load_job_data(cfg);
  const auto summary = run(job_spec(cfg, data, std::move(init)));
  spdlog::info("done: final test accuracy {:.2f}% after {} epochs in {:.1f}s", 100 * summary.final_test_accuracy,
               summary.epochs.size(), summary.total_seconds);
  if (!o.summary.empty()) {
    floe::write_file_atomic(o.summary, runtime::to_json(summary) + "\n");
    spdlog::info("summary written to {}", o.summary);
  }
  if (!cfg.observe.metrics.empty()) spdlog::info("metrics written to {}", cfg.observe.metrics);
  if (!cfg.observe.trace.empty()) spdlog::info("trace written to {} (open it in https://ui.perfetto.dev or chrome://tracing)", cfg.observe.trace);
  if (!cfg.observe.report.empty()) spdlog::info("report written to {}", cfg.observe.report);
  return 0;
}

struct PlanOptions {
  std::string config;
  std::vector<std::string> sets;
  int frozen = 0;
};

int plan(const PlanOptions& o) {
  const auto cfg = runtime::load_job_config(o.config, o.sets);
  if (o.frozen < 0 || o.frozen > cfg.model.depth)
    throw InputError("--frozen " + std::to_string(o.frozen) + ": expected 0.." + std::to_string(cfg.model.depth) +
                     " (model.depth)");
  torch::manual_seed(cfg.seed);
  auto units = models::build_model(cfg.model);
  // planner.costs = "measured" times the units on the job's data first (costs in ns).
  const bool measured =
      cfg.planner.costs == "measured" && !runtime::apply_planner_costs(cfg, load_job_data(cfg), units).empty();
  std::vector<std::string> names;
  for (const auto& u : units)
    names.push_back(u.name + "(" + std::to_string(u.parameter_count()) + (measured ? " params, " + std::to_string(u.cost / 1000) + " us" : "") + ")");
  // Compression is monotone: walk F up from 0 as a run would, so K can only shrink.
  auto q = runtime::plan_request(cfg, units, 0, cfg.pipeline.length);
  auto p = runtime::make_plan(q);
  for (int f = 1; f <= o.frozen; ++f) {
    q = runtime::plan_request(cfg, units, f, p.stages);
    p = runtime::make_plan(q);
  }
  std::printf("model: %s, %zu units; %d devices; planner %s%s\n", models::describe(cfg.model).c_str(),
              units.size(), cfg.devices, cfg.planner.mode.c_str(),
              cfg.elastic ? ", elastic" : ", static");
  std::fputs(runtime::describe(p, names, measured ? "ns" : "parameters").c_str(), stdout);
  if (const int idle = cfg.devices - p.stages * p.replicas; idle > 0)
    std::printf("idle devices: %d of %d (K=%d x R=%d)%s\n", idle, cfg.devices, p.stages, p.replicas,
                cfg.replicas > 0 ? "; replicas = \"auto\" would fill them" : "");
  return 0;
}

struct EvalOptions {
  std::string config, weights, summary, predictions;
  std::vector<std::string> sets;
};

// One JSON line per evaluated sample: its index in the split, its label, the predicted class
// and the class probabilities.
std::string prediction_lines(const models::Dataset& test, const std::vector<int64_t>& uids, const torch::Tensor& probs) {
  std::string out;
  const auto p = probs.contiguous().to(torch::kFloat);
  const auto predicted = p.argmax(1);
  for (size_t i = 0; i < uids.size(); ++i) {
    nlohmann::json row{{"id", uids[i]}, {"label", test.labels[uids[i]].item<int64_t>()},
                       {"predicted", predicted[static_cast<int64_t>(i)].item<int64_t>()}};
    const auto r = p[static_cast<int64_t>(i)];
    row["probabilities"] = std::vector<float>(r.data_ptr<float>(), r.data_ptr<float>() + r.numel());
    out += row.dump() + "\n";
  }
  return out;
}

// `floe eval`: the weights evaluated on the evaluation split, on the job's pipelines, once.
int eval(const EvalOptions& o) {
  auto sets = o.sets;
  // Every tensor must come from the weights: a skipped head would be evaluated at random.
  for (const auto& s : {"init_skip=[]", "freeze.policy=\"none\"", "checkpoint.dir=\"\"", "checkpoint.resume=\"\"",
                        "save_weights=\"\""})
    sets.push_back(s);
  sets.push_back("init_weights=" + runtime::toml_string(o.weights));
  const auto cfg = runtime::load_job_config(o.config, sets);
  if (!o.predictions.empty() && cfg.model.task != "classify")
    throw InputError("--predictions " + o.predictions + ": predictions are per sample, for model.task = \"classify\"; "
                     "this job's task is \"" + cfg.model.task + "\"");
  for (const auto& out : {o.summary, o.predictions})  // fail early on a bad path
    if (!out.empty()) floe::write_file_atomic(out, "");
  actors::keep_thread_serial();  // the main thread loads data, then waits; devices set their own
  auto init = read_init_weights(cfg);
  const auto data = load_job_data(cfg);
  auto spec = job_spec(cfg, data, std::move(init));
  spec.evaluate_only = true;
  std::string lines;
  if (!o.predictions.empty())
    spec.predictions = [&](const std::vector<int64_t>& uids, const torch::Tensor& probs) {
      lines += prediction_lines(data.test, uids, probs);
    };
  const auto summary = run_job(std::move(spec));
  std::printf("eval: %s, %lld samples: accuracy %.2f%%, loss %.4f\n", data.test.name.c_str(),
              static_cast<long long>(data.test.size()), 100 * summary.final_test_accuracy, summary.final_test_loss);
  if (!o.summary.empty()) floe::write_file_atomic(o.summary, runtime::to_json(summary) + "\n");
  if (!o.predictions.empty()) {
    floe::write_file_atomic(o.predictions, lines);
    std::printf("eval: predictions written to %s\n", o.predictions.c_str());
  }
  return 0;
}

struct VocabOptions {
  std::vector<std::string> corpus;
  bool trees = false;
  std::string out;
  models::VocabOptions build;
};

// `floe vocab`: a WordPiece vocabulary from text (models/wordpiece.hpp), written atomically.
int vocab(const VocabOptions& o) {
  std::vector<std::string> lines;
  if (o.trees) {
    for (const auto& path : o.corpus) {
      auto texts = models::read_sst_texts(path);
      lines.insert(lines.end(), texts.begin(), texts.end());
    }
  }
  const auto v = o.trees ? models::build_vocab(lines, o.build) : models::build_vocab_from_files(o.corpus, o.build);
  models::write_vocab(v, o.out);
  std::printf("vocab: %zu tokens from %zu file(s) written to %s\n", v.size(), o.corpus.size(), o.out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  runtime::ignore_sigpipe();  // a write to a dead peer fails rather than ending this process
  CLI::App app{"floe: elastic, freeze-aware pipeline training of Transformers on an actor runtime"};
  app.require_subcommand(1);
  TrainOptions t;
  auto* train_cmd = app.add_subcommand("train", "train a model in this process (pipeline stages and replicas as actors)");
  add_train_options(train_cmd, t);
  TrainOptions ct;
  ClusterOptions cl;
  auto* coord_cmd = app.add_subcommand(
      "coordinator", "wait for --nodes nodes to join, then train on their devices (docs/cluster.md)");
  coord_cmd->add_option("--listen", cl.listen, "HOST:PORT to accept nodes on (env FLOE_LISTEN)")->envname("FLOE_LISTEN")->capture_default_str();
  coord_cmd->add_option("--nodes", cl.nodes, "nodes to wait for (env FLOE_NODES, else SLURM_JOB_NUM_NODES)")
      ->envname("FLOE_NODES");
  coord_cmd->add_option("--secret-file", cl.secret_file, "file holding the cluster secret (else env FLOE_SECRET)");
  coord_cmd->add_option("--join-timeout", cl.join_timeout, "seconds to wait for all nodes")->capture_default_str();
  coord_cmd->add_option("--tls-cert", cl.tls.certificate, "TLS: this coordinator's certificate (PEM)")->check(CLI::ExistingFile);
  coord_cmd->add_option("--tls-key", cl.tls.key, "TLS: its private key (PEM)")->check(CLI::ExistingFile);
  coord_cmd->add_option("--tls-ca", cl.tls.ca, "TLS: the CA that signed every node's certificate (PEM)")->check(CLI::ExistingFile);
  add_train_options(coord_cmd, ct);
  NodeOptions no;
  auto* node_cmd = app.add_subcommand("node", "join a coordinator and host pipelines on this machine until the job ends");
  node_cmd->add_option("--join", no.join,
                       "HOST:PORT of the coordinator (env FLOE_COORDINATOR, else MASTER_ADDR:MASTER_PORT as torchrun sets them)")
      ->envname("FLOE_COORDINATOR");
  node_cmd->add_option("--devices", no.devices,
                       "devices of this node: cpu:N (env FLOE_DEVICES; default: SLURM_CPUS_ON_NODE, else one per core)")
      ->envname("FLOE_DEVICES");
  node_cmd->add_option("--name", no.name, "node name in logs (env FLOE_NODE_NAME; default hostname-pid)")->envname("FLOE_NODE_NAME");
  node_cmd->add_option("--secret-file", no.secret_file, "file holding the cluster secret (else env FLOE_SECRET)");
  node_cmd->add_option("--connect-timeout", no.connect_timeout, "seconds to keep trying to reach the coordinator")->capture_default_str();
  node_cmd->add_option("--tls-cert", no.tls.certificate, "TLS: this node's certificate (PEM)")->check(CLI::ExistingFile);
  node_cmd->add_option("--tls-key", no.tls.key, "TLS: its private key (PEM)")->check(CLI::ExistingFile);
  node_cmd->add_option("--tls-ca", no.tls.ca, "TLS: the CA that signed the coordinator's certificate (PEM)")->check(CLI::ExistingFile);
  PlanOptions pl;
  auto* plan_cmd = app.add_subcommand("plan", "print the AutoPipe plan for a model, the devices and a frozen count");
  plan_cmd->add_option("--config", pl.config, "TOML job file")->check(CLI::ExistingFile);
  plan_cmd->add_option("--set", pl.sets, "override a config key: --set key=value (repeatable)")->take_all();
  plan_cmd->add_option("--frozen", pl.frozen, "frozen blocks F (default 0)");
  EvalOptions eo;
  auto* eval_cmd = app.add_subcommand("eval", "evaluate weights on the test (or dev) split without training");
  eval_cmd->add_option("--weights", eo.weights, "a state dict (save_weights) or a Hugging Face checkpoint folder or file")
      ->required();
  eval_cmd->add_option("--config", eo.config, "TOML job file: the model and data the weights belong to")
      ->check(CLI::ExistingFile);
  eval_cmd->add_option("--set", eo.sets, "override a config key: --set key=value (repeatable)")->take_all();
  eval_cmd->add_option("--summary", eo.summary, "write the JSON summary (one epoch record, no training) to this file");
  eval_cmd->add_option("--predictions", eo.predictions,
                       "write one JSON line per sample (id, label, predicted, probabilities) to this file");
  eval_cmd->footer(config_reference());
  VocabOptions vo;
  auto* vocab_cmd = app.add_subcommand("vocab", "build a WordPiece vocabulary (vocab.txt) from text (docs/models.md)");
  vocab_cmd->add_option("--corpus", vo.corpus, "text files, one text per line (with --trees: SST tree files)")
      ->required()->check(CLI::ExistingFile);
  vocab_cmd->add_flag("--trees", vo.trees, "the corpus files are Stanford Sentiment Treebank trees: use their sentences");
  vocab_cmd->add_option("--size", vo.build.size, "vocabulary size, the 5 special tokens included")->capture_default_str()
      ->check(CLI::Range(int64_t{6}, int64_t{1} << 22));
  vocab_cmd->add_option("--min-frequency", vo.build.min_frequency, "pairs seen fewer times are not merged")->capture_default_str()
      ->check(CLI::PositiveNumber);
  vocab_cmd->add_option("--out", vo.out, "where to write vocab.txt")->required();
  const auto simulator = add_simulator_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code_of([&] {
    if (*train_cmd) return train(t, [](actors::CoordinatorSpec spec) { return run_job(std::move(spec)); });
    if (*coord_cmd)
      return train(ct, [&](actors::CoordinatorSpec spec) { return run_coordinator(std::move(spec), cl); });
    if (*node_cmd) return run_node(no);
    if (*vocab_cmd) return vocab(vo);
    if (*eval_cmd) return eval(eo);
    if (const int rc = simulator(); rc >= 0) return rc;
    return plan(pl);
  });
}

}  // namespace floe::launch
