#pragma once
// Observers as plain code: an EventWriter receives events one by one and writes what it
// makes of them on flush. The observer actor (actors/observer.hpp) is the shell that feeds
// one; users can write their own (docs/hooks.md).
#include "runtime/observe/events.hpp"

#include <memory>
#include <string>

namespace floe::runtime {

class EventWriter {
 public:
  virtual ~EventWriter() = default;
  virtual void on(const Event& e) = 0;
  // Everything received so far is written (atomically, for whole-file formats).
  virtual void flush() = 0;
};

// JSONL, one record per training step, evaluation pass, epoch, freeze decision, transition,
// cache report and fault; lines are written as they come. Throws InputError naming `path`.
std::unique_ptr<EventWriter> make_metrics_writer(const std::string& path);

// Chrome Trace Event JSON (Perfetto, chrome://tracing): a process per device with a track
// per (replica, stage), a slice per step and per micro-batch forward and backward, transfers
// as flows, a bubble counter per stage; the coordinator's steps, epochs, freezes and
// transitions (with their phases) on their own tracks.
std::unique_ptr<EventWriter> make_trace_writer(const std::string& path);

// A self-contained HTML report: throughput over time with the transitions marked, loss and
// accuracy, frozen layers with K and R per epoch, bubble fraction per stage.
std::unique_ptr<EventWriter> make_report_writer(const std::string& path, const std::string& title);

// Keeps every event in memory (scenario tests, user assertions).
class EventRecorder : public EventWriter {
 public:
  void on(const Event& e) override { events_.push_back(e); }
  void flush() override {}
  const std::vector<Event>& events() const { return events_; }

 private:
  std::vector<Event> events_;
};

}  // namespace floe::runtime
