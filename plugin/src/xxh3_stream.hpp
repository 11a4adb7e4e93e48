// A streaming XXH3-64 digest: the same value as XXH3_64bits over the concatenation of every
// update, computed piece by piece (as chunks of a block pass by, so that nothing re-reads the
// whole block to hash it). Owns its xxHash state; movable, not copyable.
#pragma once

#include <cstdint>
#include <memory>
#include <new>
#include <span>

#include <xxhash.h>

namespace cafshm {

class xxh3_stream {
public:
  xxh3_stream() : state_(XXH3_createState()) {
    if (!state_)
      throw std::bad_alloc{};
    XXH3_64bits_reset(state_.get());
  }

  void update(std::span<const std::byte> bytes) {
    if (!bytes.empty())
      XXH3_64bits_update(state_.get(), bytes.data(), bytes.size());
  }

  /// The digest of everything so far (further updates may follow).
  uint64_t digest() const { return XXH3_64bits_digest(state_.get()); }

private:
  struct free_state {
    void operator()(XXH3_state_t* s) const noexcept { XXH3_freeState(s); }
  };
  std::unique_ptr<XXH3_state_t, free_state> state_;
};

} // namespace cafshm
