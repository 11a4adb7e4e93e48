// A client's end of the local fast path (docs/fastpath.md): its blocking requests go into the
// engine's request inbox, and the engine's answers come back through the process's own reply
// inbox ("<engine>.inbox-<slot>"), created here. No actor per call: a calling thread sends its
// request and waits for the answer with the same request id.
//
// Several threads may call at once. One of the waiting threads at a time reads the reply inbox
// (spinning or parking as `idle` says) and hands each answer to the thread waiting for its id;
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
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "cafshm/protocol.hpp"
#include "fastpath/idle_strategy.hpp"
#include "fastpath/inbox.hpp"
#include "fastpath/inbox_writer.hpp"

namespace cafshm::fastpath {

class request_channel {
public:
  using clock = std::chrono::steady_clock;

  /// Creates the reply inbox that `reg` names (its inbox_engine must not be empty) and opens
  /// the engine's request inbox.
  static caf::expected<std::shared_ptr<request_channel>>
  open(caf::actor_system& sys, const registration& reg, idle_strategy idle = idle_strategy::park());

  request_channel(const request_channel&) = delete;
  request_channel& operator=(const request_channel&) = delete;

  /// Sends `request` (atom, session, args...) and waits for the answer until `deadline`.
  /// Answers the engine's answer (its result values or a caf::error) as a message. Errors:
  /// engine_unreachable (no answer in time, the engine went down, its inbox is gone),
  /// inbox_full (the request inbox stayed full until the deadline), request_too_large (the
  /// request or its answer does not fit into an inbox record: send it over BASP).
  caf::expected<caf::message> call(const caf::message& request, clock::time_point deadline);

  void engine_down();
  /// Re-attached to an engine that offers its request inbox (`inbox_offered`) or not.
  void engine_up(bool inbox_offered = true);
  /// False while the engine offers no request inbox or this process could not open it after a
  /// re-attach (call() then failed with engine_unreachable without sending anything).
  bool usable() const noexcept { return usable_.load(std::memory_order_acquire); }

  uint64_t stray_replies() const noexcept { return stray_.load(std::memory_order_relaxed); }
  const std::string& reply_inbox_name() const noexcept { return replies_.name(); }

private:
  struct waiter {
    bool done = false;
    std::vector<std::byte> reply; // the whole reply payload
  };

  request_channel(caf::actor_system& sys, const registration& reg, inbox replies,
                  idle_strategy idle);

  /// Appends the request record; the writer lock is held meanwhile.
  caf::expected<void> send(std::span<const std::byte> payload, clock::time_point deadline);
  /// The reader's handler: gives one answer to its waiter.
  void dispatch(const inbox_record& r);

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
  // -- the engine's request inbox, one sender at a time
  std::mutex send_mtx_;
  std::optional<inbox_writer> requests_;
  std::atomic<bool> reopen_{false}; // set by engine_up(): open the request inbox anew
  std::atomic<bool> usable_{true};
  // -- waiting calls
  std::mutex mtx_;
  std::condition_variable cv_;
  bool reading_ = false; // a waiting thread reads the reply inbox now
  std::atomic<bool> down_{false};
  std::unordered_map<uint64_t, waiter*> waiting_;
};

} // namespace cafshm::fastpath
