#pragma once
// Hugging Face checkpoints of BERT and ViT, read into floe's parameter names and written back.
//
// A checkpoint is a folder as `save_pretrained` writes it: config.json plus model.safetensors or
// pytorch_model.bin (safetensors preferred when both exist; a sharded *.index.json of either is
// read too), or one .safetensors / .bin file on its own (no config: the family is guessed from
// the names, the shape keys must come from the job). Read: read_hf_checkpoint, then
// apply_hf_config (the shape keys), then hf_to_floe (the names). Write: write_hf_checkpoint.
//
// Names. One table (hf_checkpoint.cpp, kBertNames and kVitNames) maps HF names, without the
// family prefix ("bert.", "vit.") that the *For* architectures add, onto floe's; an entry is a
// whole name, or a prefix ending in "." (or "_") that carries "weight" or "bias" along; {N} is
// the block index. ViT's separate query, key and value projections are slices 0, 1, 2 of
// LibTorch's stacked in_proj_weight [3D, D] and in_proj_bias [3D] (rows q; k; v).
//
// Reading (hf_to_floe), rules in order:
//   - TF-era names "LayerNorm.gamma" / "LayerNorm.beta" read as ".weight" / ".bias";
//   - buffers (embeddings.position_ids, embeddings.token_type_ids) are dropped silently;
//   - a known tensor that this task has no place for (BERT's pooler for task "mlm", the MLM
//     head for "classify", BertForPreTraining's next-sentence head, ViTModel's pooler) is
//     dropped with a note;
//   - a tensor the table does not know keeps its HF name, so that models::match_weights
//     reports it as unexpected by that name (init_skip can still accept it);
//   - two HF tensors that land on one floe name (a tied cls.predictions.decoder.bias beside
//     cls.predictions.bias) must be equal: one is kept; unequal ones throw;
//   - BERT MLM: the decoder matrix is the word embeddings when config.json ties them
//     (tie_word_embeddings, true unless it says false, as transformers does) or the checkpoint
//     has no cls.predictions.decoder.weight; floe keeps it as a matrix of its own (docs/models.md);
//   - a position table longer than model.max_len is cut to its first max_len rows (noted):
//     the positions past it are never used;
//   - floating tensors become float32 (floe trains in float32).
//
// Errors are floe::InputError naming the path and what was expected: a folder with neither
// config.json nor weights, weights missing beside a config.json, an architecture or model_type
// other than BERT's and ViT's, an unsupported config value (hidden_act other than "gelu",
// position_embedding_type other than "absolute", a decoder), a q/k/v triple with a part
// missing, a config key that the job set to another value.
#include "models/model.hpp"
#include "runtime/config/job_config.hpp"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <map>
#include <set>
#include <string>
#include <vector>

namespace floe::runtime {

struct HfCheckpoint {
  std::string path;          // what was asked for: the folder or the file
  std::string config_path;   // its config.json; empty when there is none
  std::string weights_path;  // the weights file (or the index of a sharded checkpoint)
  std::string architecture;  // config "architectures"[0], e.g. "BertForMaskedLM"; empty without one
  std::string model_type;    // "bert" | "vit": config "model_type", else guessed from the names
  nlohmann::json config;     // config.json; null when there is none
  std::map<std::string, torch::Tensor> tensors;  // by HF name, as stored
};

// True for a folder holding config.json or one of the weight files above, or a file whose
// name ends in .safetensors or .bin (floe's own state dicts, *.pt, are not). Looks at names only.
bool is_hf_checkpoint(const std::string& path);

// Reads the folder or file. Throws floe::InputError naming the path (see above).
HfCheckpoint read_hf_checkpoint(const std::string& path);

// Sets the shape keys of `cfg` from config.json (a key it lacks has transformers' default for
// the model_type): model_type -> kind, hidden_size -> dim, num_hidden_layers -> depth,
// num_attention_heads -> heads, intermediate_size -> ffn_dim, layer_norm_eps; BERT:
// vocab_size, max_position_embeddings -> max_len, type_vocab_size; ViT: image_size,
// patch_size -> patch, num_channels -> channels; and, for a *For*Classification architecture,
// the size of id2label (or num_labels) -> classes. `keys_set_by_job` holds the keys the job set
// explicitly, named as the job names them ("model.dim"): such a key keeps its value and must
// equal the checkpoint's, else floe::InputError "model.dim = 128 in the job but hidden_size =
// 64 in <what>" (one exception: model.max_len may be shorter than max_position_embeddings; the
// table is cut). A key the job did not set takes the checkpoint's value. Dropout and the task
// stay the job's. `what` names config.json in messages.
void apply_hf_config(const nlohmann::json& config, models::ModelConfig& cfg, const std::set<std::string>& keys_set_by_job,
                     const std::string& what = "config.json");

// The tensors under floe's names for a model of `cfg` (after apply_hf_config). `notes`, when
// given, receives one line per tensor dropped or derived, for the job's log.
std::map<std::string, torch::Tensor> hf_to_floe(const HfCheckpoint& checkpoint, const models::ModelConfig& cfg,
                                                std::vector<std::string>* notes = nullptr);

// The weights at `path` under floe's names: a Hugging Face checkpoint (is_hf_checkpoint)
// through hf_to_floe, else a PyTorch state dict in floe's names (save_weights, torch.save).
std::map<std::string, torch::Tensor> load_weights(const std::string& path, const models::ModelConfig& cfg,
                                                  std::vector<std::string>* notes = nullptr);

// The config.json of the checkpoint at `path`, or null when it has none (not a folder, or
// no config.json in it). Throws floe::InputError when the file is not JSON.
nlohmann::json read_hf_config(const std::string& path);

// The job's final weights as save_format says: a state dict in floe's names at `path`, or a
// Hugging Face folder (write_hf_checkpoint) with, for BERT, the job's vocab.txt beside the
// weights, as transformers ships a tokenizer with its model.
void save_weights(const std::string& path, const std::map<std::string, torch::Tensor>& weights, const JobConfig& cfg);

// Writes floe weights of a model of `cfg` as a Hugging Face folder that transformers loads:
// config.json (BertForSequenceClassification, BertForMaskedLM or ViTForImageClassification,
// every shape key, layer_norm_eps, hidden_act "gelu", num_labels and id2label; for MLM
// tie_word_embeddings false, since floe's decoder is its own matrix) and model.safetensors
// with HF names (ViT's in_proj split into query, key, value). The folder is created when
// missing; each file appears atomically, the weights before config.json. Throws
// floe::InputError naming the folder and the tensor when a floe name has no HF counterpart.
void write_hf_checkpoint(const std::string& folder, const std::map<std::string, torch::Tensor>& floe_weights,
                         const models::ModelConfig& cfg);

}  // namespace floe::runtime
