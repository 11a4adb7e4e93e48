// Frame buffers of one stage, in the two transports.
//
// frame_pool: the buffers a stage writes frames into and how a frame in one of them goes
// downstream. shm: `count` cafshm blocks, allocated and mapped read-write once for the whole
// run, shared for reading with the next stage; a frame message carries only the block_ref.
// caf: one std::vector<char> per slot that moves into the frame message (and is allocated again
// for the next frame in that slot). Slots are handed out by the stage's credits: a slot is
// written only after the receiver released it.
//
// mapped_blocks: the receiving side of shm mode: the upstream pool's blocks, mapped once when
// the pool is announced and looked up per frame by block index.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <unordered_map>
#include <vector>

#include <caf/actor.hpp>
#include <caf/error.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/expected.hpp>

#include "cafshm/block_ref.hpp"
#include "cafshm/block_view.hpp"
#include "cafshm/client.hpp"

#include "options.hpp"

namespace pipeline {

class frame_pool {
public:
  /// shm needs `client` (allocates `count` blocks of `frame_bytes` and maps them); caf does not.
  static caf::expected<frame_pool> make(transport t, cafshm::client* client, uint32_t count,
                                        size_t frame_bytes);

  frame_pool() = default;
  frame_pool(frame_pool&&) noexcept = default;
  frame_pool& operator=(frame_pool&&) noexcept = default;
  ~frame_pool();

  uint32_t size() const noexcept { return count_; }
  size_t frame_bytes() const noexcept { return frame_bytes_; }

  /// Writable memory of `slot` (frame_bytes() bytes).
  char* buffer(uint32_t slot);

  /// shm: lets process `slot` read every block of the pool. caf: nothing to do.
  caf::expected<void> share(uint32_t process);

  /// shm: the blocks, in slot order. caf: empty.
  std::vector<cafshm::block_ref> refs() const;

  /// Sends (frame_atom, index, slot, block_ref or the buffer's bytes) from `self` to `dest`.
  void send(caf::event_based_actor* self, const caf::actor& dest, uint32_t index, uint32_t slot);

  /// shm: unmaps and frees every block (the engine keeps a block until other views close).
  caf::expected<void> close();

private:
  transport transport_ = transport::caf;
  cafshm::client* client_ = nullptr;
  uint32_t count_ = 0;
  size_t frame_bytes_ = 0;
  std::vector<cafshm::block_view> views_;        // shm
  std::vector<std::vector<char>> buffers_;       // caf
};

class mapped_blocks {
public:
  /// Maps every block of `refs` for reading, asynchronously through `self`'s requests to the
  /// engine; calls `done` once, with an empty error when all are mapped.
  void map(caf::event_based_actor* self, cafshm::client& client,
           const std::vector<cafshm::block_ref>& refs, std::function<void(caf::error)> done);

  /// The mapped bytes of `ref` (ref.size bytes), or nullptr if that block is not mapped.
  const char* find(const cafshm::block_ref& ref) const noexcept;

  /// Unmaps everything (the engine learns asynchronously).
  void close() { views_.clear(); }

private:
  std::unordered_map<uint32_t, cafshm::block_view> views_; // by block index
};

} // namespace pipeline
