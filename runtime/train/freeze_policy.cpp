#include "runtime/train/freeze_policy.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <numeric>
#include <stdexcept>

namespace floe::runtime {
namespace {

// Just enough of an unsigned big integer to compare k·b^e with L·a^e exactly: the schedule's
// powers outgrow 128 bits for small α over long runs (α = 1/1000 needs ~2500 epochs to reach L).
class BigUnsigned {
 public:
  explicit BigUnsigned(uint32_t value) : limbs_{value} {}

  void multiply(uint32_t factor) {
    uint64_t carry = 0;
    for (uint32_t& limb : limbs_) {
      const uint64_t product = uint64_t{limb} * factor + carry;
      limb = static_cast<uint32_t>(product);
      carry = product >> 32;
    }
    if (carry != 0) limbs_.push_back(static_cast<uint32_t>(carry));
    trim();
  }

  friend bool operator<(const BigUnsigned& lhs, const BigUnsigned& rhs) {
    if (lhs.limbs_.size() != rhs.limbs_.size()) return lhs.limbs_.size() < rhs.limbs_.size();
    for (size_t i = lhs.limbs_.size(); i-- > 0;) {
      if (lhs.limbs_[i] != rhs.limbs_[i]) return lhs.limbs_[i] < rhs.limbs_[i];
    }
    return false;
  }

 private:
  void trim() {
    while (limbs_.size() > 1 && limbs_.back() == 0) limbs_.pop_back();
  }
  std::vector<uint32_t> limbs_;
};

BigUnsigned times(BigUnsigned value, uint32_t factor) {
  value.multiply(factor);
  return value;
}

void check_alpha(double alpha, const char* where) {
  if (!(alpha >= 0.0 && alpha <= 1.0)) {
    throw std::invalid_argument(std::string(where) + ": alpha = " + std::to_string(alpha) +
                                ", expected a value in [0, 1]");
  }
}

// The most a decision may freeze: current + max(1, floor(α · active)), or current when α = 0
// or nothing is active (adaptive_frozen_count's bound; 1e-9 absorbs α · n rounding).
int freeze_bound(int current, int layers, double alpha) {
  const int active = layers - current;
  if (active <= 0 || alpha == 0.0) return current;
  return std::min(layers, current + std::max(1, static_cast<int>(std::floor(alpha * active + 1e-9))));
}

void check_observation(const FreezeObservation& obs, const std::string& policy) {
  if (obs.layers < 0 || obs.frozen < 0 || obs.frozen > obs.layers) {
    throw std::invalid_argument(
        "freeze policy '" + policy + "': observation has frozen = " + std::to_string(obs.frozen) +
        ", layers = " + std::to_string(obs.layers) + ", expected 0 <= frozen <= layers");
  }
}

}  // namespace

int schedule_frozen_count(int layers, int alpha_num, int alpha_den, int epoch) {
  if (layers < 0) {
    throw std::invalid_argument("schedule_frozen_count: layers = " + std::to_string(layers) +
                                ", expected >= 0");
  }
  if (epoch < 0) {
    throw std::invalid_argument("schedule_frozen_count: epoch = " + std::to_string(epoch) +
                                ", expected >= 0");
  }
  if (alpha_den <= 0 || alpha_num < 0 || alpha_num > alpha_den) {
    throw std::invalid_argument("schedule_frozen_count: alpha = " + std::to_string(alpha_num) +
                                "/" + std::to_string(alpha_den) +
                                ", expected a fraction in [0, 1] with a positive denominator");
  }
  if (alpha_num == 0 || epoch == 0 || layers == 0) return 0;
  if (alpha_num == alpha_den) return layers;

  // With q = (1 − α) = a/b in lowest terms: ceil(L − L·q^e) = L − floor(L·a^e / b^e), and the
  // floor is the largest k in [0, L] with k·b^e <= L·a^e.
  const int g = std::gcd(alpha_den - alpha_num, alpha_den);
  const auto a = static_cast<uint32_t>((alpha_den - alpha_num) / g);
  const auto b = static_cast<uint32_t>(alpha_den / g);
  const auto L = static_cast<uint32_t>(layers);

  BigUnsigned scaled_remaining(L);  // L·a^e
  BigUnsigned denominator(1);       // b^e
  for (int e = 0; e < epoch; ++e) {
    scaled_remaining.multiply(a);
    denominator.multiply(b);
    // L·q^e only shrinks; once it is below 1 every later epoch freezes all L blocks.
    if (scaled_remaining < denominator) return layers;
  }
  uint32_t lo = 0, hi = L;  // invariant: lo·b^e <= L·a^e; hi·b^e > L·a^e unless hi = lo
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo + 1) / 2;
    if (scaled_remaining < times(denominator, mid)) {
      hi = mid - 1;
    } else {
      lo = mid;
    }
  }
  return layers - static_cast<int>(lo);
}

