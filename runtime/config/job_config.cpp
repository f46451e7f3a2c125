#include "runtime/config/job_config.hpp"

#include "runtime/state/activation_cache.hpp"
#include "models/errors.hpp"
#include "runtime/control/faults.hpp"
#include "runtime/plan/schedule.hpp"
#include "runtime/state/hf_checkpoint.hpp"
#include "models/wordpiece.hpp"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <limits>
#include <set>
#include <sstream>

// Where the data the repository ships (data/) is; the build sets it to the source tree's.
#ifndef FLOE_DATA_DIR
#define FLOE_DATA_DIR "data"
#endif

namespace floe::runtime {
namespace {

// A value as read, with where it came from for error messages.
struct Value {
  toml::node_view<const toml::node> node;
  std::string where;  // "config file f.toml" or "--set"
  std::string text;   // the value as the user wrote it
};

struct Entry {
  ConfigKey key;
  std::function<void(JobConfig&, const Value&)> set;
  std::function<std::string(const JobConfig&)> get;
};

[[noreturn]] void bad(const std::string& name, const Value& v, const std::string& expected) {
  throw InputError(v.where + ": key '" + name + "': expected " + expected + ", got " + v.text);
}

template <class T>
Entry integer(std::string name, std::string help, T& (*ref)(JobConfig&), int64_t lo,
              int64_t hi = std::numeric_limits<int32_t>::max()) {
  auto expected = hi == std::numeric_limits<int32_t>::max() ? "an integer >= " + std::to_string(lo)
                                                            : "an integer in " + std::to_string(lo) + ".." + std::to_string(hi);
  return {{name, "integer", "", std::move(help)},
          [=](JobConfig& c, const Value& v) {
            auto i = v.node.value_exact<int64_t>();
            if (!i || *i < lo || *i > hi) bad(name, v, expected);
            ref(c) = static_cast<T>(*i);
          },
          [=](const JobConfig& c) { return std::to_string(ref(const_cast<JobConfig&>(c))); }};
}

Entry number(std::string name, std::string help, double& (*ref)(JobConfig&), double lo, double hi) {
  std::ostringstream e;
  e << "a number in [" << lo << ", " << hi << "]";
  return {{name, "number", "", std::move(help)},
          [=, expected = e.str()](JobConfig& c, const Value& v) {
            auto d = v.node.value<double>();
            if (!d || !(*d >= lo && *d <= hi)) bad(name, v, expected);
            ref(c) = *d;
          },
          [=](const JobConfig& c) { return fmt::format("{}", ref(const_cast<JobConfig&>(c))); }};  // shortest exact
}

Entry text(std::string name, std::string help, std::string& (*ref)(JobConfig&), std::vector<std::string> choices = {}) {
  std::string expected = "a string";
  if (!choices.empty()) {
    expected = "one of";
    for (auto& c : choices) expected += " \"" + c + "\"";
  }
  return {{name, "string", "", std::move(help)},
          [=](JobConfig& c, const Value& v) {
            auto s = v.node.value_exact<std::string>();
            if (!s) bad(name, v, expected);
            if (!choices.empty() && std::find(choices.begin(), choices.end(), *s) == choices.end()) bad(name, v, expected);
            ref(c) = *s;
          },
          [=](const JobConfig& c) { return ref(const_cast<JobConfig&>(c)); }};
}

Entry integer_list(std::string name, std::string help, std::vector<int>& (*ref)(JobConfig&), int lo = 1) {
  const std::string expected = lo == 1 ? "a list of positive integers, e.g. [5, 4]" : "a list of integers >= 0, e.g. [0, 2]";
  return {{name, "integer list", "", std::move(help)},
          [=](JobConfig& c, const Value& v) {
            const auto* arr = v.node.as_array();
            if (!arr) bad(name, v, expected);
            std::vector<int> out;
            for (const auto& el : *arr) {
              auto i = el.value_exact<int64_t>();
              if (!i || *i < lo) bad(name, v, expected);
              out.push_back(static_cast<int>(*i));
            }
            ref(c) = out;
          },
          [=](const JobConfig& c) {
            std::string s = "[";
            for (int x : ref(const_cast<JobConfig&>(c))) s += (s.size() > 1 ? ", " : "") + std::to_string(x);
            return s + "]";
          }};
}

// A size: a string with a unit or a percentage ("2GiB", "25%"), or a plain integer of bytes.
Entry size(std::string name, std::string help, std::string& (*ref)(JobConfig&)) {
  return {{name, "size", "", std::move(help)},
          [=](JobConfig& c, const Value& v) {
            if (auto i = v.node.value_exact<int64_t>(); i && *i >= 0) {
              ref(c) = std::to_string(*i);
              return;
            }
            auto s = v.node.value_exact<std::string>();
            if (!s) bad(name, v, "a size such as \"2GiB\", \"512MiB\", \"25%\" or a number of bytes");
            ref(c) = *s;
          },
          [=](const JobConfig& c) { return ref(const_cast<JobConfig&>(c)); }};
}

Entry text_list(std::string name, std::string help, std::vector<std::string>& (*ref)(JobConfig&)) {
  const std::string expected = "a list of strings, e.g. [\"slow stage=1 seconds=0.01\"]";
  return {{name, "string list", "", std::move(help)},
          [=](JobConfig& c, const Value& v) {
            const auto* arr = v.node.as_array();
            if (!arr) bad(name, v, expected);
            std::vector<std::string> out;
            for (const auto& el : *arr) {
              auto s = el.value_exact<std::string>();
              if (!s) bad(name, v, expected);
              out.push_back(*s);
            }
            ref(c) = out;
          },
          [=](const JobConfig& c) {
            std::string s = "[";
            for (const auto& x : ref(const_cast<JobConfig&>(c))) s += (s.size() > 1 ? ", " : "") + toml_string(x);
            return s + "]";
          }};
}

Entry boolean(std::string name, std::string help, bool& (*ref)(JobConfig&)) {
  return {{name, "boolean", "", std::move(help)},
          [=](JobConfig& c, const Value& v) {
            auto b = v.node.value_exact<bool>();
            if (!b) bad(name, v, "true or false");
            ref(c) = *b;
          },
          [=](const JobConfig& c) { return std::string(ref(const_cast<JobConfig&>(c)) ? "true" : "false"); }};
}

// `replicas`: "auto" (0 inside) or an explicit count.
Entry replica_count() {
  const std::string expected = "\"auto\" or an integer in 1..1024";
  return {{"replicas", "integer or \"auto\"", "",
           "R: data-parallel pipeline replicas; \"auto\" = as many as the devices hold, floor(devices / K) (K·R <= devices)"},
          [=](JobConfig& c, const Value& v) {
            if (auto s = v.node.value_exact<std::string>()) {
              if (*s != "auto") bad("replicas", v, expected);
              c.replicas = 0;
              return;
            }
            auto i = v.node.value_exact<int64_t>();
            if (!i || *i < 1 || *i > 1024) bad("replicas", v, expected);
            c.replicas = static_cast<int>(*i);
          },
          [](const JobConfig& c) { return c.replicas == 0 ? std::string("auto") : std::to_string(c.replicas); }};
}

const std::vector<Entry>& entries() {
  static const std::vector<Entry> all = [] {
    using C = JobConfig;
    std::vector<Entry> e{
        text("model.kind", "model family (docs/models.md): vit (images) or bert (text)", [](C& c) -> std::string& { return c.model.kind; }, {"vit", "bert"}),
        text("task", "what the head learns: classify (a label per sample) or mlm (masked-language modelling, model.kind = \"bert\")", [](C& c) -> std::string& { return c.model.task; }, {"classify", "mlm"}),
        integer<int64_t>("model.depth", "transformer blocks", [](C& c) -> int64_t& { return c.model.depth; }, 1, 256),
        integer<int64_t>("model.dim", "embedding width (a multiple of model.heads)", [](C& c) -> int64_t& { return c.model.dim; }, 1, 65536),
        integer<int64_t>("model.heads", "attention heads", [](C& c) -> int64_t& { return c.model.heads; }, 1, 1024),
        integer<int64_t>("model.mlp_ratio", "MLP hidden width / dim (unless model.ffn_dim is set)", [](C& c) -> int64_t& { return c.model.mlp_ratio; }, 1, 64),
        integer<int64_t>("model.ffn_dim", "MLP hidden width; 0 = model.dim x model.mlp_ratio", [](C& c) -> int64_t& { return c.model.ffn_dim; }, 0, 1 << 20),
        integer<int64_t>("model.classes", "output classes of a classifier head", [](C& c) -> int64_t& { return c.model.classes; }, 2, 1 << 20),
        number("model.dropout", "bert: dropout on hidden states and attention probabilities while training (0 keeps steps deterministic)", [](C& c) -> double& { return c.model.dropout; }, 0.0, 0.99),
        number("model.layer_norm_eps", "LayerNorm epsilon; 0 = the family's own (vit 1e-5, bert 1e-12)", [](C& c) -> double& { return c.model.layer_norm_eps; }, 0.0, 0.5),
        integer<int64_t>("model.patch", "vit: patch size in pixels (divides model.image_size)", [](C& c) -> int64_t& { return c.model.patch; }, 1, 4096),
        integer<int64_t>("model.image_size", "vit: image height and width in pixels", [](C& c) -> int64_t& { return c.model.image_size; }, 1, 65536),
        integer<int64_t>("model.channels", "vit: image channels", [](C& c) -> int64_t& { return c.model.channels; }, 1, 64),
        integer<int64_t>("model.vocab_size", "bert: token vocabulary; 0 = the size of data.vocab", [](C& c) -> int64_t& { return c.model.vocab_size; }, 0, 1 << 24),
        integer<int64_t>("model.max_len", "bert: longest sequence in tokens, [CLS] and [SEP] included (the position table; longer texts are truncated)", [](C& c) -> int64_t& { return c.model.max_len; }, 2, 1 << 20),
        integer<int64_t>("model.type_vocab_size", "bert: token types (segments)", [](C& c) -> int64_t& { return c.model.type_vocab_size; }, 1, 1024),
        text("data.dataset", "training data: fashion-mnist (28x28, 1 channel) and synthetic (any model.image_size and model.channels) for vit, sst2 (GLUE's SST-2 from the Stanford Sentiment Treebank) for bert", [](C& c) -> std::string& { return c.data.dataset; }, {"fashion-mnist", "synthetic", "sst2"}),
        text("data.root", "folder of the dataset's files; \"\" = its default (/usr/share/datasets/fashion-mnist; data/sst of this repository for sst2)", [](C& c) -> std::string& { return c.data.root; }),
        text("data.vocab", "sst2: the WordPiece vocab.txt (floe vocab builds one); \"\" = vocab.txt in data.root", [](C& c) -> std::string& { return c.data.vocab; }),
        text("data.eval_split", "what evaluation reads: \"\" = the dataset's own (fashion-mnist: test; sst2: dev, as GLUE reports), or \"dev\" / \"test\" for sst2", [](C& c) -> std::string& { return c.data.eval_split; }, {"", "dev", "test"}),
        integer<int64_t>("data.length_buckets", "text: each window of this many batches of the epoch's order is sorted by length and cut into batches again (batches are padded to their longest text); 0 = off", [](C& c) -> int64_t& { return c.data.length_buckets; }, 0, 1 << 20),
        number("data.mlm_probability", "task mlm: share of tokens chosen for prediction (80% become [MASK], 10% a random token, 10% stay)", [](C& c) -> double& { return c.data.mlm_probability; }, 0.0, 1.0),
        integer<int64_t>("data.offset", "skip the first N training samples (applied before data.subset), e.g. to fine-tune on samples a pre-training run did not see", [](C& c) -> int64_t& { return c.data.offset; }, 0, std::numeric_limits<int32_t>::max() - 1),
        integer<int64_t>("data.subset", "train on the first N samples only (0 = all)", [](C& c) -> int64_t& { return c.data.subset; }, 0, std::numeric_limits<int32_t>::max() - 1),
        integer<int64_t>("data.test_subset", "evaluate on the first N test samples only (0 = all)", [](C& c) -> int64_t& { return c.data.test_subset; }, 0, std::numeric_limits<int32_t>::max() - 1),
        integer_list("data.classes", "train and evaluate on samples of these labels only, e.g. [0, 1, 2, 3, 4] for a pre-training task (empty = all)", [](C& c) -> std::vector<int>& { return c.data.classes; }, 0),
        text("data.augment", "random augmentation of training samples", [](C& c) -> std::string& { return c.data.augment; }, {"none", "flip"}),
        integer<int>("devices", "CPU devices (each a thread with its own intra-op threads)", [](C& c) -> int& { return c.devices; }, 1, 1024),
        integer<int>("threads_per_device", "intra-op threads of each CPU device", [](C& c) -> int& { return c.threads_per_device; }, 1, 256),
        integer<int>("pipeline.length", "K: stages per pipeline", [](C& c) -> int& { return c.pipeline.length; }, 1, 1024),
        integer<int>("pipeline.micro_batches", "M: micro-batches per mini-batch; 0 = profile M per K on the first steps and keep it in pipeline.profile", [](C& c) -> int& { return c.pipeline.micro_batches; }, 0, 4096),
        text("pipeline.profile", "file that keeps profiled micro-batch counts per model, batch and K (\"\" = this run only)", [](C& c) -> std::string& { return c.pipeline.profile; }),
        text("pipeline.schedule", "pipeline schedule", [](C& c) -> std::string& { return c.pipeline.schedule; }, {"gpipe", "1f1b", "zb-h1", "zb-h2", "interleaved", "zb-v", "auto"}),
        integer<int>("pipeline.virtual_stages", "v: chunks (virtual stages) per device; 0 = what pipeline.schedule needs (2 for interleaved and zb-v, else 1)", [](C& c) -> int& { return c.pipeline.virtual_stages; }, 0, 64),
        text("pipeline.taper", "training micro-batches tapered to the pipeline's depth K (micro-batch i weighs min(K, i + 1, M - i)), so that the pipeline fills and drains on smaller ones: \"on\", \"off\" (M equal micro-batches), or \"auto\": where that shortens the schedule's modelled step", [](C& c) -> std::string& { return c.pipeline.taper; }, {"auto", "on", "off"}),
        boolean("pipeline.span_nodes", "a pipeline may continue on the next node when one node has too few devices (its activations then cross processes over UCX)", [](C& c) -> bool& { return c.pipeline.span_nodes; }),
        text("pipeline.tensor_plane", "how activations and gradients cross processes (pipelines that span nodes): over UCX, or inside CAF messages", [](C& c) -> std::string& { return c.pipeline.tensor_plane; }, {"ucx", "caf"}),
        integer_list("pipeline.partition", "units per stage, e.g. [9, 6]; empty = balanced by parameter count", [](C& c) -> std::vector<int>& { return c.pipeline.partition; }),
        replica_count(),
        text("freeze.policy", "when layers freeze", [](C& c) -> std::string& { return c.freeze.policy; }, {"none", "schedule", "adaptive", "manual", "plasticity"}),
        number("freeze.alpha", "schedule/adaptive: fraction of the active blocks that may freeze per decision", [](C& c) -> double& { return c.freeze.alpha; }, 0.0, 1.0),
        integer<int>("freeze.interval", "epochs between freeze decisions", [](C& c) -> int& { return c.freeze.interval; }, 1, 100000),
        integer<int64_t>("freeze.interval_steps", "> 0: freeze decisions every N training steps (mid-epoch transitions) instead of every freeze.interval epochs; freeze.start and freeze.script then count these intervals", [](C& c) -> int64_t& { return c.freeze.interval_steps; }, 0, int64_t{1} << 40),
        integer<int>("freeze.start", "schedule: epoch (0-based) from which the schedule counts; the epochs before it freeze nothing (warm-up)", [](C& c) -> int& { return c.freeze.start; }, 1, 100000),
        integer_list("freeze.script", "manual: frozen blocks from epoch i on, e.g. [0, 2, 4]", [](C& c) -> std::vector<int>& { return c.freeze.script; }, 0),
        integer<int64_t>("freeze.window_steps", "adaptive: > 0 reads the gradient norms over a sliding window of about N steps (exponentially weighted) at every decision, instead of the sums since the previous decision", [](C& c) -> int64_t& { return c.freeze.window_steps; }, 0, int64_t{1} << 40),
        boolean("freeze.guard", "hold further freezing while the evaluation loss is above its value at the last freeze (only delays; never unfreezes)", [](C& c) -> bool& { return c.freeze.guard; }),
        number("freeze.guard_tolerance", "freeze.guard: the relative rise of the evaluation loss it tolerates", [](C& c) -> double& { return c.freeze.guard_tolerance; }, 0.0, 10.0),
        integer<int64_t>("freeze.plasticity_steps", "plasticity: training steps between two measurements of every active block's plasticity", [](C& c) -> int64_t& { return c.freeze.plasticity_steps; }, 1, int64_t{1} << 40),
        number("freeze.plasticity_threshold", "plasticity: a block has converged when its plasticity is at most this share of its peak", [](C& c) -> double& { return c.freeze.plasticity_threshold; }, 1e-9, 1.0),
        integer<int>("freeze.keep_top", "the top N blocks never freeze, whatever the policy decides (0: every block may)", [](C& c) -> int& { return c.freeze.keep_top; }, 0, 1 << 20),
        text("freeze.anneal", "schedule/manual: each block's learning rate decays to optimizer.min_lr by the step its freeze is due (cosine), or from a rate raised by how early it freezes (scaled)", [](C& c) -> std::string& { return c.freeze.anneal; }, {"off", "cosine", "scaled"}),
        boolean("elastic", "re-plan pipeline length, partition and replicas when layers freeze", [](C& c) -> bool& { return c.elastic; }),
        boolean("autodp", "with elastic: the devices a shorter pipeline frees get new data-parallel replicas (AutoDP); false leaves them idle (AutoPipe alone)", [](C& c) -> bool& { return c.autodp; }),
        text("planner.mode", "partitioner: optimal (min bottleneck) or paper (the original greedy)", [](C& c) -> std::string& { return c.planner.mode; }, {"optimal", "paper"}),
        boolean("planner.strict", "compress only when the new bottleneck is < M_GPU(0) (Alg. 1) instead of <=", [](C& c) -> bool& { return c.planner.strict; }),
        text("planner.costs", "what the partitioner balances per unit: parameters (the paper's) or measured (its forward and backward time on the job's micro-batches, timed at the start)", [](C& c) -> std::string& { return c.planner.costs; }, {"parameters", "measured"}),
        boolean("planner.frozen_cost", "count the frozen prefix at 1/6 of its parameters on stage 0", [](C& c) -> bool& { return c.planner.frozen_cost; }),
        boolean("cache.enabled", "AutoCache: keep frozen-prefix outputs per sample instead of recomputing them", [](C& c) -> bool& { return c.cache.enabled; }),
        size("cache.budget", "AutoCache memory tier: bytes (\"2GiB\", \"512MiB\") or a share of host memory (\"25%\")", [](C& c) -> std::string& { return c.cache.budget; }),
        size("cache.disk_budget", "AutoCache disk tier (memory-mapped files) beyond the memory budget; \"0\" = none", [](C& c) -> std::string& { return c.cache.disk_budget; }),
        text("cache.dir", "folder of the disk tier's files; empty = $TMPDIR/floe-cache (or /var/tmp/floe-cache)", [](C& c) -> std::string& { return c.cache.dir; }),
        boolean("cache.frozen_augmentation", "allow the cache with data.augment: every sample keeps the augmented view it was first cached with", [](C& c) -> bool& { return c.cache.frozen_augmentation; }),
        number("optimizer.lr", "AdamW peak learning rate", [](C& c) -> double& { return c.optimizer.lr; }, 0.0, 10.0),
        number("optimizer.min_lr", "learning rate at the end of the cosine decay", [](C& c) -> double& { return c.optimizer.min_lr; }, 0.0, 10.0),
        number("optimizer.weight_decay", "AdamW decoupled weight decay", [](C& c) -> double& { return c.optimizer.weight_decay; }, 0.0, 10.0),
        integer<int64_t>("optimizer.warmup", "linear warm-up steps", [](C& c) -> int64_t& { return c.optimizer.warmup; }, 0, std::numeric_limits<int32_t>::max() - 1),
        number("optimizer.beta1", "AdamW beta1", [](C& c) -> double& { return c.optimizer.beta1; }, 0.0, 0.999999),
        number("optimizer.beta2", "AdamW beta2", [](C& c) -> double& { return c.optimizer.beta2; }, 0.0, 0.999999),
        integer<int64_t>("batch_size", "global mini-batch (split over the replicas)", [](C& c) -> int64_t& { return c.batch_size; }, 1, 1 << 24),
        integer<int>("epochs", "passes over the training data", [](C& c) -> int& { return c.epochs; }, 1, 100000),
        integer<uint64_t>("seed", "seed for weights and data order", [](C& c) -> uint64_t& { return c.seed; }, 0, std::numeric_limits<int32_t>::max() - 1),
        integer<int64_t>("log_interval", "steps between progress lines when output is not a terminal", [](C& c) -> int64_t& { return c.log_interval; }, 1, std::numeric_limits<int32_t>::max() - 1),
        text("observe.metrics", "write a JSONL record per step and per epoch to this file (\"\" = off)", [](C& c) -> std::string& { return c.observe.metrics; }),
        text("observe.trace", "write a Chrome Trace Event / Perfetto timeline to this file (\"\" = off)", [](C& c) -> std::string& { return c.observe.trace; }),
        text("observe.report", "write a self-contained HTML report to this file (\"\" = off)", [](C& c) -> std::string& { return c.observe.report; }),
        text("save_weights", "write the final model weights as a PyTorch state dict (torch.load reads it) to this file (\"\" = off)", [](C& c) -> std::string& { return c.save_weights; }),
        text("save_format", "how save_weights writes: pytorch (a state dict in floe's names) or hf (a Hugging Face folder: config.json and model.safetensors)", [](C& c) -> std::string& { return c.save_format; }, {"pytorch", "hf"}),
        text("init_weights", "start from these weights: a PyTorch state dict in floe's names, or a Hugging Face checkpoint (a folder with config.json, or a .safetensors / .bin file); \"\" = random", [](C& c) -> std::string& { return c.init_weights; }),
        text_list("init_skip", "init_weights may lack, or hold extra, tensors whose names start with one of these (e.g. [\"head.\"] to fine-tune an MLM checkpoint for classification); the log lists them", [](C& c) -> std::vector<std::string>& { return c.init_skip; }),
        text("checkpoint.dir", "write checkpoints into this folder (\"\" = off; docs/checkpoints.md)", [](C& c) -> std::string& { return c.checkpoint.dir; }),
        integer<int64_t>("checkpoint.interval", "training steps between checkpoints (0 = only at the end and on SIGUSR1)", [](C& c) -> int64_t& { return c.checkpoint.interval; }, 0, std::numeric_limits<int32_t>::max() - 1),
        integer<int>("checkpoint.keep", "checkpoints kept (the oldest are removed)", [](C& c) -> int& { return c.checkpoint.keep; }, 1, 1000000),
        text("checkpoint.resume", "continue from this checkpoint folder, or the newest valid one inside it (floe train --resume)", [](C& c) -> std::string& { return c.checkpoint.resume; }),
        number("collective_timeout", "seconds a gradient all-reduce across nodes waits for its peers before the step fails (a hung node)", [](C& c) -> double& { return c.collective_timeout; }, 0.1, 86400.0),
        boolean("recover", "when a node is lost, re-plan over the remaining nodes and continue from a surviving replica (false: stop the job)", [](C& c) -> bool& { return c.recover; }),
        number("step_timeout", "seconds a step may take before the job stops as hung (0 = no limit)", [](C& c) -> double& { return c.step_timeout; }, 0.0, 86400.0),
        text_list("faults", "fault script for tests and drills, e.g. [\"delay activation replica=0 stage=1 seconds=0.05 at=10 count=4\"] (docs/hooks.md)", [](C& c) -> std::vector<std::string>& { return c.faults; }),
    };
    const JobConfig defaults;
    for (auto& x : e) x.key.default_value = x.get(defaults);
    return e;
  }();
  return all;
}

const Entry* find_entry(const std::string& name) {
  for (const auto& e : entries())
    if (e.key.name == name) return &e;
  return nullptr;
}

std::string known_keys() {
  std::string s;
  for (const auto& e : entries()) s += (s.empty() ? "" : ", ") + e.key.name;
  return s;
}

void apply(JobConfig& cfg, const std::string& name, const Value& v, std::set<std::string>& set_keys) {
  const Entry* e = find_entry(name);
  if (!e) throw InputError(v.where + ": unknown config key '" + name + "' (known keys: " + known_keys() + ")");
  e->set(cfg, v);
  set_keys.insert(name);
}

void apply_table(JobConfig& cfg, const toml::table& t, const std::string& prefix, const std::string& where,
                 std::set<std::string>& set_keys) {
  for (const auto& [k, node] : t) {
    const std::string name = prefix + std::string(k.str());
    if (const auto* sub = node.as_table()) {
      apply_table(cfg, *sub, name + ".", where, set_keys);
      continue;
    }
    std::ostringstream text;
    node.visit([&](const auto& n) { text << n; });
    apply(cfg, name, {toml::node_view<const toml::node>(node), where, text.str()}, set_keys);
  }
}

}  // namespace

const std::vector<ConfigKey>& config_keys() {
  static const std::vector<ConfigKey> keys = [] {
    std::vector<ConfigKey> k;
    for (const auto& e : entries()) k.push_back(e.key);
    return k;
  }();
  return keys;
}

JobConfig load_job_config(const std::string& path, const std::vector<std::string>& overrides) {
  JobConfig cfg;
  std::set<std::string> set_keys;  // what the job says, against what a checkpoint's config.json says
  if (!path.empty()) {
    toml::table t;
    try {
      t = toml::parse_file(path);
    } catch (const toml::parse_error& e) {
      std::ostringstream msg;
      msg << "config file " << path << ": " << e.description();
      if (e.source().begin) msg << " at line " << e.source().begin.line << ", column " << e.source().begin.column;
      throw InputError(msg.str());
    }
    apply_table(cfg, t, "", "config file " + path, set_keys);
  }
  for (const auto& o : overrides) {
    const auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0)
      throw InputError("--set " + o + ": expected key=value, e.g. --set epochs=3");
    const std::string key = o.substr(0, eq), raw = o.substr(eq + 1);
    const std::string where = "--set " + o;
    // The value is read as TOML (numbers, lists, quoted strings); a bare word is a string,
    // quoted here so that toml++ checks it is text a TOML string can hold (UTF-8).
    toml::table t;
    try {
      t = toml::parse("v = " + raw);
    } catch (const toml::parse_error&) {
      try {
        t = toml::parse("v = " + toml_string(raw));
      } catch (const toml::parse_error&) {
        throw InputError(where + ": expected a TOML value or UTF-8 text");
      }
    }
    apply(cfg, key, {toml::node_view<const toml::node>(t.get("v")), where, raw}, set_keys);
  }
  // A Hugging Face checkpoint folder brings its shapes (docs/models.md, Bringing a checkpoint).
  if (!cfg.init_weights.empty())
    if (const auto hf = read_hf_config(cfg.init_weights); !hf.is_null()) {
      apply_hf_config(hf, cfg.model, set_keys, cfg.init_weights + "/config.json");
      // Its word embeddings are indexed by its own vocabulary: another one would train on
      // the wrong rows without a word of complaint.
      std::error_code ec;
      if (cfg.model.kind == "bert" && cfg.data.vocab.empty() &&
          !std::filesystem::is_regular_file(cfg.init_weights + "/vocab.txt", ec))
        throw InputError("init_weights " + cfg.init_weights +
                         " has no vocab.txt: set data.vocab to the vocabulary its word embeddings belong to");
    }
  if (cfg.model.kind == "bert" && cfg.model.vocab_size == 0 && cfg.data.dataset == "sst2")
    cfg.model.vocab_size = static_cast<int64_t>(models::read_vocab(vocab_path(cfg)).size());
  validate(cfg);
  return cfg;
}

