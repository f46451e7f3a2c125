#include "runtime/comm/gloo_group.hpp"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <csignal>
#include <stdexcept>

namespace floe::runtime {

void ignore_sigpipe() {
  struct sigaction now {};
  if (sigaction(SIGPIPE, nullptr, &now) == 0 && now.sa_handler == SIG_DFL) std::signal(SIGPIPE, SIG_IGN);
}

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
  ignore_sigpipe();
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
  const auto all = flatten(tensors);
  // A reduce-scatter in rank order, then an all-gather: rank r sums chunk r in rank order,
  // exactly as LocalAllReduce does, so a job gets bit-identical
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
    std::vector<at::Tensor> mine{sum_in_rank_order(gathered.split(chunk))};
    group_->allgather(parts, mine)->wait();
  } catch (const std::exception& e) {
    throw std::runtime_error("gloo all-reduce (group " + prefix_ + ", rank " + std::to_string(rank_) + "): " + e.what());
  }
  unflatten_into(torch::cat(parts[0]), tensors);
}

}  // namespace floe::runtime
