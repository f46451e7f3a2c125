#include "actors/coordinator.hpp"

#include "runtime/lr_schedule.hpp"
#include "runtime/planner.hpp"
#include "runtime/progress.hpp"
#include "runtime/sampler.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <numeric>

namespace floe::actors {
namespace {

using clock_type = std::chrono::steady_clock;
double since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

// What one epoch (or its evaluation) added up to.
struct Totals {
  double loss_sum = 0;
  int64_t correct = 0, samples = 0;
  std::vector<double> busy;  // per pipeline position, summed over replicas

  void add(const msg::step_report& r) {
    loss_sum += r.loss_sum;
    correct += r.correct;
    samples += r.samples;
    if (busy.size() < r.stage_busy_seconds.size()) busy.resize(r.stage_busy_seconds.size(), 0.0);
    for (size_t i = 0; i < r.stage_busy_seconds.size(); ++i) busy[i] += r.stage_busy_seconds[i];
  }
  double mean_loss() const { return samples ? loss_sum / samples : 0; }
  double accuracy() const { return samples ? double(correct) / samples : 0; }
};

struct CoordinatorState {
  static inline const char* name = "floe.coordinator";
  CoordinatorSpec spec;
  std::vector<PipelineHandles> pipelines;
  std::vector<int> partition;
  runtime::WarmupCosine lr;
  std::vector<int64_t> order;  // this epoch's sample order
  int epoch = 0;
  int64_t step = 0;  // within the epoch (training) or evaluation batch
  int64_t steps_in_epoch = 0;
  int64_t global_step = 0;
  Totals train, eval;
  clock_type::time_point job_start, epoch_start;
  double train_seconds = 0;
  runtime::TrainingSummary summary;
  caf::typed_response_promise<runtime::TrainingSummary> promise;
  std::unique_ptr<runtime::ProgressPrinter> progress;
};

using coord_ptr = msg::coordinator_actor::stateful_pointer<CoordinatorState>;

int replicas(coord_ptr self) { return static_cast<int>(self->state.pipelines.size()); }

void fail(coord_ptr self, caf::error err) {
  spdlog::error("training stopped: {}", self->system().render(err));
  shutdown(self->state.pipelines);
  self->state.promise.deliver(std::move(err));
  self->quit();
}

// Sends each replica its shard of one global batch; calls `done` with the joined report.
template <class Done>
void dispatch(coord_ptr self, bool train, double lr, const std::vector<int64_t>& order, int64_t step,
              int64_t batch, Done done) {
  const int r = replicas(self);
  auto joined = std::make_shared<msg::step_report>();
  auto pending = std::make_shared<int>(r);
  auto failed = std::make_shared<bool>(false);
  const int64_t global = std::min<int64_t>(batch, static_cast<int64_t>(order.size()) - step * batch);
  for (int i = 0; i < r; ++i) {
    msg::replica_step rs{step, train, lr, runtime::shard_of_step(order, step, batch, i, r), global};
    self->request(self->state.pipelines[i].replica, caf::infinite, std::move(rs))
        .then(
            [=](msg::step_report& rep) {
              if (*failed) return;
              joined->loss_sum += rep.loss_sum;
              joined->correct += rep.correct;
              joined->samples += rep.samples;
              if (joined->stage_busy_seconds.size() < rep.stage_busy_seconds.size())
                joined->stage_busy_seconds.resize(rep.stage_busy_seconds.size(), 0.0);
              for (size_t s = 0; s < rep.stage_busy_seconds.size(); ++s)
                joined->stage_busy_seconds[s] += rep.stage_busy_seconds[s];
              if (--*pending == 0) done(*joined);
            },
            [=](caf::error& e) {
              if (*failed) return;
              *failed = true;
              fail(self, e);
            });
  }
}

void begin_epoch(coord_ptr self);

int64_t eval_batch(const runtime::JobConfig& c) { return std::max<int64_t>(c.batch_size, 500); }

void finish(coord_ptr self) {
  auto& st = self->state;
  st.summary.total_seconds = since(st.job_start);
  st.summary.steps = st.global_step;
  if (!st.summary.epochs.empty()) {
    st.summary.final_test_accuracy = st.summary.epochs.back().test_accuracy;
    st.summary.final_test_loss = st.summary.epochs.back().test_loss;
  }
  shutdown(st.pipelines);
  st.promise.deliver(st.summary);
  self->quit();
}

void end_epoch(coord_ptr self) {
  auto& st = self->state;
  const auto& c = st.spec.config;
  runtime::EpochRecord rec;
  rec.epoch = st.epoch;
  rec.train_loss = st.train.mean_loss();
  rec.train_accuracy = st.train.accuracy();
  rec.test_loss = st.eval.mean_loss();
  rec.test_accuracy = st.eval.accuracy();
  rec.seconds = since(st.epoch_start);
  rec.train_seconds = st.train_seconds;
  rec.samples_per_second = st.train_seconds > 0 ? st.train.samples / st.train_seconds : 0;
  rec.pipeline_length = static_cast<int>(st.partition.size());
  rec.replicas = replicas(self);
  rec.micro_batches = c.pipeline.micro_batches;
  rec.frozen_layers = 0;
  for (double b : st.train.busy) rec.stage_busy_fraction.push_back(b / (replicas(self) * std::max(1e-9, st.train_seconds)));
  spdlog::info("epoch {}/{}  train loss {:.4f}  train acc {:.2f}%  test loss {:.4f}  test acc {:.2f}%  {:.0f} samples/s  "
               "{:.1f}s  K={} M={} R={} frozen={}",
               rec.epoch + 1, c.epochs, rec.train_loss, 100 * rec.train_accuracy, rec.test_loss, 100 * rec.test_accuracy,
               rec.samples_per_second, rec.seconds, rec.pipeline_length, rec.micro_batches, rec.replicas,
               rec.frozen_layers);
  st.summary.epochs.push_back(rec);
  if (++st.epoch < c.epochs)
    begin_epoch(self);
  else
    finish(self);
}

void eval_step(coord_ptr self) {
  auto& st = self->state;
  const auto& test = *st.spec.test;
  const int64_t batch = eval_batch(st.spec.config);
  if (st.step * batch >= test.size()) return end_epoch(self);
  dispatch(self, false, 0.0, st.order, st.step, batch, [=](const msg::step_report& rep) {
    auto& s = self->state;
    s.eval.add(rep);
    ++s.step;
    eval_step(self);
  });
}

void begin_eval(coord_ptr self) {
  auto& st = self->state;
  st.train_seconds = since(st.epoch_start);
  st.progress->end();
  st.order.resize(static_cast<size_t>(st.spec.test->size()));
  std::iota(st.order.begin(), st.order.end(), 0);
  st.step = 0;
  st.eval = {};
  eval_step(self);
}

void train_step(coord_ptr self) {
  auto& st = self->state;
  if (st.step >= st.steps_in_epoch) return begin_eval(self);
  const auto& c = st.spec.config;
  dispatch(self, true, st.lr.at(st.global_step), st.order, st.step, c.batch_size, [=](const msg::step_report& rep) {
    auto& s = self->state;
    s.train.add(rep);
    ++s.step;
    ++s.global_step;
    s.progress->update(s.step, s.train.samples, s.train.mean_loss());
    train_step(self);
  });
}

void begin_epoch(coord_ptr self) {
  auto& st = self->state;
  const auto& c = st.spec.config;
  st.epoch_start = clock_type::now();
  st.order = runtime::epoch_permutation(st.spec.train->size(), c.seed, st.epoch);
  st.step = 0;
  st.train = {};
  st.progress->begin("epoch " + std::to_string(st.epoch + 1) + "/" + std::to_string(c.epochs), st.steps_in_epoch);
  train_step(self);
}

msg::coordinator_actor::behavior_type coordinator_behavior(coord_ptr self, CoordinatorSpec spec) {
  auto& st = self->state;
  st.spec = std::move(spec);
  return {
      [=](msg::start_atom) -> caf::typed_response_promise<runtime::TrainingSummary> {
        auto& s = self->state;
        const auto& c = s.spec.config;
        s.promise = self->make_response_promise<runtime::TrainingSummary>();
        s.job_start = clock_type::now();
        // Replicas start from identical weights: build once from the seed, copy to the rest.
        std::vector<models::UnitList> models;
        torch::manual_seed(c.seed);
        models.push_back(models::build_vit(c.model));
        for (int r = 1; r < c.replicas; ++r) {
          models.push_back(models::build_vit(c.model));
          models::copy_parameters(models[0], models.back());
        }
        s.partition = stage_partition(c, models[0]);
        PipelineLayout layout{s.partition, c.replicas, c.pipeline.micro_batches,
                              runtime::parse_schedule_kind(c.pipeline.schedule), c.threads_per_device,
                              s.spec.detached_stages};
        s.pipelines = spawn_pipelines(self->system(), layout, models, c.optimizer, s.spec.train, s.spec.test);
        s.steps_in_epoch = runtime::steps_per_epoch(s.spec.train->size(), c.batch_size);
        s.lr = {c.optimizer.lr, c.optimizer.min_lr, c.optimizer.warmup, s.steps_in_epoch * c.epochs};
        s.progress = std::make_unique<runtime::ProgressPrinter>(c.log_interval,
                                                                runtime::ProgressPrinter::stdout_is_terminal());
        s.summary.config = runtime::to_flat_map(c);
        s.summary.setup_seconds = since(s.job_start);
        std::string parts;
        for (int u : s.partition) parts += (parts.empty() ? "" : ",") + std::to_string(u);
        spdlog::info("job: {} train / {} test samples, {} units, K={} [{}] M={} R={} on {} devices, {} steps/epoch",
                     s.spec.train->size(), s.spec.test->size(), models[0].size(), s.partition.size(), parts,
                     c.pipeline.micro_batches, c.replicas, c.devices, s.steps_in_epoch);
        begin_epoch(self);
        return s.promise;
      },
  };
}

}  // namespace

std::vector<int> stage_partition(const runtime::JobConfig& cfg, const models::UnitList& units) {
  if (!cfg.pipeline.partition.empty()) return cfg.pipeline.partition;
  return runtime::optimal_partition(cfg.pipeline.length, models::parameter_counts(units)).units_per_stage;
}

msg::coordinator_actor spawn_coordinator(caf::actor_system& sys, CoordinatorSpec spec) {
  return sys.spawn(coordinator_behavior, std::move(spec));
}

}  // namespace floe::actors
