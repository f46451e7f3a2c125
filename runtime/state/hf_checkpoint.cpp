#include "runtime/state/hf_checkpoint.hpp"

#include "models/files.hpp"
#include "models/wordpiece.hpp"
#include "models/errors.hpp"
#include "runtime/config/json_integer.hpp"
#include "runtime/state/safetensors.hpp"
#include "runtime/state/state_dict.hpp"
#include "runtime/observe/summary.hpp"

#include <array>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>

namespace floe::runtime {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// One row of the name map. `hf` and `floe` are whole names, or prefixes ending in "." (or "_":
// LibTorch's "in_proj_") that carry "weight" or "bias" along; {N} is the block index. `task` limits the row to one task
// ("" = any); an empty `floe` is a tensor floe has no place for (dropped with a note). `part`
// >= 0: that third of floe's stacked in_proj (rows q; k; v). `base`: inside the base model,
// so stored under the family prefix ("bert.", "vit.") by the *For* architectures.
struct NameRule {
  const char* hf;
  const char* floe;
  const char* task;
  int part;
  bool base;
};

// Writing takes the first row that matches a floe name (per part); reading, any row.
const NameRule kBertNames[] = {
    {"embeddings.word_embeddings.weight", "embed.word.weight", "", -1, true},
    {"embeddings.position_embeddings.weight", "embed.position.weight", "", -1, true},
    {"embeddings.token_type_embeddings.weight", "embed.token_type.weight", "", -1, true},
    {"embeddings.LayerNorm.", "embed.ln.", "", -1, true},
    {"encoder.layer.{N}.attention.self.query.", "block{N}.attn.attn.query.", "", -1, true},
    {"encoder.layer.{N}.attention.self.key.", "block{N}.attn.attn.key.", "", -1, true},
    {"encoder.layer.{N}.attention.self.value.", "block{N}.attn.attn.value.", "", -1, true},
    {"encoder.layer.{N}.attention.output.dense.", "block{N}.attn.attn.output.", "", -1, true},
    {"encoder.layer.{N}.attention.output.LayerNorm.", "block{N}.attn.ln.", "", -1, true},
    {"encoder.layer.{N}.intermediate.dense.", "block{N}.ffn.ffn.intermediate.", "", -1, true},
    {"encoder.layer.{N}.output.dense.", "block{N}.ffn.ffn.output.", "", -1, true},
    {"encoder.layer.{N}.output.LayerNorm.", "block{N}.ffn.ln.", "", -1, true},
    {"pooler.dense.", "head.pooler.", "classify", -1, true},
    {"classifier.", "head.classifier.", "classify", -1, false},
    {"cls.predictions.transform.dense.", "head.transform.", "mlm", -1, false},
    {"cls.predictions.transform.LayerNorm.", "head.ln.", "mlm", -1, false},
    {"cls.predictions.decoder.weight", "head.decoder.weight", "mlm", -1, false},
    {"cls.predictions.bias", "head.decoder.bias", "mlm", -1, false},
    {"cls.predictions.decoder.bias", "head.decoder.bias", "mlm", -1, false},  // tied to the row above
    {"cls.seq_relationship.", "", "", -1, false},  // BertForPreTraining's next-sentence head
};

const NameRule kVitNames[] = {
    {"embeddings.cls_token", "embed.cls", "", -1, true},
    {"embeddings.position_embeddings", "embed.pos", "", -1, true},
    {"embeddings.patch_embeddings.projection.", "embed.proj.", "", -1, true},
    {"encoder.layer.{N}.layernorm_before.", "block{N}.attn.ln.", "", -1, true},
    {"encoder.layer.{N}.attention.attention.query.", "block{N}.attn.attn.in_proj_", "", 0, true},
    {"encoder.layer.{N}.attention.attention.key.", "block{N}.attn.attn.in_proj_", "", 1, true},
    {"encoder.layer.{N}.attention.attention.value.", "block{N}.attn.attn.in_proj_", "", 2, true},
    {"encoder.layer.{N}.attention.output.dense.", "block{N}.attn.attn.out_proj.", "", -1, true},
    {"encoder.layer.{N}.layernorm_after.", "block{N}.mlp.ln.", "", -1, true},
    {"encoder.layer.{N}.intermediate.dense.", "block{N}.mlp.fc1.", "", -1, true},
    {"encoder.layer.{N}.output.dense.", "block{N}.mlp.fc2.", "", -1, true},
    {"layernorm.", "norm.ln.", "", -1, true},
    {"classifier.", "head.fc.", "", -1, false},
    {"pooler.dense.", "", "", -1, true},  // ViTModel's pooler: floe's head reads the class token directly
};

template <size_t K>
std::vector<NameRule> rules(const NameRule (&table)[K]) {
  return {table, table + K};
}
std::vector<NameRule> rules_of(const std::string& kind) { return kind == "bert" ? rules(kBertNames) : rules(kVitNames); }

// The block index and carried rest of `name` under `pattern`, or nothing when it does not match.
struct Match {
  std::string block, rest;
};
std::optional<Match> match(const std::string& pattern, const std::string& name) {
  const auto at = pattern.find("{N}");
  const std::string head = pattern.substr(0, at), tail = at == std::string::npos ? "" : pattern.substr(at + 3);
  if (name.compare(0, head.size(), head) != 0) return std::nullopt;
  Match m;
  size_t i = head.size();
  if (at != std::string::npos) {
    while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i]))) m.block += name[i++];
    if (m.block.empty()) return std::nullopt;
  }
  if (name.compare(i, tail.size(), tail) != 0) return std::nullopt;
  m.rest = name.substr(i + tail.size());
  const bool prefix = !pattern.empty() && (pattern.back() == '.' || pattern.back() == '_');
  if (prefix ? (m.rest != "weight" && m.rest != "bias") : !m.rest.empty()) return std::nullopt;
  return m;
}
std::string fill(const std::string& pattern, const Match& m) {
  std::string out = pattern;
  if (const auto at = out.find("{N}"); at != std::string::npos) out.replace(at, 3, m.block);
  return out + m.rest;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path.string() + ": cannot open the file");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

