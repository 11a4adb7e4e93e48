// Reads a process's actor inbox (actor_record.hpp) and acts on each record: a message goes into
// the mailbox of the local actor it names, with its sender restored as a proxy of the sending
// process (so answers and replies go back through that process's inbox); watch, down and
// process_gone records attach an end-of-actor notice, kill a proxy, kill every proxy of a
// process. One reader per inbox: the transport's own thread (run()), or whoever calls
// poll_once() instead (e.g. a scheduler worker that polls inboxes), never both.
//
// Untrusted input: every record is decoded through record_deserializer (bounded by its bytes);
// one that is not a record of a known kind or does not decode is counted (malformed) and
// dropped, one that names no actor of this process is counted (unknown_receiver) and dropped —
// a request is answered with sec::request_receiver_down, as CAF does — and one carrying a
// handle of a node without a route is counted (refused) and dropped, a request answered with
// sec::no_route_to_receiving_node. An answer to a request that was already failed because its
// proxy was killed (pending_requests.hpp) is counted (late_answers) and dropped.
#pragma once

#include <chrono>
#include <cstddef>
#include <limits>

#include <caf/fwd.hpp>

#include "fastpath/idle_strategy.hpp"
#include "fastpath/inbox_consumer.hpp"

namespace cafshm::fastpath {

class actor_transport;

class actor_inbox_reader {
public:
  actor_inbox_reader(actor_transport& transport, inbox_consumer& in);

  /// Acts on up to `max` records that are there now, without waiting; returns how many.
  /// `context`: the execution unit the caller runs on (a scheduler worker), or null.
  size_t poll_once(caf::execution_unit* context = nullptr,
                   size_t max = std::numeric_limits<size_t>::max());

  /// Like poll_once, but waits (as `idle` says) until a record came or `timeout` passed.
  size_t run(const idle_strategy& idle, std::chrono::nanoseconds timeout,
             caf::execution_unit* context = nullptr);

  /// Makes a run() in progress return soon (from any thread).
  void interrupt() noexcept;

private:
  void take(const inbox_record& r, caf::execution_unit* context);
  void take_message(const inbox_record& r, caf::execution_unit* context);
  void take_watch(const inbox_record& r);
  void take_down(const inbox_record& r, caf::execution_unit* context);

  actor_transport& transport_;
  inbox_consumer& in_;
};

} // namespace cafshm::fastpath
