#pragma once
// Freeze policies: how many bottom blocks are frozen at each freeze timestep.
//
// Freezing is always a contiguous bottom prefix (embedding + blocks 0..F-1), so a decision is a
// single count F. Every policy here is monotone: F never decreases and never exceeds the number
// of blocks. The original PipeTransformer's adaptive path could move F down and ignored the α
// bound (spec §8, items 1-3); these functions cannot.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace floe::runtime {

// ceil(L · (1 − (1 − α)^epoch)) with α = alpha_num / alpha_den, computed exactly in integers.
// This is the bound-only schedule the original actually runs (spec §2.2/§2.3); exact arithmetic
// matters because values such as 4.0 or 9.0 are exact integers whose floating ceil is fragile.
// Requires layers >= 0, epoch >= 0, alpha_den > 0 and 0 <= alpha_num <= alpha_den.
int schedule_frozen_count(int layers, int alpha_num, int alpha_den, int epoch);

// One step of the spec §2.1 rule (reconstructed paper formulation), made monotone and α-bounded:
//
//   bound     = current + max(1, floor(α · (L − current)))      when α > 0 and current < L
//               current                                          when α = 0 or current = L
//   candidate = ℓ* + 1, where ℓ* ∈ [current, L) minimises the relative change of the block's
//               gradient norm between two consecutive intervals,
//                   r_ℓ = |n_ℓ − prev_ℓ| / prev_ℓ ,
//               i.e. the most converged active block (ties: the lowest ℓ, which freezes less).
//               Blocks with prev_ℓ == 0 have no baseline and are not candidates.
//   result    = min(bound, candidate), or current when there is no candidate.
//
// Why floor with a minimum of one: floor keeps a step within "at most a fraction α of the active
// blocks", and the minimum of one block keeps progress possible once α · (L − current) < 1
// (otherwise the top few blocks could never freeze). A tolerance of 1e-9 absorbs the rounding
// of α · n when the product is mathematically an integer (α = 1/3, n = 12).
//
// grad_norms and prev_grad_norms hold one accumulated norm per block (size L); frozen blocks'
// entries are ignored. Throws std::invalid_argument on sizes, negative or non-finite norms, α
// outside [0, 1] or current outside [0, L].
int adaptive_frozen_count(int current_frozen, int layers, double alpha,
                          const std::vector<double>& grad_norms,
                          const std::vector<double>& prev_grad_norms);

// The one place that enforces "monotone bottom prefix": max(current, min(proposed, layers)),
// never below 0. Requires 0 <= current_frozen <= layers.
int clamp_frozen_count(int proposed, int current_frozen, int layers);

// The per-block statistic a policy reads, which the stages measure for it during training.
enum class BlockSignal : int8_t {
  none = 0,
  gradient_norm = 1,  // the squared norm of each block's reduced gradient, every training step
  plasticity = 2,     // how much each block's output moved since the last measurement (StageCompute)
};

// What a policy sees at a freeze timestep. grad_norms has one entry per block, accumulated over
// the interval since the previous decision (empty when no statistics were collected).
struct FreezeObservation {
  int epoch = 0;
  long step = 0;
  int frozen = 0;  // blocks frozen right now
  int layers = 0;  // blocks in the model (L)
  std::vector<double> grad_norms;
  // Per block, the mean plasticity measured since the previous decision (-1: not measured).
  std::vector<double> plasticity;
  // The decision's timestep, what schedules and scripts count: the epoch, or with decisions
  // every N steps (freeze.interval_steps) the intervals of N steps so far. -1: the epoch.
  int timestep = -1;
  // The loss on the job's evaluation set after the latest epoch (-1 before the first) and how
  // many evaluations there have been (GuardedPolicy compares them across its freezes).
  double val_loss = -1;
  int evaluations = 0;
  int when() const { return timestep >= 0 ? timestep : epoch; }
};

class FreezePolicy {
 public:
  virtual ~FreezePolicy();
  // Returns the new frozen count: always in [obs.frozen, obs.layers].
  // Throws std::invalid_argument when the observation is inconsistent (frozen outside
  // [0, layers], a layer count the policy was not built for, mis-sized grad_norms).
  virtual int decide(const FreezeObservation& obs) = 0;
  // The factory name of the policy ("none", "schedule", "adaptive", "manual").
  virtual std::string name() const = 0;
  // What decide() reads: the stages measure only that.
  virtual BlockSignal signal() const { return BlockSignal::gradient_norm; }
  // What decide() remembers between calls, for checkpoints: state() after a decision, given
  // to restore() of a fresh policy on resume, makes it decide as the original would have.
  // Stateless policies keep the defaults.
  virtual std::vector<double> state() const { return {}; }
  virtual void restore(const std::vector<double>& state) {}
};

