#include "fastpath/request_channel.hpp"

#include <algorithm>

#include <caf/actor_system.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/message.hpp>

#include "admin_layout.hpp"
#include "cafshm/error.hpp"
#include "fastpath/record_deserializer.hpp"
#include "fastpath/request_record.hpp"
#include "secure_random.hpp"

namespace cafshm::fastpath {

namespace {

// How long one wait for space in the request inbox lasts before the sender checks whether the
// engine went down meanwhile.
constexpr std::chrono::milliseconds space_wait_slice{50};

caf::error unreachable(const char* why) {
  return make_error(errc::engine_unreachable, why);
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
  result->requests_.emplace(std::move(*w));
  return result;
}

request_channel::request_channel(caf::actor_system& sys, const registration& reg, inbox replies,
                                 idle_strategy idle)
  : sys_(sys), engine_inbox_(inbox::segment_name(reg.inbox_engine, admin::engine_slot)),
    slot_(to_slot(reg.session.process)), reply_instance_(replies.control().instance),
    id_base_(secure_token()), idle_(idle), replies_(std::move(replies)) {
}

void request_channel::engine_down() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    down_ = true;
  }
  cv_.notify_all();
  replies_.reader().interrupt();
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

void request_channel::dispatch(const inbox_record& r) {
  if (r.payload.size() < reply_header_bytes) {
    stray_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  auto id = load_u64(r.payload, 0);
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = waiting_.find(id);
  if (i == waiting_.end() || i->second->done) {
    stray_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  i->second->reply.assign(r.payload.begin(), r.payload.end());
  i->second->done = true;
  cv_.notify_all();
}

caf::expected<caf::message> request_channel::call(const caf::message& request,
                                                  clock::time_point deadline) {
  if (down_)
    return unreachable("the engine is down");
  if (!usable_)
    return unreachable("the engine offers no request inbox");
  uint64_t id = id_base_ + next_id_.fetch_add(1, std::memory_order_relaxed);
  if (id == 0)
    id = id_base_ + next_id_.fetch_add(1, std::memory_order_relaxed);
  std::vector<char> buf(request_header_bytes, 0);
  store_u64(reinterpret_cast<std::byte*>(buf.data()), id);
  store_u64(reinterpret_cast<std::byte*>(buf.data()) + 8, reply_instance_);
  {
    caf::binary_serializer sink{sys_, buf};
    auto copy = request; // the serialiser takes a non-const reference
    if (auto err = sink(copy))
      return make_error(errc::invalid_argument, "cannot serialise the request: " + sys_.render(err));
  }
  waiter me;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    waiting_[id] = &me;
  }
  auto forget = [&] {
    std::lock_guard<std::mutex> guard{mtx_};
    waiting_.erase(id);
  };
  if (auto sent = send({reinterpret_cast<const std::byte*>(buf.data()), buf.size()}, deadline);
      !sent) {
    forget();
    return sent.error();
  }
  auto handler = [this](const inbox_record& r) { dispatch(r); };
  std::unique_lock<std::mutex> lk{mtx_};
  while (!me.done && !down_) {
    auto now = clock::now();
    if (now >= deadline)
      break;
    if (!reading_) {
      reading_ = true;
      lk.unlock();
      replies_.reader().receive(handler, idle_, deadline - now);
      lk.lock();
      reading_ = false;
      cv_.notify_all(); // another waiter may take over the reading
      continue;
    }
    cv_.wait_until(lk, deadline);
  }
  waiting_.erase(id);
  if (!me.done) {
    if (down_)
      return unreachable("the engine went down while the request waited for its answer");
    return unreachable("the engine did not answer in time");
  }
  lk.unlock();
  std::span<const std::byte> reply{me.reply};
  if (static_cast<reply_kind>(reply[8]) == reply_kind::too_large)
    return make_error(errc::request_too_large, "the answer does not fit into the reply inbox");
  auto body = reply.subspan(reply_header_bytes);
  caf::message msg;
  record_deserializer src{sys_, body}; // allocates no more than the record holds
  try {
    if (!src(msg) && src.remaining() == 0)
      return msg;
  } catch (...) {
  }
  return make_error(errc::engine_unreachable, "the engine's answer did not deserialise");
}

} // namespace cafshm::fastpath