json read_json(const fs::path& path) {
  try {
    return json::parse(read_text(path));
  } catch (const json::exception& e) {
    throw InputError(path.string() + ": not JSON (" + e.what() + ")");
  }
}

std::map<std::string, torch::Tensor> read_weights(const fs::path& path) {
  if (ends_with(path.string(), ".safetensors")) return read_safetensors(path.string());
  if (!ends_with(path.string(), ".index.json")) return load_state_dict(path.string());
  // A sharded checkpoint: {"weight_map": {tensor: shard file beside the index}}.
  const auto index = read_json(path);
  if (!index.contains("weight_map") || !index["weight_map"].is_object())
    throw InputError(path.string() + ": expected a \"weight_map\" object of tensor name -> shard file");
  std::set<std::string> shards;
  for (const auto& [name, file] : index["weight_map"].items()) {
    if (!file.is_string()) throw InputError(path.string() + ": weight_map['" + name + "'] is not a file name");
    shards.insert(file.get<std::string>());
  }
  std::map<std::string, torch::Tensor> out;
  for (const auto& shard : shards) out.merge(read_weights(path.parent_path() / shard));
  return out;
}

// The files a folder's weights may be in, in order of preference.
const char* const kWeightFiles[] = {"model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                                    "pytorch_model.bin.index.json"};

const std::set<std::string> kArchitectures = {"BertModel",   "BertForSequenceClassification", "BertForMaskedLM",
                                              "BertForPreTraining", "ViTModel", "ViTForImageClassification"};

std::string in_quotes(const std::string& s) { return "\"" + s + "\""; }

std::string number(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

std::string string_value(const json& config, const std::string& key, const std::string& fallback, const std::string& what) {
  if (!config.contains(key)) return fallback;
  if (!config[key].is_string()) throw InputError(what + ": " + key + ": expected a string, got " + config[key].dump());
  return config[key].get<std::string>();
}

int64_t integer_value(const json& config, const std::string& key, int64_t fallback, const std::string& what) {
  if (!config.contains(key)) return fallback;
  try {
    return json_integer<int64_t>(config[key], key);
  } catch (const std::invalid_argument& e) {
    throw InputError(what + ": " + e.what());
  }
}

// A shape key of ModelConfig and where config.json keeps it; a default of 0 = not this family's.
struct ConfigKey {
  const char* hf;
  const char* floe;  // under "model."
  int64_t models::ModelConfig::*field;
  int64_t bert_default, vit_default;  // transformers' BertConfig and ViTConfig
};
const ConfigKey kConfigKeys[] = {
    {"hidden_size", "dim", &models::ModelConfig::dim, 768, 768},
    {"num_hidden_layers", "depth", &models::ModelConfig::depth, 12, 12},
    {"num_attention_heads", "heads", &models::ModelConfig::heads, 12, 12},
    {"intermediate_size", "ffn_dim", &models::ModelConfig::ffn_dim, 3072, 3072},
    {"vocab_size", "vocab_size", &models::ModelConfig::vocab_size, 30522, 0},
    {"max_position_embeddings", "max_len", &models::ModelConfig::max_len, 512, 0},
    {"type_vocab_size", "type_vocab_size", &models::ModelConfig::type_vocab_size, 2, 0},
    {"image_size", "image_size", &models::ModelConfig::image_size, 0, 224},
    {"patch_size", "patch", &models::ModelConfig::patch, 0, 16},
    {"num_channels", "channels", &models::ModelConfig::channels, 0, 3},
};

constexpr double kHfLayerNormEps = 1e-12;  // BertConfig's and ViTConfig's default

}  // namespace

bool is_hf_checkpoint(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    if (fs::exists(fs::path(path) / "config.json", ec)) return true;
    for (const char* file : kWeightFiles)
      if (fs::exists(fs::path(path) / file, ec)) return true;
    return false;
  }
  return ends_with(path, ".safetensors") || ends_with(path, ".bin");
}