// Never freezes anything beyond what is already frozen.
class NoFreeze final : public FreezePolicy {
 public:
  int decide(const FreezeObservation& obs) override;
  std::string name() const override;
  BlockSignal signal() const override { return BlockSignal::none; }
};

// The original's default: the count of schedule_frozen_count(L, α, obs.epoch). L is taken
// explicitly and checked against every observation, because the original hard-coded L = 12
// even for 24-block models (spec §8 item 2).
class SchedulePolicy final : public FreezePolicy {
 public:
  // Decisions count from epoch `start`: F at epoch e is schedule_frozen_count(L, α, e - start + 1).
  SchedulePolicy(int layers, int alpha_num, int alpha_den, int start = 1);
  int decide(const FreezeObservation& obs) override;
  std::string name() const override;
  BlockSignal signal() const override { return BlockSignal::none; }

 private:
  int layers_;
  int alpha_num_;
  int alpha_den_;
  int start_;
};

// adaptive_frozen_count over consecutive observations. The first observation with gradient
// norms only records the baseline (freezes nothing more); an observation without norms leaves
// both F and the baseline unchanged.
class AdaptivePolicy final : public FreezePolicy {
 public:
  explicit AdaptivePolicy(double alpha);
  int decide(const FreezeObservation& obs) override;
  std::string name() const override;
  std::vector<double> state() const override { return prev_grad_norms_; }
  void restore(const std::vector<double>& state) override { prev_grad_norms_ = state; }

 private:
  double alpha_;
  std::vector<double> prev_grad_norms_;
};

// A scripted schedule for experiments and scenario tests: (epoch, frozen count) pairs. At an
// epoch the entry with the greatest epoch <= obs.epoch applies; before the first entry nothing
// more is frozen. Counts must be non-decreasing in epoch (a decreasing script would be silently
// ignored by the monotone clamp, so it is rejected up front).
class ManualPolicy final : public FreezePolicy {
 public:
  explicit ManualPolicy(std::vector<std::pair<long, int>> script);
  int decide(const FreezeObservation& obs) override;
  std::string name() const override;
  BlockSignal signal() const override { return BlockSignal::none; }

 private:
  std::vector<std::pair<long, int>> script_;  // sorted by epoch
};

// The per-block gradient norms a freeze decision sees (freeze.window_steps). Each training step
// adds its blocks' squared norms (of the all-reduced gradients). With window = 0 a decision
// reads the sums since the previous decision and they restart at zero. With window = W > 0
// each step first scales the sums by (1 − 1/W): a decision reads an exponentially weighted
// window of about the last W steps, nothing restarts, and the windows of successive decisions
// overlap (a sliding window, evaluated at every decision). The state is one number per block.
class GradientWindow {
 public:
  GradientWindow() = default;
  // Throws std::invalid_argument for blocks < 0 or window < 0.
  GradientWindow(int blocks, int64_t window);
  // One step's squared norms: sq[i] for block blocks[i] (blocks outside [0, blocks) are ignored).
  void add_step(const std::vector<int>& blocks, const std::vector<double>& sq);
  // The norms (square roots of the sums) for a decision; with window = 0 the sums restart.
  std::vector<double> take();
  const std::vector<double>& sums() const { return sums_; }  // what a checkpoint keeps
  // Throws std::invalid_argument when `sums` is not one finite value >= 0 per block.
  void restore(const std::vector<double>& sums);

 private:
  std::vector<double> sums_;
  int64_t window_ = 0;
};

