// A client's end of the local fast path (docs/fastpath.md): its blocking requests go into the
// engine's request inbox, and the engine's answers come back through the process's own reply
// inbox ("<engine>.inbox-<slot>"), created here. No actor per call: a calling thread sends its
// request and waits for the answer with the same request id.
//
// Several threads may call at once. One of the waiting threads at a time reads the reply inbox
// (a blocking caller has nothing else to do: it polls, giving its core to any thread that
// wants it between polls, for up to `call_spin`, then parks; or spins as `idle` says, if that
// spins) and hands each answer to the thread waiting for its id;
// the others wait on a condition variable and one of them takes over the reading when the
// reader's own answer came. An answer nobody waits for any more (its caller timed out) or with
// an id this process never chose (any local process may write to the inbox) is counted as
// stray and dropped.
//
// engine_down() makes every waiting call fail at once with errc::engine_unreachable (the
// client's engine link calls it when the engine goes away); engine_up() re-opens the engine's
// request inbox, which an engine that adopted the segments made anew. An adopting engine that
// offers no inbox (local.transport: basp), or whose inbox this process cannot open, leaves the
// channel not usable(): the client's calls then take BASP, until an engine offers an inbox again.
//
// Requests of event-based actors (call_for_actor) travel the same way, but nobody waits for
// their answers: the channel keeps each one's requester and CAF response id, and whoever reads
// the reply inbox (a waiting blocking call; else, when the actor system runs
// cafshm::polling_scheduler, its workers in their idle loop (inbox_poll_source.hpp); else the
// channel's own reading thread, started with the first such request and parked while none is
// pending) deserialises the answer and
// enqueues it into the requester's mailbox as the response CAF's request machinery awaits. An
// answer whose requester has ended, or that comes after the request's deadline (the actor got
// its timeout), is dropped and counted (replies_dropped) and handed to the request's drop
// handler, which gives back what it carried (e.g. the view a map answer counted). engine_down()
// answers every pending actor request with errc::engine_unreachable at once.
//
// Room for answers: the engine never waits for room in a reply inbox (a full one would lose the
// answer), so the channel sends a request only when the inbox has room for the bound of its
// answer (answer_bound.hpp) beside the bounds of every request still unanswered: half the ring,
// which a record and the padding before it always fit beside. A blocking call waits for room
// (reading answers meanwhile, as it waits for its own) until its deadline, then fails with
// inbox_full; an actor request that finds no room, or earlier actor requests still waiting, is
// kept in a queue and sent, in the order of the queue, as answers free room (whoever reads an
// answer sends what it made room for); its requester's timeout still runs. Room is held until
// the answer is read, or, for a request whose caller stopped waiting, until late_answer_grace
// after its deadline. A blocking call whose answer's bound exceeds the whole room is
// request_too_large (the client sends it over BASP), unless it may be asked again (a large
// read): that one, and one without a bound (stats), holds room for a small answer, and an answer
// that does not fit or finds no room comes back as "too large" and is asked again over BASP.
//
// Order: an actor's requests take effect in the order it sent them, as over BASP, also those
// that travel over BASP (a record larger than the request inbox takes, an answer larger than the
// room, a kind the inbox does not carry). The channel sends those itself, from a companion
// actor of its own that hands each answer to the requester under its response id (BASP keeps
// the order among them), and keeps them in the queue until every actor request sent through the
// inbox before has been answered; while one is on its way (but a transmit, whose answer comes
// when the block has arrived), and while a request whose answer may come back "too large" is
// unanswered (asking it again over BASP must come before what follows), every later request
// waits in the queue, the blocking calls' as well. Such a barrier ends with its answer, or at its
// deadline (the requester got its timeout). The order is the process's, across its actors: one
// actor's large write holds up the others' requests for its round trip.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <functional>
#include <thread>

#include <caf/actor_addr.hpp>
#include <caf/actor.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/message.hpp>
#include <caf/message_id.hpp>

#include "cafshm/protocol.hpp"
#include "fastpath/idle_strategy.hpp"
#include "fastpath/inbox.hpp"
#include "fastpath/inbox_poll_source.hpp"
#include "fastpath/inbox_writer.hpp"

namespace cafshm::fastpath {

class request_channel final : private inbox_poll_source {
public:
  using clock = std::chrono::steady_clock;

  /// Creates the reply inbox that `reg` names (its inbox_engine must not be empty) and opens
  /// the engine's request inbox.
  static caf::expected<std::shared_ptr<request_channel>>
  open(caf::actor_system& sys, const registration& reg, idle_strategy idle = idle_strategy::park());

  /// How long a blocking call polls for its answer (sched_yield between polls) before it parks:
  /// longer than the engine's usual answer, so that the answer usually costs no wake-up.
  static constexpr std::chrono::microseconds call_spin{50};

  request_channel(const request_channel&) = delete;
  request_channel& operator=(const request_channel&) = delete;

  /// Sends `request` (atom, session, args...) and waits for the answer until `deadline`.
  /// Answers the engine's answer (its result values or a caf::error) as a message. Errors:
  /// engine_unreachable (no answer in time, the engine went down, its inbox is gone),
  /// inbox_full (the request inbox stayed full until the deadline), request_too_large (the
  /// request or its answer does not fit into an inbox record: send it over BASP).
  caf::expected<caf::message> call(const caf::message& request, clock::time_point deadline);

