#include <torch/torch.h>

#include "runtime/comm/ucx_transport.hpp"

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <thread>

using floe::runtime::BufferPool;
using floe::runtime::UcxTransport;
using namespace std::chrono_literals;

namespace {

// The outcome of one operation, reported on the progress thread.
struct Outcome {
  std::shared_ptr<std::promise<std::string>> promise = std::make_shared<std::promise<std::string>>();
  std::shared_future<std::string> future = promise->get_future().share();

  UcxTransport::Done done() const {
    return [p = promise](const std::string& error) { p->set_value(error); };
  }
  bool ready(std::chrono::milliseconds within = 5s) const {
    return future.wait_for(within) == std::future_status::ready;
  }
  std::string error() const {
    REQUIRE(ready());
    return future.get();
  }
};

// Two transports in one process, `a` connected to `b` (UCX picks shared memory and cma in
// error mode none, tcp in peer mode, as between two processes).
struct Pair {
  UcxTransport a, b;
  int a_to_b;
  explicit Pair(UcxTransport::ErrorMode mode) : a({mode}), b({mode}), a_to_b(a.connect(b.address())) {}
};

const char* name(UcxTransport::ErrorMode m) { return m == UcxTransport::ErrorMode::none ? "none" : "peer"; }

// Length-prefixed blobs over a pipe (the worker addresses of the two-process tests).
void write_blob(int fd, const std::vector<char>& blob) {
  const uint64_t n = blob.size();
  REQUIRE(::write(fd, &n, sizeof n) == ssize_t(sizeof n));
  REQUIRE(::write(fd, blob.data(), n) == ssize_t(n));
}
std::vector<char> read_blob(int fd) {
  uint64_t n = 0;
  REQUIRE(::read(fd, &n, sizeof n) == ssize_t(sizeof n));
  std::vector<char> blob(n);
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, blob.data() + got, n - got);
    REQUIRE(r > 0);
    got += size_t(r);
  }
  return blob;
}

constexpr int64_t echo_floats = 5 << 18;  // 5 MiB: rendezvous
constexpr const char* child_env = "FLOE_UCX_TEST_CHILD";

// This test binary re-executed as the peer of the two-process tests (a hidden test case that
// only does something when the parent set FLOE_UCX_TEST_CHILD to "read_fd:write_fd").
struct ChildProcess {
  pid_t pid = -1;
  int to_child = -1, from_child = -1;

  ChildProcess() {
    char exe[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    REQUIRE(n > 0);
    exe[n] = '\0';
    int down[2], up[2];
    REQUIRE(::pipe(down) == 0);
    REQUIRE(::pipe(up) == 0);
    // Everything the child needs is prepared before fork: between fork and exec a child of a
    // multi-threaded process may only make async-signal-safe calls.
    std::vector<std::string> env{std::string(child_env) + "=" + std::to_string(down[0]) + ":" + std::to_string(up[1])};
    for (char** e = environ; *e; ++e) env.emplace_back(*e);
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    char spec[] = "[.ucx-child]", out_flag[] = "--out", null_file[] = "/dev/null";
    char* argv[] = {exe, spec, out_flag, null_file, nullptr};
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(down[1]);
      ::close(up[0]);
      ::execve(exe, argv, envp.data());
      ::_exit(127);
    }
    ::close(down[0]);
    ::close(up[1]);
    to_child = down[1];
    from_child = up[0];
  }
  void kill() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      pid = -1;
    }
  }
  ~ChildProcess() {
    ::close(to_child);  // EOF: the child exits by itself
    ::close(from_child);
    if (pid > 0) ::waitpid(pid, nullptr, 0);
  }
};

}  // namespace

TEST_CASE("a small (eager) and a large (rendezvous) tensor arrive byte for byte", "[ucx]") {
  const auto mode = GENERATE(UcxTransport::ErrorMode::none, UcxTransport::ErrorMode::peer);
  INFO("error mode " << name(mode));
  Pair p(mode);
  REQUIRE_FALSE(p.a.address().empty());

  // Receive posted first, then the send.
  auto small = torch::arange(16, torch::kInt64);
  auto small_in = torch::zeros({16}, torch::kInt64);
  Outcome small_recv, small_sent;
  p.b.recv(1, small_in, small_recv.done());
  p.a.send(p.a_to_b, 1, small, small_sent.done());
  CHECK(small_sent.error() == "");
  CHECK(small_recv.error() == "");
  CHECK(torch::equal(small_in, small));

  // 3 MiB, sent before the receive exists (an unexpected rendezvous), into a pooled buffer.
  torch::manual_seed(3);
  auto large = torch::randn({3, 256, 1024});
  BufferPool pool;
  auto large_in = pool.acquire(torch::kFloat32, {3, 256, 1024});
  Outcome large_recv, large_sent;
  p.a.send(p.a_to_b, 2, large, large_sent.done());
  std::this_thread::sleep_for(20ms);
  p.b.recv(2, large_in, large_recv.done());
  CHECK(large_recv.error() == "");
  CHECK(large_sent.error() == "");
  CHECK(torch::equal(large_in, large));
  CHECK(p.a.outstanding() == 0);
  CHECK(p.b.outstanding() == 0);
}

