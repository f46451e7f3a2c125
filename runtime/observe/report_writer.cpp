// The report observer: one HTML file with inline SVG charts and tables, no script or style
// from the network. A small inline script counts the charts the browser has laid out
// (body[data-charts-drawn]), which the report test reads back from headless Chromium.
#include "models/files.hpp"
#include "runtime/observe/event_writer.hpp"
#include "runtime/observe/summary.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

namespace floe::runtime {
namespace {

struct Series {
  std::string name, color;
  std::vector<std::pair<double, double>> points;
  bool steps = false;  // draw as a step function (values that hold until the next point)
};
struct Marker {
  double x;
  std::string label;
};

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

std::string num(double v, int digits = 3) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

// A line chart in SVG: axes with 5 ticks each, one polyline per series, dashed markers.
std::string line_chart(const std::string& title, const std::string& xlabel, const std::string& ylabel,
                       const std::vector<Series>& series, const std::vector<Marker>& markers = {}) {
  const double W = 600, H = 300, L = 72, R = 16, T = 30, B = 45;
  double x0 = std::numeric_limits<double>::max(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const auto& s : series)
    for (auto [x, y] : s.points) x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
  std::ostringstream o;
  o << "<figure><svg class=\"chart\" viewBox=\"0 0 " << W << ' ' << H << "\" width=\"" << W << "\" height=\"" << H
    << "\" role=\"img\"><title>" << escape(title) << "</title>";
  o << "<text x=\"" << W / 2 << "\" y=\"18\" text-anchor=\"middle\" class=\"t\">" << escape(title) << "</text>";
  if (x0 > x1) {
    o << "<text x=\"" << W / 2 << "\" y=\"" << H / 2 << "\" text-anchor=\"middle\">no data</text></svg></figure>";
    return o.str();
  }
  if (y0 > 0 && y0 < 0.5 * y1) y0 = 0;
  if (x0 > 0 && x0 < 0.2 * x1) x0 = 0;  // time axes start at the job's start
  if (x1 - x0 < 1e-12) x1 = x0 + 1;
  if (y1 - y0 < 1e-12) y1 = y0 + 1, y0 -= 0.0;
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };
  o << "<line x1=\"" << L << "\" y1=\"" << H - B << "\" x2=\"" << W - R << "\" y2=\"" << H - B << "\" class=\"ax\"/>";
  o << "<line x1=\"" << L << "\" y1=\"" << T << "\" x2=\"" << L << "\" y2=\"" << H - B << "\" class=\"ax\"/>";
  for (int i = 0; i <= 4; ++i) {
    const double xv = x0 + (x1 - x0) * i / 4, yv = y0 + (y1 - y0) * i / 4;
    o << "<text x=\"" << px(xv) << "\" y=\"" << H - B + 15 << "\" text-anchor=\"middle\">" << num(xv, 4) << "</text>";
    o << "<text x=\"" << L - 5 << "\" y=\"" << py(yv) + 4 << "\" text-anchor=\"end\">" << num(yv, 4) << "</text>";
    o << "<line x1=\"" << L << "\" y1=\"" << py(yv) << "\" x2=\"" << W - R << "\" y2=\"" << py(yv) << "\" class=\"grid\"/>";
  }
  o << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 8 << "\" text-anchor=\"middle\">" << escape(xlabel) << "</text>";
  o << "<text transform=\"translate(12," << (T + H - B) / 2 << ") rotate(-90)\" text-anchor=\"middle\">" << escape(ylabel)
    << "</text>";
  for (size_t i = 0; i < markers.size(); ++i) {  // labels staggered so that close markers stay legible
    const auto& m = markers[i];
    o << "<line x1=\"" << px(m.x) << "\" y1=\"" << T << "\" x2=\"" << px(m.x) << "\" y2=\"" << H - B
      << "\" class=\"mark\"/><text x=\"" << px(m.x) + 3 << "\" y=\"" << T + 24 + 12 * (i % 3) << "\" class=\"ml\">"
      << escape(m.label) << "</text>";
  }
  double lx = L + 10;
  for (const auto& s : series) {
    o << "<polyline class=\"line\" fill=\"none\" stroke=\"" << s.color << "\" stroke-width=\"2\" points=\"";
    for (size_t i = 0; i < s.points.size(); ++i) {
      const auto [x, y] = s.points[i];
      if (s.steps && i > 0) o << px(x) << ',' << py(s.points[i - 1].second) << ' ';
      o << px(x) << ',' << py(y) << ' ';
    }
    if (s.points.size() == 1) o << px(s.points[0].first) + 2 << ',' << py(s.points[0].second);  // visible dot
    o << "\"/>";
    o << "<rect x=\"" << lx << "\" y=\"" << T + 2 << "\" width=\"10\" height=\"10\" fill=\"" << s.color << "\"/><text x=\""
      << lx + 14 << "\" y=\"" << T + 11 << "\">" << escape(s.name) << "</text>";
    lx += 24 + 7 * s.name.size();
  }
  o << "</svg></figure>";
  return o.str();
}

const char* palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};