  /// Gives back what an answer that no actor will see carried (called on the reading thread).
  using drop_handler = std::function<void(caf::message& answer)>;

  /// Sends `request` for the actor `requester` and returns at once. Its answer arrives in the
  /// requester's mailbox as the response with id `response` (the response id of a request id
  /// the requester made). A request the inbox does not take, and an answer too large for the
  /// reply inbox, go to `engine` over BASP from the channel, in order (see above). The
  /// requester keeps its own CAF timeout; `deadline` is no later than it. Never waits for
  /// space: a full request inbox is errc::inbox_full at once. Errors (nothing will arrive):
  /// engine_unreachable, inbox_full; while not usable() nothing was sent: send it over BASP.
  caf::error call_for_actor(const caf::message& request, const caf::actor_addr& requester,
                            caf::message_id response, const caf::actor& engine,
                            clock::time_point deadline, drop_handler on_drop = nullptr);

  void engine_down();
  /// Re-attached to an engine that offers its request inbox (`inbox_offered`) or not.
  void engine_up(bool inbox_offered = true);
  /// False while the engine offers no request inbox or this process could not open it after a
  /// re-attach (call() then failed with engine_unreachable without sending anything).
  bool usable() const noexcept { return usable_.load(std::memory_order_acquire); }

  uint64_t stray_replies() const noexcept { return stray_.load(std::memory_order_relaxed); }
  /// Answers of actor requests whose requester had ended or whose deadline had passed.
  uint64_t replies_dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
  /// Actor requests sent or queued and not yet answered, dropped or expired.
  size_t actor_requests_pending() const;
  /// Actor requests that found no room for their answers and waited in the queue.
  uint64_t requests_deferred() const noexcept {
    return deferred_total_.load(std::memory_order_relaxed);
  }
  /// Bytes of the reply inbox held for the answers of requests sent (record_bytes of each bound).
  uint64_t room_held() const;

  ~request_channel() override; // leaves the poll registry, stops the reading thread
  /// Whether the actor system's polling scheduler reads the answers for actors (no thread).
  bool polled() const noexcept { return polled_; }
  /// Whether the channel's own reading thread was ever started.
  bool reader_thread_started() const;
  const std::string& reply_inbox_name() const noexcept { return replies_.name(); }
  /// Bytes of the largest answer the reply inbox takes (a larger one is asked again over BASP).
  uint64_t max_reply_payload() const noexcept;

private:
  /// Room held in the reply inbox for one answer; `epoch` tells holds from before engine_down(),
  /// which gave all room back, from later ones.
  struct room_hold {
    uint64_t bytes = 0;
    uint64_t epoch = 0;
  };

  struct waiter {
    bool done = false;
    std::vector<std::byte> reply; // the whole reply payload
    room_hold held;
  };

  struct actor_request {
    caf::actor_addr requester;
    caf::message_id response;
    caf::message request;  // asked again over BASP should the answer be too large
    caf::actor engine;
    clock::time_point deadline; // the requester's timeout comes no earlier
    clock::time_point forget_at; // a later answer is a stray one
    drop_handler on_drop;
    uint64_t room = 0;          // record_bytes of the answer's bound
    room_hold held{};           // while sent: the room it holds
    std::vector<char> record{}; // while queued: the record to send (none: by BASP)
    bool sent = false;
    bool by_basp = false;  // sent (or to be sent) over BASP from the companion
    bool barrier = false;  // while sent and unanswered, later requests wait in the queue
    uint64_t basp_id = 0;  // while sent over BASP: the companion's request id
  };

  /// A blocking call that stopped waiting before its answer came: its room stays held until
  /// the answer comes or `forget_at`.
  struct late_call {
    room_hold held;
    clock::time_point forget_at;
  };

  request_channel(caf::actor_system& sys, const registration& reg, inbox replies,
                  idle_strategy idle);

  /// Serialises `request` with the header of request `id`.
  caf::expected<std::vector<char>> record_of(uint64_t id, const caf::message& request);
  uint64_t next_request_id();
  /// Hands one answer to its actor (outside mtx_), enqueuing as `unit` (may be null).
  void deliver(actor_request& to, std::span<const std::byte> reply, caf::execution_unit* unit);
  /// The reading thread: reads the reply inbox while actor requests are pending and no
  /// blocking call reads it.
  void read_for_actors();
  /// Drops the pending actor requests and late calls past their forget_at (mtx_ held). True:
  /// that freed room and actor requests wait for it (call send_queued without mtx_).
  bool forget_expired_locked(clock::time_point now);