int clamp_frozen_count(int proposed, int current_frozen, int layers) {
  if (current_frozen < 0 || current_frozen > layers) {
    throw std::invalid_argument(
        "clamp_frozen_count: current_frozen = " + std::to_string(current_frozen) +
        ", expected in [0, " + std::to_string(layers) + "]");
  }
  return std::max(current_frozen, std::min(proposed, layers));
}

int adaptive_frozen_count(int current_frozen, int layers, double alpha,
                          const std::vector<double>& grad_norms,
                          const std::vector<double>& prev_grad_norms) {
  check_alpha(alpha, "adaptive_frozen_count");
  if (layers < 0 || current_frozen < 0 || current_frozen > layers) {
    throw std::invalid_argument(
        "adaptive_frozen_count: current_frozen = " + std::to_string(current_frozen) +
        ", layers = " + std::to_string(layers) + ", expected 0 <= current <= layers");
  }
  const auto expect_per_block = [layers](const std::vector<double>& norms, const char* what) {
    if (norms.size() != static_cast<size_t>(layers)) {
      throw std::invalid_argument(
          std::string("adaptive_frozen_count: ") + what + " has " + std::to_string(norms.size()) +
          " entries, expected one per block (" + std::to_string(layers) + ")");
    }
    for (size_t i = 0; i < norms.size(); ++i) {
      if (!std::isfinite(norms[i]) || norms[i] < 0.0) {
        throw std::invalid_argument(std::string("adaptive_frozen_count: ") + what + "[" +
                                    std::to_string(i) + "] = " + std::to_string(norms[i]) +
                                    ", expected a finite value >= 0");
      }
    }
  };
  expect_per_block(grad_norms, "grad_norms");
  expect_per_block(prev_grad_norms, "prev_grad_norms");

  const int bound = freeze_bound(current_frozen, layers, alpha);
  if (bound == current_frozen) return current_frozen;

  int most_converged = -1;
  double smallest_change = 0.0;
  for (int l = current_frozen; l < layers; ++l) {
    const double prev = prev_grad_norms[static_cast<size_t>(l)];
    if (prev == 0.0) continue;  // no baseline: cannot tell whether it converged
    const double change = std::fabs(grad_norms[static_cast<size_t>(l)] - prev) / prev;
    if (most_converged < 0 || change < smallest_change) {
      most_converged = l;
      smallest_change = change;
    }
  }
  if (most_converged < 0) return current_frozen;
  return clamp_frozen_count(std::min(bound, most_converged + 1), current_frozen, layers);
}

FreezePolicy::~FreezePolicy() = default;

int NoFreeze::decide(const FreezeObservation& obs) {
  check_observation(obs, name());
  return obs.frozen;
}

std::string NoFreeze::name() const { return "none"; }

SchedulePolicy::SchedulePolicy(int layers, int alpha_num, int alpha_den, int start)
    : layers_(layers), alpha_num_(alpha_num), alpha_den_(alpha_den), start_(start) {
  if (start < 1) throw std::invalid_argument("freeze policy 'schedule': start = " + std::to_string(start) + ", expected >= 1");
  // Validates the arguments once, so a misconfigured policy fails at construction.
  schedule_frozen_count(layers, alpha_num, alpha_den, 0);
}

int SchedulePolicy::decide(const FreezeObservation& obs) {
  check_observation(obs, name());
  if (obs.layers != layers_) {
    throw std::invalid_argument("freeze policy 'schedule': built for " + std::to_string(layers_) +
                                " layers, observation has " + std::to_string(obs.layers));
  }
  if (obs.when() < 0) {
    throw std::invalid_argument("freeze policy 'schedule': epoch = " + std::to_string(obs.when()) +
                                ", expected >= 0");
  }
  const int timestep = std::max(0, obs.when() - start_ + 1);
  return clamp_frozen_count(schedule_frozen_count(layers_, alpha_num_, alpha_den_, timestep), obs.frozen, obs.layers);
}

