// Hugging Face checkpoints against tests/reference/hf_reference.py, a re-implementation of
// transformers' BERT and ViT forward passes (transformers itself is not installed here): the
// reference writes tiny random checkpoints, inputs and its logits; floe reads the checkpoints
// and must give the same logits; floe writes checkpoints and the reference must give floe's.
#include "runtime/state/hf_checkpoint.hpp"

#include "models/model.hpp"
#include "models/errors.hpp"
#include "runtime/state/safetensors.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <unistd.h>

using namespace floe;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

const std::string kPython = "/usr/bin/python3 " FLOE_SOURCE_DIR "/tests/reference/hf_reference.py";
constexpr double kTolerance = 1e-5;

// The reference's checkpoints, inputs and logits, made once per test process in dir/ref.
struct Reference {
  fs::path dir = fs::temp_directory_path() / ("floe_hf_test_" + std::to_string(::getpid()));
  int code;
  Reference() {
    fs::remove_all(dir);
    fs::create_directories(dir);
    code = std::system((kPython + " make --out " + (dir / "ref").string()).c_str());
  }
  ~Reference() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};
const fs::path& scratch() {
  static Reference r;
  REQUIRE(r.code == 0);
  return r.dir;
}
std::string ref_path(const std::string& name) { return (scratch() / "ref" / name).string(); }

torch::Tensor input_for(const std::string& kind) {
  return runtime::read_safetensors(ref_path("inputs.safetensors")).at(kind == "bert" ? "ids" : "images");
}

struct Loaded {
  models::ModelConfig cfg;
  models::UnitList units;
  std::vector<std::string> notes;
};

// What a job does with init_weights = a Hugging Face folder: config, names, match, load.
Loaded load_hf(const std::string& path, models::ModelConfig cfg, std::set<std::string> job_keys = {}) {
  Loaded l;
  const auto ck = runtime::read_hf_checkpoint(path);
  job_keys.insert({"model.kind", "model.task"});
  runtime::apply_hf_config(ck.config, cfg, job_keys, ck.config_path);
  l.cfg = cfg;
  const auto weights = runtime::hf_to_floe(ck, cfg, &l.notes);
  l.units = models::build_model(cfg);
  const auto m = models::match_weights(l.units, weights, path);
  std::map<std::string, torch::Tensor> values;
  for (size_t i = 0; i < m.names.size(); ++i) values[m.names[i]] = m.values[i];
  models::load_parameters(l.units, values);
  for (auto& u : l.units) u.module->eval();
  return l;
}

models::ModelConfig kind_task(const std::string& kind, const std::string& task) {
  models::ModelConfig c;
  c.kind = kind;
  c.task = task;
  return c;
}

torch::Tensor logits_of(const models::UnitList& units, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  return models::forward_range(units, 0, units.size(), x);
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  return (a - b).abs().max().item<double>();
}

template <class F>
std::string input_error_of(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  FAIL("expected floe::InputError");
  return "";
}

void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

nlohmann::json read_json(const fs::path& path) { return nlohmann::json::parse(std::ifstream(path)); }

// A folder with ref/`from`'s weights and its config.json changed by `edit`.
template <class Edit>
std::string edited_copy(const std::string& from, const std::string& to, Edit&& edit) {
  const auto dir = scratch() / to;
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(ref_path(from)))
    if (e.path().filename() != "config.json") fs::copy_file(e.path(), dir / e.path().filename(), fs::copy_options::overwrite_existing);
  auto config = read_json(fs::path(ref_path(from)) / "config.json");
  edit(config);
  write_text(dir / "config.json", config.dump(2));
  return dir.string();
}

}  // namespace