// Plasticity, in the spirit of Egeria (Wang et al., EuroSys 2023): a block whose output has
// stopped moving has converged. The stages measure, every freeze.plasticity_steps training
// steps, each active block's plasticity: ||f(x; θ) − f(x; θ_ref)||² / ||f(x; θ_ref)||² on a
// micro-batch's block input x, where θ_ref are the block's weights at the previous
// measurement (a reference copy refreshed at every measurement), in eval mode (no dropout).
// A decision reads the mean of the interval's measurements per block and remembers each
// block's peak; the bottom-most active blocks whose plasticity has fallen to `threshold` of
// their peak or below freeze, at most max(1, floor(α · active)) blocks per decision (the bound
// of adaptive_frozen_count). A block needs a measurement below an earlier peak, so the first
// decision with measurements only records them. State: the peaks.
class PlasticityPolicy final : public FreezePolicy {
 public:
  // Throws std::invalid_argument for α outside [0, 1] or threshold outside (0, 1].
  PlasticityPolicy(double alpha, double threshold);
  int decide(const FreezeObservation& obs) override;
  std::string name() const override;
  BlockSignal signal() const override { return BlockSignal::plasticity; }
  std::vector<double> state() const override { return peaks_; }
  void restore(const std::vector<double>& state) override { peaks_ = state; }

 private:
  double alpha_, threshold_;
  std::vector<double> peaks_;  // per block, the largest interval mean seen (-1: none)
};

// The plasticity measurements between two decisions: per block, their mean.
class PlasticityWindow {
 public:
  PlasticityWindow() = default;
  explicit PlasticityWindow(int blocks);
  // One measurement: value[i] for block blocks[i] (blocks outside [0, blocks) are ignored).
  void add(const std::vector<int>& blocks, const std::vector<double>& value);
  // Per block, the mean since the last take (-1 where none); restarts.
  std::vector<double> take();

 private:
  std::vector<double> sums_;
  std::vector<int> counts_;
};

// A guard on the validation loss around another policy (freeze.guard, docs/freeze.md). When
// the first evaluation after one of its freezes shows the loss above the loss seen when it
// froze (relatively, by more than `tolerance`), it holds the frozen count, and keeps holding
// until an evaluation shows the loss back at or below it. While it holds, the inner policy's
// clock (obs.when()) is shifted back by the decisions held, so that a schedule resumes where it
// stopped instead of catching up; the inner policy still sees every observation (an adaptive
// rule's baseline stays current). Freezing stays monotone: the guard only delays.
class GuardedPolicy final : public FreezePolicy {
 public:
  explicit GuardedPolicy(std::unique_ptr<FreezePolicy> inner, double tolerance = 0.0);
  int decide(const FreezeObservation& obs) override;
  std::string name() const override;  // the inner name + "+guard"
  BlockSignal signal() const override { return inner_->signal(); }
  std::vector<double> state() const override;
  void restore(const std::vector<double>& state) override;
  int held() const { return held_; }  // decisions held so far

 private:
  std::unique_ptr<FreezePolicy> inner_;
  double tolerance_;
  int held_ = 0;
  double reference_ = -1;  // the loss when the guard last froze; -1: nothing to check
  int checked_ = 0;        // evaluations seen at the last freeze or check
  bool holding_ = false;
};

// Keeps the top `keep` blocks training (freeze.keep_top, docs/freeze.md): the inner policy's
// count, at most layers − keep, never below what is frozen. The inner policy sees every
// observation as it is; state and signal are the inner's.
class KeepTopPolicy final : public FreezePolicy {
 public:
  // Throws std::invalid_argument without an inner policy or for keep < 0.
  KeepTopPolicy(std::unique_ptr<FreezePolicy> inner, int keep);
  int decide(const FreezeObservation& obs) override;
  std::string name() const override;  // the inner name + "+keep<N>"
  BlockSignal signal() const override { return inner_->signal(); }
  std::vector<double> state() const override { return inner_->state(); }
  void restore(const std::vector<double>& state) override { inner_->restore(state); }

 private:
  std::unique_ptr<FreezePolicy> inner_;
  int keep_;
};

// Everything the factory may need; each policy reads only its own fields.
struct FreezePolicyConfig {
  int layers = 0;     // schedule: L
  int alpha_num = 1;  // schedule, adaptive: α = alpha_num / alpha_den
  int alpha_den = 3;
  std::vector<std::pair<long, int>> script;  // manual: (epoch, frozen count)
  int start = 1;  // schedule: the epoch of the first decision (its exponent is epoch - start + 1)
  double threshold = 0.25;  // plasticity: the share of its peak at which a block has converged
};

// The names make_freeze_policy accepts: "none", "schedule", "adaptive", "manual", "plasticity".
std::vector<std::string> freeze_policy_names();

// Throws std::invalid_argument naming the policy and listing the valid names for an unknown
// name, or naming the bad field for an invalid configuration.
std::unique_ptr<FreezePolicy> make_freeze_policy(const std::string& name,
                                                 const FreezePolicyConfig& config);

}  // namespace floe::runtime
