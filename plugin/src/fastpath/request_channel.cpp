#include "fastpath/request_channel.hpp"

#include <algorithm>

#include <caf/actor_cast.hpp>
#include <caf/actor_companion.hpp>
#include <caf/actor_system.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/message.hpp>
#include <caf/scheduled_actor.hpp>
#include <caf/scoped_execution_unit.hpp>

#include "admin_layout.hpp"
#include "cafshm/error.hpp"
#include "fastpath/answer_bound.hpp"
#include "fastpath/poll_registry.hpp"
#include "fastpath/record_deserializer.hpp"
#include "fastpath/request_record.hpp"
#include "secure_random.hpp"

namespace cafshm::fastpath {

namespace {

// How long one wait for space in the request inbox lasts before the sender checks whether the
// engine went down meanwhile.
constexpr std::chrono::milliseconds space_wait_slice{50};

// How long the reading thread reads (or sleeps) before it looks at expired actor requests.
constexpr std::chrono::milliseconds reader_slice{100};

// How long after its deadline an actor request is still known: an answer that comes meanwhile
// (from an engine that was stalled, not dead) is dropped and what it carried given back; a later
// one is a stray answer. Meanwhile the entry keeps the reading thread on the reply inbox.
constexpr std::chrono::seconds late_answer_grace{60};

caf::error unreachable(const char* why) {
  return make_error(errc::engine_unreachable, why);
}

// Whether `requester` can still receive its answer: it exists and has not closed its mailbox.
caf::strong_actor_ptr still_listening(const caf::actor_addr& requester) {
  auto ptr = caf::actor_cast<caf::strong_actor_ptr>(requester);
  if (!ptr)
    return nullptr;
  if (auto* a = dynamic_cast<caf::scheduled_actor*>(caf::actor_cast<caf::abstract_actor*>(ptr));
      a != nullptr && a->mailbox().closed())
    return nullptr;
  return ptr;
}

// The answer in a reply record (after its header), or the error that it did not deserialise.
caf::message answer_of(caf::actor_system& sys, std::span<const std::byte> body) {
  caf::message msg;
  record_deserializer src{sys, body}; // allocates no more than the record holds
  try {
    if (!src(msg) && src.remaining() == 0)
      return msg;
  } catch (...) {
  }
  return caf::make_message(
    make_error(errc::engine_unreachable, "the engine's answer did not deserialise"));
}

// A request carried out whose answer came back too large for the reply inbox: more than the
// bound its room was held for (answer_bound.hpp), which asking again could only repeat.
caf::error answer_lost_error(const caf::message& request) {
  auto kind = kind_of(request);
  std::string name = kind ? to_string(*kind) : std::string{"?"};
  return make_error(errc::engine_unreachable, "the engine carried out the " + name
                                                + " request, but its answer does not fit into "
                                                  "the reply inbox");
}

} // namespace

caf::expected<std::shared_ptr<request_channel>>
request_channel::open(caf::actor_system& sys, const registration& reg, idle_strategy idle) {
  if (reg.inbox_engine.empty())
    return make_error(errc::invalid_argument, "the engine offers no request inbox");
  inbox_options opts;
  opts.capacity = reg.reply_inbox_bytes;
  opts.permissions = reg.inbox_permissions;
  if (reg.inbox_group != ~0u)
    opts.group = static_cast<gid_t>(reg.inbox_group);
  auto replies = inbox::create(reg.inbox_engine, to_slot(reg.session.process), opts);
  if (!replies)
    return replies.error();
  std::shared_ptr<request_channel> result{
    new request_channel(sys, reg, std::move(*replies), idle)};
  auto w = inbox_writer::open(result->engine_inbox_, result->slot_);
  if (!w)
    return w.error();
  result->request_payload_max_ = w->max_payload();
  result->requests_.emplace(std::move(*w));
  // With a polling scheduler its workers read the answers for actors: no thread of our own.
  result->polled_ = poll_registry::instance().add(*result);
  return result;
}

request_channel::request_channel(caf::actor_system& sys, const registration& reg, inbox replies,
                                 idle_strategy idle)
  : sys_(sys), engine_inbox_(inbox::segment_name(reg.inbox_engine, admin::engine_slot)),
    slot_(to_slot(reg.session.process)), reply_instance_(replies.control().instance),
    id_base_(secure_token()), idle_(idle), replies_(std::move(replies)),
    room_total_(replies_.capacity() / 2) {
}

request_channel::~request_channel() {
  // The companion calls basp_answered() no more once its handler is gone (it replaces and calls
  // the handler under its lock). It ends here, as CAF's actor_widget ends its companion: BASP
  // keeps a sender of a message to another node in the actor registry (for the answer), and
  // one still running when the actor system is destroyed would end on a half-destroyed system.
  if (companion_) {
    auto* c = static_cast<caf::actor_companion*>(caf::actor_cast<caf::abstract_actor*>(companion_));
    c->on_enqueue(nullptr);
    caf::scoped_execution_unit unit{&sys_};
    c->cleanup(caf::exit_reason::normal, &unit);
  }
  if (polled_)
    poll_registry::instance().remove(*this); // no worker polls it from here on
  {
    std::lock_guard<std::mutex> guard{mtx_};
    closing_ = true;
  }
  cv_.notify_all();
  replies_.reader().interrupt();
  if (actor_reader_.joinable())
    actor_reader_.join();
}

void request_channel::engine_down() {
  std::vector<actor_request> unanswered;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    down_ = true;
    for (auto& [id, r] : for_actors_)
      unanswered.push_back(std::move(r));
    for_actors_.clear();
    queued_.clear();
    late_.clear();
    by_basp_.clear();
    in_flight_ = 0;
    barriers_ = 0;
    room_held_ = 0; // the engine writes none of the answers held for
    ++room_epoch_;
  }
  cv_.notify_all();
  replies_.reader().interrupt();
  // As CAF's own request timeout does: the error under the id the requester awaits. One whose
  // deadline passed has its timeout already; one that ended meanwhile is simply gone.
  auto now = clock::now();
  for (auto& r : unanswered)
    if (auto ptr = still_listening(r.requester); ptr && now <= r.deadline)
      ptr->enqueue(caf::make_mailbox_element(nullptr, r.response, {},
                                             unreachable("the engine went down before it "
                                                         "answered")),
                   nullptr);
}

