// One process vs. several: the same plan (R data-parallel replicas of K stages), trained by
// `floe train` in one process and by `floe coordinator` + one `floe node` per replica on this
// machine, in alternating rounds (the machine drifts by +-20 %). Control crosses processes
// as CAF messages, gradients as a Gloo all-reduce. Goal: the multi-process step at >= 0.85
// of the one-process step on the same cores.
// With --split the plan is instead one pipeline of one stage per node (pipeline.span_nodes):
// every activation and gradient crosses processes, and the node processes run twice, with
// the tensors over UCX and inside CAF messages (pipeline.tensor_plane).
// Usage: cluster [--steps N] [--rounds N] [--nodes N] [--split] [--set key=value]... [--json out.json]
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
#include <numeric>
#include <sys/wait.h>
#include <unistd.h>

using namespace floe;
namespace fs = std::filesystem;

namespace {

int shell(const std::string& script) {
  const int status = std::system(("bash -c '" + script + "'").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

double samples_per_second(const fs::path& summary) {
  std::ifstream in(summary);
  if (!in) throw std::runtime_error("no summary at " + summary.string());
  const auto j = nlohmann::json::parse(in);
  return j.at("epochs").at(0).at("samples_per_second").get<double>();
}

}  // namespace

int main(int argc, char** argv) {
  floe::launch::use_fast_blas_kernels();  // (may restart the process: launch/blas.hpp)
  CLI::App app{"floe one process vs. several: samples/s of the same plan"};
  int64_t steps = 60;
  int rounds = 3, nodes = 2;
  std::string json_out;
  std::vector<std::string> sets;
  app.add_option("--steps", steps, "training steps per measurement");
  app.add_option("--rounds", rounds, "alternating rounds per side");
  bool split = false;
  app.add_option("--nodes", nodes, "node processes (one device and one replica each)");
  app.add_flag("--split", split, "one pipeline with a stage on every node instead of one replica per node");
  app.add_option("--set", sets, "override a config key of the job (default: the demo's model, Fashion-MNIST)")->take_all();
  app.add_option("--json", json_out, "write the results as JSON");
  CLI11_PARSE(app, argc, argv);
  return exit_code_of([&] {
    const auto floe = fs::canonical("/proc/self/exe").parent_path().parent_path() / "floe";
    if (!fs::exists(floe)) throw InputError("expected the floe binary at " + floe.string());
    const auto dir = fs::temp_directory_path() / "floe-bench-cluster";
    fs::create_directories(dir);
    const auto n = std::to_string(nodes);
    std::string flags = " --set epochs=1 --set freeze.policy=none --set cache.enabled=false --set data.test_subset=128"
                        " --set devices=" + n + " --set data.subset=" + std::to_string(steps * 128) +
                        " --set batch_size=128";
    flags += split ? " --set pipeline.length=" + n + " --set replicas=1 --set pipeline.span_nodes=true"
                   : " --set pipeline.length=1 --set replicas=" + n;
    for (const auto& s : sets) flags += " --set " + s;
    const std::string env = "cd " + dir.string() + "; export FLOE_SECRET=bench; ";
    auto one = [&] {
      if (shell(env + floe.string() + " train" + flags + " --summary one.json > one.log 2>&1") != 0)
        throw std::runtime_error("floe train failed; see " + (dir / "one.log").string());
      return samples_per_second(dir / "one.json");
    };
    int port = 47100;
    auto several = [&](const std::string& plane) {
      const auto at = "127.0.0.1:" + std::to_string(++port);
      std::string script = env + floe.string() + " coordinator --listen " + at + " --nodes " + std::to_string(nodes) +
                           flags + " --set pipeline.tensor_plane=" + plane + " --summary many.json > many.log 2>&1 & ";
      for (int n = 0; n < nodes; ++n)
        script += floe.string() + " node --join " + at + " --devices cpu:1 > node" + std::to_string(n) + ".log 2>&1 & ";
      script += "fail=0; for j in $(jobs -p); do wait $j || fail=1; done; exit $fail";
      if (shell(script) != 0) throw std::runtime_error("the cluster run failed; see the logs in " + dir.string());
      return samples_per_second(dir / "many.json");
    };
    if (split)
      std::printf("plan: K=%d (a stage per node process), R=1, batch 128, %lld steps per run, %d rounds\n", nodes,
                  (long long)steps, rounds);
    else
      std::printf("plan: K=1, R=%d data-parallel replicas, batch 128, %lld steps per run, %d rounds\n", nodes,
                  (long long)steps, rounds);
    std::vector<double> single, multi, caf;
    for (int r = 0; r < rounds; ++r) {
      if (r % 2 == 0) single.push_back(one());
      multi.push_back(several("ucx"));
      if (split) caf.push_back(several("caf"));
      if (r % 2 == 1) single.push_back(one());
      std::printf("  round %d: one process %.0f samples/s, %d processes %.0f samples/s", r + 1, single.back(), nodes + 1,
                  multi.back());
      if (split) std::printf(" (tensors in CAF messages: %.0f)", caf.back());
      std::printf("\n");
      std::fflush(stdout);
    }
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    const double ratio = median(multi) / median(single);
    std::printf("\nsamples/s (median)\n  one process            %8.0f\n  coordinator + %d nodes %8.0f\n", median(single),
                nodes, median(multi));
    if (split) std::printf("  the same, CAF messages %8.0f\n", median(caf));
    std::printf("  ratio                  %8.3f   (goal >= 0.85)\n", ratio);
    if (split) std::printf("  UCX / CAF messages     %8.3f\n", median(multi) / median(caf));
    nlohmann::json out{{"one_process", single}, {"multi_process", multi}, {"nodes", nodes},
                       {"split", split},        {"ratio_median", ratio}};
    if (split) {
      out["multi_process_caf"] = caf;
      out["ucx_over_caf_median"] = median(multi) / median(caf);
    }
    if (!json_out.empty()) floe::write_file_atomic(json_out, out.dump(2) + "\n");
    return 0;
  });
}