std::string SchedulePolicy::name() const { return "schedule"; }

AdaptivePolicy::AdaptivePolicy(double alpha) : alpha_(alpha) {
  check_alpha(alpha, "freeze policy 'adaptive'");
}

int AdaptivePolicy::decide(const FreezeObservation& obs) {
  check_observation(obs, name());
  if (obs.grad_norms.empty()) return obs.frozen;
  if (obs.grad_norms.size() != static_cast<size_t>(obs.layers)) {
    throw std::invalid_argument(
        "freeze policy 'adaptive': grad_norms has " + std::to_string(obs.grad_norms.size()) +
        " entries, expected one per layer (" + std::to_string(obs.layers) + ")");
  }
  if (prev_grad_norms_.empty()) {
    prev_grad_norms_ = obs.grad_norms;
    return obs.frozen;
  }
  if (prev_grad_norms_.size() != obs.grad_norms.size()) {
    throw std::invalid_argument("freeze policy 'adaptive': previous interval had " +
                                std::to_string(prev_grad_norms_.size()) +
                                " layers, this observation has " + std::to_string(obs.layers));
  }
  const int frozen =
      adaptive_frozen_count(obs.frozen, obs.layers, alpha_, obs.grad_norms, prev_grad_norms_);
  prev_grad_norms_ = obs.grad_norms;
  return frozen;
}

std::string AdaptivePolicy::name() const { return "adaptive"; }

ManualPolicy::ManualPolicy(std::vector<std::pair<long, int>> script) : script_(std::move(script)) {
  std::stable_sort(script_.begin(), script_.end(),
                   [](const auto& lhs, const auto& rhs) { return lhs.first < rhs.first; });
  for (size_t i = 0; i < script_.size(); ++i) {
    const auto [epoch, frozen] = script_[i];
    const std::string entry = "(" + std::to_string(epoch) + ", " + std::to_string(frozen) + ")";
    if (epoch < 0 || frozen < 0) {
      throw std::invalid_argument("freeze policy 'manual': script entry " + entry +
                                  ", expected epoch >= 0 and frozen count >= 0");
    }
    if (i > 0 && script_[i - 1].first == epoch) {
      throw std::invalid_argument("freeze policy 'manual': epoch " + std::to_string(epoch) +
                                  " appears twice in the script, expected one count per epoch");
    }
    if (i > 0 && script_[i - 1].second > frozen) {
      throw std::invalid_argument("freeze policy 'manual': script entry " + entry +
                                  " lowers the frozen count from " +
                                  std::to_string(script_[i - 1].second) +
                                  ", expected non-decreasing counts (freezing is monotone)");
    }
  }
}

int ManualPolicy::decide(const FreezeObservation& obs) {
  check_observation(obs, name());
  const auto after = std::upper_bound(
      script_.begin(), script_.end(), static_cast<long>(obs.when()),
      [](long epoch, const std::pair<long, int>& entry) { return epoch < entry.first; });
  if (after == script_.begin()) return obs.frozen;
  return clamp_frozen_count(std::prev(after)->second, obs.frozen, obs.layers);
}

std::string ManualPolicy::name() const { return "manual"; }

PlasticityPolicy::PlasticityPolicy(double alpha, double threshold) : alpha_(alpha), threshold_(threshold) {
  check_alpha(alpha, "freeze policy 'plasticity'");
  if (!(threshold > 0.0 && threshold <= 1.0))
    throw std::invalid_argument("freeze policy 'plasticity': threshold = " + std::to_string(threshold) +
                                ", expected a share of the peak in (0, 1]");
}

