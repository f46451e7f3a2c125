#pragma once
// Gradient all-reduce across processes and machines through c10d's ProcessGroupGloo, the
// collective PyTorch's DDP uses on CPU. The ranks meet in a key-value store (c10d TCPStore)
// that the coordinator hosts; each group has its own key prefix (membership generation and
// pipeline position), so a transition builds a fresh group without touching the old one.
// Sums are in rank order, bit-identical to LocalAllReduce's (see sum()).
#include "runtime/comm/gradient_group.hpp"

#include <chrono>
#include <string>

namespace c10d {
class TCPStore;
class ProcessGroupGloo;
}  // namespace c10d

namespace floe::runtime {

// Gloo sends with writev(2), which cannot ask for MSG_NOSIGNAL: with SIGPIPE's default action, a
// write to a peer that died (a node killed in the middle of an all-reduce) ends the whole
// process without a word. Ignored, the write fails with EPIPE, Gloo throws, and the loss is
// handled as any other (docs/cluster.md, Failures). Sets SIGPIPE to ignored unless the program
// installed a handler of its own. The floe binary calls it first thing; every GlooGroup before
// it connects, so that test harnesses running launch::Scenario's virtual nodes are covered too.
void ignore_sigpipe();

struct StoreAddress {
  std::string host;
  int port = 0;
};

// The rendezvous store: the coordinator's process runs the server (port 0 = any free port).
class StoreServer {
 public:
  StoreServer(const std::string& host, int port);
  ~StoreServer();
  int port() const;

 private:
  c10::intrusive_ptr<c10d::TCPStore> store_;
};

class GlooGroup : public GradientGroup {
 public:
  // `local_host` is the address the other ranks reach this one at. Nothing connects until
  // the first sum(), which runs on the device thread, where all ranks arrive together.
  GlooGroup(StoreAddress store, std::string prefix, int rank, int size, std::string local_host,
            std::chrono::milliseconds timeout = std::chrono::minutes(10));
  ~GlooGroup() override;

  int size() const override { return size_; }
  // One rank per object: `rank` must be the constructor's.
  void sum(int rank, std::vector<torch::Tensor>& tensors) override;

 private:
  void connect();

  const StoreAddress store_address_;
  const std::string prefix_;
  const int rank_, size_;
  const std::string local_host_;
  const std::chrono::milliseconds timeout_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
};

}  // namespace floe::runtime