TEST_CASE("messages with distinct tags land in their own buffers whatever the order", "[ucx]") {
  Pair p(UcxTransport::ErrorMode::none);
  const std::vector<int64_t> sizes{16, 100000, 3, 70000, 1000};  // eager and rendezvous mixed
  std::vector<torch::Tensor> out, in;
  std::vector<Outcome> sent(sizes.size()), received(sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    out.push_back(torch::full({sizes[i]}, float(i + 1)));
    in.push_back(torch::zeros({sizes[i]}));
  }
  // Receives for tags 104 and 103 are posted before anything is sent, in reverse order; the
  // others only after all sends, again in reverse order.
  p.b.recv(104, in[4], received[4].done());
  p.b.recv(103, in[3], received[3].done());
  for (size_t i = 0; i < sizes.size(); ++i) p.a.send(p.a_to_b, 100 + i, out[i], sent[i].done());
  std::this_thread::sleep_for(20ms);
  for (int i = 2; i >= 0; --i) p.b.recv(100 + i, in[i], received[i].done());
  for (size_t i = 0; i < sizes.size(); ++i) {
    INFO("tag " << 100 + i);
    CHECK(received[i].error() == "");
    CHECK(sent[i].error() == "");
    CHECK(torch::equal(in[i], out[i]));
  }
}

TEST_CASE("sends and receives may be posted from many threads at once", "[ucx]") {
  Pair p(UcxTransport::ErrorMode::none);
  const int threads = 4, per_thread = 50;
  std::vector<torch::Tensor> in(threads * per_thread);
  std::vector<Outcome> sent(in.size()), received(in.size());
  std::vector<std::thread> workers;
  for (int w = 0; w < threads; ++w)
    workers.emplace_back([&, w] {
      for (int i = w * per_thread; i < (w + 1) * per_thread; ++i) {
        in[i] = torch::zeros({i + 1});
        if (w % 2) p.b.recv(1000 + i, in[i], received[i].done());  // half before the sends
        p.a.send(p.a_to_b, 1000 + i, torch::full({i + 1}, float(i)), sent[i].done());
        if (w % 2 == 0) p.b.recv(1000 + i, in[i], received[i].done());
      }
    });
  for (auto& t : workers) t.join();
  for (size_t i = 0; i < in.size(); ++i) {
    INFO("message " << i);
    REQUIRE(received[i].error() == "");
    REQUIRE(sent[i].error() == "");
    REQUIRE(torch::equal(in[i], torch::full({int64_t(i) + 1}, float(i))));
  }
}

TEST_CASE("a receive tensor of the wrong size is an error that names the sizes", "[ucx]") {
  Pair p(UcxTransport::ErrorMode::none);
  const int64_t n = GENERATE(100, 1 << 20);  // eager and rendezvous
  INFO(n << " floats");
  auto data = torch::ones({n});

  Outcome smaller_sent, smaller_recv;
  auto small_buffer = torch::zeros({n / 2});
  p.b.recv(7, small_buffer, smaller_recv.done());
  p.a.send(p.a_to_b, 7, data, smaller_sent.done());
  CHECK_THAT(smaller_recv.error(), Catch::Contains("tag 7") && Catch::Contains("larger than the receive tensor"));
  CHECK(smaller_sent.ready());  // the sender is not left hanging

  Outcome larger_sent, larger_recv;
  auto large_buffer = torch::zeros({2 * n});
  p.b.recv(8, large_buffer, larger_recv.done());
  p.a.send(p.a_to_b, 8, data, larger_sent.done());
  CHECK_THAT(larger_recv.error(), Catch::Contains("received " + std::to_string(4 * n) + " bytes, expected " +
                                                  std::to_string(8 * n)));
  CHECK(larger_sent.error() == "");

  // The transport still works afterwards.
  Outcome ok_sent, ok_recv;
  auto exact = torch::zeros({n});
  p.b.recv(9, exact, ok_recv.done());
  p.a.send(p.a_to_b, 9, data, ok_sent.done());
  CHECK(ok_recv.error() == "");
  CHECK(torch::equal(exact, data));
}