HfCheckpoint read_hf_checkpoint(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw InputError("Hugging Face checkpoint " + path + ": no such file or folder");
  HfCheckpoint ck;
  ck.path = path;
  if (fs::is_directory(path, ec)) {
    const auto config = fs::path(path) / "config.json";
    if (fs::exists(config, ec)) {
      ck.config_path = config.string();
      ck.config = read_json(config);
      if (!ck.config.is_object()) throw InputError(ck.config_path + ": expected a JSON object");
    }
    for (const char* file : kWeightFiles)
      if (ck.weights_path.empty() && fs::exists(fs::path(path) / file, ec)) ck.weights_path = (fs::path(path) / file).string();
    if (ck.weights_path.empty())
      throw InputError(path + (ck.config_path.empty() ? ": neither config.json nor model.safetensors nor pytorch_model.bin: "
                                                          "not a Hugging Face checkpoint folder"
                                                        : ": has config.json but no model.safetensors or pytorch_model.bin "
                                                          "(TensorFlow and Flax weights are not read)"));
  } else {
    ck.weights_path = path;
  }
  ck.tensors = read_weights(ck.weights_path);

  if (ck.config.is_object()) {
    const auto& archs = ck.config.value("architectures", json::array());
    if (archs.is_array() && !archs.empty() && archs[0].is_string()) ck.architecture = archs[0].get<std::string>();
    ck.model_type = string_value(ck.config, "model_type", "", ck.config_path);
  }
  if (ck.model_type.empty())  // no config, or one without model_type: the names tell
    for (const auto& [name, t] : ck.tensors) {
      if (name.find("patch_embeddings.") != std::string::npos) ck.model_type = "vit";
      if (name.find("word_embeddings.") != std::string::npos) ck.model_type = "bert";
    }
  const std::string what = ck.config_path.empty() ? path : ck.config_path;
  if (ck.model_type != "bert" && ck.model_type != "vit")
    throw InputError(what + ": model_type " + in_quotes(ck.model_type) + " is not supported (floe reads \"bert\" and \"vit\")");
  if (!ck.architecture.empty() && !kArchitectures.count(ck.architecture))
    throw InputError(what + ": architecture " + in_quotes(ck.architecture) +
                     " is not supported (floe reads BertModel, BertForSequenceClassification, BertForMaskedLM, "
                     "BertForPreTraining, ViTModel, ViTForImageClassification)");
  return ck;
}