std::string data_root(const DataConfig& data) {
  if (!data.root.empty()) return data.root;
  if (data.dataset == "sst2") return FLOE_DATA_DIR "/sst";
  return "/usr/share/datasets/fashion-mnist";
}

std::string vocab_path(const JobConfig& cfg) {
  if (!cfg.data.vocab.empty()) return cfg.data.vocab;
  std::error_code ec;
  if (!cfg.init_weights.empty() && std::filesystem::is_regular_file(cfg.init_weights + "/vocab.txt", ec))
    return cfg.init_weights + "/vocab.txt";
  return data_root(cfg.data) + "/vocab.txt";
}

void validate(const JobConfig& c) {
  try {
    models::validate(c.model);
  } catch (const std::invalid_argument& e) {
    throw InputError(std::string("config: ") + e.what());
  }
  auto fail = [](const std::string& m) { throw InputError("config: " + m); };
  const int64_t units = models::unit_count(c.model);
  const int k = c.pipeline.length;
  if (k > units)
    fail("pipeline.length = " + std::to_string(k) + " exceeds the model's " + std::to_string(units) + " units");
  const int r = std::max(c.replicas, 1);
  if (c.batch_size < int64_t(r) * c.pipeline.micro_batches)
    fail("batch_size = " + std::to_string(c.batch_size) + " is smaller than replicas x pipeline.micro_batches = " +
         std::to_string(r * c.pipeline.micro_batches) + ": every micro-batch needs a sample");
  const auto schedule = parse_schedule_kind(c.pipeline.schedule);
  const int v = chunks_for(schedule, c.pipeline.virtual_stages);
  if (c.pipeline.virtual_stages > 1 && schedule != ScheduleKind::interleaved && schedule != ScheduleKind::zb_v &&
      schedule != ScheduleKind::automatic)
    fail("pipeline.virtual_stages = " + std::to_string(c.pipeline.virtual_stages) +
         " needs pipeline.schedule = \"interleaved\", \"zb-v\" or \"auto\", not \"" + c.pipeline.schedule + "\"");
  if (schedule == ScheduleKind::zb_v && c.pipeline.virtual_stages != 0 && c.pipeline.virtual_stages != 2)
    fail("pipeline.schedule = \"zb-v\" runs 2 chunks per device, but pipeline.virtual_stages = " +
         std::to_string(c.pipeline.virtual_stages));
  if (v > 1 && c.pipeline.span_nodes)
    fail("pipeline.virtual_stages: the chunks of a device share it in one process, so a pipeline with " +
         std::to_string(v) + " chunks per device cannot span nodes (pipeline.span_nodes = true)");
  if (v > 1 && k > 1 && int64_t(k) * v > units)
    fail("pipeline.length x chunks per device = " + std::to_string(k * v) + " exceeds the model's " +
         std::to_string(units) + " units");
  if (!c.pipeline.partition.empty()) {
    const int stages = k > 1 ? k * v : 1;
    int64_t sum = 0;
    for (int x : c.pipeline.partition) sum += x;
    if (int(c.pipeline.partition.size()) != stages || sum != units)
      fail("pipeline.partition must list " + std::to_string(stages) + " stage sizes (pipeline.length" +
           (stages != k ? " x chunks per device" : "") + ") summing to the model's " + std::to_string(units) + " units");
  }
  for (size_t i = 0; i < c.data.classes.size(); ++i)
    if (c.data.classes[i] >= c.model.classes ||
        std::count(c.data.classes.begin(), c.data.classes.begin() + i, c.data.classes[i]) > 0)
      fail("data.classes must list distinct labels below model.classes = " + std::to_string(c.model.classes) +
           ", e.g. [0, 1, 2, 3, 4]");
  if (c.optimizer.min_lr > c.optimizer.lr) fail("optimizer.min_lr must not exceed optimizer.lr");
  for (const auto& f : c.faults) {
    try {
      parse_fault(f);
    } catch (const InputError& e) {
      fail(std::string("faults: ") + e.what());
    }
  }
  if (c.freeze.anneal != "off" && (c.freeze.policy == "adaptive" || c.freeze.policy == "plasticity"))
    fail("freeze.anneal = \"" + c.freeze.anneal + "\" needs freezes known ahead of time (freeze.policy = \"schedule\" or \"manual\"); \"" +
         c.freeze.policy + "\" decides from what training measures");
  if (c.freeze.keep_top > c.model.depth)
    fail("freeze.keep_top = " + std::to_string(c.freeze.keep_top) + " exceeds model.depth = " + std::to_string(c.model.depth));
  if (c.freeze.policy == "manual" && c.freeze.script.empty())
    fail("freeze.policy = \"manual\" needs freeze.script, e.g. [0, 2, 4]");
  for (size_t i = 0; i < c.freeze.script.size(); ++i)
    if (c.freeze.script[i] > c.model.depth || (i > 0 && c.freeze.script[i] < c.freeze.script[i - 1]))
      fail("freeze.script must be non-decreasing and at most model.depth = " + std::to_string(c.model.depth));
  for (auto [key, value] : {std::pair{"cache.budget", &c.cache.budget}, std::pair{"cache.disk_budget", &c.cache.disk_budget}})
    try {
      parse_size(*value, 100);
    } catch (const std::invalid_argument& e) {
      fail(std::string(key) + " = \"" + *value + "\": " + e.what());
    }
  const bool text = c.data.dataset == "sst2";
  if (c.data.dataset == "fashion-mnist" && c.model.kind == "vit" && (c.model.image_size != 28 || c.model.channels != 1))
    fail("data.dataset = \"" + c.data.dataset + "\" has 28x28 images of 1 channel, but model.image_size = " +
         std::to_string(c.model.image_size) + " and model.channels = " + std::to_string(c.model.channels));
  if (c.model.task == "mlm" && !(c.data.mlm_probability > 0))
    fail("task = \"mlm\" needs data.mlm_probability > 0 (the share of tokens to predict), got " +
         fmt::format("{}", c.data.mlm_probability));
  if (text != (c.model.kind == "bert"))
    fail("data.dataset = \"" + c.data.dataset + "\" needs model.kind = \"" + (text ? "bert" : "vit") + "\", got \"" +
         c.model.kind + "\"");
  if (!text && !c.data.eval_split.empty())
    fail("data.eval_split = \"" + c.data.eval_split + "\": " + c.data.dataset + " has a test split only");
  if (c.data.augment != "none" && text) fail("data.augment = \"" + c.data.augment + "\" is for images, not data.dataset = \"sst2\"");
  if (c.cache.enabled && c.model.task == "mlm" && !c.cache.frozen_augmentation)
    fail("cache.enabled = true with task = \"mlm\": the masking changes every epoch, so a cached frozen-prefix output would "
         "keep one masking of each sample for the rest of training; set cache.enabled = false, or "
         "cache.frozen_augmentation = true to accept that (docs/cache.md)");
  if (c.cache.enabled && c.data.augment != "none" && !c.cache.frozen_augmentation)
    fail("cache.enabled = true with data.augment = \"" + c.data.augment +
         "\": a cached frozen-prefix output would keep one random view of each sample for the rest of training; set "
         "cache.enabled = false, or cache.frozen_augmentation = true to accept frozen augmentations");
  if ((c.freeze.policy == "schedule" || c.freeze.policy == "adaptive") && !(c.freeze.alpha > 0 && c.freeze.alpha < 1))
    fail("freeze.alpha must be in (0, 1) for the " + c.freeze.policy + " policy");
}

