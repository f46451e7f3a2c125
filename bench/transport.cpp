// Tensor payloads between two processes on this machine, measured side by side in one run:
//  (a) caf: the tensor inside a CAF message (msg::wire_tensor, serialised by the middleman;
//      the receiver deserialises into a fresh tensor), acknowledged by a CAF response;
//  (b) ucx: a small CAF ticket (tag, dtype, shape), the bytes over UcxTransport into a pooled
//      receive buffer; the receiver acknowledges once the receive has completed.
// Each transfer is sequential (send, then wait for the acknowledgement); the two paths
// alternate within every round (the machine drifts by +-20 %). The acknowledgement carries
// the first and last element, which the sender changes every round, so stale data fails.
// The parent re-executes itself (/proc/self/exe --peer) as the receiving process; control
// between the two goes through CAF remote actors (middleman publish + remote_actor).
// Usage: transport [--rounds N] [--sizes-mib 1,64] [--error-mode none|peer] [--json out.json] [--verbose]
#include "launch/blas.hpp"
#include "models/files.hpp"
#include "messages/tensor.hpp"
#include "models/errors.hpp"
#include "runtime/observe/summary.hpp"
#include "runtime/comm/ucx_transport.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <future>
#include <tuple>
#include <unordered_map>

using namespace floe;

namespace {

using ucx_address_atom = caf::atom_constant<caf::atom("ucxaddr")>;
using ucx_done_atom = caf::atom_constant<caf::atom("ucxdone")>;

// What the receiver needs to post a UCX receive; the bytes follow over UCX with `tag`.
struct ticket {
  uint64_t tag = 0;
  int8_t dtype = 0;
  std::vector<int64_t> shape;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ticket& x) {
  return f(caf::meta::type_name("ticket"), x.tag, x.dtype, x.shape);
}

struct bench_config : caf::actor_system_config {
  bench_config() {
    load<caf::io::middleman>();
    add_message_type<msg::wire_tensor>("floe.wire_tensor");
    add_message_type<ticket>("floe.bench.ticket");
    add_message_type<std::vector<char>>("std::vector<char>");
    add_message_type<std::vector<int64_t>>("std::vector<int64_t>");
    set("scheduler.max-threads", 1);  // 2 cores, 2 processes, plus middleman and UCX threads
    set("logger.verbosity", caf::atom("quiet"));
  }
};

std::tuple<float, float> markers(const torch::Tensor& t) {
  const float* p = t.data_ptr<float>();
  return {p[0], p[t.numel() - 1]};
}

// ---- the receiving process ----------------------------------------------------------------

struct receiver_state {
  struct receive {
    caf::response_promise promise;
    torch::Tensor buffer;
  };
  std::unordered_map<uint64_t, receive> waiting;  // by tag
};

caf::behavior receiver(caf::stateful_actor<receiver_state>* self, runtime::UcxTransport* ucx,
                       runtime::BufferPool* pool) {
  return {
      [=](ucx_address_atom) { return ucx->address(); },
      [=](const msg::wire_tensor& w) { return markers(w.t); },
      [=](const ticket& t) -> caf::result<float, float> {
        if (self->state.waiting.count(t.tag))
          return caf::make_error(caf::sec::invalid_argument, "ticket tag " + std::to_string(t.tag) + " is in use");
        if (t.dtype < 0 || t.dtype >= int8_t(c10::ScalarType::NumOptions))
          return caf::make_error(caf::sec::invalid_argument, "ticket: unknown dtype " + std::to_string(t.dtype));
        torch::Tensor buffer;
        try {
          buffer = pool->acquire(c10::ScalarType(t.dtype), t.shape);
        } catch (const std::exception& e) {  // a bad shape must not kill the actor
          return caf::make_error(caf::sec::invalid_argument, std::string("ticket: ") + e.what());
        }
        auto promise = self->make_response_promise();
        self->state.waiting.emplace(t.tag, receiver_state::receive{promise, buffer});
        // Runs on the UCX progress thread: only hand the outcome over to the actor.
        ucx->recv(t.tag, buffer, [me = caf::actor_cast<caf::actor>(self), tag = t.tag](const std::string& error) {
          caf::anon_send(me, ucx_done_atom::value, tag, error);
        });
        return promise;
      },
      [=](ucx_done_atom, uint64_t tag, const std::string& error) {
        auto it = self->state.waiting.find(tag);
        if (it == self->state.waiting.end()) return;
        if (!error.empty()) {
          it->second.promise.deliver(caf::make_error(caf::sec::runtime_error, error));
        } else {
          auto [first, last] = markers(it->second.buffer);
          it->second.promise.deliver(first, last);
        }
        self->state.waiting.erase(it);  // the buffer goes back to the pool
      },
  };
}

int run_peer(runtime::UcxTransport::ErrorMode mode) {
  bench_config cfg;
  caf::actor_system sys{cfg};
  {
    runtime::BufferPool pool;
    runtime::UcxTransport ucx({mode});
    auto r = sys.spawn(receiver, &ucx, &pool);
    auto port = sys.middleman().publish(r, 0, "127.0.0.1", true);
    if (!port) throw std::runtime_error("peer: cannot publish the receiver: " + sys.render(port.error()));
    std::printf("%u\n", unsigned(*port));
    std::fflush(stdout);
    // The parent closes our stdin when it is done (or dies): that is the signal to stop.
    char c;
    while (::read(STDIN_FILENO, &c, 1) > 0) {
    }
    sys.middleman().unpublish(r, *port);
    caf::scoped_actor self{sys};
    self->send_exit(r, caf::exit_reason::user_shutdown);
    self->wait_for(r);
  }  // the transport goes before the actor system: its callbacks message the receiver
  return 0;
}

// ---- the sending process ------------------------------------------------------------------

struct peer_process {
  pid_t pid = -1;
  int to_child = -1;  // the child's stdin: closing it stops the child
  uint16_t port = 0;

