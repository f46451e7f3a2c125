#pragma once
// AutoCache: the outputs of the frozen prefix, kept per sample so that a frozen layer runs
// once per sample instead of once per epoch (spec §5, without the original's flaws).
//
// Entries are keyed by (split, sample uid, level), where the level is the number of frozen
// units whose output the entry holds. Rows of one (split, level) are appended to arenas
// (chunks of many rows, not one allocation per sample; a chunk goes when its last row is
// released). A chunk lives in memory while the
// memory budget allows, otherwise in a memory-mapped file in the cache directory (the disk
// tier); when neither tier has room, superseded (lower) levels of the split are evicted and
// a new entry that still does not fit is not admitted (counted as `rejected`, never a silent stop and
// never an allocation beyond the budget). Admission keeps what is resident: under an
// epoch-cyclic scan larger than the cache, LRU or FIFO would evict every entry before its
// next use, while keeping residents hits budget/size of the samples.
//
// Incremental advance: when the frozen boundary moves from level a to b, an entry at a is
// carried through units a..b-1 on its first use (lazily, on the stage that asks for it)
// and its level-a row is released.
//
// When to cache: the first use of a level is a probe that times the full prefix and a read
// of the stored rows, both on this run's data; if reading is not cheaper, the level is
// bypassed (computed every time, nothing stored).
//
// Thread-safe: every stage of the process shares one cache (zero-copy: no message, one
// copy from the arena into the batch tensor).
#include "runtime/observe/summary.hpp"

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace floe::runtime {

struct CacheLimits {
  int64_t memory_budget = 0;  // bytes of arenas in memory
  int64_t disk_budget = 0;    // bytes of arenas in memory-mapped files; 0 = no disk tier
  std::string dir;            // where the disk tier's files go (created, unlinked at once)
  int64_t chunk_bytes = 8 << 20;  // arena chunk size (at least one row)
  // Inputs are token sequences padded to the longest of their batch, so rows have a
  // sequence dimension first ([L, D + 1] with the mask channel, models/transformer.hpp).
  // A row is kept at its sample's own length (its real tokens, up to the last with mask 1)
  // and handed out zero-padded (mask 0) to the length of the batch that asks.
  bool sequences = false;
};


class ActivationCache {
 public:
  // Runs units [from, to) of the frozen prefix on x (no gradients).
  using Prefix = std::function<torch::Tensor(int from, int to, torch::Tensor x)>;

  explicit ActivationCache(CacheLimits cfg);
  ~ActivationCache();
  ActivationCache(const ActivationCache&) = delete;
  ActivationCache& operator=(const ActivationCache&) = delete;

  // The output of the first `level` frozen units for the samples `uids` of `split` whose
  // raw inputs are `raw` (rows in uid order). Hits are read from the arenas; with
  // `allow_advance`, rows cached at a lower level are advanced; the rest are computed from
  // `raw`. Computed rows are stored at `level`. Bit-identical to prefix(0, level, raw) for
  // the same rows computed the same way (the rows are copied, never recomputed).
  torch::Tensor fetch(int split, const std::vector<int64_t>& uids, const torch::Tensor& raw, int level,
                      bool allow_advance, const Prefix& prefix);

  // The frozen boundary is now `level`: entries above it are dropped (an unfreeze); entries
  // below stay as sources for incremental advance.
  void set_level(int level);
  // Drops everything (e.g. the frozen weights changed after a checkpoint load).
  void invalidate();

  CacheStats stats() const;

 private:
  struct Chunk;
  struct Store;
  CacheLimits cfg_;
  mutable std::mutex mu_;
  std::map<std::pair<int, int>, std::unique_ptr<Store>> stores_;  // (split, level)
  std::map<int, bool> worth_;  // level -> probe verdict
  CacheStats stats_;
  uint64_t generation_ = 0;  // bumped by set_level and invalidate: rows computed before are not stored

  Store& store(int split, int level, const torch::Tensor& like);
  char* reserve(Store& s, int64_t uid, int64_t items);  // room for a row of `items` items; null: no room
  char* admit(Store& s, int split, int level, int64_t uid, int64_t items);  // reserve, evicting superseded levels if needed
  void drop_store(std::pair<int, int> key);
  std::unique_ptr<Chunk> new_chunk(int64_t bytes);
  void free_chunk(Chunk& c);
  void release(Store& s, int64_t uid);
  void forget_lower(int split, int level, int64_t uid);  // drops the uid's entries below `level`
  // Stores rows `rows` of t (row j holds uids[rows[j]]) at (split, level); with `drop_lower`
  // their entries below `level` go. Returns the rows admitted now.
  std::vector<int64_t> put(int split, int level, const std::vector<int64_t>& uids, const std::vector<int64_t>& rows,
                           const torch::Tensor& t, bool drop_lower);
};

// Parses a size: "512MiB", "2GiB", "1.5GB", "4096" (bytes) or "25%" of `whole`. Throws
// std::invalid_argument with what was expected.
int64_t parse_size(const std::string& text, int64_t whole);

// Physical memory of this machine in bytes (sysconf), for percentage budgets.
int64_t host_memory_bytes();

}  // namespace floe::runtime
