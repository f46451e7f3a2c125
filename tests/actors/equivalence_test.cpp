// A pipelined, data-parallel step must compute what one plain LibTorch step computes.
#include <torch/torch.h>

#include "actors/replica.hpp"
#include "messages/registry.hpp"
#include "runtime/train/batch.hpp"
#include "runtime/train/sampler.hpp"
#include "runtime/train/stage_compute.hpp"

#include <catch2/catch.hpp>

#include <map>

using namespace floe;

namespace {

// A batch of short texts of different lengths (ids above the 5 special ones), padded with 0.
models::Dataset tiny_texts(int64_t n, int64_t vocab, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const int64_t longest = 12;
  auto ids = torch::zeros({n, longest}, torch::kInt64);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t len = 3 + (i * 7) % (longest - 2);
    ids[i][0] = 2;  // [CLS]
    ids[i].slice(0, 1, len - 1).copy_(torch::randint(5, vocab, {len - 2}, gen, torch::kInt64));
    ids[i][len - 1] = 3;  // [SEP]
  }
  auto labels = torch::randint(2, {n}, gen, torch::kInt64);
  return {"texts", ids, labels, {vocab, 4, {0, 2, 3, 4}}};
}

models::ModelConfig tiny_bert(const std::string& task) {
  models::ModelConfig c;
  c.kind = "bert";
  c.task = task;
  c.vocab_size = 40;
  c.max_len = 16;
  c.dim = 16;
  c.depth = 2;
  c.heads = 2;
  c.ffn_dim = 24;
  c.classes = 2;
  return c;
}

models::ModelConfig tiny_vit() {
  models::ModelConfig c;
  c.patch = 7;
  c.dim = 16;
  c.depth = 3;
  c.heads = 2;
  c.mlp_ratio = 2;
  return c;
}

double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  const double denom = b.norm().item<double>();
  return (a - b).norm().item<double>() / (denom > 0 ? denom : 1.0);
}

struct Snapshot {
  std::map<std::string, torch::Tensor> grads, params;
};

// The reference: one AdamW step over the whole batch in one process.
Snapshot reference_step(const models::UnitList& units, const models::Batch& b, const runtime::OptimizerConfig& o,
                        double lr) {
  auto params = models::parameters_of(units, 0, units.size());
  auto names = models::parameter_names_of(units, 0, units.size());
  auto opt = runtime::make_optimizer(params, o);
  opt->zero_grad();
  namespace F = torch::nn::functional;
  auto logits = models::forward_range(units, 0, units.size(), b.x);
  // The global batch's mean loss per sample (MLM: the sum over its masked tokens).
  const auto opts = F::CrossEntropyFuncOptions().reduction(torch::kSum).ignore_index(-100);
  (F::cross_entropy(logits.reshape({-1, logits.size(-1)}), b.y.reshape({-1}), opts) / b.x.size(0)).backward();
  Snapshot s;
  for (size_t i = 0; i < params.size(); ++i) s.grads[names[i]] = params[i].grad().clone();
  runtime::set_learning_rate(*opt, lr);
  opt->step();
  for (size_t i = 0; i < params.size(); ++i) s.params[names[i]] = params[i].detach().clone();
  return s;
}

