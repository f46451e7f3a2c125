// The trace observer: Chrome Trace Event format (the JSON object form), which Perfetto and
// chrome://tracing open. Times are microseconds since the job started.
#include "models/files.hpp"
#include "runtime/observe/event_writer.hpp"
#include "runtime/observe/summary.hpp"

#include <nlohmann/json.hpp>

#include <set>

namespace floe::runtime {
namespace {

using json = nlohmann::ordered_json;

// The coordinator's process and its tracks.
constexpr int coordinator_pid = 0;
enum CoordinatorTrack { steps_track = 0, eval_track, epochs_track, transitions_track, events_track };

int device_pid(int device) { return 1 + device; }
int stage_tid(int replica, int stage) { return 1 + replica * 1000 + stage; }

class TraceWriter : public EventWriter {
 public:
  explicit TraceWriter(const std::string& path) : path_(path) {
    write_file_atomic(path_, "{\"traceEvents\":[]}\n");  // fail early on a bad path
    name_process(coordinator_pid, "coordinator", 0);
    const char* tracks[] = {"training steps", "evaluation", "epochs", "transitions", "freezes and faults"};
    for (int t = 0; t < 5; ++t) name_thread(coordinator_pid, t, tracks[t], t);
  }

  // Keeps the event as it is: the JSON is built at flush, off the devices' time (on a machine
  // with as many cores as devices, an observer thread competes with them for CPU).
  void on(const Event& e) override {
    if (origin_ < 0 || e.kind == EventKind::job) origin_ = e.start_us;
    raw_.push_back(e);
  }

  void flush() override {
    for (const auto& e : raw_) convert(e);
    raw_.clear();
    json out;
    out["traceEvents"] = json::array();
    for (auto& m : metadata_) out["traceEvents"].push_back(m);
    for (auto& e : events_) out["traceEvents"].push_back(e);
    out["displayTimeUnit"] = "ms";
    out["otherData"] = {{"producer", "floe"}};
    write_file_atomic(path_, out.dump() + "\n");
  }

 private:
  std::string path_;
  int64_t origin_ = -1;
  std::vector<Event> raw_;  // not yet converted
  std::vector<json> metadata_, events_;
  std::set<std::pair<int, int>> named_;
  int64_t next_flow_ = 1;

  void convert(const Event& e) {
    switch (e.kind) {
      case EventKind::forward:
      case EventKind::backward:
      case EventKind::reduce:
      case EventKind::optimizer:
      case EventKind::stage_step: return stage_slice(e);
      case EventKind::transfer: return flow(e);
      case EventKind::step: {
        auto& s = slice(coordinator_pid, steps_track, "step " + std::to_string(e.step), e);
        s["args"] = args(e);
        if (!e.per_stage.empty()) {
          json c{{"name", "bubble fraction"}, {"ph", "C"}, {"ts", ts(e.start_us + e.duration_us)},
                 {"pid", coordinator_pid}, {"tid", 0}};
          for (size_t i = 0; i < e.per_stage.size(); ++i) c["args"]["stage " + std::to_string(i)] = e.per_stage[i];
          events_.push_back(std::move(c));
        }
        return;
      }
      case EventKind::eval: slice(coordinator_pid, eval_track, "evaluation", e)["args"] = args(e); return;
      case EventKind::epoch:
        slice(coordinator_pid, epochs_track, "epoch " + std::to_string(e.epoch + 1), e)["args"] = args(e);
        return;
      case EventKind::transition:
        slice(coordinator_pid, transitions_track, e.detail.empty() ? "transition" : e.detail, e)["args"] = args(e);
        return;
      case EventKind::checkpoint: slice(coordinator_pid, transitions_track, "checkpoint", e)["args"] = args(e); return;
      case EventKind::job:
      case EventKind::freeze:
      case EventKind::fault:
      case EventKind::cache: {
        json i{{"name", std::string(kind_name(e.kind)) + (e.detail.empty() ? "" : ": " + e.detail)},
               {"ph", "i"}, {"s", "t"}, {"ts", ts(e.start_us)}, {"pid", coordinator_pid}, {"tid", events_track}};
        i["args"] = args(e);
        events_.push_back(std::move(i));
        return;
      }
    }
  }