TEST_CASE("hf_checkpoint: Hugging Face BERT and ViT checkpoints give the reference's logits in floe") {
  struct Case {
    const char* folder;
    const char* kind;
    const char* task;
    double eps;  // the layer_norm_eps of its config.json
  };
  const Case cases[] = {
      {"bert_cls", "bert", "classify", 1e-12},      // safetensors, with a position_ids buffer
      {"bert_cls_bin", "bert", "classify", 1e-6},   // pytorch_model.bin, LayerNorm.gamma/beta
      {"bert_mlm", "bert", "mlm", 1e-12},           // safetensors, the tied decoder left out
      {"bert_mlm_bin", "bert", "mlm", 1e-12},       // pytorch_model.bin, tied decoder and bias saved
      {"vit", "vit", "classify", 1e-12},            // safetensors
      {"vit_bin", "vit", "classify", 1e-12},        // pytorch_model.bin
  };
  SECTION("every folder: the shape keys from config.json, the logits within 1e-5") {
    for (const auto& c : cases) {
      INFO(c.folder);
      const auto l = load_hf(ref_path(c.folder), kind_task(c.kind, c.task));
      CHECK(l.cfg.dim == 16);
      CHECK(l.cfg.depth == 2);
      CHECK(l.cfg.heads == 2);
      CHECK(models::ffn_width(l.cfg) == 24);
      CHECK(l.cfg.layer_norm_eps == c.eps);
      if (std::string(c.kind) == "bert") {
        CHECK(l.cfg.vocab_size == 40);
        CHECK(l.cfg.max_len == 16);
      } else {
        CHECK((l.cfg.image_size == 8 && l.cfg.patch == 4 && l.cfg.channels == 1));
      }
      if (std::string(c.task) == "classify") CHECK(l.cfg.classes == (std::string(c.kind) == "bert" ? 2 : 3));
      const auto expected = runtime::read_safetensors(ref_path(std::string(c.folder) + ".logits.safetensors")).at("logits");
      const double diff = max_diff(logits_of(l.units, input_for(c.kind)), expected);
      INFO("max |floe - reference| = " << diff);
      CHECK(diff < kTolerance);
    }
  }
  SECTION("a tied decoder is the word embeddings; a tied duplicate is kept once") {
    const auto tied = load_hf(ref_path("bert_mlm"), kind_task("bert", "mlm"));
    CHECK(tied.notes == std::vector<std::string>{"head.decoder.weight: the word embeddings (tied)"});
    const auto saved = load_hf(ref_path("bert_mlm_bin"), kind_task("bert", "mlm"));
    CHECK_THAT(saved.notes.at(0), Contains("cls.predictions.decoder.bias is tied to cls.predictions.bias"));
  }
  SECTION("a job's shorter model.max_len cuts the position table, with the same logits") {
    auto cfg = kind_task("bert", "classify");
    cfg.max_len = 12;
    const auto l = load_hf(ref_path("bert_cls"), cfg, {"model.max_len"});
    CHECK(l.cfg.max_len == 12);
    CHECK(l.notes == std::vector<std::string>{"embed.position.weight: the first 12 of 16 positions (model.max_len)"});
    const auto expected = runtime::read_safetensors(ref_path("bert_cls.logits.safetensors")).at("logits");
    CHECK(max_diff(logits_of(l.units, input_for("bert")), expected) < kTolerance);
  }
  SECTION("a lone weights file: the family from the names, the shapes from the job") {
    const auto ck = runtime::read_hf_checkpoint(ref_path("vit/model.safetensors"));
    CHECK(ck.model_type == "vit");
    CHECK(ck.config.is_null());
    auto cfg = kind_task("vit", "classify");
    cfg.image_size = 8, cfg.patch = 4, cfg.channels = 1, cfg.dim = 16, cfg.depth = 2, cfg.heads = 2, cfg.ffn_dim = 24;
    cfg.classes = 3, cfg.layer_norm_eps = 1e-12;
    const auto l = load_hf(ref_path("vit/model.safetensors"), cfg);
    const auto expected = runtime::read_safetensors(ref_path("vit.logits.safetensors")).at("logits");
    CHECK(max_diff(logits_of(l.units, input_for("vit")), expected) < kTolerance);
  }
  SECTION("a sharded checkpoint: model.safetensors.index.json and its shards") {
    const auto dir = scratch() / "sharded";
    fs::create_directories(dir);
    fs::copy_file(ref_path("bert_cls/config.json"), dir / "config.json", fs::copy_options::overwrite_existing);
    std::map<std::string, torch::Tensor> shards[2];
    nlohmann::json index;
    for (const auto& [name, t] : runtime::read_safetensors(ref_path("bert_cls/model.safetensors"))) {
      const int i = name.find("encoder") != std::string::npos;
      shards[i][name] = t;
      index["weight_map"][name] = "model-0000" + std::to_string(i + 1) + "-of-00002.safetensors";
    }
    for (int i = 0; i < 2; ++i)
      runtime::write_safetensors((dir / ("model-0000" + std::to_string(i + 1) + "-of-00002.safetensors")).string(), shards[i]);
    write_text(dir / "model.safetensors.index.json", index.dump());
    const auto l = load_hf(dir.string(), kind_task("bert", "classify"));
    const auto expected = runtime::read_safetensors(ref_path("bert_cls.logits.safetensors")).at("logits");
    CHECK(max_diff(logits_of(l.units, input_for("bert")), expected) < kTolerance);
  }
  SECTION("BERT MLM checkpoint for classification: the MLM head is dropped with a note, init_skip keeps the classifier") {
    auto cfg = kind_task("bert", "classify");
    const auto ck = runtime::read_hf_checkpoint(ref_path("bert_mlm"));
    runtime::apply_hf_config(ck.config, cfg, {"model.task"});
    std::vector<std::string> notes;
    const auto w = runtime::hf_to_floe(ck, cfg, &notes);
    CHECK(notes.size() == 5);
    CHECK_THAT(notes.at(0), Contains("dropped cls.predictions.bias"));
    const auto m = models::match_weights(models::build_model(cfg), w, ck.path, {"head."});
    CHECK(m.kept == std::vector<std::string>{"head.pooler.weight", "head.pooler.bias", "head.classifier.weight",
                                             "head.classifier.bias"});
  }
}

