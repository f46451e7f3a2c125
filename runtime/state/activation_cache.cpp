#include "runtime/state/activation_cache.hpp"

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <stdexcept>

namespace floe::runtime {
namespace {

using clock_type = std::chrono::steady_clock;
double since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

// The length of each row of sequences t [n, L, D + 1]: one past its last real token (mask
// channel 1). Padding positions after it are not kept.
std::vector<int64_t> real_lengths(const torch::Tensor& t) {
  const int64_t l = t.size(1);
  const auto real = t.select(2, t.size(2) - 1).gt(0.5).to(torch::kInt64);
  const auto last = (real * torch::arange(1, l + 1, torch::kInt64)).amax(1).contiguous();
  return {last.data_ptr<int64_t>(), last.data_ptr<int64_t>() + last.numel()};
}

}  // namespace

struct ActivationCache::Chunk {
  char* data = nullptr;
  int64_t bytes = 0;
  int64_t used = 0;  // rows are appended; released space is reused only when the chunk goes
  int64_t live = 0;  // rows held
  bool disk = false;
  ~Chunk() {
    if (!data) return;
    if (disk)
      munmap(data, static_cast<size_t>(bytes));
    else
      std::free(data);
  }
};

struct ActivationCache::Store {
  // A row is `items` items of item_shape: for sequences an item is one position ([D + 1])
  // and a row has its sample's length; otherwise an item is the whole row.
  std::vector<int64_t> item_shape;
  c10::ScalarType dtype = c10::ScalarType::Float;
  int64_t item_bytes = 0;
  bool sequences = false;
  struct Entry {
    int32_t chunk = -1;  // -1: not held
    int32_t items = 0;
    int64_t offset = 0;
  };
  std::vector<std::unique_ptr<Chunk>> chunks;  // null once freed
  std::vector<Entry> entry_of;                 // by uid
  int64_t live = 0;

  const Entry* find(int64_t uid) const {
    if (uid >= static_cast<int64_t>(entry_of.size()) || entry_of[uid].chunk < 0) return nullptr;
    return &entry_of[uid];
  }
  bool holds(int64_t uid) const { return find(uid) != nullptr; }