void request_channel::engine_up(bool inbox_offered) {
  reopen_ = true;
  usable_ = inbox_offered;
  std::lock_guard<std::mutex> guard{mtx_};
  down_ = false;
}

caf::expected<void> request_channel::send(std::span<const std::byte> payload,
                                          clock::time_point deadline) {
  std::lock_guard<std::mutex> guard{send_mtx_};
  if (reopen_.exchange(false) || !requests_) {
    requests_.reset();
    auto w = inbox_writer::open(engine_inbox_, slot_);
    if (!w) { // nothing sent: the client asks over BASP instead
      usable_ = false;
      return unreachable("the engine's request inbox cannot be opened");
    }
    request_payload_max_ = w->max_payload();
    requests_.emplace(std::move(*w));
  }
  for (;;) {
    auto left = deadline - clock::now();
    auto r = requests_->send(payload, std::clamp<clock::duration>(left, clock::duration{0},
                                                                  space_wait_slice));
    if (r || code_of(r.error()) != errc::inbox_full)
      return r;
    if (down_)
      return unreachable("the engine went down while the request waited for space");
    if (clock::now() >= deadline)
      return make_error(errc::inbox_full, "the engine's request inbox stayed full for the "
                                          "request's whole timeout");
  }
}

void request_channel::dispatch(const inbox_record& r, caf::execution_unit* unit) {
  if (r.payload.size() < reply_header_bytes) {
    stray_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  auto id = load_u64(r.payload, 0);
  std::unique_lock<std::mutex> lk{mtx_};
  // The room an answer held is free again: the reader frees a record's space before its handler.
  if (auto i = waiting_.find(id); i != waiting_.end() && !i->second->done) {
    i->second->reply.assign(r.payload.begin(), r.payload.end());
    i->second->done = true; // the notification in room_given_back() wakes its caller
    give_back_locked(i->second->held);
    room_given_back(lk, unit);
    return;
  }
  if (auto l = late_.find(id); l != late_.end()) { // its caller gave up waiting
    give_back_locked(l->second.held);
    late_.erase(l);
    stray_.fetch_add(1, std::memory_order_relaxed);
    room_given_back(lk, unit);
    return;
  }
  auto j = for_actors_.find(id);
  if (j == for_actors_.end() || !j->second.sent || j->second.by_basp) {
    stray_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (auto& q = j->second; static_cast<reply_kind>(r.payload[8]) == reply_kind::too_large
                           && may_ask_again(q.request) && q.engine && clock::now() <= q.deadline
                           && still_listening(q.requester)) {
    // Asked again over BASP in its place: what the actor sent after it waits meanwhile.
    auto out = over_basp_locked(id, q);
    room_given_back(lk, unit);
    send_by_basp(std::move(out));
    return;
  }
  auto to = take_locked(j);
  room_given_back(lk, unit);
  deliver(to, r.payload, unit);
}

void request_channel::deliver(actor_request& to, std::span<const std::byte> reply,
                              caf::execution_unit* unit) {
  if (static_cast<reply_kind>(reply[8]) != reply_kind::too_large)
    return hand_over(to, answer_of(sys_, reply.subspan(reply_header_bytes)), unit);
  // Not asked again (dispatch() asks again what may be): its requester is gone or timed out
  // (nothing was given: the engine did not send what it answered), or the request was carried
  // out and its answer exceeded the bound its room was held for (answer_bound.hpp).
  auto requester = still_listening(to.requester);
  if (!requester || clock::now() > to.deadline) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  requester->enqueue(caf::make_mailbox_element(nullptr, to.response, {},
                                               may_ask_again(to.request)
                                                 ? unreachable("no engine to ask again")
                                                 : answer_lost_error(to.request)),
                     unit);
}

void request_channel::hand_over(actor_request& to, caf::message answer,
                                caf::execution_unit* unit) {
  auto requester = still_listening(to.requester);
  if (!requester || clock::now() > to.deadline) { // the requester has (or gets) its timeout
    dropped_.fetch_add(1, std::memory_order_relaxed);
    if (to.on_drop)
      to.on_drop(answer);
    return;
  }
  requester->enqueue(caf::make_mailbox_element(nullptr, to.response, {}, std::move(answer)),
                     unit);
}

request_channel::basp_send request_channel::over_basp_locked(uint64_t id, actor_request& r) {
  if (!companion_) {
    companion_ = sys_.spawn<caf::actor_companion, caf::hidden>();
    static_cast<caf::actor_companion*>(caf::actor_cast<caf::abstract_actor*>(companion_))
      ->on_enqueue([this](caf::mailbox_element_ptr answer) { basp_answered(std::move(answer)); });
  }
  bool counted = r.sent && r.barrier;
  bool converted = r.sent && !r.by_basp; // sent through the inbox before
  if (converted)
    --in_flight_;
  r.sent = true;
  r.barrier = r.barrier || converted;
  if (r.barrier && !counted)
    ++barriers_;
  give_back_locked(r.held); // the answer comes over BASP
  r.held = {};
  r.record.clear();
  r.by_basp = true;
  r.basp_id = next_basp_id_++ & caf::message_id::request_id_mask;
  by_basp_[r.basp_id] = id;
  return {caf::actor_cast<caf::strong_actor_ptr>(companion_), r.basp_id, r.engine, r.request};
}

void request_channel::send_by_basp(basp_send out) {
  out.engine->enqueue(caf::make_mailbox_element(std::move(out.from), caf::make_message_id(out.id),
                                                {}, std::move(out.request)),
                      nullptr);
}

size_t request_channel::actor_requests_pending() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return for_actors_.size();
}

bool request_channel::forget_expired_locked(clock::time_point now) {
  bool freed = false;
  for (auto i = for_actors_.begin(); i != for_actors_.end();) {
    auto& r = i->second;
    if (now > r.forget_at) {
      freed |= r.sent;
      take_locked(i++);
      continue;
    }
    if (r.barrier && r.sent && now > r.deadline) { // its requester has its timeout
      end_barrier_locked(r);
      freed = true;
    }
    ++i;
  }
  for (auto i = late_.begin(); i != late_.end();)
    if (now > i->second.forget_at) {
      freed = true;
      give_back_locked(i->second.held);
      i = late_.erase(i);
    } else {
      ++i;
    }
  return freed && !queued_.empty();
}

std::optional<uint64_t> request_channel::room_for(const caf::message& request) const {
  // No bound (stats), or one beyond the inbox for a request that may be asked again (a large
  // read): room for a small answer, enough for the "too large" mark the engine writes instead of
  // an answer that finds no room. Such a request still travels in order with the requests
  // around it, and its answer comes over BASP.
  auto bound = answer_bound(request).value_or(small_answer_bound);
  if (bound > max_reply_payload()) {
    if (!may_ask_again(request))
      return std::nullopt;
    bound = small_answer_bound;
  }
  return record_bytes(reply_header_bytes + bound);
}

bool request_channel::may_come_too_large(const caf::message& request) const {
  auto bound = answer_bound(request);
  return !bound || *bound > max_reply_payload();
}

bool request_channel::may_send_locked(uint64_t room) const {
  return queued_.empty() && !sending_queued_ && barriers_ == 0
         && room_held_ + room <= room_total_;
}

void request_channel::mark_sent_locked(actor_request& r) {
  r.held = hold_locked(r.room);
  r.sent = true;
  ++in_flight_;
  if (r.barrier)
    ++barriers_;
}

void request_channel::end_barrier_locked(actor_request& r) {
  if (r.sent && r.barrier) {
    r.barrier = false;
    --barriers_;
  }
}

request_channel::actor_request
request_channel::take_locked(std::unordered_map<uint64_t, actor_request>::iterator i) {
  auto r = std::move(i->second);
  for_actors_.erase(i);
  give_back_locked(r.held);
  end_barrier_locked(r);
  if (r.sent && !r.by_basp)
    --in_flight_;
  if (r.basp_id != 0)
    by_basp_.erase(r.basp_id);
  return r;
}

void request_channel::basp_answered(caf::mailbox_element_ptr answer) {
  if (!answer || !answer->mid.is_response())
    return;
  std::unique_lock<std::mutex> lk{mtx_};
  auto b = by_basp_.find(answer->mid.request_id().integer_value());
  if (b == by_basp_.end()) // forgotten after its deadline, or the engine went down meanwhile
    return;
  auto i = for_actors_.find(b->second);
  if (i == for_actors_.end()) {
    by_basp_.erase(b);
    return;
  }
  auto to = take_locked(i);
  room_given_back(lk, nullptr);
  hand_over(to, answer->move_content_to_message(), nullptr);
}

request_channel::room_hold request_channel::hold_locked(uint64_t room) {
  room_held_ += room;
  return {room, room_epoch_};
}

void request_channel::give_back_locked(const room_hold& held) {
  if (held.bytes != 0 && held.epoch == room_epoch_)
    room_held_ -= held.bytes;
}

void request_channel::room_given_back(std::unique_lock<std::mutex>& lk,
                                      caf::execution_unit* unit) {
  bool queued = !queued_.empty();
  lk.unlock();
  cv_.notify_all(); // blocking calls wait for room, or for their answers
  if (queued)
    send_queued(unit);
}

uint64_t request_channel::room_held() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return room_held_;
}