std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {  // TOML strings hold no raw control characters
      out += fmt::format("\\u{:04X}", static_cast<int>(c));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

int64_t planner_micro_batch(const JobConfig& c) {
  return std::max<int64_t>(1, c.batch_size / std::max(1, c.pipeline.micro_batches > 0 ? c.pipeline.micro_batches : 4));
}

int replicas_on(const JobConfig& c, int devices) {
  return c.replicas > 0 ? c.replicas : std::max(1, devices / std::max(1, c.pipeline.length));
}

void check_devices(const JobConfig& c, int devices, const std::string& where) {
  auto fail = [&](const std::string& m) { throw InputError("config: " + m + " (" + where + ")"); };
  const int k = c.pipeline.length;
  if (k > devices)
    fail("pipeline.length = " + std::to_string(k) + " exceeds the " + std::to_string(devices) + " device(s)");
  const int r = replicas_on(c, devices);
  if (int64_t(k) * r > devices)
    fail("pipeline.length x replicas = " + std::to_string(k * r) + " exceeds the " + std::to_string(devices) +
         " device(s)");
  if (c.batch_size < int64_t(r) * c.pipeline.micro_batches)
    fail("batch_size = " + std::to_string(c.batch_size) + " is smaller than replicas x pipeline.micro_batches = " +
         std::to_string(r) + " x " + std::to_string(c.pipeline.micro_batches) + ": every micro-batch needs a sample");
}

std::vector<std::string> to_overrides(const JobConfig& cfg) {
  std::vector<std::string> out;
  for (const auto& e : entries()) {
    const auto v = e.get(cfg);
    const bool quoted = e.key.type == "string" || e.key.type == "size" || (e.key.name == "replicas" && v == "auto");
    out.push_back(e.key.name + "=" + (quoted ? toml_string(v) : v));
  }
  return out;
}

std::map<std::string, std::string> to_flat_map(const JobConfig& cfg) {
  std::map<std::string, std::string> out;
  for (const auto& e : entries()) out[e.key.name] = e.get(cfg);
  return out;
}

}  // namespace floe::runtime