void apply_hf_config(const json& config, models::ModelConfig& cfg, const std::set<std::string>& keys_set_by_job,
                     const std::string& what) {
  if (config.is_null()) return;  // a lone weights file: the job gives the shapes
  if (!config.is_object()) throw InputError(what + ": expected a JSON object");
  const auto set = [&](const std::string& key) { return keys_set_by_job.count("model." + key) != 0; };
  const auto conflict = [&](const std::string& floe, const std::string& job, const std::string& hf, const std::string& ck) {
    return InputError("model." + floe + " = " + job + " in the job but " + hf + " = " + ck + " in " + what);
  };

  const auto type = string_value(config, "model_type", "", what);
  if (type != "bert" && type != "vit")
    throw InputError(what + ": model_type " + in_quotes(type) + " is not supported (floe reads \"bert\" and \"vit\")");
  if (set("kind") && cfg.kind != type) throw conflict("kind", in_quotes(cfg.kind), "model_type", in_quotes(type));
  cfg.kind = type;

  // Computations floe's families do not have.
  const auto act = string_value(config, "hidden_act", "gelu", what);
  if (act != "gelu")
    throw InputError("hidden_act = " + in_quotes(act) + " in " + what +
                     ": floe's BERT and ViT use GELU in its erf form (\"gelu\")");
  if (type == "bert") {
    const auto pos = string_value(config, "position_embedding_type", "absolute", what);
    if (pos != "absolute")
      throw InputError("position_embedding_type = " + in_quotes(pos) + " in " + what + ": floe's BERT has \"absolute\" positions");
    if (config.value("is_decoder", false) || config.value("add_cross_attention", false))
      throw InputError(what + ": a BERT decoder (is_decoder / add_cross_attention) is not supported: floe's BERT is an encoder");
  }

  for (const auto& key : kConfigKeys) {
    const int64_t fallback = type == "bert" ? key.bert_default : key.vit_default;
    if (fallback == 0) continue;
    const int64_t v = integer_value(config, key.hf, fallback, what);
    int64_t& field = cfg.*key.field;
    const std::string floe = key.floe;
    if (floe == "ffn_dim" && !set("ffn_dim") && set("mlp_ratio") && cfg.dim * cfg.mlp_ratio != v)
      throw conflict("mlp_ratio", std::to_string(cfg.mlp_ratio) + " (FFN width " + std::to_string(cfg.dim * cfg.mlp_ratio) + ")",
                     key.hf, std::to_string(v));
    // A shorter position table than the checkpoint's is fine: hf_to_floe cuts it.
    const bool ok = floe == "max_len" ? field <= v : field == v;
    if (set(floe) && !ok) throw conflict(floe, std::to_string(field), key.hf, std::to_string(v));
    if (!set(floe)) field = v;
  }

  double eps = kHfLayerNormEps;
  if (config.contains("layer_norm_eps")) {
    if (!config["layer_norm_eps"].is_number() || config["layer_norm_eps"].get<double>() <= 0)
      throw InputError(what + ": layer_norm_eps: expected a positive number, got " + config["layer_norm_eps"].dump());
    eps = config["layer_norm_eps"].get<double>();
  }
  if (set("layer_norm_eps") && models::layer_norm_eps(cfg) != eps)
    throw conflict("layer_norm_eps", number(models::layer_norm_eps(cfg)), "layer_norm_eps", number(eps));
  cfg.layer_norm_eps = eps;

  // Labels mean something only where the checkpoint has a classifier (HF writes a default
  // id2label of two into every config).
  const auto archs = config.value("architectures", json::array());
  const std::string arch = archs.is_array() && !archs.empty() && archs[0].is_string() ? archs[0].get<std::string>() : "";
  if (ends_with(arch, "ForSequenceClassification") || ends_with(arch, "ForImageClassification")) {
    int64_t classes = 0;
    std::string from;
    if (config.contains("id2label") && config["id2label"].is_object())
      classes = static_cast<int64_t>(config["id2label"].size()), from = "the labels of id2label";
    else if (config.contains("num_labels"))
      classes = integer_value(config, "num_labels", 0, what), from = "num_labels";
    if (classes > 0) {
      if (set("classes") && cfg.classes != classes) throw conflict("classes", std::to_string(cfg.classes), from, std::to_string(classes));
      cfg.classes = classes;
    }
  }
}

