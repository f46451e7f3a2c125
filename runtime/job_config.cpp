#include "runtime/job_config.hpp"

#include "runtime/activation_cache.hpp"
#include "runtime/errors.hpp"
#include "runtime/faults.hpp"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <sstream>

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

const std::vector<Entry>& entries() {
  static const std::vector<Entry> all = [] {
    using C = JobConfig;
    std::vector<Entry> e{
        integer<int64_t>("model.depth", "transformer blocks", [](C& c) -> int64_t& { return c.model.depth; }, 1, 256),
        integer<int64_t>("model.dim", "embedding width (a multiple of model.heads)", [](C& c) -> int64_t& { return c.model.dim; }, 1, 65536),
        integer<int64_t>("model.heads", "attention heads", [](C& c) -> int64_t& { return c.model.heads; }, 1, 1024),
        integer<int64_t>("model.mlp_ratio", "MLP hidden width / dim", [](C& c) -> int64_t& { return c.model.mlp_ratio; }, 1, 64),
        integer<int64_t>("model.patch", "patch size in pixels (divides 28)", [](C& c) -> int64_t& { return c.model.patch; }, 1, 28),
        text("data.dataset", "training data", [](C& c) -> std::string& { return c.data.dataset; }, {"fashion-mnist", "synthetic"}),
        text("data.root", "folder with the gzipped IDX files of Fashion-MNIST", [](C& c) -> std::string& { return c.data.root; }),
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
        text("pipeline.schedule", "pipeline schedule", [](C& c) -> std::string& { return c.pipeline.schedule; }, {"gpipe", "1f1b"}),
        boolean("pipeline.span_nodes", "a pipeline may continue on the next node when one node has too few devices (its activations then cross processes over UCX)", [](C& c) -> bool& { return c.pipeline.span_nodes; }),
        text("pipeline.tensor_plane", "how activations and gradients cross processes (pipelines that span nodes): over UCX, or inside CAF messages", [](C& c) -> std::string& { return c.pipeline.tensor_plane; }, {"ucx", "caf"}),
        integer_list("pipeline.partition", "units per stage, e.g. [9, 6]; empty = balanced by parameter count", [](C& c) -> std::vector<int>& { return c.pipeline.partition; }),
        integer<int>("replicas", "R: data-parallel pipeline replicas (K·R <= devices)", [](C& c) -> int& { return c.replicas; }, 1, 1024),
        text("freeze.policy", "when layers freeze", [](C& c) -> std::string& { return c.freeze.policy; }, {"none", "schedule", "adaptive", "manual"}),
        number("freeze.alpha", "schedule/adaptive: fraction of the active blocks that may freeze per decision", [](C& c) -> double& { return c.freeze.alpha; }, 0.0, 1.0),
        integer<int>("freeze.interval", "epochs between freeze decisions", [](C& c) -> int& { return c.freeze.interval; }, 1, 100000),
        integer<int>("freeze.start", "schedule: epoch (0-based) from which the schedule counts; the epochs before it freeze nothing (warm-up)", [](C& c) -> int& { return c.freeze.start; }, 1, 100000),
        integer_list("freeze.script", "manual: frozen blocks from epoch i on, e.g. [0, 2, 4]", [](C& c) -> std::vector<int>& { return c.freeze.script; }, 0),
        boolean("elastic", "re-plan pipeline length, partition and replicas when layers freeze", [](C& c) -> bool& { return c.elastic; }),
        boolean("autodp", "with elastic: the devices a shorter pipeline frees get new data-parallel replicas (AutoDP); false leaves them idle (AutoPipe alone)", [](C& c) -> bool& { return c.autodp; }),
        text("planner.mode", "partitioner: optimal (min bottleneck) or paper (the original greedy)", [](C& c) -> std::string& { return c.planner.mode; }, {"optimal", "paper"}),
        boolean("planner.strict", "compress only when the new bottleneck is < M_GPU(0) (Alg. 1) instead of <=", [](C& c) -> bool& { return c.planner.strict; }),
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
        text("init_weights", "start from the weights of this PyTorch state dict (torch.save of a floe or matching model; \"\" = random)", [](C& c) -> std::string& { return c.init_weights; }),
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

void apply(JobConfig& cfg, const std::string& name, const Value& v) {
  const Entry* e = find_entry(name);
  if (!e) throw InputError(v.where + ": unknown config key '" + name + "' (known keys: " + known_keys() + ")");
  e->set(cfg, v);
}

void apply_table(JobConfig& cfg, const toml::table& t, const std::string& prefix, const std::string& where) {
  for (const auto& [k, node] : t) {
    const std::string name = prefix + std::string(k.str());
    if (const auto* sub = node.as_table()) {
      apply_table(cfg, *sub, name + ".", where);
      continue;
    }
    std::ostringstream text;
    node.visit([&](const auto& n) { text << n; });
    apply(cfg, name, {toml::node_view<const toml::node>(node), where, text.str()});
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
    apply_table(cfg, t, "", "config file " + path);
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
    apply(cfg, key, {toml::node_view<const toml::node>(t.get("v")), where, raw});
  }
  validate(cfg);
  return cfg;
}

void validate(const JobConfig& c) {
  try {
    models::validate(c.model);
  } catch (const std::invalid_argument& e) {
    throw InputError(std::string("config: ") + e.what());
  }
  auto fail = [](const std::string& m) { throw InputError("config: " + m); };
  const int64_t units = models::vit_unit_count(c.model);
  const int k = c.pipeline.length;
  if (k > units)
    fail("pipeline.length = " + std::to_string(k) + " exceeds the model's " + std::to_string(units) + " units");
  if (int64_t(k) * c.replicas > c.devices)
    fail("pipeline.length x replicas = " + std::to_string(k * c.replicas) + " exceeds devices = " + std::to_string(c.devices));
  if (c.batch_size < int64_t(c.replicas) * c.pipeline.micro_batches)
    fail("batch_size = " + std::to_string(c.batch_size) + " is smaller than replicas x pipeline.micro_batches = " +
         std::to_string(c.replicas * c.pipeline.micro_batches) + ": every micro-batch needs a sample");
  if (!c.pipeline.partition.empty()) {
    int64_t sum = 0;
    for (int x : c.pipeline.partition) sum += x;
    if (int(c.pipeline.partition.size()) != k || sum != units)
      fail("pipeline.partition must list " + std::to_string(k) + " stage sizes summing to the model's " +
           std::to_string(units) + " units");
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

std::vector<std::string> to_overrides(const JobConfig& cfg) {
  std::vector<std::string> out;
  for (const auto& e : entries()) {
    const auto v = e.get(cfg);
    out.push_back(e.key.name + "=" + (e.key.type == "string" || e.key.type == "size" ? toml_string(v) : v));
  }
  return out;
}

std::map<std::string, std::string> to_flat_map(const JobConfig& cfg) {
  std::map<std::string, std::string> out;
  for (const auto& e : entries()) out[e.key.name] = e.get(cfg);
  return out;
}

}  // namespace floe::runtime
