#include "runtime/comm/ucx_transport.hpp"

#include <c10/core/CPUAllocator.h>
#include <spdlog/spdlog.h>
#include <ucp/api/ucp.h>

#include <poll.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <chrono>
#include <future>
#include <stdexcept>
#include <thread>
#include <unordered_map>

namespace floe::runtime {

namespace {

std::string ucx_error(const std::string& what, ucs_status_t status) {
  return what + ": " + ucs_status_string(status);
}

void check_tensor(const torch::Tensor& t, const char* op) {
  if (!t.defined()) throw std::invalid_argument(std::string("ucx ") + op + ": the tensor is undefined");
  if (!t.device().is_cpu())
    throw std::invalid_argument(std::string("ucx ") + op + ": expected a CPU tensor, got one on " + t.device().str());
  if (!t.is_contiguous())
    throw std::invalid_argument(std::string("ucx ") + op + ": expected a contiguous tensor (call .contiguous() first)");
}

}  // namespace

struct UcxTransport::Impl {
  // One send or receive in flight. Owned by `ops`; UCX gets its address as user_data.
  struct Op {
    Impl* impl = nullptr;
    bool is_send = false;
    int ep = any_peer;  // the endpoint of a send; the `from_ep` of a receive
    uint64_t tag = 0;
    torch::Tensor tensor;  // keeps the buffer alive until UCX is done with it
    size_t bytes = 0;
    Done done;             // null once reported
    void* request = nullptr;
    std::string failure;  // set by disconnect: reported instead of UCX's "Request canceled"
    bool starting = false;  // inside ucp_tag_recv_nbx
    bool finished = false;  // its callback ran while starting
  };
  struct Endpoint {
    Impl* impl;
    int id;
    ucp_ep_h handle;
  };

  ErrorMode mode;
  ucp_context_h context = nullptr;
  ucp_worker_h worker = nullptr;
  int event_fd = -1;
  std::thread thread;
  std::thread::id thread_id;

  // Commands from any thread.
  std::mutex mu;
  std::vector<std::function<void()>> commands;
  std::atomic<bool> has_commands{false};

  // Progress thread only.
  bool stopping = false;
  std::unordered_map<Op*, std::unique_ptr<Op>> ops;
  std::unordered_map<int, std::unique_ptr<Endpoint>> endpoints;
  std::vector<std::unique_ptr<Endpoint>> retired;  // UCX may still hold their address as error-handler arg
  std::unordered_map<int, std::string> closed;     // why an endpoint id is no longer usable
  std::vector<void*> closing;                      // ucp_ep_close_nbx requests in flight
  int next_endpoint = 0;

  std::atomic<size_t> outstanding{0};

  void post(std::function<void()> command) {
    {
      std::lock_guard<std::mutex> lock(mu);
      commands.push_back(std::move(command));
      has_commands = true;
    }
    // Thread-safe by UCX's contract, whatever the worker's thread mode.
    if (auto st = ucp_worker_signal(worker); st != UCS_OK)
      spdlog::error("ucx: ucp_worker_signal failed: {}", ucs_status_string(st));
  }

  // Runs `fn` on the progress thread and returns its result (or rethrows its exception).
  template <class Fn>
  auto call(Fn fn) -> decltype(fn()) {
    if (std::this_thread::get_id() == thread_id) return fn();
    auto task = std::make_shared<std::packaged_task<decltype(fn())()>>(std::move(fn));
    auto result = task->get_future();
    post([task] { (*task)(); });
    return result.get();
  }

