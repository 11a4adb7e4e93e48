#include "request_relay.hpp"

#include <algorithm>
#include <array>
#include <vector>

#include <caf/actor_cast.hpp>
#include <caf/actor_companion.hpp>
#include <caf/actor_system.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/execution_unit.hpp>
#include <caf/resumable.hpp>
#include <caf/scheduler/abstract_coordinator.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/message.hpp>
#include <caf/message_id.hpp>

#include "admin_layout.hpp"
#include "cafshm/engine.hpp"
#include "cafshm/error.hpp"
#include "fastpath/record_deserializer.hpp"
#include "fastpath/request_record.hpp"
#include "unix_identity.hpp"

namespace cafshm {

namespace {

// Relayed requests waiting for their answer at most at once; beyond it records are refused.
constexpr size_t max_waiting = 65536;

// The relay thread as the execution unit of the requests it enqueues: when a request finds the
// engine actor idle (CAF then asks the enqueuing unit to schedule it), the relay thread runs the
// actor itself, up to the scheduler's max_throughput messages, instead of waking a scheduler
// worker for it — one thread wake-up less per request. CAF still runs the actor on one thread at
// a time (only the enqueue that unblocks its mailbox schedules it). Every other actor, and the
// engine when it has more to do, goes to the scheduler.
class inline_engine_unit : public caf::execution_unit {
public:
  inline_engine_unit(caf::actor_system& sys, caf::resumable* engine)
    : caf::execution_unit(&sys), engine_(engine) {
  }

  void exec_later(caf::resumable* job) override {
    if (job != engine_ || running_) {
      system().scheduler().enqueue(job);
      return;
    }
    running_ = true;
    auto result = job->resume(this, system().scheduler().max_throughput());
    running_ = false;
    switch (result) {
      case caf::resumable::resume_later:
        system().scheduler().enqueue(job); // keeps the reference CAF took for scheduling
        break;
      case caf::resumable::done:
      case caf::resumable::awaiting_message:
        intrusive_ptr_release(job);
        break;
      default:
        break;
    }
  }

private:
  caf::resumable* engine_;
  bool running_ = false;
};

} // namespace

caf::expected<std::shared_ptr<request_relay>> request_relay::create(caf::actor_system& sys,
                                                                    const settings& config) {
  fastpath::inbox_options opts;
  opts.capacity = config.local.request_inbox_bytes;
  opts.permissions = config.engine.permissions;
  if (!config.engine.group.empty()) {
    auto gid = group_id_of(config.engine.group);
    if (!gid)
      return make_error(errc::config_error,
                        "engine.group: no such Unix group '" + config.engine.group + "'");
    opts.group = *gid;
  }
  auto in = fastpath::inbox::create(config.engine.name, admin::engine_slot, opts);
  if (!in)
    return in.error();
  return std::shared_ptr<request_relay>{new request_relay(sys, config, std::move(*in))};
}

request_relay::request_relay(caf::actor_system& sys, const settings& config, fastpath::inbox in)
  : sys_(sys), config_(config), in_(std::move(in)) {
}

request_relay::~request_relay() {
  stop();
}

void request_relay::start(caf::actor engine) {
  engine_ = std::move(engine);
  companion_ = sys_.spawn<caf::actor_companion, caf::hidden>();
  auto* c = static_cast<caf::actor_companion*>(caf::actor_cast<caf::abstract_actor*>(companion_));
  c->on_enqueue([this](caf::mailbox_element_ptr reply) { answer(std::move(reply)); });
  thread_ = std::thread{[this] { run(); }};
}

void request_relay::stop() {
  if (!thread_.joinable())
    return;
  stop_.store(true, std::memory_order_release);
  in_.reader().interrupt();
  thread_.join();
  // Once the handler is gone the companion calls answer() no more (it replaces and calls the
  // handler under its lock); answers still on their way are dropped. The companion is hidden:
  // it holds up no shutdown, and goes with its last reference.
  static_cast<caf::actor_companion*>(caf::actor_cast<caf::abstract_actor*>(companion_))
    ->on_enqueue(nullptr);
  companion_ = nullptr;
  engine_ = nullptr;
}

void request_relay::run() {
  // Parks at once below 4 cores. A 50 µs yielding spin after each request made back-to-back
  // calls faster (a probe: 6.7-15 µs against 18), but requests during a transfer from this
  // daemon twice as slow and the transfer slower (docs/fastpath.md, "Measured").
  auto idle = fastpath::idle_strategy::for_this_machine();
  inline_engine_unit unit{sys_, dynamic_cast<caf::resumable*>(
                                  caf::actor_cast<caf::abstract_actor*>(engine_))};
  unit_ = &unit;
  auto handler = [this](const fastpath::inbox_record& r) { take(r); };
  while (!stop_.load(std::memory_order_acquire))
    in_.reader().receive(handler, idle, std::chrono::seconds{1});
}

void request_relay::take(const fastpath::inbox_record& r) {
  auto refuse = [this] { counters_.refused.fetch_add(1, std::memory_order_relaxed); };
  if (r.payload.size() <= fastpath::request_header_bytes)
    return refuse();
  waiting_reply to;
  to.slot = r.sender;
  to.request_id = fastpath::load_u64(r.payload, 0);
  to.reply_instance = fastpath::load_u64(r.payload, 8);
  if (to.request_id == 0 || to.slot == admin::engine_slot)
    return refuse();
  auto body = r.payload.subspan(fastpath::request_header_bytes);
  caf::message msg;
  fastpath::record_deserializer src{sys_, body}; // allocates no more than the record holds
  try {
    // A handle of another process (transmit_target::deliver_to) means something only through
    // BASP's proxies: such a transmit is sent over BASP; a record with one is not a client's.
    if (src(msg) || src.remaining() != 0 || src.foreign_handle())
      return refuse();
  } catch (...) { // whatever a type's inspect throws on bytes it did not write
    return refuse();
  }
  if (msg.size() < 2 || !msg.match_element<caf::atom_value>(0)
      || !fastpath::travels_by_inbox(msg.get_as<caf::atom_value>(0))
      || !msg.match_element<session>(1)
      || to_slot(msg.get_as<session>(1).process) != to.slot) // the record's sender field
                                                              // is the slot (inbox_layout.hpp)
    return refuse();
  uint64_t id;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (waiting_.size() >= max_waiting)
      return refuse();
    id = next_id_++ & caf::message_id::request_id_mask;
    waiting_[id] = to;
  }
  counters_.requests.fetch_add(1, std::memory_order_relaxed);
  engine_->enqueue(caf::make_mailbox_element(caf::actor_cast<caf::strong_actor_ptr>(companion_),
                                             caf::make_message_id(id), {}, std::move(msg)),
                   unit_);
}

