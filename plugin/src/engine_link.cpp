#include "engine_link.hpp"

#include <caf/send.hpp>

#include "cafshm/client.hpp"
#include "cafshm/error.hpp"
#include "fastpath/request_channel.hpp"

namespace cafshm::detail {

engine_link::engine_link(engine_actor engine, uint32_t slot)
  : engine_(std::move(engine)), slot_(slot) {
}

engine_actor engine_link::engine() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return engine_;
}

engine_link::status engine_link::state() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return status_;
}

caf::error engine_link::unavailable() const {
  std::lock_guard<std::mutex> guard{mtx_};
  switch (status_) {
    case status::up:
      return {};
    case status::down:
      return make_error(errc::engine_unreachable,
                        "the engine is down; the client reconnects in the background");
    case status::gone:
      break;
  }
  return lost_;
}

void engine_link::detach(const session& s, const block_ref& ref) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (status_ == status::up)
    caf::anon_send(engine_, unmap_atom::value, s, ref);
  else if (status_ == status::down)
    pending_detaches_.emplace_back(s, ref);
}

template <class Atom>
void engine_link::notify_locked(Atom atom) {
  for (auto& o : observers_)
    caf::anon_send(o, atom, slot_);
}

void engine_link::went_down(const caf::actor_addr& from) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (status_ != status::up || engine_.address() != from)
    return;
  status_ = status::down;
  if (channel_)
    channel_->engine_down();
  notify_locked(engine_down_atom::value);
}

void engine_link::came_up(engine_actor engine) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (status_ == status::gone)
    return;
  engine_ = std::move(engine);
  if (channel_)
    channel_->engine_up();
  status_ = status::up;
  for (auto& [s, ref] : pending_detaches_)
    caf::anon_send(engine_, unmap_atom::value, s, ref);
  pending_detaches_.clear();
  notify_locked(engine_up_atom::value);
}

void engine_link::lost(caf::error why) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (status_ == status::gone)
    return;
  status_ = status::gone;
  if (channel_)
    channel_->engine_down();
  lost_ = std::move(why);
  pending_detaches_.clear();
  notify_locked(engine_gone_atom::value);
}

void engine_link::add_observer(caf::actor observer) {
  std::lock_guard<std::mutex> guard{mtx_};
  observers_.push_back(std::move(observer));
}

} // namespace cafshm::detail

namespace cafshm::detail {

void engine_link::set_channel(std::shared_ptr<fastpath::request_channel> channel) {
  std::lock_guard<std::mutex> guard{mtx_};
  channel_ = std::move(channel);
}

} // namespace cafshm::detail