  double ts(int64_t us) const { return static_cast<double>(us - origin_); }

  void name_process(int pid, const std::string& name, int order) {
    metadata_.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", pid}, {"tid", 0}, {"args", {{"name", name}}}});
    metadata_.push_back(
        {{"name", "process_sort_index"}, {"ph", "M"}, {"pid", pid}, {"tid", 0}, {"args", {{"sort_index", order}}}});
  }
  void name_thread(int pid, int tid, const std::string& name, int order) {
    metadata_.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", pid}, {"tid", tid}, {"args", {{"name", name}}}});
    metadata_.push_back(
        {{"name", "thread_sort_index"}, {"ph", "M"}, {"pid", pid}, {"tid", tid}, {"args", {{"sort_index", order}}}});
  }
  // The track of a stage on its device, named on first use.
  std::pair<int, int> track(int device, int replica, int stage) {
    const int pid = device_pid(std::max(device, 0)), tid = stage_tid(std::max(replica, 0), std::max(stage, 0));
    if (named_.insert({pid, -1}).second) name_process(pid, "device " + std::to_string(device), 1 + device);
    if (named_.insert({pid, tid}).second)
      name_thread(pid, tid, "replica " + std::to_string(replica) + " / stage " + std::to_string(stage), tid);
    return {pid, tid};
  }
  json args(const Event& e) const {
    json a = json::object();
    if (e.epoch >= 0) a["epoch"] = e.epoch;
    if (e.step >= 0) a["step"] = e.step;
    if (e.replica >= 0) a["replica"] = e.replica;
    if (e.stage >= 0) a["stage"] = e.stage;
    if (e.micro_batch >= 0) a["micro_batch"] = e.micro_batch;
    for (const auto& [k, v] : e.values) a[k] = v;
    if (!e.per_stage.empty()) a["bubble"] = e.per_stage;
    return a;
  }
  json& slice(int pid, int tid, const std::string& name, const Event& e) {
    events_.push_back({{"name", name}, {"ph", "X"}, {"ts", ts(e.start_us)}, {"dur", static_cast<double>(e.duration_us)},
                       {"pid", pid}, {"tid", tid}});
    return events_.back();
  }
  void stage_slice(const Event& e) {
    const auto [pid, tid] = track(e.device, e.replica, e.stage);
    std::string name;
    const std::string mb = std::to_string(e.micro_batch);
    switch (e.kind) {
      case EventKind::forward: name = "F" + mb; break;
      case EventKind::backward: name = (e.detail.empty() ? std::string("B") : e.detail) + mb; break;  // I, W: split
      case EventKind::reduce: name = "all-reduce"; break;
      case EventKind::optimizer: name = "optimizer"; break;
      default: name = (e.detail == "eval" ? "eval " : "step ") + std::to_string(e.step); break;
    }
    auto& s = slice(pid, tid, name, e);
    s["cat"] = e.detail == "eval" ? "eval" : "train";
    s["args"] = args(e);
  }
  void flow(const Event& e) {
    const auto from_device = static_cast<int>(e.values.count("from_device") ? e.values.at("from_device") : e.device);
    const auto from_stage = static_cast<int>(e.values.count("from_stage") ? e.values.at("from_stage") : e.stage);
    const auto [spid, stid] = track(from_device, e.replica, from_stage);
    const auto [rpid, rtid] = track(e.device, e.replica, e.stage);
    const auto id = next_flow_++;
    const std::string name = e.detail.empty() ? "transfer" : e.detail;
    json args{{"bytes", e.values.count("bytes") ? e.values.at("bytes") : 0.0}, {"micro_batch", e.micro_batch}};
    events_.push_back({{"name", name}, {"cat", "transfer"}, {"ph", "s"}, {"id", id}, {"ts", ts(e.start_us)},
                       {"pid", spid}, {"tid", stid}, {"args", args}});
    events_.push_back({{"name", name}, {"cat", "transfer"}, {"ph", "f"}, {"id", id},
                       {"ts", ts(e.start_us + e.duration_us)}, {"pid", rpid}, {"tid", rtid}, {"args", args}});
  }
};

}  // namespace

std::unique_ptr<EventWriter> make_trace_writer(const std::string& path) { return std::make_unique<TraceWriter>(path); }

}  // namespace floe::runtime
