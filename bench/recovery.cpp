// Time from a node's death to training resumed, and the work lost, for the two recoveries:
// from a surviving replica's memory (three node processes of one replica each; one is killed)
// and from the newest checkpoint (the killed node held the only pipeline). Real processes on
// loopback; each kill lands at a random point of a training step or an evaluation.
// Usage: recovery [--rounds N] [--json out.json]
#include "launch/blas.hpp"
#include "models/files.hpp"
#include "models/errors.hpp"
#include "runtime/observe/summary.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <sys/wait.h>

using namespace floe;
namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Seconds since midnight of the first "HH:MM:SS.fraction" in `text`.
double seconds_of_day(const std::string& text) {
  std::smatch m;
  if (!std::regex_search(text, m, std::regex(R"((\d+):(\d+):(\d+\.\d+))")))
    throw std::runtime_error("no time of day in \"" + text.substr(0, 40) + "\"");
  return std::stod(m[1]) * 3600 + std::stod(m[2]) * 60 + std::stod(m[3]);
}

// When the coordinator logged the first line containing `what` ("[2026-11-29 12:12:11.998] ...").
double logged_at(const std::string& log, const std::string& what) {
  const auto at = log.find(what);
  if (at == std::string::npos) throw std::runtime_error("the coordinator log has no \"" + what + "\"");
  const auto line = log.rfind('\n', at);
  return seconds_of_day(log.substr(line == std::string::npos ? 0 : line + 1, 32));
}

struct Round {
  double detected = 0, resumed = 0;  // seconds after the kill
  int64_t redone = 0;                // training steps done again
};

}  // namespace

int main(int argc, char** argv) {
  floe::launch::use_fast_blas_kernels();  // (may restart the process: launch/blas.hpp)
  CLI::App app{"floe: recovery from a killed node, from a replica and from a checkpoint"};
  int rounds = 3;
  std::string json_out;
  app.add_option("--rounds", rounds, "kills per kind of recovery");
  app.add_option("--json", json_out, "write the results as JSON");
  CLI11_PARSE(app, argc, argv);
  return exit_code_of([&] {
    const auto floe = fs::canonical("/proc/self/exe").parent_path().parent_path() / "floe";
    if (!fs::exists(floe)) throw InputError("expected the floe binary at " + floe.string());
    const auto dir = fs::temp_directory_path() / "floe-bench-recovery";
    const std::string job =
        " --set data.dataset=synthetic --set data.subset=1536 --set data.test_subset=1000 --set model.depth=2"
        " --set model.dim=16 --set model.heads=2 --set model.patch=7 --set batch_size=96 --set freeze.policy=none"
        " --set cache.enabled=false --set optimizer.warmup=10 --set epochs=6";
    // kind 0: three nodes of one replica each; kind 1: the first node holds the only pipeline.
    auto run = [&](int kind, int round) {
      fs::remove_all(dir);
      fs::create_directories(dir);
      const int port = 47800 + 10 * round + kind;
      const auto at = "127.0.0.1:" + std::to_string(port);
      std::string script = "cd " + dir.string() + "; export FLOE_SECRET=bench; F=" + floe.string() + "\n";
      if (kind == 0)
        script += "$F coordinator --listen " + at + " --nodes 3" + job +
                  " --set devices=3 --set pipeline.length=1 --set replicas=3 --set pipeline.micro_batches=1"
                  " --summary out.json > coordinator.log 2>&1 &\nc=$!\n"
                  "for n in a b victim; do $F node --join " + at + " --devices cpu:1 --name $n > $n.log 2>&1 & done\n"
                  "v=$!\n";
      else
        script += "$F coordinator --listen " + at + " --nodes 2" + job +
                  " --set devices=4 --set pipeline.length=2 --set pipeline.micro_batches=2 --set replicas=1"
                  " --set checkpoint.dir=ck --set checkpoint.interval=8 --summary out.json > coordinator.log 2>&1 &\n"
                  "c=$!\n$F node --join " + at + " --devices cpu:2 --name victim > victim.log 2>&1 &\nv=$!\n"
                  "for i in $(seq 1500); do grep -q \"'victim' admitted as node 0\" coordinator.log && break; sleep 0.02; done\n"
                  "$F node --join " + at + " --devices cpu:2 --name spare > spare.log 2>&1 &\n";
      script += "for i in $(seq 3000); do grep -q 'epoch 2/6 ' coordinator.log && break; sleep 0.01; done\n"
                "sleep 0.$((RANDOM % 10)); date +%T.%N > killed.at; kill -9 $v\n"
                "wait $c; code=$?; wait; exit $code";
      std::ofstream(dir / "run.sh") << script;
      const int status = std::system(("timeout 300 bash " + (dir / "run.sh").string()).c_str());
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        throw std::runtime_error("the job did not survive the kill; see " + (dir / "coordinator.log").string());
      const auto log = slurp(dir / "coordinator.log");
      const double killed = seconds_of_day(slurp(dir / "killed.at"));
      Round r;
      r.detected = logged_at(log, "left the job") - killed;
      r.resumed = logged_at(log, "recovered ") - killed;
      const auto summary = nlohmann::json::parse(slurp(dir / "out.json"));
      for (const auto& t : summary.at("transitions"))
        if (t.at("cause").get<std::string>().rfind("recovery", 0) == 0) {
          std::smatch m;
          const std::regex again(R"(steps (\d+)\.\.(\d+) are trained again)");
          if (std::regex_search(log, m, again)) r.redone = std::stoll(m[2]) - std::stoll(m[1]) + 1;
          else if (std::regex_search(log, m, std::regex(R"(training step (\d+): .*left the job)"))) {
            // The training step in flight, unless the survivors had applied it (then training
            // goes on from the one after).
            const int64_t failed = std::stoll(m[1]);
            std::smatch from;
            if (std::regex_search(log, from, std::regex(R"(going on from step (\d+))")))
              r.redone = std::max<int64_t>(0, failed + 1 - std::stoll(from[1]));
          }  // else no training step was in flight (the kill came during an evaluation)
        }
      return r;
    };
    nlohmann::json out;
    for (int kind : {0, 1}) {
      const char* name = kind == 0 ? "from a surviving replica" : "from the newest checkpoint (every 8 steps)";
      std::printf("%s:\n", name);
      std::vector<double> resumed;
      for (int i = 0; i < rounds; ++i) {
        const auto r = run(kind, i);
        resumed.push_back(r.resumed);
        std::printf("  kill %d: noticed after %.3f s, training resumed after %.3f s, %lld step(s) done again\n", i + 1,
                    r.detected, r.resumed, (long long)r.redone);
        std::fflush(stdout);
        out[kind == 0 ? "replica" : "checkpoint"].push_back(
            {{"detected_seconds", r.detected}, {"resumed_seconds", r.resumed}, {"steps_redone", r.redone}});
      }
      std::sort(resumed.begin(), resumed.end());
      std::printf("  median time from the kill to training resumed: %.3f s (goal < 2 s from a replica)\n\n",
                  resumed[resumed.size() / 2]);
    }
    if (!json_out.empty()) floe::write_file_atomic(json_out, out.dump(2) + "\n");
    fs::remove_all(dir);
    return 0;
  });
}
