#include "runtime/state/init_weights.hpp"

#include "runtime/state/hf_checkpoint.hpp"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

namespace floe::runtime {

models::WeightMatch model_weights(const models::UnitList& model, const std::map<std::string, torch::Tensor>& weights,
                                  const std::string& what, const std::vector<std::string>& skip) {
  auto m = models::match_weights(model, weights, what, skip);
  if (!m.kept.empty()) spdlog::info("{}: kept the model's own {}", what, fmt::join(m.kept, ", "));
  if (!m.ignored.empty()) spdlog::info("{}: ignored {}", what, fmt::join(m.ignored, ", "));
  return m;
}

models::WeightMatch read_init_weights(const JobConfig& cfg) {
  if (cfg.init_weights.empty()) return {};
  torch::NoGradGuard no_grad;
  torch::manual_seed(cfg.seed);
  const auto model = models::build_model(cfg.model);
  std::vector<std::string> notes;
  const auto weights = load_weights(cfg.init_weights, cfg.model, &notes);
  for (const auto& n : notes) spdlog::info("init_weights {}: {}", cfg.init_weights, n);
  return model_weights(model, weights, "init_weights " + cfg.init_weights, cfg.init_skip);
}

}  // namespace floe::runtime