void request_channel::send_queued(caf::execution_unit* unit) {
  std::unique_lock<std::mutex> lk{mtx_};
  if (sending_queued_) { // that thread sends ours too
    send_queued_again_ = true;
    return;
  }
  sending_queued_ = true;
  do {
    send_queued_again_ = false;
    while (!queued_.empty() && !down_) {
      auto id = queued_.front();
      auto i = for_actors_.find(id);
      if (i == for_actors_.end()) { // forgotten meanwhile
        queued_.pop_front();
        continue;
      }
      auto& r = i->second;
      auto now = clock::now();
      if (now > r.deadline) { // its requester has its timeout: never sent
        queued_.pop_front();
        take_locked(i);
        continue;
      }
      if (barriers_ > 0)
        break; // its answer (or its deadline) sends the queue on
      if (r.by_basp) {
        if (in_flight_ > 0)
          break; // after the answers to what went through the inbox before it
        queued_.pop_front();
        auto out = over_basp_locked(id, r);
        lk.unlock();
        send_by_basp(std::move(out));
        lk.lock();
        continue;
      }
      if (room_held_ + r.room > room_total_)
        break; // the next answer read makes room
      queued_.pop_front();
      mark_sent_locked(r);
      auto record = std::move(r.record);
      lk.unlock();
      auto sent = send({reinterpret_cast<const std::byte*>(record.data()), record.size()}, now);
      lk.lock();
      if (sent)
        continue;
      auto j = for_actors_.find(id);
      if (j == for_actors_.end()) // engine_down() answered it
        continue;
      if (code_of(sent.error()) == errc::request_too_large) { // the engine's inbox shrank
        auto out = over_basp_locked(id, j->second);
        lk.unlock();
        send_by_basp(std::move(out));
        lk.lock();
        continue;
      }
      auto failed = take_locked(j);
      lk.unlock();
      if (auto ptr = still_listening(failed.requester))
        ptr->enqueue(caf::make_mailbox_element(nullptr, failed.response, {},
                                               std::move(sent.error())),
                     unit);
      lk.lock();
    }
  } while (send_queued_again_ && !down_);
  sending_queued_ = false;
  lk.unlock();
  cv_.notify_all(); // blocking calls wait while the queue is sent
}

