#pragma once
// The arithmetic of one pipeline stage, free of actors: forward and backward per
// micro-batch over a contiguous range of units, the loss on the last stage, the gradient
// all-reduce with the same stage of the other replicas, and the AdamW step. The stage
// actor decides when each of these runs (its program); this class decides what they do.
#include "models/unit.hpp"
#include "runtime/state/activation_cache.hpp"
#include "runtime/comm/gradient_group.hpp"
#include "runtime/config/job_config.hpp"

#include <map>
#include <memory>

namespace floe::models {
class WeightGrads;
}

namespace floe::runtime {

// AdamW over `params` with the job's hyper-parameters; shared with reference loops so
// that floe and plain LibTorch step identically.
std::unique_ptr<torch::optim::AdamW> make_optimizer(const std::vector<torch::Tensor>& params,
                                                    const OptimizerConfig& cfg);
// The same over parameter groups, each stepped at its own rate (StageCompute: one per block).
std::unique_ptr<torch::optim::AdamW> make_optimizer(std::vector<torch::optim::OptimizerParamGroup> groups,
                                                    const OptimizerConfig& cfg);
void set_learning_rate(torch::optim::Optimizer& opt, double lr);

using NamedTensors = std::map<std::string, torch::Tensor>;

struct LossStats {
  double loss_sum = 0;  // sum of the targets' cross-entropy
  int64_t correct = 0;  // targets predicted right
  int64_t samples = 0;
  int64_t targets = 0;  // one per sample (classification) or per masked token (MLM)
  // Set by the caller before an evaluation step: per micro-batch, the softmax of the
  // classification logits [n, classes] (floe eval --predictions).
  bool keep_probabilities = false;
  std::map<int, torch::Tensor> probabilities;
};

// The summed cross-entropy of `logits` against `target`, how many targets it scores and how
// many the argmax gets right. Logits [N, C] against labels [N]; or logits [N, L, V] against
// token ids [N, L], where models::kIgnoreTarget marks positions not predicted (MLM).
struct LossTerms {
  torch::Tensor loss_sum;
  int64_t correct = 0, targets = 0;
};
LossTerms loss_terms(const torch::Tensor& logits, const torch::Tensor& target);

// Whether a stage's program splits backward into I and W (begin_step's `split`).
bool splits_backward(const std::vector<Action>& program);

class StageCompute {
 public:
  // `frozen` units run first, in eval mode and without gradients (the frozen prefix on the
  // pipeline's first device); `units` train. `optimizer_state` (from export_optimizer_state
  // of the stages that held these units before) continues AdamW where it was.
  // With a `cache`, the frozen prefix's outputs come from (and go to) AutoCache.
  StageCompute(models::UnitList frozen, models::UnitList units, bool first, bool last, const OptimizerConfig& opt,
               std::shared_ptr<GradientGroup> group, int rank, const NamedTensors& optimizer_state = {},
               std::shared_ptr<ActivationCache> cache = nullptr);

  bool first() const { return first_; }
  bool last() const { return last_; }

  // Starts a step: clears gradients and saved micro-batches. `split`: the step's program
  // splits backward into I and W (the forwards keep what W needs). `probe`: keep the first
  // training micro-batch's input for block_plasticity().
  void begin_step(bool train, bool split = false, bool probe = false);
  // Runs the units on micro-batch `mb`. Not last: returns the output to send on. `uids`
  // (int64, first stage) names the input's samples for the cache; undefined: no caching.
  torch::Tensor forward(int mb, torch::Tensor input, const torch::Tensor& uids = {});
  // Last stage: forward plus cross-entropy against `target`; the loss that backward will
  // differentiate is sum(loss) * scale, so gradients add up to the global-batch mean.
  void forward_loss(int mb, torch::Tensor input, torch::Tensor target, double scale, LossStats& stats,
                    const torch::Tensor& uids = {});
  // Backpropagates micro-batch `mb` (grad_output ignored on the last stage). Returns the
  // gradient for the previous stage, undefined on the first.
  torch::Tensor backward(int mb, torch::Tensor grad_output);
  // Split backward: I returns what backward returns and keeps the linear layers' weight
  // gradients of `mb` for W, which accumulates them (begin_step with split).
  torch::Tensor backward_input(int mb, torch::Tensor grad_output);
  void backward_weight(int mb);
  // Sums gradients over the replicas' copies of this stage.
  void reduce();
  // The AdamW step at rate `lr`; with `block_lr` (freeze.anneal, msg::stage_task::block_lr)
  // each unit of block b in [0, size) at block_lr[b], the embedding at block_lr[0], the rest at lr.
  void step(double lr, const std::vector<double>& block_lr = {});

  std::vector<std::string> parameter_names() const;
  // Copies of every parameter of the stage, frozen prefix included, by qualified name.
  NamedTensors export_parameters() const;
  // AdamW state per trainable parameter: "<name>#step", "<name>#exp_avg", "<name>#exp_avg_sq".
  NamedTensors export_optimizer_state() const;
  // The optimizer steps this stage's trainable units have taken (AdamW's count, carried
  // through transitions; 0 before the first); -1 when the stage has nothing to train.
  int64_t optimizer_step() const;
  // Per block (unit.block), the squared L2 norm of this step's reduced gradients.
  std::map<int, double> block_gradient_norms_sq() const;
  // Per block of the trainable units, how far its output moved since the previous call
  // (freeze.policy = "plasticity"): on the probe kept by this step's begin_step, up to 64
  // samples, each unit's output with its weights now and with its weights at the previous
  // call, given the same input, in eval mode; ||now − then||² / ||then||² summed per block.
  // The first call (and a call without a probe) only takes the reference and returns nothing.
  // Call after the optimizer step.
  std::map<int, double> block_plasticity();
  std::vector<torch::Tensor> parameters() const { return params_; }
  std::vector<torch::Tensor> gradients() const;

 private:
  models::UnitList frozen_, units_;
  bool first_, last_, train_ = true;
  std::vector<torch::Tensor> params_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;  // one parameter group per unit block
  std::vector<int> group_blocks_;                   // the block of each group
  std::shared_ptr<GradientGroup> group_;
  int rank_;
  std::shared_ptr<ActivationCache> cache_;
  torch::Tensor run_frozen(torch::Tensor x, const torch::Tensor& uids) const;
  struct Saved {
    torch::Tensor input, output;
    std::shared_ptr<models::WeightGrads> weights;  // split backward: what W needs
  };
  bool split_ = false;
  bool probe_wanted_ = false;
  torch::Tensor probe_;                               // block_plasticity's input
  std::vector<std::vector<torch::Tensor>> reference_;  // per unit, its weights at the last measurement
  void keep_probe(const torch::Tensor& input);
  torch::Tensor run_units(int mb, const torch::Tensor& input);
  torch::Tensor backprop(Saved& saved, const torch::Tensor& grad_output);
  std::map<int, Saved> saved_;
};

}  // namespace floe::runtime