std::map<std::string, torch::Tensor> hf_to_floe(const HfCheckpoint& ck, const models::ModelConfig& cfg,
                                                std::vector<std::string>* notes) {
  const auto note = [&](const std::string& line) {
    if (notes) notes->push_back(line);
  };
  if (ck.model_type != cfg.kind)
    throw InputError(ck.path + ": a " + in_quotes(ck.model_type) + " checkpoint for model.kind = " + in_quotes(cfg.kind));
  const auto table = rules_of(cfg.kind);
  const std::string family = cfg.kind + ".";

  std::map<std::string, torch::Tensor> out;
  std::map<std::string, std::string> source;  // floe name -> the HF name it came from
  std::map<std::string, std::array<std::pair<std::string, torch::Tensor>, 3>> parts;  // in_proj: q, k, v
  const auto put = [&](const std::string& floe, const torch::Tensor& t, const std::string& hf) {
    if (const auto it = out.find(floe); it != out.end()) {
      if (!torch::equal(it->second, t))
        throw InputError(ck.path + ": tensors '" + source[floe] + "' and '" + hf + "' both give floe's '" + floe +
                         "' but differ");
      note(hf + " is tied to " + source[floe] + ": one kept");
      return;
    }
    out[floe] = t, source[floe] = hf;
  };

  for (const auto& [hf, stored] : ck.tensors) {
    std::string name = hf.compare(0, family.size(), family) == 0 ? hf.substr(family.size()) : hf;
    if (ends_with(name, ".gamma")) name = name.substr(0, name.size() - 5) + "weight";  // TF-era names
    if (ends_with(name, ".beta")) name = name.substr(0, name.size() - 4) + "bias";
    if (name == "embeddings.position_ids" || name == "embeddings.token_type_ids") continue;  // buffers
    const auto t = stored.is_floating_point() ? stored.to(torch::kFloat) : stored;
    const NameRule* rule = nullptr;
    std::optional<Match> m;
    for (const auto& r : table)
      if ((m = match(r.hf, name))) {
        rule = &r;
        break;
      }
    if (!rule) {
      put(hf, t, hf);  // match_weights names it as unexpected
      continue;
    }
    if (std::string(rule->floe).empty() || (*rule->task && cfg.task != rule->task)) {
      note("dropped " + hf + ": a model.task = " + in_quotes(cfg.task) + " " + cfg.kind + " has no place for it");
      continue;
    }
    const auto floe = fill(rule->floe, *m);
    if (rule->part < 0)
      put(floe, t, hf);
    else
      parts[floe][rule->part] = {hf, t};
  }

  // ViT: the separate q, k, v projections stacked into LibTorch's in_proj (rows q; k; v).
  static const char* const kQkv[] = {"query", "key", "value"};
  for (const auto& [floe, qkv] : parts) {
    std::vector<torch::Tensor> pieces;
    for (int i = 0; i < 3; ++i) {
      if (!qkv[i].second.defined()) {
        const int j = qkv[(i + 1) % 3].second.defined() ? (i + 1) % 3 : (i + 2) % 3;  // one that is there
        auto missing = qkv[j].first;
        missing.replace(missing.rfind(std::string(".") + kQkv[j] + "."), std::string(kQkv[j]).size() + 2,
                        std::string(".") + kQkv[i] + ".");
        throw InputError(ck.path + ": has '" + qkv[j].first + "' but not '" + missing + "' (floe stacks query, key and value into '" +
                         floe + "')");
      }
      pieces.push_back(qkv[i].second);
    }
    put(floe, torch::cat(pieces, 0), qkv[0].first);
  }
  if (cfg.kind == "vit" && ck.config.is_object() && ck.config.value("qkv_bias", true) == false)
    for (const auto& [floe, t] : std::map<std::string, torch::Tensor>(out))
      if (ends_with(floe, ".in_proj_weight")) {
        const auto bias = floe.substr(0, floe.size() - 6) + "bias";
        if (!out.count(bias)) out[bias] = torch::zeros({t.size(0)}), note(bias + ": zeros (qkv_bias = false)");
      }

  if (cfg.kind == "bert" && cfg.task == "mlm" && out.count("embed.word.weight")) {
    const auto& word = out["embed.word.weight"];
    const bool has = out.count("head.decoder.weight") != 0;
    // transformers ties the decoder to the word embeddings unless the config says otherwise.
    const bool tied = ck.config.is_object() ? ck.config.value("tie_word_embeddings", true) : !has;
    if (tied) {
      if (has && !torch::equal(out["head.decoder.weight"], word))
        note("cls.predictions.decoder.weight differs from the word embeddings but config.json ties them: the word "
             "embeddings are used, as transformers does");
      else if (!has)
        note("head.decoder.weight: the word embeddings (tied)");
      out["head.decoder.weight"] = word.clone();
    }
  }
  if (cfg.kind == "bert" && out.count("embed.position.weight") && out["embed.position.weight"].dim() == 2 &&
      out["embed.position.weight"].size(0) > cfg.max_len) {
    auto& table = out["embed.position.weight"];
    note("embed.position.weight: the first " + std::to_string(cfg.max_len) + " of " + std::to_string(table.size(0)) +
         " positions (model.max_len)");
    table = table.narrow(0, 0, cfg.max_len).clone();
  }
  return out;
}