TEST_CASE("hf_checkpoint: floe weights written as a Hugging Face folder give floe's logits in the reference") {
  models::ModelConfig bert_cls = kind_task("bert", "classify"), vit = kind_task("vit", "classify");
  for (auto* c : {&bert_cls, &vit}) c->dim = 16, c->depth = 2, c->heads = 2, c->ffn_dim = 24, c->classes = 3;
  bert_cls.vocab_size = 40, bert_cls.max_len = 16, bert_cls.dropout = 0.1;
  vit.image_size = 8, vit.patch = 4, vit.channels = 1;  // layer_norm_eps 0: floe's ViT default, 1e-5
  auto bert_mlm = bert_cls;
  bert_mlm.task = "mlm";
  const std::pair<const char*, models::ModelConfig> cases[] = {
      {"BertForSequenceClassification", bert_cls}, {"BertForMaskedLM", bert_mlm}, {"ViTForImageClassification", vit}};
  for (const auto& [arch, cfg] : cases) {
    INFO(arch);
    torch::manual_seed(7);
    auto units = models::build_model(cfg);
    std::map<std::string, torch::Tensor> weights;
    {
      // BERT starts with zero biases and unit LayerNorms: move every tensor so that each counts.
      torch::NoGradGuard no_grad;
      const auto names = models::parameter_names_of(units, 0, units.size());
      const auto params = models::parameters_of(units, 0, units.size());
      for (size_t i = 0; i < names.size(); ++i) weights[names[i]] = params[i].add_(torch::randn_like(params[i]) * 0.3);
    }
    for (auto& u : units) u.module->eval();
    const auto folder = scratch() / (std::string("floe_") + arch);
    runtime::write_hf_checkpoint(folder.string(), weights, cfg);

    const auto config = read_json(folder / "config.json");
    CHECK(config["architectures"] == nlohmann::json::array({arch}));
    CHECK(config["model_type"] == cfg.kind);
    CHECK(config["layer_norm_eps"] == models::layer_norm_eps(cfg));
    CHECK(runtime::SafetensorsFile((folder / "model.safetensors").string()).metadata().at("format") == "pt");

    const auto out = scratch() / (std::string("floe_") + arch + ".logits.safetensors");
    REQUIRE(std::system((kPython + " logits --folder " + folder.string() + " --inputs " + ref_path("inputs.safetensors") +
                         " --out " + out.string())
                            .c_str()) == 0);
    const double diff = max_diff(logits_of(units, input_for(cfg.kind)), runtime::read_safetensors(out.string()).at("logits"));
    INFO("max |reference - floe| = " << diff);
    CHECK(diff < kTolerance);

    // And back: the same shape keys and exactly the same tensors.
    // The task, dropout and (for MLM) classes stay the job's.
    auto back = kind_task(cfg.kind, cfg.task);
    back.dropout = cfg.dropout;
    if (cfg.task == "mlm") back.classes = cfg.classes;
    const auto ck = runtime::read_hf_checkpoint(folder.string());
    runtime::apply_hf_config(ck.config, back, {});
    CHECK(models::describe(back) == models::describe(cfg));
    CHECK(models::layer_norm_eps(back) == models::layer_norm_eps(cfg));
    const auto read = runtime::hf_to_floe(ck, back, nullptr);
    REQUIRE(read.size() == weights.size());
    for (const auto& [name, t] : weights) CHECK(torch::equal(read.at(name), t));
  }
}