void request_relay::answer(caf::mailbox_element_ptr reply) {
  if (!reply || !reply->mid.is_response())
    return;
  waiting_reply to;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    auto i = waiting_.find(reply->mid.request_id().integer_value());
    if (i == waiting_.end())
      return;
    to = i->second;
    waiting_.erase(i);
  }
  std::vector<char> buf(fastpath::reply_header_bytes, 0);
  fastpath::store_u64(reinterpret_cast<std::byte*>(buf.data()), to.request_id);
  auto content = reply->move_content_to_message();
  caf::binary_serializer sink{sys_, buf};
  if (sink(content)) {
    counters_.replies_lost.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  write_reply(to, {reinterpret_cast<const std::byte*>(buf.data()), buf.size()});
}

void request_relay::write_reply(const waiting_reply& to, std::span<const std::byte> payload) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = replies_.find(to.slot);
  if (i == replies_.end() || i->second.instance() != to.reply_instance) {
    if (i != replies_.end())
      replies_.erase(i);
    auto w = fastpath::inbox_writer::open(fastpath::inbox::segment_name(config_.engine.name,
                                                                        to.slot),
                                          admin::engine_slot);
    if (!w || w->instance() != to.reply_instance) {
      counters_.replies_lost.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    i = replies_.emplace(to.slot, std::move(*w)).first;
  }
  auto& out = i->second;
  // The "too large" mark: the client asks again over BASP.
  std::array<std::byte, fastpath::reply_header_bytes> too_large{};
  fastpath::store_u64(too_large.data(), to.request_id);
  too_large[8] = static_cast<std::byte>(fastpath::reply_kind::too_large);
  if (payload.size() > out.max_payload())
    payload = too_large;
  // Never waits: a client that does not read its inbox loses its answers, not the engine time.
  // A client holds room for the bound of every answer it awaits (fastpath/answer_bound.hpp),
  // at least a small answer's; an answer larger than its bound (stats has none) that finds no
  // room leaves the "too large" mark there instead, and the client asks again over BASP where
  // that repeats nothing.
  if (out.send(payload)) {
    if (payload.data() == too_large.data())
      counters_.replies_too_large.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (payload.data() != too_large.data() && out.send(too_large)) {
    counters_.replies_too_large.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  counters_.replies_lost.fetch_add(1, std::memory_order_relaxed);
}

} // namespace cafshm