TEST_CASE("disconnect fails the endpoint's outstanding send and the receives tied to it", "[ucx]") {
  const auto mode = GENERATE(UcxTransport::ErrorMode::none, UcxTransport::ErrorMode::peer);
  INFO("error mode " << name(mode));
  Pair p(mode);
  // A rendezvous send that nobody receives waits for the peer forever, as with a dead peer.
  Outcome stuck_send, tied_recv, untied_recv;
  p.a.send(p.a_to_b, 5, torch::ones({1 << 20}), stuck_send.done());
  p.a.recv(6, torch::zeros({10}), tied_recv.done(), p.a_to_b);
  p.a.recv(7, torch::zeros({10}), untied_recv.done());
  CHECK_FALSE(stuck_send.ready(50ms));
  CHECK(p.a.outstanding() == 3);

  p.a.disconnect(p.a_to_b);
  CHECK_THAT(stuck_send.error(), Catch::Contains("send to endpoint 0") && Catch::Contains("disconnected"));
  CHECK_THAT(tied_recv.error(), Catch::Contains("tag 6") && Catch::Contains("disconnected"));
  CHECK_FALSE(untied_recv.ready(20ms));  // any-peer receives are not tied to the endpoint

  Outcome late;
  p.a.send(p.a_to_b, 8, torch::ones({4}), late.done());
  CHECK_THAT(late.error(), Catch::Contains("endpoint 0") && Catch::Contains("closed: disconnected"));
  Outcome unknown;
  p.a.send(42, 8, torch::ones({4}), unknown.done());
  CHECK_THAT(unknown.error(), Catch::Contains("endpoint 42") && Catch::Contains("no such endpoint"));
  // The untied receive is failed when the transport goes away (checked in the next case).
}

TEST_CASE("in peer error mode a vanished peer fails the sends to it without a disconnect", "[ucx]") {
  UcxTransport a({UcxTransport::ErrorMode::peer});
  auto b = std::make_unique<UcxTransport>(UcxTransport::Options{UcxTransport::ErrorMode::peer});
  const int ep = a.connect(b->address());
  Outcome warm_sent, warm_recv;  // completes the wireup first
  b->recv(1, torch::zeros({4}), warm_recv.done());
  a.send(ep, 1, torch::ones({4}), warm_sent.done());
  REQUIRE(warm_recv.error() == "");
  REQUIRE(warm_sent.error() == "");

  Outcome stuck;
  a.send(ep, 2, torch::ones({1 << 20}), stuck.done());  // rendezvous, never received
  CHECK_FALSE(stuck.ready(50ms));
  b.reset();  // its worker and sockets go away, as when the process dies
  CHECK_THAT(stuck.error(), Catch::Contains("send to endpoint 0") && Catch::Contains("failed"));
  Outcome late;
  a.send(ep, 3, torch::ones({4}), late.done());
  CHECK_THAT(late.error(), Catch::Contains("the endpoint is closed: endpoint 0 failed"));
}

TEST_CASE("the peer process of the two-process tests", "[.ucx-child]") {
  const char* spec = std::getenv(child_env);
  if (!spec) return;
  int in = -1, out = -1;
  REQUIRE(std::sscanf(spec, "%d:%d", &in, &out) == 2);
  // One transport per error mode (both sides of a connection must use the same one), each
  // echoing one tensor back with every element plus one.
  UcxTransport none({UcxTransport::ErrorMode::none}), peer({UcxTransport::ErrorMode::peer});
  for (auto* t : {&none, &peer}) {
    write_blob(out, t->address());
    const int ep = t->connect(read_blob(in));
    auto buffer = torch::empty({echo_floats});
    Outcome received;
    t->recv(1, buffer, received.done());
    REQUIRE(received.error() == "");
    Outcome sent;
    t->send(ep, 2, buffer + 1, sent.done());
    REQUIRE(sent.error() == "");
  }
  char c;
  while (::read(in, &c, 1) > 0) {  // until the parent closes the pipe, or kills us
  }
  ::_exit(0);
}

