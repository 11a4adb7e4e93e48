// A process's actor messages over the local fast path (docs/fastpath.md, "Actor messages"):
// its own actor inbox ("<engine>.actors-<slot>", created here, read by one actor_inbox_reader),
// the routes to other local processes' actor inboxes (peer_route.hpp), and the proxy registry
// that makes an inbox_actor_proxy for an actor of such a process (actor_proxy.hpp).
//
// A node (CAF's node id: pid and host) gets a route only when the actor inbox of the slot it is
// said to have (an object in this host's /dev/shm) is owned by that pid: the slot comes from the engine (find_actor's
// answer names the publishing process) or, for the sender of a record, from the record's sender
// slot; the owner pid is what the inbox's creator wrote. A handle of a node without a route (a
// remote machine, a process without an actor inbox) cannot travel through an inbox: a record
// carrying one is refused (counted).
//
// Lifetime: made by the client at registration (local.transport shm), shared by the client and
// the reading thread's owner; its end stops the reading thread, kills every proxy it made
// (remote_link_unreachable) and removes the actor inbox. Proxies keep only their route and the
// counters. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>

#include <caf/actor.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/node_id.hpp>
#include <caf/proxy_registry.hpp>

#include "cafshm/process_id.hpp"
#include "fastpath/actor_proxy.hpp"
#include "fastpath/idle_strategy.hpp"
#include "fastpath/inbox.hpp"
#include "fastpath/inbox_poll_source.hpp"
#include "fastpath/peer_route.hpp"
#include "fastpath/pending_requests.hpp"

namespace cafshm::fastpath {

class actor_inbox_reader;

struct actor_transport_options {
  inbox_options inbox;        // the actor inbox (capacity, mode, group)
  idle_strategy idle = idle_strategy::park();
  /// Read the actor inbox on a thread of the transport, or, when the actor system runs a
  /// polling scheduler (poll_registry.hpp), by its workers. Without, whoever drives
  /// reader().poll_once() must.
  bool own_thread = true;
};

class actor_transport final : public caf::proxy_registry::backend,
                              public std::enable_shared_from_this<actor_transport>,
                              private inbox_poll_source {
public:
  /// Creates the actor inbox of process `slot` of engine `engine_name` and, with own_thread,
  /// starts reading it.
  static caf::expected<std::shared_ptr<actor_transport>>
  create(caf::actor_system& sys, const std::string& engine_name, uint32_t slot,
         actor_transport_options options = {});

  actor_transport(const actor_transport&) = delete;
  actor_transport& operator=(const actor_transport&) = delete;
  ~actor_transport() override;

  /// A handle for `actor`, which process `process` of this engine published: a proxy whose
  /// messages go through that process's actor inbox when it has one on this host owned by the
  /// actor's node, else `actor` unchanged (BASP).
  caf::actor route(const caf::actor& actor, process_id process);

  /// The route to `node`: the known one, or one through the actor inbox of `claimed_slot` if
  /// its owner is that node's process on this host; null if neither.
  std::shared_ptr<peer_route> route_of(const caf::node_id& node, uint32_t claimed_slot);

  /// The engine reclaimed process `slot` (pid `pid`): its routes end and the proxies of its
  /// actors are killed with remote_link_unreachable.
  void process_gone(uint32_t slot, int32_t pid);

  /// `node` holds a proxy of this process's actor `actor`: tell it through its route when the
  /// actor ends (now, if it is gone already).
  void watch_for(const caf::node_id& node, caf::actor_id actor, uint32_t claimed_slot);

  caf::proxy_registry& proxies() noexcept { return proxies_; }
  actor_path_counters& counters() noexcept { return *counters_; }
  /// Requests of this process's actors sent through its proxies and not answered yet.
  pending_requests& pending() noexcept { return *pending_; }
  actor_inbox_reader& reader() noexcept { return *reader_; }
  const inbox& own_inbox() const noexcept { return inbox_; }
  caf::actor_system& system() noexcept { return sys_; }
  uint32_t slot() const noexcept { return slot_; }
  /// Whether the workers of a polling scheduler read the actor inbox (no thread of its own).
  bool polled() const noexcept { return polled_; }

  // -- caf::proxy_registry::backend
  caf::strong_actor_ptr make_proxy(caf::node_id node, caf::actor_id aid) override;
  void set_last_hop(caf::node_id*) override;

  /// Every lookup of handles in proxies() happens in one: it names the sender slot of the record
  /// being decoded on this thread (make_proxy routes a node not known yet through it), and
  /// holds the transport's decoding lock. A handle make_proxy refused leaves an empty entry in
  /// the registry (caf::proxy_registry keeps what the backend returned); the scope erases those
  /// entries as it ends, under the same lock, so that no other lookup has filled them meanwhile
  /// and records naming ever new nodes cannot grow the registry.
  class decoding_scope {
  public:
    decoding_scope(actor_transport& transport, uint32_t slot);
    ~decoding_scope();
    decoding_scope(const decoding_scope&) = delete;
    decoding_scope& operator=(const decoding_scope&) = delete;
    /// Whether make_proxy refused a handle on this thread since the scope began.
    static bool refused();

  private:
    actor_transport& transport_;
    std::lock_guard<std::mutex> lock_;
  };

private:
  actor_transport(caf::actor_system& sys, std::string engine_name, uint32_t slot, inbox in,
                  actor_transport_options options);

  void read_loop();

  // -- inbox_poll_source (while polled_)
  caf::actor_system& system() const noexcept override { return sys_; }
  poll_outcome poll(caf::execution_unit* unit, size_t max) override;
  bool ready() const noexcept override;
  wake_words wake() noexcept override;
  std::chrono::nanoseconds recheck_after() const noexcept override;

  // -- constant after construction
  caf::actor_system& sys_;
  std::string engine_name_;
  uint32_t slot_;
  actor_transport_options options_;
  inbox inbox_;
  std::shared_ptr<actor_path_counters> counters_;
  std::shared_ptr<pending_requests> pending_;
  // -- routes, by node
  std::mutex routes_mtx_;
  std::unordered_map<caf::node_id, std::shared_ptr<peer_route>> routes_;
  // -- this process's actors watched for other nodes (no second functor for the same pair)
  std::mutex watched_mtx_;
  std::mutex decoding_mtx_; // held by a decoding_scope
  std::set<std::pair<caf::actor_id, caf::node_id>> watched_;
  // -- declared after what make_proxy uses; its destructor kills the proxies
  caf::proxy_registry proxies_;
  std::unique_ptr<actor_inbox_reader> reader_;
  std::atomic<bool> stop_{false};
  bool polled_ = false;               // set once in create()
  std::atomic<bool> reading_{false};  // a worker holds the reading role
  std::thread thread_;
};

} // namespace cafshm::fastpath
