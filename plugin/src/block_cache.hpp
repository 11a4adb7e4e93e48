// The index of an engine's content-addressed cache of data exchanged with peers: content hash ->
// a block the engine holds, plus, for blocks fetched by remote reads, the remote block and the
// version it was fetched at. Bounded in bytes (sum of the cached blocks' sizes), LRU eviction.
// It only indexes; the engine owns the blocks and frees what insert()/invalidate() hand back.
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <unordered_map>
#include <vector>

#include "cafshm/block_ref.hpp"

namespace cafshm {

struct cache_counters {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t evictions = 0;
  uint64_t bytes_saved = 0; // payload not sent or fetched because the cache had it
};

class block_cache {
public:
  struct entry {
    block_ref local;               // the engine-held block with the content
    uint64_t hash = 0;             // XXH3-64 of its bytes
    std::optional<block_ref> source; // remote block it mirrors (remote reads)
    uint64_t source_version = 0;
  };

  explicit block_cache(uint64_t capacity_bytes) : capacity_(capacity_bytes) {}

  uint64_t capacity() const noexcept { return capacity_; }
  uint64_t bytes() const noexcept { return bytes_; }
  size_t size() const noexcept { return lru_.size(); }
  cache_counters& counters() noexcept { return counters_; }
  const cache_counters& counters() const noexcept { return counters_; }

  /// Entry with this content, most recently used afterwards; nullptr if none.
  const entry* find(uint64_t hash, uint64_t size);

  /// Takes the entry with this content out of the cache and gives its block to the caller;
  /// nullopt if none.
  std::optional<entry> take(uint64_t hash, uint64_t size);

  /// Entry mirroring `source` at exactly `version`; nullptr if none (a stale one is dropped into
  /// `released`, which the caller frees).
  const entry* find_source(const block_ref& source, uint64_t version,
                           std::vector<block_ref>& released);

  /// Adds an entry (replacing one for the same content or source) and evicts least recently
  /// used entries until the bytes fit. Returns the blocks no longer referenced, for the caller
  /// to free. An entry larger than the capacity is refused: its block is returned at once.
  std::vector<block_ref> insert(entry e);

  /// Drops every entry; returns their blocks.
  std::vector<block_ref> clear();

private:
  using list = std::list<entry>;
  void erase(list::iterator i, std::vector<block_ref>& released);
  static uint64_t source_key(const block_ref& r) {
    return r.engine ^ (uint64_t{r.block} << 32 | r.generation) * 0x9e3779b97f4a7c15ull;
  }

  uint64_t capacity_;
  uint64_t bytes_ = 0;
  list lru_; // front: most recently used
  std::unordered_multimap<uint64_t, list::iterator> by_hash_;
  std::unordered_multimap<uint64_t, list::iterator> by_source_;
  cache_counters counters_;
};

} // namespace cafshm
