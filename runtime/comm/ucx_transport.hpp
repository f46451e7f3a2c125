#pragma once
// The per-process tensor plane: the bytes of tensors move between processes over UCX tag
// send/recv, while the control (who sends what, with which tag) travels in CAF messages.
//
// One UcxTransport owns one ucp context and one worker. The worker is driven by exactly one
// progress thread, which sleeps on the worker's event fd when there is nothing to do (no
// busy polling: this machine has 2 cores). Every public call may be made from any thread: it
// posts a command to the progress thread and wakes it with ucp_worker_signal. Completion
// callbacks (`Done`) run on the progress thread: keep them short, e.g. a caf::anon_send to
// the actor that waits, and never block in them. See research/stack-field-guide.md §5.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace floe::runtime {

class UcxTransport {
 public:
  // Called once per operation, on the progress thread: "" on success, otherwise a message
  // that names the operation, the tag and what failed.
  using Done = std::function<void(const std::string& error)>;

  // UCX's error-handling mode decides which transports it may use (field guide §5):
  //  - none (the default): shared memory (sysv) for small messages and cross-memory attach
  //    (cma) for large ones between processes of one host, tcp between hosts. The fastest
  //    on one host (bench/transport: about 2x peer mode at 64 MiB), but UCX itself never
  //    reports a dead peer: its operations simply never complete. That is fine in floe,
  //    where a CAF down_msg is the failure detector anyway: the owner calls disconnect(ep),
  //    which fails every operation tied to that endpoint.
  //  - peer: UCX detects a dead peer by itself (tens of ms after a kill -9) and fails its
  //    operations, but it then refuses shared memory and cma, so only tcp is used, even on
  //    one host. Use it between hosts, where tcp is used anyway, or where no CAF monitor
  //    watches the peer.
  // Give both ends of a connection the same mode (mixed modes are untested).
  enum class ErrorMode { none, peer };

  struct Options {
    ErrorMode error_mode = ErrorMode::none;
  };

  // Matches a receive against any sender (tag matching alone decides).
  static constexpr int any_peer = -1;

  UcxTransport();
  explicit UcxTransport(Options options);
  // Fails every outstanding operation with "transport closed", closes every endpoint and
  // stops the progress thread. Must not run on the progress thread (in a Done callback),
  // and nothing may call the transport once it has begun.
  ~UcxTransport();
  UcxTransport(const UcxTransport&) = delete;
  UcxTransport& operator=(const UcxTransport&) = delete;

  ErrorMode error_mode() const { return options_.error_mode; }

  // This worker's address, to ship to peers inside a CAF message (a std::vector<char>).
  const std::vector<char>& address() const { return address_; }

  // Creates an endpoint to the worker with this address and returns its id (>= 0). Throws
  // std::runtime_error with UCX's reason if UCX rejects the address. Blocks the caller until
  // the progress thread has created the endpoint (microseconds; no round trip to the peer).
  int connect(const std::vector<char>& peer_address);

  // The endpoint to this address: the one an earlier call created, else a new one (connect).
  int endpoint(const std::vector<char>& peer_address);

  // Closes the endpoint: its outstanding sends, and the receives posted with `from_ep == ep`,
  // fail at once with an error that says "disconnected". Call it when CAF reports the peer
  // down (a down_msg). In peer mode the close is forced. In none mode UCX 1.13 refuses a
  // forced close, so the endpoint is flush-closed, and a send that UCX still holds keeps its
  // tensor alive until the transport is destroyed (a dead peer never releases it; a peer
  // that was only presumed dead may still read it). Unknown or closed ids are ignored.
  // Does not block.
  void disconnect(int ep);

  // Sends the bytes of `t` (a contiguous CPU tensor) with `tag`. The transport holds the
  // tensor until UCX has finished with its bytes, and lets go of it just before `done` runs;
  // do not modify it before then. Throws std::invalid_argument for an undefined, non-CPU or
  // non-contiguous tensor.
  void send(int ep, uint64_t tag, torch::Tensor t, Done done);

  // Receives the message with `tag` into `into` (a contiguous CPU tensor), which must have
  // exactly the size of the message: a larger or smaller message completes with an error.
  // Matching is by tag only; `from_ep` just ties the receive to an endpoint so that
  // disconnect(from_ep) fails it too (a receive from a dead peer would wait forever). As for
  // send, the transport lets go of `into` before `done` runs.
  void recv(uint64_t tag, torch::Tensor into, Done done, int from_ep = any_peer);

  // Runs `command` on the progress thread (thread-safe; does not wait).
  void post(std::function<void()> command);

  // Operations started and not yet completed (for tests and diagnostics).
  size_t outstanding() const;

  // UCX's description of the endpoint: its lanes (transports) and protocol thresholds.
  std::string endpoint_info(int ep);

 private:
  struct Impl;
  Options options_;
  std::vector<char> address_;
  std::mutex peers_mu_;
  std::map<std::vector<char>, int> peers_;  // endpoint() by address
  std::unique_ptr<Impl> impl_;
};

// Reusable receive tensors. Writing into fresh memory page-faults every page; for a 64 MiB
// receive that made the transfer about 3x slower than reusing a buffer (field guide §5).
// acquire() returns a tensor backed by a cached buffer of the same byte size that nobody else
// references any more, or a new one. A buffer returns to the pool by itself when the last
// tensor (or view) of it is gone, so no release call is needed; a tensor kept alive (e.g. an
// activation held for backward) is simply not reused. Each acquire returns a fresh tensor
// object over the buffer, so metadata such as requires_grad never leaks to the next user.
// The contents of an acquired tensor are unspecified (the last receive's bytes). Thread-safe.
class BufferPool {
 public:
  // Buffers are kept while the pool owns at most `max_bytes`; beyond that acquire() first
  // drops unused buffers, and if that is not enough returns an uncached tensor.
  explicit BufferPool(size_t max_bytes = size_t(1) << 30);

  torch::Tensor acquire(c10::ScalarType dtype, c10::IntArrayRef shape);

  size_t cached_bytes() const;
  size_t cached_buffers() const;

 private:
  const size_t max_bytes_;
  mutable std::mutex mu_;
  std::multimap<size_t, c10::Storage> buffers_;  // by byte size
  size_t bytes_ = 0;
};

}  // namespace floe::runtime