class ReportWriter : public EventWriter {
 public:
  ReportWriter(const std::string& path, const std::string& title) : path_(path), title_(title) {
    write_file_atomic(path_, "<!doctype html><title>floe report (run in progress)</title>\n");
  }

  void on(const Event& e) override {
    if (origin_ < 0 || e.kind == EventKind::job) origin_ = e.start_us;
    if (e.kind == EventKind::job) job_ = e.detail;
    if (e.kind == EventKind::step) steps_.push_back(e);
    if (e.kind == EventKind::epoch) epochs_.push_back(e);
    if (e.kind == EventKind::transition && e.detail.empty()) transitions_.push_back(e);
    if (e.kind == EventKind::fault) faults_.push_back(e);
  }

  void flush() override { write_file_atomic(path_, html()); }

 private:
  std::string path_, title_, job_;
  int64_t origin_ = -1;
  std::vector<Event> steps_, epochs_, transitions_, faults_;

  double t(const Event& e) const { return (e.start_us - origin_) / 1e6; }
  static double v(const Event& e, const char* key) {
    auto it = e.values.find(key);
    return it == e.values.end() ? 0 : it->second;
  }

  std::string html() const {
    std::vector<Marker> marks;
    for (const auto& e : transitions_)
      marks.push_back({t(e), "F=" + num(v(e, "frozen")) + " K" + num(v(e, "from_K")) + "\u2192" + num(v(e, "to_K")) +
                                 " R" + num(v(e, "from_R")) + "\u2192" + num(v(e, "to_R"))});
    // Throughput: samples/s over a window of steps, against wall time.
    Series tput{"samples/s", palette[0], {}}, loss{"train loss", palette[1], {}};
    const size_t window = std::max<size_t>(1, steps_.size() / 200);
    for (size_t i = 0; i + window <= steps_.size(); i += window) {
      double samples = 0, secs = 0, l = 0;
      for (size_t j = i; j < i + window; ++j)
        samples += v(steps_[j], "samples"), secs += steps_[j].duration_us / 1e6, l += v(steps_[j], "loss");
      const double x = t(steps_[i + window - 1]) + steps_[i + window - 1].duration_us / 1e6;
      if (secs > 0) tput.points.push_back({x, samples / secs});
      loss.points.push_back({x, l / window});
    }
    Series acc{"test accuracy %", palette[2], {}}, frozen{"frozen blocks", palette[3], {}, true},
        k{"K (stages)", palette[0], {}, true}, r{"R (replicas)", palette[2], {}, true};
    std::vector<Series> bubble;
    for (const auto& e : epochs_) {
      const double x = e.epoch + 1;
      acc.points.push_back({x, 100 * v(e, "test_accuracy")});
      frozen.points.push_back({x, v(e, "frozen")});
      k.points.push_back({x, v(e, "K")});
      r.points.push_back({x, v(e, "R")});
      for (size_t s = 0; s < e.per_stage.size(); ++s) {
        if (bubble.size() <= s) bubble.push_back({"stage " + std::to_string(s), palette[s % 8], {}});
        bubble[s].points.push_back({x, 100 * e.per_stage[s]});
      }
    }
    std::ostringstream o;
    o << "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>" << escape(title_)
      << "</title><style>body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:1340px}"
         "figure{display:inline-block;margin:8px;border:1px solid #ddd;border-radius:6px;padding:4px}"
         "svg text{font-size:11px;fill:#333}.t{font-size:13px;font-weight:600}.ax{stroke:#444}"
         ".grid{stroke:#eee}.mark{stroke:#d62728;stroke-dasharray:4 3}.ml{fill:#d62728;font-size:10px}"
         "table{border-collapse:collapse;margin:8px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
         "th{background:#f4f4f4}code{background:#f4f4f4;padding:1px 4px}</style></head><body>";
    o << "<h1>" << escape(title_) << "</h1><p><code>" << escape(job_) << "</code></p>";
    o << "<h2>Throughput and convergence</h2>";
    o << line_chart("Training throughput (transitions dashed)", "seconds since start", "samples/s", {tput}, marks);
    o << line_chart("Training loss", "seconds since start", "mean loss", {loss}, marks);
    o << line_chart("Test accuracy per epoch", "epoch", "%", {acc});
    o << "<h2>Elastic plan</h2>";
    o << line_chart("Frozen blocks, stages K and replicas R per epoch", "epoch", "count", {frozen, k, r});
    o << line_chart("Bubble fraction per pipeline stage", "epoch", "% of step time idle", bubble);
    o << "<h2>Epochs</h2><table><tr><th>epoch</th><th>train loss</th><th>test acc %</th><th>samples/s</th>"
         "<th>seconds</th><th>frozen</th><th>K</th><th>M</th><th>R</th><th>bubble % per stage</th></tr>";
    for (const auto& e : epochs_) {
      std::string b;
      for (double f : e.per_stage) b += (b.empty() ? "" : " / ") + num(100 * f, 3);
      o << "<tr><td>" << e.epoch + 1 << "</td><td>" << num(v(e, "train_loss"), 4) << "</td><td>"
        << num(100 * v(e, "test_accuracy"), 4) << "</td><td>" << num(v(e, "samples_per_second"), 4) << "</td><td>"
        << num(e.duration_us / 1e6, 4) << "</td><td>" << v(e, "frozen") << "</td><td>" << v(e, "K") << "</td><td>"
        << v(e, "M") << "</td><td>" << v(e, "R") << "</td><td>" << b << "</td></tr>";
    }
    o << "</table><h2>Transitions</h2><table><tr><th>at s</th><th>epoch</th><th>step</th><th>change</th><th>seconds</th>"
         "</tr>";
    for (size_t i = 0; i < transitions_.size(); ++i)
      o << "<tr><td>" << num(t(transitions_[i]), 4) << "</td><td>" << transitions_[i].epoch + 1 << "</td><td>"
        << transitions_[i].step << "</td><td>" << escape(marks[i].label) << "</td><td>"
        << num(transitions_[i].duration_us / 1e6, 3) << "</td></tr>";
    o << "</table>";
    if (!faults_.empty()) {
      o << "<h2>Faults</h2><ul>";
      for (const auto& f : faults_) o << "<li>" << num(t(f), 4) << " s: " << escape(f.detail) << "</li>";
      o << "</ul>";
    }
    o << "<script>(function(){var n=0;document.querySelectorAll('svg.chart').forEach(function(s){"
         "var l=s.querySelectorAll('polyline.line'),ok=l.length>0;l.forEach(function(p){"
         "if(!(p.getTotalLength()>0))ok=false;});if(ok&&s.getBoundingClientRect().width>0)n++;});"
         "document.body.setAttribute('data-charts-drawn',n);"
         "document.body.setAttribute('data-charts',document.querySelectorAll('svg.chart').length);})();</script>";
    o << "</body></html>\n";
    return o.str();
  }
};

}  // namespace

std::unique_ptr<EventWriter> make_report_writer(const std::string& path, const std::string& title) {
  return std::make_unique<ReportWriter>(path, title);
}

}  // namespace floe::runtime