  void loop() {
    while (!stopping) {
      run_commands();
      if (stopping) break;
      while (ucp_worker_progress(worker) != 0) {
      }
      reap_closing();
      if (has_commands) continue;
      const auto st = ucp_worker_arm(worker);
      if (st == UCS_ERR_BUSY) continue;  // events arrived meanwhile: progress again
      if (st != UCS_OK) {
        // Not expected; fall back to a slow poll rather than spinning or dying.
        spdlog::error("ucx: ucp_worker_arm failed: {}", ucs_status_string(st));
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      if (has_commands) continue;  // posted after the drain: its signal is already in the fd
      pollfd pfd{event_fd, POLLIN, 0};
      ::poll(&pfd, 1, 100);  // the timeout is only a safety net; signals and traffic wake us
    }
  }

  void run_commands() {
    std::vector<std::function<void()>> batch;
    {
      std::lock_guard<std::mutex> lock(mu);
      batch.swap(commands);
      has_commands = false;
    }
    for (auto& c : batch) {
      try {
        c();
      } catch (const std::exception& e) {
        spdlog::error("ucx: a command posted to the progress thread threw: {}", e.what());
      }
    }
  }

  void reap_closing() {
    for (size_t i = 0; i < closing.size();) {
      if (ucp_request_check_status(closing[i]) != UCS_INPROGRESS) {
        ucp_request_free(closing[i]);
        closing[i] = closing.back();
        closing.pop_back();
      } else {
        ++i;
      }
    }
  }

  static std::string describe(const Op& op) {
    std::string what = op.is_send ? "ucx send to endpoint " + std::to_string(op.ep) : std::string("ucx recv");
    what += " (tag " + std::to_string(op.tag) + ", " + std::to_string(op.bytes) + " bytes)";
    if (!op.is_send && op.ep != any_peer) what += " from endpoint " + std::to_string(op.ep);
    return what;
  }

  static void report(Done& done, const std::string& error) {
    try {
      done(error);
    } catch (const std::exception& e) {
      spdlog::error("ucx: a completion callback threw: {}", e.what());
    }
  }

  Op* add_op(bool is_send, int ep, uint64_t tag, torch::Tensor t, Done done) {
    auto op = std::make_unique<Op>();
    op->impl = this;
    op->is_send = is_send;
    op->ep = ep;
    op->tag = tag;
    op->bytes = t.nbytes();
    op->tensor = std::move(t);
    op->done = std::move(done);
    auto* raw = op.get();
    ops.emplace(raw, std::move(op));
    ++outstanding;
    return raw;
  }

  // Reports the outcome once; the record lives on until UCX has released its request.
  // `released`: UCX is done with the buffer, so the tensor is let go before `done` runs (a
  // pooled receive buffer is then free again as soon as its user drops it).
  void complete(Op* op, ucs_status_t status, size_t received, bool released) {
    if (released) op->tensor = torch::Tensor();
    if (!op->done) return;
    std::string error;
    if (status != UCS_OK) {
      if (!op->failure.empty())
        error = describe(*op) + ": " + op->failure;
      else if (status == UCS_ERR_MESSAGE_TRUNCATED)
        error = describe(*op) + ": the message is larger than the receive tensor (" + ucs_status_string(status) + ")";
      else
        error = ucx_error(describe(*op), status);
    } else if (!op->is_send && received != op->bytes) {
      error = describe(*op) + ": received " + std::to_string(received) + " bytes, expected " +
              std::to_string(op->bytes) + " (the sender's tensor has another size)";
    }
    auto done = std::move(op->done);
    op->done = nullptr;
    --outstanding;
    report(done, error);
  }

  void forget(Op* op) { ops.erase(op); }

  static void on_send(void* request, ucs_status_t status, void* user_data) {
    auto* op = static_cast<Op*>(user_data);
    op->impl->complete(op, status, 0, true);
    ucp_request_free(request);  // only here: freeing an in-flight request drops its callback
    op->impl->forget(op);
  }

  static void on_recv(void* request, ucs_status_t status, const ucp_tag_recv_info_t* info, void* user_data) {
    auto* op = static_cast<Op*>(user_data);
    op->impl->complete(op, status, info ? info->length : 0, true);
    if (op->starting) {  // inside ucp_tag_recv_nbx: start_recv frees the request
      op->finished = true;
      return;
    }
    ucp_request_free(request);
    op->impl->forget(op);
  }

  // Peer error mode only: UCX found the peer dead or unreachable.
  static void on_endpoint_error(void* arg, ucp_ep_h, ucs_status_t status) {
    auto* ep = static_cast<Endpoint*>(arg);
    ep->impl->close_endpoint(ep->id, ucx_error("endpoint " + std::to_string(ep->id) + " failed", status));
  }

  int create_endpoint(const std::vector<char>& peer_address) {
    if (stopping) throw std::runtime_error("ucx connect: transport closed");
    const int id = next_endpoint++;
    auto ep = std::make_unique<Endpoint>(Endpoint{this, id, nullptr});
    ucp_ep_params_t params{};
    params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE;
    params.address = reinterpret_cast<const ucp_address_t*>(peer_address.data());
    params.err_mode = mode == ErrorMode::peer ? UCP_ERR_HANDLING_MODE_PEER : UCP_ERR_HANDLING_MODE_NONE;
    if (mode == ErrorMode::peer) {
      params.field_mask |= UCP_EP_PARAM_FIELD_ERR_HANDLER;
      params.err_handler.cb = &on_endpoint_error;
      params.err_handler.arg = ep.get();
    }
    if (auto st = ucp_ep_create(worker, &params, &ep->handle); st != UCS_OK)
      throw std::runtime_error(ucx_error("ucx connect: ucp_ep_create for a " + std::to_string(peer_address.size()) +
                                             "-byte peer address failed",
                                         st));
    endpoints.emplace(id, std::move(ep));
    return id;
  }

  // Fails the endpoint's operations with `reason` and closes it: forcibly where UCX allows it
  // (peer mode) and `force` is asked, else with a flush.
  void close_endpoint(int id, const std::string& reason, bool force = true) {
    auto it = endpoints.find(id);
    if (it == endpoints.end()) return;
    auto ep = std::move(it->second);
    endpoints.erase(it);
    closed[id] = reason;
    std::vector<Op*> mine;
    for (auto& [raw, op] : ops)
      if (op->ep == id && op->done) mine.push_back(raw);
    for (auto* op : mine) op->failure = reason;
    // Receives are matched on the worker, not the endpoint: cancel them one by one. The
    // callback may run inside ucp_request_cancel and erase the record, so look it up again.
    for (auto* op : mine)
      if (!op->is_send && ops.count(op) && op->request) ucp_request_cancel(worker, op->request);
    // Peer mode: force, since the peer is presumed dead; UCX completes the endpoint's sends
    // with UCS_ERR_CANCELED. None mode: UCX 1.13 rejects a forced close (Invalid parameter),
    // so flush-close; with a dead peer UCX keeps the endpoint's sends until the worker is
    // destroyed, which is why they are failed below. A forced close makes a live peer see
    // transport errors, so an idle endpoint is flushed instead when `force` is not asked.
    ucp_request_param_t params{};
    params.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    params.flags = mode == ErrorMode::peer && (force || !mine.empty()) ? UCP_EP_CLOSE_FLAG_FORCE : 0;
    void* request = ucp_ep_close_nbx(ep->handle, &params);
    if (UCS_PTR_IS_PTR(request))
      closing.push_back(request);
    else if (UCS_PTR_STATUS(request) != UCS_OK)
      spdlog::warn("ucx: closing endpoint {}: {}", id, ucs_status_string(UCS_PTR_STATUS(request)));
    // Whatever UCX did not complete (a receive not matched yet, a send in a state that
    // escaped cancellation) still fails now; its record is freed when (if) UCX lets go.
    for (auto* op : mine)
      if (ops.count(op)) complete(op, UCS_ERR_CANCELED, 0, false);
    retired.push_back(std::move(ep));
  }

  void start_send(int ep, uint64_t tag, torch::Tensor t, Done done) {
    if (stopping) return report(done, "ucx send (tag " + std::to_string(tag) + "): transport closed");
    auto it = endpoints.find(ep);
    if (it == endpoints.end()) {
      auto c = closed.find(ep);
      report(done, "ucx send to endpoint " + std::to_string(ep) + " (tag " + std::to_string(tag) + "): " +
                       (c == closed.end() ? std::string("no such endpoint") : "the endpoint is closed: " + c->second));
      return;
    }
    auto* op = add_op(true, ep, tag, std::move(t), std::move(done));
    ucp_request_param_t params{};
    params.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_DATATYPE;
    params.cb.send = &on_send;
    params.user_data = op;
    params.datatype = ucp_dt_make_contig(1);
    void* request = ucp_tag_send_nbx(it->second->handle, op->tensor.data_ptr(), op->tensor.nbytes(), tag, &params);
    if (UCS_PTR_IS_PTR(request)) {
      op->request = request;
    } else {  // completed (or failed) at once; no callback will come
      complete(op, UCS_PTR_STATUS(request), 0, true);
      forget(op);
    }
  }

  void start_recv(uint64_t tag, torch::Tensor into, Done done, int from_ep) {
    if (stopping) return report(done, "ucx recv (tag " + std::to_string(tag) + "): transport closed");
    if (from_ep != any_peer && !endpoints.count(from_ep)) {
      auto c = closed.find(from_ep);
      report(done, "ucx recv (tag " + std::to_string(tag) + ") from endpoint " + std::to_string(from_ep) + ": " +
                       (c == closed.end() ? std::string("no such endpoint") : "the endpoint is closed: " + c->second));
      return;
    }
    auto* op = add_op(false, from_ep, tag, std::move(into), std::move(done));
    // NO_IMM_CMPL: UCX 1.13.1 does not fill recv_info on immediate completion (the length
    // read back as 0), so always take the callback, which may then run inside this call.
    ucp_request_param_t params{};
    params.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_DATATYPE |
                          UCP_OP_ATTR_FLAG_NO_IMM_CMPL;
    params.cb.recv = &on_recv;
    params.user_data = op;
    params.datatype = ucp_dt_make_contig(1);
    op->starting = true;
    void* request = ucp_tag_recv_nbx(worker, op->tensor.data_ptr(), op->tensor.nbytes(), tag, ~uint64_t(0), &params);
    op->starting = false;
    if (UCS_PTR_IS_ERR(request)) {
      complete(op, UCS_PTR_STATUS(request), 0, true);
      forget(op);
    } else if (op->finished) {  // the callback already ran inside ucp_tag_recv_nbx
      ucp_request_free(request);
      forget(op);
    } else {
      op->request = request;
    }
  }

  // On the progress thread, at destruction: nothing may stay outstanding.
  void shut_down() {
    std::vector<int> ids;
    for (auto& [id, ep] : endpoints) ids.push_back(id);
    for (int id : ids) close_endpoint(id, "transport closed", /*force=*/false);
    std::vector<Op*> rest;
    for (auto& [raw, op] : ops)
      if (op->done) rest.push_back(raw);
    for (auto* op : rest) {
      op->failure = "transport closed";
      if (ops.count(op) && op->request) ucp_request_cancel(worker, op->request);
      if (ops.count(op)) complete(op, UCS_ERR_CANCELED, 0, false);
    }
    // Let the closes finish (normally at once); bounded, since a dead peer answers nothing.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
    while (!closing.empty() && std::chrono::steady_clock::now() < deadline) {
      ucp_worker_progress(worker);
      reap_closing();
    }
    stopping = true;
    // Commands that callbacks posted meanwhile: their operations fail with "transport closed".
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (commands.empty()) break;
      }
      run_commands();
    }
  }
};