void check_layout(const models::ModelConfig& cfg, const models::Dataset& dataset, std::vector<int> partition,
                  int micro_batches, int replicas, runtime::ScheduleKind schedule, runtime::BatchRecipe recipe = {},
                  int chunks = 1, bool taper = false) {
  torch::set_num_threads(1);
  runtime::OptimizerConfig o;
  o.weight_decay = 0.05;
  const double lr = 1e-3;
  const int64_t batch = 24;
  auto train = std::make_shared<const models::Dataset>(dataset);
  std::vector<int64_t> uids;
  for (int64_t i = 0; i < batch; ++i) uids.push_back((i * 5) % 64);

  torch::manual_seed(3);
  auto ref_units = models::build_model(cfg);
  std::vector<models::UnitList> replicas_units;
  for (int r = 0; r < replicas; ++r) {
    replicas_units.push_back(models::build_model(cfg));
    models::copy_parameters(ref_units, replicas_units.back());
  }
  // Each replica pads its shard to the shard's longest text: the same step all the same.
  const auto expected = reference_step(ref_units, runtime::make_batch(*train, uids, true, 0, recipe), o, lr);

  msg::system_config sys_cfg;
  caf::actor_system sys{sys_cfg};
  actors::PipelineLayout layout;
  layout.units_per_stage = partition;
  layout.replicas = replicas;
  layout.micro_batches = micro_batches;
  layout.schedule = schedule;
  layout.batches = recipe;
  layout.chunks = chunks;
  auto pipes = actors::spawn_pipelines(sys, layout, replicas_units, o, train, train);
  caf::scoped_actor self{sys};
  for (int r = 0; r < replicas; ++r) {
    const int64_t per = batch / replicas;
    std::vector<int64_t> shard(uids.begin() + r * per, uids.begin() + (r + 1) * per);
    msg::replica_step step{0, true, lr, shard, batch};
    step.taper = static_cast<int8_t>(taper ? runtime::Taper::on : runtime::Taper::off);
    self->send(pipes[r].replica, step);
  }
  int64_t samples = 0;
  for (int r = 0; r < replicas; ++r)
    self->receive([&](msg::step_report& rep) { samples += rep.samples; },
                  [&](caf::error& e) { FAIL(sys.render(e)); });
  CHECK(samples == batch);

  size_t compared = 0;
  for (int r = 0; r < replicas; ++r) {
    for (auto& stage : pipes[r].stages) {
      for (auto which : {0, 1}) {
        msg::named_tensors got;
        auto handle = [&](msg::named_tensors& t) { got = std::move(t); };
        auto error = [&](caf::error& e) { FAIL(sys.render(e)); };
        if (which == 0)
          self->request(stage, std::chrono::seconds(10), msg::grads_atom::value).receive(handle, error);
        else
          self->request(stage, std::chrono::seconds(10), msg::params_atom::value).receive(handle, error);
        const auto& want = which == 0 ? expected.grads : expected.params;
        for (size_t i = 0; i < got.names.size(); ++i) {
          const auto& name = got.names[i];
          INFO("replica " << r << " " << (which == 0 ? "gradient of " : "weight ") << name);
          REQUIRE(want.count(name) == 1);
          // A gradient that is zero in exact arithmetic (BERT's attention key bias: softmax
          // ignores a shift) comes out as rounding noise whose value depends on summation order.
          const auto& g_want = expected.grads.at(name);
          const bool zero = g_want.abs().max().item<double>() < 1e-7;
          if (which == 0 && zero) {
            CHECK((got.values[i].t - g_want).abs().max().item<double>() < 1e-6);
          } else if (which == 0) {
            CHECK(relative_error(got.values[i].t, want.at(name)) <= 1e-5);
          } else {
            // Adam's first step moves every weight by about lr·sign(g). Where the true gradient
            // is zero (the attention key bias: softmax ignores a shift) g is rounding noise
            // whose sign depends on summation order, so those entries are only bounded by
            // that step; every entry with a real gradient must match to 1e-5.
            const auto g = expected.grads.at(name).abs();
            const auto real = zero ? torch::zeros_like(g, torch::kBool) : g > 1e-4 * g.max();
            const auto a = got.values[i].t, b = want.at(name);
            if (!zero) CHECK(relative_error(a.masked_select(real), b.masked_select(real)) <= 1e-5);
            CHECK((a - b).abs().masked_select(real.logical_not()).le(2.01 * lr).all().item<bool>());
          }
          ++compared;
        }
      }
    }
  }
  CHECK(compared == 2 * replicas * expected.params.size());
  actors::shutdown(pipes);
}

// Masked-language modelling batches: 30 % of the tokens to predict, a fixed seed.
runtime::BatchRecipe mlm_recipe() {
  runtime::BatchRecipe mlm;
  mlm.mlm = true;
  mlm.seed = 11;
  mlm.mlm_probability = 0.3;
  return mlm;
}

}  // namespace

TEST_CASE("K=2 M=4 R=2 step equals a plain LibTorch step", "[equivalence]") {
  check_layout(tiny_vit(), models::make_synthetic(64, 8, 10, 7).train, {5, 4}, 4, 2, runtime::ScheduleKind::gpipe);
}

TEST_CASE("K=3 M=3 R=1 on an uneven partition equals a plain LibTorch step", "[equivalence]") {
  check_layout(tiny_vit(), models::make_synthetic(64, 8, 10, 7).train, {1, 6, 2}, 3, 1, runtime::ScheduleKind::gpipe);
}

