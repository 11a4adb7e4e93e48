// The engine's end of the local fast path (docs/fastpath.md): the engine's request inbox
// ("<engine name>.inbox-0"), a thread that reads it and hands each request to the engine actor as
// an ordinary CAF request, and the answers written into the requesting process's reply inbox.
//
// Every record is untrusted. The relay hands on only requests of the kinds a client sends on the
// fast path (allocate, free, read, write, copy, share, revoke, transfer, name, lookup, remove,
// map, unmap, process, stats with a session, link, unpublish), and only when the
// session in the request claims the slot the record claims as its sender (where the answer
// goes). Records are decoded with fastpath::record_deserializer: a record of n bytes makes the
// relay allocate O(n), whatever lengths it claims. The engine then checks
// the session, rights, generations and bounds as for a request over BASP; the relay proves
// nothing about who sent a record. Everything else is counted (refused) and dropped. An answer
// never blocks the engine: a reply inbox that is missing, of another holder, or full loses the
// answer (counted); the client's request then times out.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include <caf/actor.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "cafshm/settings.hpp"
#include "fastpath/idle_strategy.hpp"
#include "fastpath/inbox.hpp"
#include "fastpath/inbox_writer.hpp"

namespace cafshm {

class request_relay {
public:
  struct counters {
    std::atomic<uint64_t> requests{0};     // handed to the engine
    std::atomic<uint64_t> refused{0};      // records dropped unread by the engine
    std::atomic<uint64_t> replies_lost{0}; // answers that found no reply inbox to go to
    std::atomic<uint64_t> replies_too_large{0}; // answers sent as the "too large" mark
  };

  /// Creates the request inbox of engine `config.engine.name` (mode and group as its segments;
  /// an inbox a dead engine of the name left is replaced). Nothing runs until start().
  static caf::expected<std::shared_ptr<request_relay>> create(caf::actor_system& sys,
                                                              const settings& config);

  request_relay(const request_relay&) = delete;
  request_relay& operator=(const request_relay&) = delete;
  ~request_relay(); // stop(); the inbox object goes with it

  /// Starts the reading thread, which hands requests to `engine`.
  void start(caf::actor engine);
  /// Stops the thread and answers nothing any more. Idempotent.
  void stop();

  const std::string& inbox_name() const noexcept { return in_.name(); }
  const counters& stats() const noexcept { return counters_; }
  const settings& config() const noexcept { return config_; }

private:
  request_relay(caf::actor_system& sys, const settings& config, fastpath::inbox in);

  struct waiting_reply {
    uint32_t slot = 0;
    uint64_t request_id = 0;
    uint64_t reply_instance = 0;
  };

  void run();
  void take(const fastpath::inbox_record& r);
  void answer(caf::mailbox_element_ptr reply);
  void write_reply(const waiting_reply& to, std::span<const std::byte> payload);

  // -- constant after construction
  caf::actor_system& sys_;
  settings config_;
  fastpath::inbox in_;
  caf::actor engine_;     // set by start(), before the thread runs; reset by stop()
  caf::actor companion_;  // the sender of every relayed request: its mailbox is answer()
  counters counters_;
  // -- answers (the engine's thread, through the companion) and requests (the relay thread)
  std::mutex mtx_;
  uint64_t next_id_ = 1;                                 // CAF request ids of relayed requests
  std::unordered_map<uint64_t, waiting_reply> waiting_;  // by CAF request id
  std::unordered_map<uint32_t, fastpath::inbox_writer> replies_; // reply inboxes, by slot
  // -- the thread
  caf::execution_unit* unit_ = nullptr; // the thread's own (run())
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

} // namespace cafshm
