// A zero-copy mapping of one block, handed out by client::map() after the engine validated the
// access. Only the block's own pages are mapped (never the rest of the arena). The engine counts
// the view as open until it is closed, so the block's memory is not reused while it is mapped.
// A view stays mapped and usable while the engine is down; closing it then is reported to the
// engine that adopts the segments once the client re-attached.
#pragma once

#include <cstddef>
#include <memory>
#include <span>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "cafshm/block_ref.hpp"
#include "cafshm/engine.hpp"
#include "cafshm/protocol.hpp"

namespace cafshm {

class shm_segment;
namespace detail {
class engine_link;
}

class block_view {
public:
  block_view();
  block_view(block_view&& other) noexcept;
  block_view& operator=(block_view&& other) noexcept;
  ~block_view(); // unmaps and tells the engine (asynchronously) that the view is closed

  std::span<std::byte> bytes() const noexcept { return {data(), size_}; }
  std::span<const char> chars() const noexcept {
    return {reinterpret_cast<const char*>(data()), size_};
  }
  std::byte* data() const noexcept { return data_; }
  size_t size() const noexcept { return size_; }
  bool writable() const noexcept { return writable_; }
  const block_ref& ref() const noexcept { return ref_; }
  explicit operator bool() const noexcept { return data_ != nullptr; }

  /// Unmaps now and tells the engine asynchronously.
  void close();

private:
  friend class client;

  /// Maps the lease's pages. Used by client::map; the view then reports its close through
  /// `link` (to the engine the client is attached to when it closes, or once it re-attached).
  static caf::expected<block_view> open(const view_lease& lease, const block_ref& ref,
                                        std::shared_ptr<detail::engine_link> link, session s);

  /// Unmaps now without telling the engine; the caller must send unmap for the returned ref
  /// itself (client::unmap and client::transfer do, before transferring).
  block_ref release();

  std::unique_ptr<shm_segment> mapping_; // null when closed
  std::byte* data_ = nullptr;             // mapping_->data(), or null
  size_t size_ = 0;
  bool writable_ = false;
  block_ref ref_;
  std::shared_ptr<detail::engine_link> link_;
  session session_;
};

} // namespace cafshm