void request_channel::read_for_actors() {
  auto handler = [this](const inbox_record& r) { dispatch(r); };
  std::unique_lock<std::mutex> lk{mtx_};
  while (!closing_) {
    if (forget_expired_locked(clock::now())) {
      lk.unlock();
      send_queued(nullptr);
      lk.lock();
      continue;
    }
    if (for_actors_.empty()) {
      cv_.wait(lk);
      continue;
    }
    if (reading_ || down_) { // a blocking call reads and hands the answers on meanwhile
      cv_.wait_for(lk, reader_slice);
      continue;
    }
    reading_ = true;
    lk.unlock();
    replies_.reader().receive(handler, idle_, reader_slice);
    lk.lock();
    reading_ = false;
    cv_.notify_all(); // a blocking call may take over the reading
  }
}

uint64_t request_channel::next_request_id() {
  uint64_t id = id_base_ + next_id_.fetch_add(1, std::memory_order_relaxed);
  if (id == 0)
    id = id_base_ + next_id_.fetch_add(1, std::memory_order_relaxed);
  return id;
}

caf::expected<std::vector<char>> request_channel::record_of(uint64_t id,
                                                            const caf::message& request) {
  std::vector<char> buf(request_header_bytes, 0);
  store_u64(reinterpret_cast<std::byte*>(buf.data()), id);
  store_u64(reinterpret_cast<std::byte*>(buf.data()) + 8, reply_instance_);
  caf::binary_serializer sink{sys_, buf};
  auto copy = request; // the serialiser takes a non-const reference
  if (auto err = sink(copy))
    return make_error(errc::invalid_argument, "cannot serialise the request: " + sys_.render(err));
  return buf;
}

