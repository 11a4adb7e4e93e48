#include "engine_link.hpp"

#include <algorithm>

#include <caf/actor_cast.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/send.hpp>

#include "cafshm/client.hpp"
#include "cafshm/error.hpp"
#include "fastpath/request_channel.hpp"

namespace cafshm::detail {

engine_link::engine_link(engine_actor engine, process_id process)
  : engine_(std::move(engine)), process_(process) {
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

void engine_link::send_locked(bool free, const session& s, const block_ref& ref) {
  if (free)
    caf::anon_send(engine_, free_atom::value, s, ref);
  else
    caf::anon_send(engine_, unmap_atom::value, s, ref);
}

void engine_link::unmap(const session& s, const block_ref& ref) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (status_ == status::up)
    send_locked(false, s, ref);
  else if (status_ == status::down)
    pending_.push_back({false, s, ref});
}

void engine_link::free(const session& s, const block_ref& ref) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (status_ == status::up)
    send_locked(true, s, ref);
  else if (status_ == status::down)
    pending_.push_back({true, s, ref});
}

caf::expected<uint64_t> engine_link::awaiting(const caf::actor_addr& requester,
                                              caf::message_id response,
                                              const caf::actor_addr& engine) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (status_ == status::gone)
    return lost_;
  if (status_ == status::down || engine_.address() != engine)
    return make_error(errc::engine_unreachable,
                      "the engine went down while the request was on its way");
  auto ticket = next_ticket_++;
  in_flight_.push_back({ticket, requester, response});
  return ticket;
}

void engine_link::answered(uint64_t ticket) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = std::find_if(in_flight_.begin(), in_flight_.end(),
                        [ticket](const request_in_flight& r) { return r.ticket == ticket; });
  if (i != in_flight_.end())
    in_flight_.erase(i);
}

template <class Atom>
void engine_link::notify_locked(Atom atom) {
  for (auto& o : observers_)
    caf::anon_send(o, atom, process_);
}

void engine_link::went_down(const caf::actor_addr& from) {
  std::vector<request_in_flight> unanswered;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (status_ != status::up || engine_.address() != from)
      return;
    status_ = status::down;
    if (channel_)
      channel_->engine_down();
    unanswered.swap(in_flight_);
    notify_locked(engine_down_atom::value);
  }
  // Outside the lock: the answer goes into each requester's mailbox under the id it awaits,
  // as CAF's own request timeout does (a requester that ended meanwhile is simply gone).
  for (auto& r : unanswered)
    if (auto requester = caf::actor_cast<caf::strong_actor_ptr>(r.requester))
      requester->enqueue(
        caf::make_mailbox_element(nullptr, r.response, {},
                                  make_error(errc::engine_unreachable,
                                             "the engine went down before it answered")),
        nullptr);
}

void engine_link::came_up(engine_actor engine, bool inbox_offered) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (status_ == status::gone)
    return;
  engine_ = std::move(engine);
  if (channel_)
    channel_->engine_up(inbox_offered);
  status_ = status::up;
  for (auto& p : pending_)
    send_locked(p.free, p.s, p.ref);
  pending_.clear();
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
  pending_.clear();
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
