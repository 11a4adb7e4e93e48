#include "frame_pool.hpp"

#include <memory>
#include <utility>

#include <caf/send.hpp>

#include "cafshm/engine.hpp"
#include "cafshm/error.hpp"
#include "cafshm/protocol.hpp"

#include "messages.hpp"

namespace pipeline {

using cafshm::access_mode;
using cafshm::block_ref;
using cafshm::block_view;

// -- frame_pool ---------------------------------------------------------------------------------

caf::expected<frame_pool> frame_pool::make(transport t, cafshm::client* client, uint32_t count,
                                           size_t frame_bytes) {
  frame_pool pool;
  pool.transport_ = t;
  pool.count_ = count;
  pool.frame_bytes_ = frame_bytes;
  if (t == transport::caf) {
    pool.buffers_.resize(count);
    return pool;
  }
  if (client == nullptr)
    return cafshm::make_error(cafshm::errc::invalid_argument, "shm pool without a client");
  pool.client_ = client;
  for (uint32_t i = 0; i < count; ++i) {
    auto ref = client->allocate(frame_bytes);
    if (!ref)
      return ref.error(); // ~frame_pool frees what was allocated so far
    auto view = client->map(*ref, access_mode::read_write);
    if (!view) {
      client->free(*ref);
      return view.error();
    }
    pool.views_.push_back(std::move(*view));
  }
  return pool;
}

frame_pool::~frame_pool() {
  close();
}

char* frame_pool::buffer(uint32_t slot) {
  if (transport_ == transport::shm)
    return reinterpret_cast<char*>(views_[slot].data());
  auto& buf = buffers_[slot];
  if (buf.size() != frame_bytes_) // moved into the last frame message of this slot
    buf.resize(frame_bytes_);
  return buf.data();
}

caf::expected<void> frame_pool::share(uint32_t process) {
  for (auto& view : views_)
    if (auto ok = client_->share(view.ref(), process, access_mode::read); !ok)
      return ok.error();
  return {};
}

std::vector<block_ref> frame_pool::refs() const {
  std::vector<block_ref> result;
  for (auto& view : views_)
    result.push_back(view.ref());
  return result;
}

void frame_pool::send(caf::event_based_actor* self, const caf::actor& dest, uint32_t index,
                      uint32_t slot) {
  if (transport_ == transport::shm)
    self->send(dest, frame_atom::value, index, slot, views_[slot].ref());
  else
    self->send(dest, frame_atom::value, index, slot, std::move(buffers_[slot]));
}

caf::expected<void> frame_pool::close() {
  caf::expected<void> result;
  for (auto& view : views_) {
    auto ref = view.ref();
    view.close();
    if (auto ok = client_->free(ref); !ok && result)
      result = ok.error();
  }
  views_.clear();
  buffers_.clear();
  return result;
}

// -- mapped_blocks ------------------------------------------------------------------------------

void mapped_blocks::map(caf::event_based_actor* self, cafshm::client& client,
                        const std::vector<block_ref>& refs, std::function<void(caf::error)> done) {
  if (refs.empty()) {
    done(caf::error{});
    return;
  }
  // Shared by the responses: how many are outstanding, and `done` until it was called.
  struct progress {
    size_t pending;
    std::function<void(caf::error)> done;
    void finish(caf::error err) {
      if (done)
        std::exchange(done, nullptr)(std::move(err));
    }
  };
  auto state = std::make_shared<progress>(progress{refs.size(), std::move(done)});
  for (const auto& ref : refs) {
    client.map(self, ref, access_mode::read)
      .then(
        [this, state, ref](block_view&& view) {
          views_.insert_or_assign(ref.block, std::move(view));
          if (--state->pending == 0)
            state->finish(caf::error{});
        },
        [state](caf::error& err) { state->finish(err); });
  }
}

const char* mapped_blocks::find(const block_ref& ref) const noexcept {
  auto i = views_.find(ref.block);
  if (i == views_.end() || i->second.ref() != ref)
    return nullptr;
  return reinterpret_cast<const char*>(i->second.data());
}

} // namespace pipeline