caf::error request_channel::call_for_actor(const caf::message& request,
                                           const caf::actor_addr& requester,
                                           caf::message_id response, const caf::actor& engine,
                                           clock::time_point deadline, drop_handler on_drop) {
  if (down_)
    return unreachable("the engine is down");
  if (!usable_)
    return unreachable("the engine offers no request inbox");
  if (!engine)
    return unreachable("no engine to send to");
  auto id = next_request_id();
  actor_request r{requester, response, request, engine, deadline,
                  deadline + late_answer_grace, std::move(on_drop)};
  auto room = room_for(request);
  r.by_basp = !room || !may_travel_by_inbox(request);
  if (!r.by_basp) {
    auto buf = record_of(id, request);
    if (!buf)
      return std::move(buf.error());
    r.by_basp = buf->size() > request_payload_max_.load(std::memory_order_relaxed);
    r.record = std::move(*buf);
    r.room = *room;
  }
  // A transmit's answer comes when the block has arrived at the peer, maybe minutes later:
  // what the actor sends after it does not wait for that.
  r.barrier = r.by_basp ? kind_of(request) != transmit_atom::value : may_come_too_large(request);
  std::optional<basp_send> by_basp;
  std::vector<char> record;
  bool now = false;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (down_)
      return unreachable("the engine is down");
    auto& q = for_actors_.emplace(id, std::move(r)).first->second;
    if (q.by_basp ? may_send_locked(0) && in_flight_ == 0 : may_send_locked(q.room)) {
      now = true;
      if (q.by_basp) {
        by_basp = over_basp_locked(id, q);
      } else {
        mark_sent_locked(q);
        record = std::move(q.record);
      }
    } else { // after the requests before it: when answers make room, or end its barriers
      queued_.push_back(id);
      deferred_total_.fetch_add(1, std::memory_order_relaxed);
    }
    if (!polled_ && !actor_reader_.joinable())
      actor_reader_ = std::thread{[this] { read_for_actors(); }};
  }
  cv_.notify_all(); // the reading thread reads from now on
  if (!now) {
    send_queued(nullptr);
    return {};
  }
  if (by_basp) {
    send_by_basp(std::move(*by_basp));
    return {};
  }
  // Without waiting for space: an actor's thread must not block on a full request inbox.
  auto sent = send({reinterpret_cast<const std::byte*>(record.data()), record.size()},
                   clock::now());
  if (sent)
    return {};
  std::unique_lock<std::mutex> lk{mtx_};
  auto i = for_actors_.find(id);
  if (i == for_actors_.end()) // engine_down() answered it: the actor drops one of the two
    return std::move(sent.error());
  if (code_of(sent.error()) == errc::request_too_large) { // the engine's inbox shrank
    auto out = over_basp_locked(id, i->second);
    lk.unlock();
    send_by_basp(std::move(out));
    return {};
  }
  take_locked(i);
  room_given_back(lk, nullptr);
  return std::move(sent.error());
}

