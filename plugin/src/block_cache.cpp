#include "block_cache.hpp"

namespace cafshm {

namespace {

template <class Map, class It>
void erase_value(Map& m, uint64_t key, It target) {
  auto [b, e] = m.equal_range(key);
  for (auto i = b; i != e; ++i)
    if (i->second == target) {
      m.erase(i);
      return;
    }
}

} // namespace

const block_cache::entry* block_cache::find(uint64_t hash, uint64_t size) {
  auto [b, e] = by_hash_.equal_range(hash);
  for (auto i = b; i != e; ++i)
    if (i->second->local.size == size) {
      lru_.splice(lru_.begin(), lru_, i->second);
      return &*i->second;
    }
  return nullptr;
}

std::optional<block_cache::entry> block_cache::take(uint64_t hash, uint64_t size) {
  auto [b, e] = by_hash_.equal_range(hash);
  for (auto i = b; i != e; ++i)
    if (i->second->local.size == size) {
      entry taken = *i->second;
      std::vector<block_ref> released; // taken.local: the caller's now, not to be freed here
      erase(i->second, released);
      return taken;
    }
  return std::nullopt;
}

const block_cache::entry* block_cache::find_source(const block_ref& source, uint64_t version,
                                                   std::vector<block_ref>& released) {
  auto [b, e] = by_source_.equal_range(source_key(source));
  for (auto i = b; i != e; ++i) {
    auto it = i->second;
    if (*it->source != source)
      continue;
    if (it->source_version != version) {
      erase(it, released); // the remote block changed: this copy is stale
      return nullptr;
    }
    lru_.splice(lru_.begin(), lru_, it);
    return &*it;
  }
  return nullptr;
}

void block_cache::erase(list::iterator i, std::vector<block_ref>& released) {
  erase_value(by_hash_, i->hash, i);
  if (i->source)
    erase_value(by_source_, source_key(*i->source), i);
  bytes_ -= i->local.size;
  released.push_back(i->local);
  lru_.erase(i);
}

std::vector<block_ref> block_cache::insert(entry e) {
  std::vector<block_ref> released;
  if (e.local.size > capacity_) {
    released.push_back(e.local);
    return released;
  }
  if (e.source) { // one copy per remote block
    auto [b, end] = by_source_.equal_range(source_key(*e.source));
    for (auto i = b; i != end; ++i)
      if (*i->second->source == *e.source) {
        erase(i->second, released);
        break;
      }
  }
  lru_.push_front(std::move(e));
  auto it = lru_.begin();
  by_hash_.emplace(it->hash, it);
  if (it->source)
    by_source_.emplace(source_key(*it->source), it);
  bytes_ += it->local.size;
  while (bytes_ > capacity_) {
    ++counters_.evictions;
    erase(std::prev(lru_.end()), released);
  }
  return released;
}

std::vector<block_ref> block_cache::clear() {
  std::vector<block_ref> released;
  while (!lru_.empty())
    erase(lru_.begin(), released);
  return released;
}

} // namespace cafshm