TEST_CASE("1F1B computes the same step as GPipe", "[equivalence]") {
  check_layout(tiny_vit(), models::make_synthetic(64, 8, 10, 7).train, {3, 3, 3}, 4, 1, runtime::ScheduleKind::one_f_one_b);
}

TEST_CASE("1F1B on tapered micro-batches (K=3 M=6: 2, 4, 6, 6, 4, 2 samples) equals a plain LibTorch step",
          "[equivalence]") {
  REQUIRE(runtime::micro_batch_sizes(24, 6, 3) == std::vector<int64_t>{2, 4, 6, 6, 4, 2});
  check_layout(tiny_vit(), models::make_synthetic(64, 8, 10, 7).train, {2, 4, 3}, 6, 1,
               runtime::ScheduleKind::one_f_one_b, {}, 1, true);
}

TEST_CASE("ZB-H2 on tapered micro-batches, K=2 M=4 R=2, equals a plain LibTorch step", "[equivalence]") {
  check_layout(tiny_vit(), models::make_synthetic(64, 8, 10, 7).train, {4, 5}, 4, 2, runtime::ScheduleKind::zb_h2, {},
               1, true);
}

TEST_CASE("a stage splits its backward when its program has W actions", "[equivalence]") {
  for (const auto& program : runtime::zb_h1_schedule(2, 4)) CHECK(runtime::splits_backward(program));
  for (const auto& program : runtime::one_f_one_b_schedule(2, 4)) CHECK_FALSE(runtime::splits_backward(program));
}

TEST_CASE("ZB-H1 (split backward) on an uneven partition equals a plain LibTorch step", "[equivalence]") {
  check_layout(tiny_vit(), models::make_synthetic(64, 8, 10, 7).train, {1, 6, 2}, 4, 1, runtime::ScheduleKind::zb_h1);
}

TEST_CASE("ZB-H2 on K=2 M=4 R=2 equals a plain LibTorch step", "[equivalence]") {
  check_layout(tiny_vit(), models::make_synthetic(64, 8, 10, 7).train, {6, 3}, 4, 2, runtime::ScheduleKind::zb_h2);
}

TEST_CASE("interleaved 1F1B, 2 chunks on 2 devices, uneven, equals a plain LibTorch step", "[equivalence]") {
  check_layout(tiny_vit(), models::make_synthetic(64, 8, 10, 7).train, {1, 3, 2, 3}, 4, 1,
               runtime::ScheduleKind::interleaved, {}, 2);
}

TEST_CASE("interleaved 1F1B, 3 chunks on 2 devices, M=3 (not a multiple of K), equals a plain LibTorch step",
          "[equivalence]") {
  check_layout(tiny_vit(), models::make_synthetic(64, 8, 10, 7).train, {1, 2, 1, 2, 1, 2}, 3, 1,
               runtime::ScheduleKind::interleaved, {}, 3);
}

TEST_CASE("ZB-V (V-shaped chunks, split backward) on K=2 M=4 R=2, uneven, equals a plain LibTorch step",
          "[equivalence]") {
  check_layout(tiny_vit(), models::make_synthetic(64, 8, 10, 7).train, {2, 3, 1, 3}, 4, 2,
               runtime::ScheduleKind::zb_v, {}, 2);
}

TEST_CASE("a BERT classification step on K=2 M=4 R=2 equals a plain LibTorch step", "[equivalence][bert]") {
  check_layout(tiny_bert("classify"), tiny_texts(64, 40, 5), {3, 3}, 4, 2, runtime::ScheduleKind::gpipe);
}

TEST_CASE("a BERT masked-language-modelling step on K=2 M=3 R=2 (uneven) equals a plain LibTorch step",
          "[equivalence][bert]") {
  check_layout(tiny_bert("mlm"), tiny_texts(64, 40, 6), {1, 5}, 3, 2, runtime::ScheduleKind::one_f_one_b,
               mlm_recipe());
}

TEST_CASE("a BERT masked-language-modelling step under ZB-H1 (uneven) equals a plain LibTorch step",
          "[equivalence][bert]") {
  check_layout(tiny_bert("mlm"), tiny_texts(64, 40, 6), {2, 4}, 4, 1, runtime::ScheduleKind::zb_h1, mlm_recipe());
}