TEST_CASE("two processes: data goes both ways and a killed peer fails the sends to it", "[ucx][process]") {
  ChildProcess child;
  torch::manual_seed(11);
  auto data = torch::randn({echo_floats});
  BufferPool pool;
  struct Side {
    UcxTransport::ErrorMode mode;
    std::unique_ptr<UcxTransport> t;
    int ep = -1;
    Outcome stuck;
  };
  std::vector<Side> sides(2);
  sides[0].mode = UcxTransport::ErrorMode::none;
  sides[1].mode = UcxTransport::ErrorMode::peer;
  for (auto& side : sides) {
    INFO("error mode " << name(side.mode));
    side.t = std::make_unique<UcxTransport>(UcxTransport::Options{side.mode});
    write_blob(child.to_child, side.t->address());
    side.ep = side.t->connect(read_blob(child.from_child));
    auto echo = pool.acquire(torch::kFloat32, {echo_floats});
    Outcome echoed, sent;
    side.t->recv(2, echo, echoed.done());
    side.t->send(side.ep, 1, data, sent.done());
    CHECK(sent.error() == "");
    CHECK(echoed.error() == "");
    CHECK(torch::equal(echo, data + 1));
    // The child never receives tag 3.
    side.t->send(side.ep, 3, data, side.stuck.done());
  }
  CHECK_FALSE(sides[0].stuck.ready(50ms));
  CHECK_FALSE(sides[1].stuck.ready(0ms));
  child.kill();
  // Peer mode: UCX notices by itself (the tcp connection resets).
  CHECK_THAT(sides[1].stuck.error(), Catch::Contains("endpoint 0 failed"));
  // None mode: shared memory and cma report nothing, the send would wait forever. The
  // owner's failure detector (a CAF down_msg) calls disconnect.
  CHECK_FALSE(sides[0].stuck.ready(100ms));
  sides[0].t->disconnect(sides[0].ep);
  CHECK_THAT(sides[0].stuck.error(), Catch::Contains("disconnected"));
}

TEST_CASE("destroying the transport fails what is still outstanding", "[ucx]") {
  Outcome pending;
  {
    UcxTransport t;
    t.recv(3, torch::zeros({8}), pending.done());
    CHECK_FALSE(pending.ready(20ms));
  }
  CHECK_THAT(pending.error(), Catch::Contains("tag 3") && Catch::Contains("transport closed"));
}

TEST_CASE("bad tensors and addresses are rejected in the caller with a clear message", "[ucx]") {
  UcxTransport t;
  CHECK_THROWS_WITH(t.send(0, 1, torch::ones({4, 4}).t(), [](const std::string&) {}),
                    Catch::Contains("contiguous"));
  CHECK_THROWS_WITH(t.recv(1, torch::Tensor(), [](const std::string&) {}), Catch::Contains("undefined"));
  CHECK_THROWS_WITH(t.connect({}), Catch::Contains("peer address is empty"));
}

TEST_CASE("a pooled receive buffer is free again when its receive completes", "[ucx][pool]") {
  Pair p(UcxTransport::ErrorMode::none);
  BufferPool pool;
  auto buffer = pool.acquire(torch::kFloat32, {1 << 20});
  const void* storage = buffer.data_ptr();
  Outcome received, sent;
  p.b.recv(4, std::move(buffer), received.done());  // only the transport holds it now
  p.a.send(p.a_to_b, 4, torch::ones({1 << 20}), sent.done());
  REQUIRE(received.error() == "");
  auto next = pool.acquire(torch::kFloat32, {1 << 20});
  CHECK(next.data_ptr() == storage);
  CHECK(torch::equal(next, torch::ones({1 << 20})));  // what the receive wrote
}

TEST_CASE("the buffer pool hands the same storage back once nobody uses it", "[ucx][pool]") {
  BufferPool pool;
  const void* first;
  {
    auto t = pool.acquire(torch::kFloat32, {4, 256});
    first = t.data_ptr();
    auto again = pool.acquire(torch::kFloat32, {4, 256});  // `t` is still in use
    CHECK(again.data_ptr() != first);
    t.requires_grad_();
  }
  auto reused = pool.acquire(torch::kFloat32, {4, 256});
  CHECK(reused.data_ptr() == first);
  CHECK_FALSE(reused.requires_grad());  // a fresh tensor over the buffer, not the old one
  CHECK(reused.sizes() == c10::IntArrayRef{4, 256});
  CHECK(pool.cached_buffers() == 2);

  // A view keeps the buffer busy; the same byte size in another dtype and shape reuses it.
  auto view = reused.narrow(0, 0, 1);
  reused = torch::Tensor();
  auto other = pool.acquire(torch::kFloat32, {4, 256});
  CHECK(other.data_ptr() != first);
  view = torch::Tensor();
  auto as_doubles = pool.acquire(torch::kFloat64, {512});
  CHECK(as_doubles.data_ptr() == first);
  CHECK(as_doubles.scalar_type() == torch::kFloat64);

  BufferPool tiny(1024);
  auto big = tiny.acquire(torch::kUInt8, {4096});
  CHECK(big.numel() == 4096);
  CHECK(tiny.cached_buffers() == 0);  // over the cap: handed out uncached
}