TEST_CASE("hf_checkpoint: errors name the file, the tensor and both values") {
  SECTION("a key the job set to another value than config.json's") {
    auto cfg = kind_task("bert", "classify");
    cfg.dim = 128;
    const auto ck = runtime::read_hf_checkpoint(ref_path("bert_cls"));
    CHECK(input_error_of([&] { runtime::apply_hf_config(ck.config, cfg, {"model.dim"}, ck.config_path); }) ==
          "model.dim = 128 in the job but hidden_size = 16 in " + ck.config_path);
    cfg = kind_task("vit", "classify");
    CHECK(input_error_of([&] { runtime::apply_hf_config(ck.config, cfg, {"model.kind"}, ck.config_path); }) ==
          "model.kind = \"vit\" in the job but model_type = \"bert\" in " + ck.config_path);
    cfg = kind_task("bert", "classify");
    CHECK(input_error_of([&] { runtime::apply_hf_config(ck.config, cfg, {"model.mlp_ratio"}, ck.config_path); }) ==
          "model.mlp_ratio = 2 (FFN width 32) in the job but intermediate_size = 24 in " + ck.config_path);
    cfg.max_len = 32;
    CHECK(input_error_of([&] { runtime::apply_hf_config(ck.config, cfg, {"model.max_len"}, ck.config_path); }) ==
          "model.max_len = 32 in the job but max_position_embeddings = 16 in " + ck.config_path);
    // Keys the job did not set take the checkpoint's values.
    cfg = kind_task("bert", "classify");
    cfg.dim = 128;
    runtime::apply_hf_config(ck.config, cfg, {});
    CHECK(cfg.dim == 16);
  }
  SECTION("an activation floe does not have") {
    const auto folder = edited_copy("bert_cls", "relu", [](nlohmann::json& c) { c["hidden_act"] = "relu"; });
    const auto ck = runtime::read_hf_checkpoint(folder);
    auto cfg = kind_task("bert", "classify");
    CHECK(input_error_of([&] { runtime::apply_hf_config(ck.config, cfg, {}, ck.config_path); }) ==
          "hidden_act = \"relu\" in " + ck.config_path + ": floe's BERT and ViT use GELU in its erf form (\"gelu\")");
  }
  SECTION("a folder without weights, an empty folder, a missing path") {
    const auto dir = scratch() / "no_weights";
    fs::create_directories(dir);
    fs::copy_file(ref_path("bert_cls/config.json"), dir / "config.json", fs::copy_options::overwrite_existing);
    CHECK(runtime::is_hf_checkpoint(dir.string()));
    CHECK(input_error_of([&] { runtime::read_hf_checkpoint(dir.string()); }) ==
          dir.string() + ": has config.json but no model.safetensors or pytorch_model.bin (TensorFlow and Flax weights are not read)");
    const auto empty = scratch() / "empty";
    fs::create_directories(empty);
    CHECK_FALSE(runtime::is_hf_checkpoint(empty.string()));
    CHECK_THAT(input_error_of([&] { runtime::read_hf_checkpoint(empty.string()); }),
               Contains(empty.string() + ": neither config.json nor model.safetensors nor pytorch_model.bin"));
    CHECK_THAT(input_error_of([&] { runtime::read_hf_checkpoint((scratch() / "nothing").string()); }),
               Contains("nothing: no such file or folder"));
    CHECK(runtime::is_hf_checkpoint("weights.safetensors"));
    CHECK(runtime::is_hf_checkpoint("pytorch_model.bin"));
    CHECK_FALSE(runtime::is_hf_checkpoint("floe-weights.pt"));
  }
  SECTION("an architecture or a model type floe does not have") {
    auto folder = edited_copy("bert_cls", "roberta", [](nlohmann::json& c) { c["model_type"] = "roberta"; });
    CHECK_THAT(input_error_of([&] { runtime::read_hf_checkpoint(folder); }),
               Contains(folder + "/config.json: model_type \"roberta\" is not supported"));
    folder = edited_copy("bert_cls", "token", [](nlohmann::json& c) { c["architectures"] = {"BertForTokenClassification"}; });
    CHECK_THAT(input_error_of([&] { runtime::read_hf_checkpoint(folder); }),
               Contains(folder + "/config.json: architecture \"BertForTokenClassification\" is not supported"));
  }
  SECTION("a tensor the map does not know keeps its name, and match_weights names it") {
    auto ck = runtime::read_hf_checkpoint(ref_path("bert_cls"));
    ck.tensors["bert.encoder.layer.0.attention.self.rotary.weight"] = torch::zeros({2});
    auto cfg = kind_task("bert", "classify");
    runtime::apply_hf_config(ck.config, cfg, {});
    const auto w = runtime::hf_to_floe(ck, cfg, nullptr);
    CHECK(input_error_of([&] { models::match_weights(models::build_model(cfg), w, ck.path); }) ==
          ck.path + ": tensor 'bert.encoder.layer.0.attention.self.rotary.weight' is not a parameter of this model (model.* differs?)");
  }
  SECTION("a q/k/v triple with a part missing; tied tensors that differ") {
    auto ck = runtime::read_hf_checkpoint(ref_path("vit"));
    ck.tensors.erase("vit.encoder.layer.1.attention.attention.key.weight");
    auto cfg = kind_task("vit", "classify");
    runtime::apply_hf_config(ck.config, cfg, {});
    CHECK(input_error_of([&] { runtime::hf_to_floe(ck, cfg, nullptr); }) ==
          ck.path + ": has 'vit.encoder.layer.1.attention.attention.value.weight' but not "
                    "'vit.encoder.layer.1.attention.attention.key.weight' (floe stacks query, key and value into "
                    "'block1.attn.attn.in_proj_weight')");
    auto mlm = runtime::read_hf_checkpoint(ref_path("bert_mlm_bin"));
    mlm.tensors["cls.predictions.decoder.bias"] = mlm.tensors["cls.predictions.decoder.bias"] + 1;
    cfg = kind_task("bert", "mlm");
    runtime::apply_hf_config(mlm.config, cfg, {});
    CHECK(input_error_of([&] { runtime::hf_to_floe(mlm, cfg, nullptr); }) ==
          mlm.path + ": tensors 'cls.predictions.bias' and 'cls.predictions.decoder.bias' both give floe's 'head.decoder.bias' but differ");
  }
  SECTION("writing a tensor with no Hugging Face name") {
    const auto folder = (scratch() / "bad_write").string();
    CHECK(input_error_of([&] { runtime::write_hf_checkpoint(folder, {{"block0.attn.extra.weight", torch::zeros({2})}}, kind_task("bert", "classify")); }) ==
          folder + ": floe's tensor 'block0.attn.extra.weight' has no Hugging Face name (model.kind = \"bert\", task = \"classify\")");
    CHECK_FALSE(fs::exists(folder));
  }
}