int PlasticityPolicy::decide(const FreezeObservation& obs) {
  check_observation(obs, name());
  if (obs.plasticity.empty()) return obs.frozen;
  if (obs.plasticity.size() != static_cast<size_t>(obs.layers))
    throw std::invalid_argument("freeze policy 'plasticity': " + std::to_string(obs.plasticity.size()) +
                                " plasticity values, expected one per layer (" + std::to_string(obs.layers) + ")");
  if (peaks_.size() != obs.plasticity.size()) peaks_.assign(obs.plasticity.size(), -1.0);
  // Converged: measured now, below an earlier peak by the threshold. Peaks take this decision's
  // values afterwards, so a block is never judged against a peak of the same interval.
  auto converged = [&](int b) {
    const double p = obs.plasticity[static_cast<size_t>(b)], peak = peaks_[static_cast<size_t>(b)];
    return std::isfinite(p) && p >= 0.0 && peak > 0.0 && p <= threshold_ * peak;
  };
  const int bound = freeze_bound(obs.frozen, obs.layers, alpha_);
  int frozen = obs.frozen;
  while (frozen < bound && converged(frozen)) ++frozen;
  for (size_t b = 0; b < peaks_.size(); ++b)
    if (std::isfinite(obs.plasticity[b])) peaks_[b] = std::max(peaks_[b], obs.plasticity[b]);
  return clamp_frozen_count(frozen, obs.frozen, obs.layers);
}

std::string PlasticityPolicy::name() const { return "plasticity"; }

PlasticityWindow::PlasticityWindow(int blocks) {
  if (blocks < 0) throw std::invalid_argument("plasticity window: blocks = " + std::to_string(blocks) + ", expected >= 0");
  sums_.assign(static_cast<size_t>(blocks), 0.0);
  counts_.assign(static_cast<size_t>(blocks), 0);
}

void PlasticityWindow::add(const std::vector<int>& blocks, const std::vector<double>& value) {
  if (blocks.size() != value.size())
    throw std::invalid_argument("plasticity window: " + std::to_string(blocks.size()) + " blocks with " +
                                std::to_string(value.size()) + " values");
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (blocks[i] < 0 || blocks[i] >= static_cast<int>(sums_.size()) || !(std::isfinite(value[i]) && value[i] >= 0))
      continue;
    sums_[static_cast<size_t>(blocks[i])] += value[i];
    ++counts_[static_cast<size_t>(blocks[i])];
  }
}

std::vector<double> PlasticityWindow::take() {
  std::vector<double> mean(sums_.size(), -1.0);
  bool any = false;
  for (size_t b = 0; b < sums_.size(); ++b)
    if (counts_[b] > 0) {
      mean[b] = sums_[b] / counts_[b];
      any = true;
    }
  std::fill(sums_.begin(), sums_.end(), 0.0);
  std::fill(counts_.begin(), counts_.end(), 0);
  return any ? mean : std::vector<double>{};
}

std::vector<std::string> freeze_policy_names() {
  return {"none", "schedule", "adaptive", "manual", "plasticity"};
}

std::unique_ptr<FreezePolicy> make_freeze_policy(const std::string& name,
                                                 const FreezePolicyConfig& config) {
  if (name == "none") return std::make_unique<NoFreeze>();
  if (name == "schedule") {
    return std::make_unique<SchedulePolicy>(config.layers, config.alpha_num, config.alpha_den, config.start);
  }
  // α as a number, for the policies that bound each decision by it.
  auto alpha = [&] {
    if (config.alpha_den <= 0)
      throw std::invalid_argument("freeze policy '" + name + "': alpha_den = " + std::to_string(config.alpha_den) +
                                  ", expected > 0");
    return static_cast<double>(config.alpha_num) / config.alpha_den;
  };
  if (name == "adaptive") return std::make_unique<AdaptivePolicy>(alpha());
  if (name == "manual") return std::make_unique<ManualPolicy>(config.script);
  if (name == "plasticity") return std::make_unique<PlasticityPolicy>(alpha(), config.threshold);

  std::string valid;
  for (const auto& known : freeze_policy_names()) {
    valid += (valid.empty() ? "" : ", ") + known;
  }
  throw std::invalid_argument("unknown freeze policy '" + name + "', expected one of: " + valid);
}

GradientWindow::GradientWindow(int blocks, int64_t window) : window_(window) {
  if (blocks < 0 || window < 0)
    throw std::invalid_argument("gradient window: blocks = " + std::to_string(blocks) + ", window = " +
                                std::to_string(window) + ", expected both >= 0");
  sums_.assign(static_cast<size_t>(blocks), 0.0);
}