  /// Room in the reply inbox that `request`'s answer needs; none: more than the inbox holds.
  std::optional<uint64_t> room_for(const caf::message& request) const;
  /// Whether `request`'s answer may come back "too large" (it holds less room than it may need).
  bool may_come_too_large(const caf::message& request) const;
  /// Whether a request needing `room` may be sent now (mtx_ held): no actor request waits in
  /// the queue or is being sent from it, no barrier is unanswered, and the room is free.
  bool may_send_locked(uint64_t room) const;
  /// Marks `r` sent through the inbox (mtx_ held): holds its room, counts it in flight.
  void mark_sent_locked(actor_request& r);
  /// Removes an actor request (mtx_ held), giving back its room and its place in flight.
  /// Answers the request.
  actor_request take_locked(std::unordered_map<uint64_t, actor_request>::iterator i);
  /// Ends `r`'s barrier (mtx_ held), if it is one in flight.
  void end_barrier_locked(actor_request& r);
  /// A request on its way to the engine over BASP, from the companion under its own id.
  struct basp_send {
    caf::strong_actor_ptr from;
    uint64_t id;
    caf::actor engine;
    caf::message request;
  };
  /// Marks actor request `id` (`r`) sent over BASP (mtx_ held), holding no room: a barrier in
  /// flight unless it is a transmit sent so. Answers what send_by_basp() sends.
  basp_send over_basp_locked(uint64_t id, actor_request& r);
  void send_by_basp(basp_send out); // mtx_ not held
  /// The companion's answer to a request sent over BASP (on whichever thread delivers it).
  void basp_answered(caf::mailbox_element_ptr answer);
  /// Gives `answer` to `to`'s requester, or drops it (mtx_ not held).
  void hand_over(actor_request& to, caf::message answer, caf::execution_unit* unit);
  room_hold hold_locked(uint64_t room);
  void give_back_locked(const room_hold& held);
  /// After room was given back (`lk` holds mtx_): unlocks, wakes the blocking calls and sends
  /// the queued actor requests that fit now.
  void room_given_back(std::unique_lock<std::mutex>& lk, caf::execution_unit* unit);
  /// Sends queued actor requests while room allows (mtx_ not held), one thread at a time; a
  /// request that cannot be sent is answered with the error in its requester's mailbox.
  void send_queued(caf::execution_unit* unit);

  /// Appends the request record; the writer lock is held meanwhile.
  caf::expected<void> send(std::span<const std::byte> payload, clock::time_point deadline);
  /// The reader's handler: gives one answer to its waiter.
  void dispatch(const inbox_record& r, caf::execution_unit* unit = nullptr);
  /// After a thread other than a worker gave the reading role back (mtx_ not held).
  void reading_released();

  // -- inbox_poll_source (the polling scheduler's workers)
  caf::actor_system& system() const noexcept override { return sys_; }
  poll_outcome poll(caf::execution_unit* unit, size_t max) override;
  bool ready() const noexcept override;
  wake_words wake() noexcept override;
  std::chrono::nanoseconds recheck_after() const noexcept override;

  // -- constant after construction
  caf::actor_system& sys_;
  std::string engine_inbox_;
  uint32_t slot_; // this process, as the inboxes carry it (inbox_layout.hpp)
  uint64_t reply_instance_;
  uint64_t id_base_; // random: other processes cannot guess the ids of pending requests
  idle_strategy idle_;
  inbox replies_;
  std::atomic<uint64_t> next_id_{1};
  std::atomic<uint64_t> stray_{0};
  bool polled_ = false; // set by open(): the poll registry took the channel
  // -- the engine's request inbox, one sender at a time
  std::mutex send_mtx_;
  std::optional<inbox_writer> requests_;
  std::atomic<bool> reopen_{false}; // set by engine_up(): open the request inbox anew
  std::atomic<bool> usable_{true};
  std::atomic<uint64_t> request_payload_max_{0}; // of the request inbox last opened
  // -- waiting calls
  mutable std::mutex mtx_;
  std::condition_variable cv_;
  bool reading_ = false; // a waiting thread reads the reply inbox now
  std::atomic<bool> down_{false};
  std::unordered_map<uint64_t, waiter*> waiting_;
  std::unordered_map<uint64_t, actor_request> for_actors_;
  std::unordered_map<uint64_t, late_call> late_;
  // -- room for answers (mtx_)
  uint64_t room_total_ = 0; // half the reply ring
  uint64_t room_held_ = 0;
  uint64_t room_epoch_ = 0;
  std::deque<uint64_t> queued_; // ids of actor requests waiting for room, oldest first
  bool sending_queued_ = false;  // a thread sends from the queue (mtx_ released meanwhile)
  bool send_queued_again_ = false; // room was freed while it did
  // -- order with the requests over BASP (mtx_)
  size_t in_flight_ = 0; // actor requests sent through the inbox and unanswered
  size_t barriers_ = 0;  // actor requests sent, unanswered, and holding up what follows
  std::unordered_map<uint64_t, uint64_t> by_basp_; // the companion's request id -> id
  uint64_t next_basp_id_ = 1;
  caf::actor companion_; // made with the first request over BASP; receives their answers
  std::atomic<uint64_t> deferred_total_{0};
  std::atomic<uint64_t> dropped_{0};
  bool closing_ = false;  // the destructor runs: the reading thread ends
  clock::time_point next_forget_{}; // when a worker's poll next drops expired actor requests
  std::thread actor_reader_; // started by the first actor request
};

} // namespace cafshm::fastpath