  // The held rows of uids[rows[j]], j = 0.., as one tensor (every one must be held);
  // sequences zero-padded (mask 0) or cut to `length` positions.
  torch::Tensor gather(const std::vector<int64_t>& uids, const std::vector<int64_t>& rows, int64_t length) const {
    std::vector<int64_t> shape{static_cast<int64_t>(rows.size())};
    if (sequences) shape.push_back(length);
    shape.insert(shape.end(), item_shape.begin(), item_shape.end());
    auto t = sequences ? torch::zeros(shape, torch::dtype(dtype)) : torch::empty(shape, torch::dtype(dtype));
    const int64_t row_bytes = t[0].numel() * static_cast<int64_t>(t.element_size());
    for (size_t j = 0; j < rows.size(); ++j) {
      const Entry& e = *find(uids[rows[j]]);
      const int64_t items = sequences ? std::min<int64_t>(e.items, length) : 1;
      std::memcpy(static_cast<char*>(t.data_ptr()) + j * row_bytes, chunks[e.chunk]->data + e.offset,
                  static_cast<size_t>(items * item_bytes));
    }
    return t;
  }
};

ActivationCache::ActivationCache(CacheLimits cfg) : cfg_(std::move(cfg)) {
  if (cfg_.disk_budget > 0) {
    std::error_code ec;
    std::filesystem::create_directories(cfg_.dir, ec);
    if (ec || !std::filesystem::is_directory(cfg_.dir))
      throw std::invalid_argument("cache directory '" + cfg_.dir + "' cannot be created: " + ec.message());
  }
}

ActivationCache::~ActivationCache() = default;

std::unique_ptr<ActivationCache::Chunk> ActivationCache::new_chunk(int64_t bytes) {
  auto c = std::make_unique<Chunk>();
  c->bytes = bytes;
  if (stats_.memory_bytes + bytes <= cfg_.memory_budget) {
    c->data = static_cast<char*>(std::malloc(static_cast<size_t>(bytes)));
    if (!c->data) return nullptr;
    stats_.memory_bytes += bytes;
    stats_.peak_memory_bytes = std::max(stats_.peak_memory_bytes, stats_.memory_bytes);
    return c;
  }
  if (stats_.disk_bytes + bytes > cfg_.disk_budget) return nullptr;
  // A file that exists only as long as the mapping: nothing is left behind after a crash.
  std::string path = cfg_.dir + "/floe-cache-XXXXXX";
  const int fd = mkstemp(path.data());
  if (fd < 0) {
    spdlog::warn("cache: cannot create a file in '{}' ({}); no disk tier", cfg_.dir, std::strerror(errno));
    cfg_.disk_budget = stats_.disk_bytes;
    return nullptr;
  }
  unlink(path.c_str());
  // Reserve the blocks now: writing to a sparse mapping on a full disk would be a SIGBUS.
  const bool ok = posix_fallocate(fd, 0, bytes) == 0;
  void* p = ok ? mmap(nullptr, static_cast<size_t>(bytes), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
  close(fd);
  if (p == MAP_FAILED) {
    spdlog::warn("cache: disk tier in '{}' has no room for {} more bytes; entries beyond it are not cached", cfg_.dir,
                 bytes);
    cfg_.disk_budget = stats_.disk_bytes;  // stop trying
    return nullptr;
  }
  c->data = static_cast<char*>(p);
  c->disk = true;
  stats_.disk_bytes += bytes;
  return c;
}

ActivationCache::Store& ActivationCache::store(int split, int level, const torch::Tensor& like) {
  auto& s = stores_[{split, level}];
  if (!s) {
    s = std::make_unique<Store>();
    s->sequences = cfg_.sequences;
    s->item_shape = like.sizes().slice(cfg_.sequences ? 2 : 1).vec();
    s->dtype = like.scalar_type();
    s->item_bytes = (cfg_.sequences ? like[0][0] : like[0]).numel() * static_cast<int64_t>(like.element_size());
  }
  return *s;
}

char* ActivationCache::reserve(Store& s, int64_t uid, int64_t items) {
  const int64_t bytes = items * s.item_bytes;
  Chunk* open = s.chunks.empty() ? nullptr : s.chunks.back().get();
  if (!open || open->used + bytes > open->bytes) {
    // A new chunk: a full one when it fits, else what the tier's room allows.
    const int64_t room = std::max(cfg_.memory_budget - stats_.memory_bytes, cfg_.disk_budget - stats_.disk_bytes);
    const int64_t size = std::min(std::max(cfg_.chunk_bytes, bytes), room);
    if (size < bytes) return nullptr;
    auto c = new_chunk(size);
    if (!c) return nullptr;
    open = c.get();
    s.chunks.push_back(std::move(c));
  }
  if (uid >= static_cast<int64_t>(s.entry_of.size())) s.entry_of.resize(static_cast<size_t>(uid + 1));
  s.entry_of[uid] = {static_cast<int32_t>(s.chunks.size() - 1), static_cast<int32_t>(items), open->used};
  char* at = open->data + open->used;
  open->used += bytes;
  ++open->live;
  ++s.live;
  ++stats_.entries;
  return at;
}

char* ActivationCache::admit(Store& s, int split, int level, int64_t uid, int64_t items) {
  if (char* at = reserve(s, uid, items)) return at;
  // No room: superseded levels of this split go first (an entry at the current level hits
  // every epoch; one below it would only be advanced once).
  std::vector<std::pair<int, int>> lower;
  for (auto& [key, st] : stores_)
    if (key.first == split && key.second < level) lower.push_back(key);
  if (lower.empty()) return nullptr;
  for (auto& key : lower) drop_store(key);
  return reserve(s, uid, items);
}

void ActivationCache::free_chunk(Chunk& c) { (c.disk ? stats_.disk_bytes : stats_.memory_bytes) -= c.bytes; }

void ActivationCache::release(Store& s, int64_t uid) {
  const auto* e = s.find(uid);
  if (!e) return;
  auto& chunk = s.chunks[e->chunk];
  if (--chunk->live == 0 && chunk.get() != s.chunks.back().get()) {  // the open chunk stays for appends
    free_chunk(*chunk);
    chunk.reset();
  }
  s.entry_of[uid].chunk = -1;
  --s.live;
  --stats_.entries;
}

void ActivationCache::forget_lower(int split, int level, int64_t uid) {
  std::vector<std::pair<int, int>> empty;
  for (auto it = stores_.lower_bound({split, 0}); it != stores_.end() && it->first.first == split; ++it) {
    if (it->first.second >= level) break;
    release(*it->second, uid);
    if (it->second->live == 0) empty.push_back(it->first);
  }
  for (auto& key : empty) drop_store(key);
}

void ActivationCache::drop_store(std::pair<int, int> key) {
  auto it = stores_.find(key);
  if (it == stores_.end()) return;
  auto& s = *it->second;
  stats_.entries -= s.live;
  stats_.evicted += s.live;
  for (auto& c : s.chunks)
    if (c) free_chunk(*c);
  stores_.erase(it);
}

std::vector<int64_t> ActivationCache::put(int split, int level, const std::vector<int64_t>& uids,
                                         const std::vector<int64_t>& rows, const torch::Tensor& t,
                                         bool drop_lower) {
  const auto rows_t = t.contiguous();  // rows are copied from its memory
  auto& s = store(split, level, rows_t);
  const auto lengths = cfg_.sequences ? real_lengths(rows_t) : std::vector<int64_t>{};
  const int64_t row_bytes = rows_t[0].numel() * static_cast<int64_t>(rows_t.element_size());
  std::vector<int64_t> admitted;
  for (size_t j = 0; j < rows.size(); ++j) {
    const int64_t uid = uids[rows[j]];
    if (s.holds(uid)) continue;
    const int64_t items = cfg_.sequences ? lengths[j] : 1;
    char* at = admit(s, split, level, uid, items);
    if (!at) {
      ++stats_.rejected;
      continue;
    }
    std::memcpy(at, static_cast<const char*>(rows_t.data_ptr()) + j * row_bytes, static_cast<size_t>(items * s.item_bytes));
    // A row held at this level will not be advanced: its lower levels go, and an emptied
    // level frees its arenas.
    if (drop_lower) forget_lower(split, level, uid);
    admitted.push_back(rows[j]);
  }
  return admitted;
}

torch::Tensor ActivationCache::fetch(int split, const std::vector<int64_t>& uids, const torch::Tensor& raw, int level,
                                     bool allow_advance, const Prefix& prefix) {
  const int64_t n = static_cast<int64_t>(uids.size());
  if (level <= 0 || n == 0) return raw;
  if (n != raw.size(0)) throw std::invalid_argument("cache fetch: " + std::to_string(n) + " uids for " +
                                                    std::to_string(raw.size(0)) + " rows");
  std::unique_lock<std::mutex> lock(mu_);
  if (!allow_advance) {  // evaluation reads the exact level only; other levels of this split are dead
    std::vector<std::pair<int, int>> dead;
    for (auto& [key, st] : stores_)
      if (key.first == split && key.second != level) dead.push_back(key);
    for (auto& key : dead) drop_store(key);
  }

  auto verdict = worth_.find(level);
  if (verdict != worth_.end() && !verdict->second) {
    lock.unlock();
    const auto t0 = clock_type::now();
    auto out = prefix(0, level, raw);
    lock.lock();
    stats_.misses += n;
    stats_.compute_seconds += since(t0);
    return out;
  }
  const uint64_t generation = generation_;
  if (verdict == worth_.end()) {
    // The probe: compute this batch in full, store it, read it back; cache the level only
    // when the read was faster.
    lock.unlock();
    const auto t0 = clock_type::now();
    auto out = prefix(0, level, raw).contiguous();
    const double compute = since(t0);
    lock.lock();
    stats_.compute_seconds += compute;
    stats_.misses += n;
    if (generation != generation_) return out;  // invalidated meanwhile: store nothing
    std::vector<int64_t> all(static_cast<size_t>(n));
    std::iota(all.begin(), all.end(), 0);
    const auto stored = put(split, level, uids, all, out, allow_advance);
    if (stored.empty()) return out;  // no room to measure; probe again later
    const auto t1 = clock_type::now();
    stores_.at({split, level})->gather(uids, stored, raw.size(-1));
    const double read = since(t1) * double(n) / double(stored.size());
    const bool worth = read < compute;
    if (worth_.count(level)) return out;  // another stage's probe decided first
    worth_[level] = worth;
    if (!worth) {
      stats_.bypassed_levels.push_back(level);
      for (int sp : {0, 1}) drop_store({sp, level});
      spdlog::info("cache: level {} bypassed: reading {} rows took {:.2e}s, computing them {:.2e}s", level, n, read,
                   compute);
    }
    return out;
  }

  // Where each row comes from: this level (hit), a lower level (advance) or the raw input.
  std::map<int, std::vector<int64_t>> groups;  // source level -> row indices
  std::vector<int64_t> hit_rows;
  const auto exact = stores_.find({split, level});
  for (int64_t i = 0; i < n; ++i) {
    if (exact != stores_.end() && exact->second->holds(uids[i])) {
      hit_rows.push_back(i);
      continue;
    }
    int from = 0;
    if (allow_advance)
      for (auto it = stores_.lower_bound({split, level}); it != stores_.begin();) {
        --it;
        if (it->first.first != split) break;
        if (it->second->holds(uids[i])) {
          from = it->first.second;
          break;
        }
      }
    groups[from].push_back(i);
  }
  // Copy out what the arenas hold: the hits, and the sources of rows to advance.
  const auto t_read = clock_type::now();
  // Stored sequences come back padded to this batch's length (the last dimension of its token ids).
  const int64_t length = raw.size(-1);
  torch::Tensor hits;
  if (!hit_rows.empty()) {
    hits = exact->second->gather(uids, hit_rows, length);
    stats_.hits += static_cast<int64_t>(hit_rows.size());
  }
  std::map<int, torch::Tensor> inputs;
  for (auto& [from, rows] : groups)
    inputs[from] = from == 0 ? raw.index_select(0, torch::tensor(rows, torch::kInt64))
                             : stores_.at({split, from})->gather(uids, rows, length);
  stats_.read_seconds += since(t_read);
  lock.unlock();

  // Compute what is missing, outside the lock (other stages keep reading).
  std::map<int, torch::Tensor> computed;
  std::map<int, double> seconds;
  for (auto& [from, x] : inputs) {
    const auto t0 = clock_type::now();
    computed[from] = prefix(from, level, x).contiguous();
    seconds[from] = since(t0);
  }

  lock.lock();
  const bool store_results = generation == generation_;  // not invalidated while computing
  torch::Tensor out;
  auto place = [&](const std::vector<int64_t>& rows, const torch::Tensor& t) {
    if (static_cast<int64_t>(rows.size()) == n) {  // one source for every row, in order
      out = t;
      return;
    }
    if (!out.defined()) {
      auto shape = t.sizes().vec();
      shape[0] = n;
      out = torch::empty(shape, t.options());
    }
    out.index_copy_(0, torch::tensor(rows, torch::kInt64), t);
  };
  if (hits.defined()) place(hit_rows, hits);
  for (auto& [from, t] : computed) {
    const auto& rows = groups.at(from);
    place(rows, t);
    (from == 0 ? stats_.misses : stats_.advanced) += static_cast<int64_t>(rows.size());
    (from == 0 ? stats_.compute_seconds : stats_.advance_seconds) += seconds.at(from);
    if (store_results) put(split, level, uids, rows, t, from > 0);
  }
  return out;
}

void ActivationCache::set_level(int level) {
  std::lock_guard<std::mutex> lock(mu_);
  ++generation_;
  std::vector<std::pair<int, int>> stale;
  for (auto& [key, s] : stores_)
    if (key.second > level) stale.push_back(key);
  for (auto& key : stale) drop_store(key);
  for (auto it = worth_.begin(); it != worth_.end();) it = it->first > level ? worth_.erase(it) : std::next(it);
}

void ActivationCache::invalidate() {
  std::lock_guard<std::mutex> lock(mu_);
  ++generation_;
  std::vector<std::pair<int, int>> all;
  for (auto& [key, s] : stores_) all.push_back(key);
  for (auto& key : all) drop_store(key);
  worth_.clear();
}

CacheStats ActivationCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

int64_t parse_size(const std::string& text, int64_t whole) {
  const std::string expected = "a size such as \"512MiB\", \"2GiB\", \"4096\" (bytes) or \"25%\"";
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    throw std::invalid_argument("expected " + expected + ", got \"" + text + "\"");
  }
  std::string unit = text.substr(used);
  unit.erase(0, unit.find_first_not_of(' '));
  static const std::map<std::string, double> units{
      {"", 1},         {"B", 1},         {"KB", 1e3},       {"MB", 1e6},        {"GB", 1e9},   {"TB", 1e12},
      {"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1099511627776.0}};
  double bytes = 0;
  if (unit == "%") {
    if (v < 0 || v > 100) throw std::invalid_argument("expected a percentage in 0..100, got \"" + text + "\"");
    bytes = double(whole) * v / 100;
  } else {
    auto it = units.find(unit);
    if (it == units.end() || v < 0) throw std::invalid_argument("expected " + expected + ", got \"" + text + "\"");
    bytes = v * it->second;
  }
  // "nan", "inf" and 1e300 parse as numbers; converting them to an integer is undefined.
  if (!(bytes < 0x1p63)) throw std::invalid_argument("expected a size below 8 EiB, got \"" + text + "\"");
  return static_cast<int64_t>(bytes);
}

int64_t host_memory_bytes() { return int64_t(sysconf(_SC_PHYS_PAGES)) * int64_t(sysconf(_SC_PAGE_SIZE)); }

}  // namespace floe::runtime