void GradientWindow::add_step(const std::vector<int>& blocks, const std::vector<double>& sq) {
  if (blocks.size() != sq.size())
    throw std::invalid_argument("gradient window: " + std::to_string(blocks.size()) + " blocks with " +
                                std::to_string(sq.size()) + " norms");
  if (window_ > 0)
    for (double& x : sums_) x *= 1.0 - 1.0 / static_cast<double>(window_);
  for (size_t i = 0; i < blocks.size(); ++i)
    if (blocks[i] >= 0 && blocks[i] < static_cast<int>(sums_.size())) sums_[static_cast<size_t>(blocks[i])] += sq[i];
}

std::vector<double> GradientWindow::take() {
  std::vector<double> norms;
  for (double x : sums_) norms.push_back(std::sqrt(x));
  if (window_ == 0) std::fill(sums_.begin(), sums_.end(), 0.0);
  return norms;
}

void GradientWindow::restore(const std::vector<double>& sums) {
  if (sums.size() != sums_.size())
    throw std::invalid_argument("gradient window: " + std::to_string(sums.size()) + " saved sums, expected one per block (" +
                                std::to_string(sums_.size()) + ")");
  for (double x : sums)
    if (!(std::isfinite(x) && x >= 0.0)) throw std::invalid_argument("gradient window: a saved sum is " + std::to_string(x));
  sums_ = sums;
}

GuardedPolicy::GuardedPolicy(std::unique_ptr<FreezePolicy> inner, double tolerance)
    : inner_(std::move(inner)), tolerance_(tolerance) {
  if (!inner_) throw std::invalid_argument("guard: no policy to guard");
  if (!(tolerance >= 0.0 && std::isfinite(tolerance)))
    throw std::invalid_argument("guard: tolerance = " + std::to_string(tolerance) + ", expected a finite value >= 0");
}

int GuardedPolicy::decide(const FreezeObservation& obs) {
  check_observation(obs, name());
  const bool fresh = obs.evaluations > checked_ && obs.val_loss >= 0.0;
  if (reference_ >= 0.0 && fresh) {
    holding_ = obs.val_loss > reference_ * (1.0 + tolerance_);
    checked_ = obs.evaluations;
    if (!holding_) reference_ = -1;  // recovered: the next freeze sets a new reference
  }
  FreezeObservation shifted = obs;
  shifted.timestep = std::max(0, obs.when() - held_ - (holding_ ? 1 : 0));
  const int proposed = clamp_frozen_count(inner_->decide(shifted), obs.frozen, obs.layers);
  if (holding_) {
    ++held_;
    return obs.frozen;
  }
  if (proposed > obs.frozen && obs.val_loss >= 0.0) {
    reference_ = obs.val_loss;
    checked_ = obs.evaluations;
  }
  return proposed;
}

std::string GuardedPolicy::name() const { return inner_->name() + "+guard"; }

std::vector<double> GuardedPolicy::state() const {
  std::vector<double> out{static_cast<double>(held_), reference_, static_cast<double>(checked_), holding_ ? 1.0 : 0.0};
  const auto inner = inner_->state();
  out.insert(out.end(), inner.begin(), inner.end());
  return out;
}

void GuardedPolicy::restore(const std::vector<double>& state) {
  if (state.size() < 4) throw std::invalid_argument("guard: a saved state of " + std::to_string(state.size()) + " values, expected at least 4");
  held_ = static_cast<int>(state[0]);
  reference_ = state[1];
  checked_ = static_cast<int>(state[2]);
  holding_ = state[3] != 0.0;
  inner_->restore(std::vector<double>(state.begin() + 4, state.end()));
}

KeepTopPolicy::KeepTopPolicy(std::unique_ptr<FreezePolicy> inner, int keep) : inner_(std::move(inner)), keep_(keep) {
  if (!inner_) throw std::invalid_argument("keep_top: no policy to cap");
  if (keep < 0) throw std::invalid_argument("keep_top = " + std::to_string(keep) + ", expected >= 0");
}

int KeepTopPolicy::decide(const FreezeObservation& obs) {
  check_observation(obs, name());
  const int proposed = clamp_frozen_count(inner_->decide(obs), obs.frozen, obs.layers);
  return std::max(obs.frozen, std::min(proposed, obs.layers - keep_));
}

std::string KeepTopPolicy::name() const { return inner_->name() + "+keep" + std::to_string(keep_); }

}  // namespace floe::runtime