UcxTransport::UcxTransport() : UcxTransport(Options{}) {}

UcxTransport::UcxTransport(Options options) : options_(options), impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.mode = options.error_mode;
  ucp_config_t* config = nullptr;
  if (auto st = ucp_config_read(nullptr, nullptr, &config); st != UCS_OK)
    throw std::runtime_error(ucx_error("ucx: ucp_config_read (UCX_* environment variables)", st));
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES;
  params.features = UCP_FEATURE_TAG | UCP_FEATURE_WAKEUP;
  auto st = ucp_init(&params, config, &m.context);
  ucp_config_release(config);
  if (st != UCS_OK) throw std::runtime_error(ucx_error("ucx: ucp_init", st));
  auto fail = [&](const std::string& what, ucs_status_t status) {
    if (m.worker) ucp_worker_destroy(m.worker);
    ucp_cleanup(m.context);
    throw std::runtime_error(ucx_error(what, status));
  };
  ucp_worker_params_t worker_params{};
  worker_params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  worker_params.thread_mode = UCS_THREAD_MODE_SINGLE;  // only the progress thread touches it
  if (st = ucp_worker_create(m.context, &worker_params, &m.worker); st != UCS_OK)
    fail("ucx: ucp_worker_create", st);
  if (st = ucp_worker_get_efd(m.worker, &m.event_fd); st != UCS_OK) fail("ucx: ucp_worker_get_efd", st);
  ucp_address_t* address = nullptr;
  size_t length = 0;
  if (st = ucp_worker_get_address(m.worker, &address, &length); st != UCS_OK)
    fail("ucx: ucp_worker_get_address", st);
  address_.assign(reinterpret_cast<const char*>(address), reinterpret_cast<const char*>(address) + length);
  ucp_worker_release_address(m.worker, address);
  std::promise<void> started;
  m.thread = std::thread([&m, &started] {
    m.thread_id = std::this_thread::get_id();
    started.set_value();
    m.loop();
  });
  started.get_future().wait();
}