  peer_process(const char* error_mode) {
    char exe[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) throw std::runtime_error("cannot read /proc/self/exe");
    exe[n] = '\0';
    int out[2], in[2];
    if (::pipe(out) != 0 || ::pipe(in) != 0) throw std::runtime_error("pipe failed");
    pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      ::dup2(in[0], STDIN_FILENO);
      ::close(out[0]), ::close(out[1]), ::close(in[0]), ::close(in[1]);
      ::execl(exe, exe, "--peer", "--error-mode", error_mode, static_cast<char*>(nullptr));
      std::perror("exec of the peer process");
      ::_exit(127);
    }
    ::close(out[1]);
    ::close(in[0]);
    to_child = in[1];
    std::string line;
    char c;
    while (::read(out[0], &c, 1) == 1 && c != '\n') line += c;
    ::close(out[0]);
    if (line.empty()) throw std::runtime_error("the peer process did not report its port");
    port = uint16_t(std::stoul(line));
  }
  ~peer_process() {
    if (to_child >= 0) ::close(to_child);
    if (pid > 0) ::waitpid(pid, nullptr, 0);
  }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct size_result {
  int64_t mib;
  std::vector<double> caf_mib_s, ucx_mib_s;
};

int run_parent(int rounds, const std::vector<int64_t>& sizes_mib, const std::string& mode_name,
               runtime::UcxTransport::ErrorMode mode, const std::string& json_out, bool verbose) {
  torch::set_num_threads(1);
  peer_process peer(mode_name.c_str());
  bench_config cfg;
  caf::actor_system sys{cfg};
  std::vector<size_result> results;
  {
    runtime::UcxTransport ucx({mode});
    auto remote = sys.middleman().remote_actor("127.0.0.1", peer.port);
    if (!remote) throw std::runtime_error("cannot reach the peer process: " + sys.render(remote.error()));
    const auto r = *remote;
    caf::scoped_actor self{sys};
    const auto timeout = std::chrono::seconds(60);
    std::vector<char> peer_address;
    self->request(r, timeout, ucx_address_atom::value)
        .receive([&](const std::vector<char>& a) { peer_address = a; },
                 [&](caf::error& e) { throw std::runtime_error("peer address: " + sys.render(e)); });
    const int ep = ucx.connect(peer_address);
    if (verbose) std::printf("%s\n", ucx.endpoint_info(ep).c_str());

    uint64_t next_tag = 1;
    float mark = 0;
    auto check = [&](float first, float last, const char* path) {
      if (first != mark || last != -mark)
        throw std::runtime_error(std::string(path) + ": the receiver saw stale or wrong data");
    };
    auto via_caf = [&](const torch::Tensor& payload) {
      self->request(r, timeout, msg::wire_tensor{payload})
          .receive([&](float first, float last) { check(first, last, "caf"); },
                   [&](caf::error& e) { throw std::runtime_error("caf path: " + sys.render(e)); });
    };
    auto via_ucx = [&](const torch::Tensor& payload) {
      const uint64_t tag = next_tag++;
      auto sent = std::make_shared<std::promise<std::string>>();
      auto sent_future = sent->get_future();
      ucx.send(ep, tag, payload, [sent](const std::string& error) { sent->set_value(error); });
      self->request(r, timeout, ticket{tag, int8_t(payload.scalar_type()), payload.sizes().vec()})
          .receive([&](float first, float last) { check(first, last, "ucx"); },
                   [&](caf::error& e) { throw std::runtime_error("ucx path: " + sys.render(e)); });
      if (auto error = sent_future.get(); !error.empty()) throw std::runtime_error(error);
    };

    for (const int64_t mib : sizes_mib) {
      const int64_t numel = mib * (int64_t(1) << 20) / 4;
      auto payload = torch::randn({numel});  // every page touched: no first-send page faults
      float* p = payload.data_ptr<float>();
      size_result res{mib, {}, {}};
      const int warmup = 3;
      for (int round = 0; round < warmup + rounds; ++round) {
        for (int k = 0; k < 2; ++k) {
          const bool caf_turn = (k == 0) == (round % 2 == 0);  // alternate which goes first
          mark += 1;
          p[0] = mark;
          p[numel - 1] = -mark;
          const auto t0 = std::chrono::steady_clock::now();
          caf_turn ? via_caf(payload) : via_ucx(payload);
          const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          if (round >= warmup) (caf_turn ? res.caf_mib_s : res.ucx_mib_s).push_back(double(mib) / s);
        }
      }
      results.push_back(std::move(res));
    }
  }  // the transport goes before the actor system

  std::printf("payload: float32 tensor, sequential transfer + ack between two processes, %d rounds "
              "(+3 warm-up); UCX error mode %s\n\n",
              rounds, mode_name.c_str());
  std::printf("%8s  %14s  %14s  %9s   %s\n", "size", "caf MiB/s", "ucx MiB/s", "ucx/caf", "(median; best in brackets)");
  nlohmann::json j{{"rounds", rounds}, {"warmup", 3}, {"error_mode", mode_name}, {"sizes", nlohmann::json::array()}};
  for (const auto& res : results) {
    const double caf_med = median(res.caf_mib_s), ucx_med = median(res.ucx_mib_s);
    const double caf_best = *std::max_element(res.caf_mib_s.begin(), res.caf_mib_s.end());
    const double ucx_best = *std::max_element(res.ucx_mib_s.begin(), res.ucx_mib_s.end());
    std::printf("%5lld MiB  %7.0f (%5.0f)  %7.0f (%5.0f)  %8.2fx\n", (long long)res.mib, caf_med, caf_best, ucx_med,
                ucx_best, ucx_med / caf_med);
    j["sizes"].push_back({{"mib", res.mib},
                          {"caf_mib_s", res.caf_mib_s},
                          {"ucx_mib_s", res.ucx_mib_s},
                          {"caf_median_mib_s", caf_med},
                          {"ucx_median_mib_s", ucx_med},
                          {"ratio_ucx_over_caf", ucx_med / caf_med}});
  }
  if (!json_out.empty()) floe::write_file_atomic(json_out, j.dump(2) + "\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  floe::launch::use_fast_blas_kernels();  // (may restart the process: launch/blas.hpp)
  CLI::App app{"floe transport: tensor bytes inside CAF messages vs a CAF ticket plus UCX, two processes"};
  int rounds = 50;
  std::vector<int64_t> sizes_mib{1, 64};
  std::string mode_name = "none", json_out;
  bool peer = false, verbose = false;
  app.add_option("--rounds", rounds, "measured transfers per size and path")->check(CLI::PositiveNumber);
  app.add_option("--sizes-mib", sizes_mib, "payload sizes in MiB")->delimiter(',')->check(CLI::PositiveNumber);
  app.add_option("--error-mode", mode_name, "UCX error handling: none (shared memory + cma) or peer (tcp only)")
      ->check(CLI::IsMember({"none", "peer"}));
  app.add_option("--json", json_out, "write the results as JSON");
  app.add_flag("--verbose", verbose, "print UCX's description of the endpoint (lanes, thresholds)");
  app.add_flag("--peer", peer, "internal: run as the receiving process");
  CLI11_PARSE(app, argc, argv);
  const auto mode =
      mode_name == "peer" ? runtime::UcxTransport::ErrorMode::peer : runtime::UcxTransport::ErrorMode::none;
  return exit_code_of([&] {
    return peer ? run_peer(mode) : run_parent(rounds, sizes_mib, mode_name, mode, json_out, verbose);
  });
}
