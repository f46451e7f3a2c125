#include "runtime/gloo_group.hpp"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <stdexcept>

namespace floe::runtime {

StoreServer::StoreServer(const std::string& host, int port) {
  c10d::TCPStoreOptions o;
  o.port = static_cast<std::uint16_t>(port);
  o.isServer = true;
  o.waitWorkers = false;
  try {
    store_ = c10::make_intrusive<c10d::TCPStore>(host, o);
  } catch (const std::exception& e) {
    throw std::runtime_error("rendezvous store on " + host + ":" + std::to_string(port) + ": " + e.what());
  }
}

StoreServer::~StoreServer() = default;

int StoreServer::port() const { return store_->getPort(); }

GlooGroup::GlooGroup(StoreAddress store, std::string prefix, int rank, int size, std::string local_host,
                     std::chrono::milliseconds timeout)
    : store_address_(std::move(store)),
      prefix_(std::move(prefix)),
      rank_(rank),
      size_(size),
      local_host_(std::move(local_host)),
      timeout_(timeout) {
  if (size < 1 || rank < 0 || rank >= size)
    throw std::invalid_argument("GlooGroup: rank " + std::to_string(rank) + " of " + std::to_string(size));
}

GlooGroup::~GlooGroup() = default;

void GlooGroup::connect() {
  c10d::TCPStoreOptions o;
  o.port = static_cast<std::uint16_t>(store_address_.port);
  o.isServer = false;
  o.timeout = timeout_;
  auto where = " (store " + store_address_.host + ":" + std::to_string(store_address_.port) + ", group " + prefix_ +
               ", rank " + std::to_string(rank_) + " of " + std::to_string(size_) + ")";
  try {
    auto tcp = c10::make_intrusive<c10d::TCPStore>(store_address_.host, o);
    auto store = c10::make_intrusive<c10d::PrefixStore>(prefix_, tcp);
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout_);
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(local_host_));
    opts->threads = 1;  // one reduction at a time per stage; the cores belong to the devices
    group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank_, size_, opts);
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("gloo all-reduce: cannot connect") + where + ": " + e.what());
  }
}

void GlooGroup::sum(int rank, std::vector<torch::Tensor>& tensors) {
  if (rank != rank_) throw std::logic_error("GlooGroup: sum as rank " + std::to_string(rank) + ", built for " + std::to_string(rank_));
  if (size_ == 1 || tensors.empty()) return;
  if (!group_) connect();
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> flat;
  for (auto& t : tensors) flat.push_back(t.reshape(-1));
  const auto all = torch::cat(flat);
  // A reduce-scatter in rank order, then an all-gather: rank r sums chunk r as
  // ((x0 + x1) + x2) + ..., exactly as LocalAllReduce does, so a job gets bit-identical
  // weights however its replicas are spread over processes (Gloo's ring all-reduce sums in
  // ring order instead). It moves the same bytes as a ring all-reduce: 2 (R-1)/R of the buffer.
  const int64_t n = all.numel(), chunk = (n + size_ - 1) / size_;
  auto padded = torch::zeros({chunk * size_}, all.options());
  padded.slice(0, 0, n).copy_(all);
  auto gathered = torch::empty_like(padded);
  std::vector<int64_t> counts(size_, chunk);
  std::vector<std::vector<at::Tensor>> parts(1);
  for (int r = 0; r < size_; ++r) parts[0].push_back(torch::empty({chunk}, all.options()));
  try {
    group_->alltoall_base(gathered, padded, counts, counts)->wait();
    std::vector<at::Tensor> mine{gathered.slice(0, 0, chunk).clone()};
    for (int r = 1; r < size_; ++r) mine[0].add_(gathered.slice(0, r * chunk, (r + 1) * chunk));
    group_->allgather(parts, mine)->wait();
  } catch (const std::exception& e) {
    throw std::runtime_error("gloo all-reduce (group " + prefix_ + ", rank " + std::to_string(rank_) + "): " + e.what());
  }
  const auto result = torch::cat(parts[0]);
  int64_t offset = 0;
  for (auto& t : tensors) {
    const int64_t len = t.numel();
    t.copy_(result.slice(0, offset, offset + len).view_as(t));
    offset += len;
  }
}

}  // namespace floe::runtime