UcxTransport::~UcxTransport() {
  auto& m = *impl_;
  m.post([&m] { m.shut_down(); });
  m.thread.join();
  ucp_worker_destroy(m.worker);  // releases whatever UCX still held (requests of dead peers)
  m.ops.clear();
  ucp_cleanup(m.context);
}

int UcxTransport::connect(const std::vector<char>& peer_address) {
  if (peer_address.empty()) throw std::invalid_argument("ucx connect: the peer address is empty");
  return impl_->call([this, &peer_address] { return impl_->create_endpoint(peer_address); });
}

int UcxTransport::endpoint(const std::vector<char>& peer_address) {
  std::lock_guard<std::mutex> lock(peers_mu_);
  if (auto it = peers_.find(peer_address); it != peers_.end()) return it->second;
  const int ep = connect(peer_address);
  peers_[peer_address] = ep;
  return ep;
}

void UcxTransport::disconnect(int ep) {
  {
    std::lock_guard<std::mutex> lock(peers_mu_);
    for (auto it = peers_.begin(); it != peers_.end();) it = it->second == ep ? peers_.erase(it) : std::next(it);
  }
  impl_->post([m = impl_.get(), ep] { m->close_endpoint(ep, "disconnected"); });
}

void UcxTransport::send(int ep, uint64_t tag, torch::Tensor t, Done done) {
  check_tensor(t, "send");
  impl_->post([m = impl_.get(), ep, tag, t = std::move(t), done = std::move(done)]() mutable {
    m->start_send(ep, tag, std::move(t), std::move(done));
  });
}