void write_hf_checkpoint(const std::string& folder, const std::map<std::string, torch::Tensor>& floe_weights,
                         const models::ModelConfig& cfg) {
  const auto table = rules_of(cfg.kind);
  std::map<std::string, torch::Tensor> hf;
  for (const auto& [floe, t] : floe_weights) {
    std::set<int> done;  // parts written: the first matching row per part wins
    for (const auto& r : table) {
      const auto m = std::string(r.floe).empty() || (*r.task && cfg.task != r.task) ? std::nullopt : match(r.floe, floe);
      if (!m || done.count(r.part)) continue;
      done.insert(r.part);
      if (r.part >= 0 && (t.dim() < 1 || t.size(0) % 3 != 0))
        throw InputError(folder + ": floe's '" + floe + "' is " + c10::str(t.sizes()) + ", expected 3 stacked blocks of rows (q; k; v)");
      hf[(r.base ? cfg.kind + "." : "") + fill(r.hf, *m)] = (r.part >= 0 ? t.chunk(3, 0)[r.part] : t).detach().contiguous();
    }
    if (done.empty())
      throw InputError(folder + ": floe's tensor '" + floe + "' has no Hugging Face name (model.kind = " + in_quotes(cfg.kind) +
                       ", task = " + in_quotes(cfg.task) + ")");
  }

  const int64_t classes = cfg.kind == "bert" && cfg.task == "mlm" ? 0 : cfg.classes;
  json config = {
      {"architectures", {cfg.kind == "vit" ? "ViTForImageClassification"
                         : classes     ? "BertForSequenceClassification"
                                       : "BertForMaskedLM"}},
      {"model_type", cfg.kind},
      {"hidden_size", cfg.dim},
      {"num_hidden_layers", cfg.depth},
      {"num_attention_heads", cfg.heads},
      {"intermediate_size", models::ffn_width(cfg)},
      {"hidden_act", "gelu"},
      {"layer_norm_eps", models::layer_norm_eps(cfg)},
      {"initializer_range", 0.02},
      {"torch_dtype", "float32"},
  };
  if (cfg.kind == "bert") {
    config.update({{"vocab_size", cfg.vocab_size},
                   {"max_position_embeddings", cfg.max_len},
                   {"type_vocab_size", cfg.type_vocab_size},
                   {"pad_token_id", 0},
                   {"position_embedding_type", "absolute"},
                   {"hidden_dropout_prob", cfg.dropout},
                   {"attention_probs_dropout_prob", cfg.dropout}});
    if (!classes) config["tie_word_embeddings"] = false;  // floe's decoder is a matrix of its own
  } else {
    config.update({{"image_size", cfg.image_size},
                   {"patch_size", cfg.patch},
                   {"num_channels", cfg.channels},
                   {"qkv_bias", true},
                   {"hidden_dropout_prob", 0.0},
                   {"attention_probs_dropout_prob", 0.0}});
  }
  if (classes) {
    config["num_labels"] = classes;
    for (int64_t i = 0; i < classes; ++i) {
      config["id2label"][std::to_string(i)] = "LABEL_" + std::to_string(i);
      config["label2id"]["LABEL_" + std::to_string(i)] = i;
    }
  }

  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) throw InputError(folder + ": cannot create the folder (" + ec.message() + ")");
  // transformers refuses a safetensors file without {"format": "pt"}. The weights go first, so
  // that a config.json is never seen without them.
  write_safetensors((fs::path(folder) / "model.safetensors").string(), hf, {{"format", "pt"}});
  write_file_atomic((fs::path(folder) / "config.json").string(), config.dump(2) + "\n");
}

std::map<std::string, torch::Tensor> load_weights(const std::string& path, const models::ModelConfig& cfg,
                                                  std::vector<std::string>* notes) {
  if (!is_hf_checkpoint(path)) return load_state_dict(path);
  return hf_to_floe(read_hf_checkpoint(path), cfg, notes);
}

nlohmann::json read_hf_config(const std::string& path) {
  const auto file = fs::path(path) / "config.json";
  std::error_code ec;
  if (!fs::is_directory(path, ec) || !fs::is_regular_file(file, ec)) return nullptr;
  std::ifstream in(file);
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw InputError(file.string() + ": not JSON (" + e.what() + ")");
  }
}

void save_weights(const std::string& path, const std::map<std::string, torch::Tensor>& weights, const JobConfig& cfg) {
  if (cfg.save_format != "hf") return save_state_dict(path, weights);
  write_hf_checkpoint(path, weights, cfg.model);
  if (cfg.model.kind == "bert") models::write_vocab(models::read_vocab(vocab_path(cfg)), path + "/vocab.txt");
}

}  // namespace floe::runtime