uint64_t request_channel::max_reply_payload() const noexcept {
  return max_payload(replies_.capacity()) - reply_header_bytes;
}

caf::expected<caf::message> request_channel::call(const caf::message& request,
                                                  clock::time_point deadline) {
  if (down_)
    return unreachable("the engine is down");
  if (!usable_)
    return unreachable("the engine offers no request inbox");
  auto room = room_for(request);
  if (!room)
    return make_error(errc::request_too_large, "the answer may not fit into the reply inbox");
  auto id = next_request_id();
  auto record = record_of(id, request);
  if (!record)
    return std::move(record.error());
  auto& buf = *record;
  waiter me;
  auto handler = [this](const inbox_record& r) { dispatch(r); };
  const auto wait =
    idle_.spin.count() > 0 ? idle_ : idle_strategy::yielding_spin_then_park(call_spin);
  std::unique_lock<std::mutex> lk{mtx_};
  waiting_[id] = &me;
  bool sent = false;
  // Until the answer came: send once the reply inbox has room for it, and meanwhile take turns
  // at reading the answers (ours, and those that make the room).
  while (!me.done && !down_) {
    if (!sent && may_send_locked(*room)) {
      me.held = hold_locked(*room);
      lk.unlock();
      auto s = send({reinterpret_cast<const std::byte*>(buf.data()), buf.size()}, deadline);
      lk.lock();
      if (!s) {
        waiting_.erase(id);
        give_back_locked(me.held);
        room_given_back(lk, nullptr);
        return s.error();
      }
      sent = true;
      continue;
    }
    auto now = clock::now();
    if (now >= deadline)
      break;
    if (!reading_) {
      reading_ = true;
      lk.unlock();
      replies_.reader().receive(handler, wait, deadline - now);
      lk.lock();
      reading_ = false;
      cv_.notify_all(); // another waiter may take over the reading
      if (polled_) {
        lk.unlock();
        reading_released();
        lk.lock();
      }
      continue;
    }
    cv_.wait_until(lk, deadline);
  }
  waiting_.erase(id);
  if (!me.done) {
    if (down_)
      return unreachable("the engine went down while the request waited for its answer");
    if (!sent)
      return make_error(errc::inbox_full, "the reply inbox had no room for the answer within "
                                          "the request's timeout");
    late_.emplace(id, late_call{me.held, deadline + late_answer_grace}); // its answer may come
    return unreachable("the engine did not answer in time");
  }
  lk.unlock();
  std::span<const std::byte> reply{me.reply};
  if (static_cast<reply_kind>(reply[8]) == reply_kind::too_large) {
    if (!may_ask_again(request))
      return answer_lost_error(request);
    return make_error(errc::request_too_large, "the answer does not fit into the reply inbox");
  }
  return answer_of(sys_, reply.subspan(reply_header_bytes));
}

bool request_channel::reader_thread_started() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return actor_reader_.joinable();
}

void request_channel::reading_released() {
  // Answers for actors that came after this thread's last look: a parked worker reads them.
  poll_registry::instance().reader_released(*this);
}

poll_outcome request_channel::poll(caf::execution_unit* unit, size_t max) {
  bool queued_room = false;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (reading_ || closing_)
      return poll_outcome::busy; // a blocking call reads and hands every answer on
    reading_ = true;
    if (auto now = clock::now(); now >= next_forget_) {
      queued_room = forget_expired_locked(now);
      next_forget_ = now + reader_slice;
    }
  }
  if (queued_room)
    send_queued(unit);
  auto n = replies_.reader().poll([&](const inbox_record& r) { dispatch(r, unit); }, max);
  {
    std::lock_guard<std::mutex> guard{mtx_};
    reading_ = false;
  }
  cv_.notify_all(); // a blocking call waiting to read takes over
  reading_released();
  return n > 0 ? poll_outcome::delivered : poll_outcome::idle;
}

bool request_channel::ready() const noexcept {
  return replies_.reader().ready();
}

wake_words request_channel::wake() noexcept {
  return {&replies_.reader().data_sequence(), &replies_.reader().reader_waiting()};
}

std::chrono::nanoseconds request_channel::recheck_after() const noexcept {
  const auto& reader = replies_.reader();
  return reader.claim_pending() ? reader.liveness_check_after() : std::chrono::nanoseconds::max();
}

} // namespace cafshm::fastpath