void UcxTransport::recv(uint64_t tag, torch::Tensor into, Done done, int from_ep) {
  check_tensor(into, "recv");
  impl_->post([m = impl_.get(), tag, into = std::move(into), done = std::move(done), from_ep]() mutable {
    m->start_recv(tag, std::move(into), std::move(done), from_ep);
  });
}

void UcxTransport::post(std::function<void()> command) { impl_->post(std::move(command)); }

size_t UcxTransport::outstanding() const { return impl_->outstanding; }

std::string UcxTransport::endpoint_info(int ep) {
  return impl_->call([m = impl_.get(), ep] {
    auto it = m->endpoints.find(ep);
    if (it == m->endpoints.end()) return "endpoint " + std::to_string(ep) + ": not connected";
    char* text = nullptr;
    size_t size = 0;
    FILE* stream = ::open_memstream(&text, &size);
    if (!stream) return std::string("endpoint info: open_memstream failed");
    ucp_ep_print_info(it->second->handle, stream);
    std::fclose(stream);
    std::string info(text, size);
    std::free(text);
    return info;
  });
}

// ---------------------------------------------------------------------------------------------

BufferPool::BufferPool(size_t max_bytes) : max_bytes_(max_bytes) {}

torch::Tensor BufferPool::acquire(c10::ScalarType dtype, c10::IntArrayRef shape) {
  int64_t numel = 1;
  for (auto d : shape) {
    if (d < 0) throw std::invalid_argument("BufferPool::acquire: negative dimension in shape " + c10::str(shape));
    numel *= d;
  }
  const size_t bytes = size_t(numel) * c10::elementSize(dtype);
  const auto options = torch::dtype(dtype);
  if (bytes == 0) return torch::empty(shape, options);
  c10::Storage storage;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // use_count 1: only the pool still references the buffer, so nobody can be using it, and
    // nobody can start to without this lock.
    auto [first, last] = buffers_.equal_range(bytes);
    for (auto it = first; it != last; ++it)
      if (it->second.use_count() == 1) {
        storage = it->second;
        break;
      }
    if (!storage) {
      for (auto it = buffers_.begin(); it != buffers_.end() && bytes_ + bytes > max_bytes_;) {
        if (it->second.use_count() == 1) {
          bytes_ -= it->first;
          it = buffers_.erase(it);
        } else {
          ++it;
        }
      }
      if (bytes_ + bytes > max_bytes_) return torch::empty(shape, options);
      storage = c10::Storage(c10::Storage::use_byte_size_t(), int64_t(bytes), c10::GetDefaultCPUAllocator(),
                             /*resizable=*/false);
      buffers_.emplace(bytes, storage);
      bytes_ += bytes;
    }
  }
  return torch::empty({0}, options).set_(std::move(storage), 0, shape);
}

size_t BufferPool::cached_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}

size_t BufferPool::cached_buffers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return buffers_.size();
}

}  // namespace floe::runtime
