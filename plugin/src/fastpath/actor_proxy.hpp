// A handle of an actor in another local process whose messages travel through that process's
// actor inbox (peer_route.hpp) instead of BASP: a caf::actor_proxy, so `send`, `request`,
// `monitor`, `link` and `anon_send` work on it as on a BASP proxy. Made only by the
// actor_transport's proxy registry (actor_transport.hpp), one per (node, actor id).
//
// Its end comes from outside, as for CAF's forwarding proxy: kill_proxy() with the actor's exit
// reason (a down record from the actor's process) or remote_link_unreachable (the engine
// reclaimed that process, or this process's transport ends). Monitors and links of local actors
// then get their down_msg / exit_msg with that reason, and every request of an actor of this
// process sent through the proxy and not answered yet is answered with
// sec::request_receiver_down (pending_requests.hpp). A message to a killed proxy is dropped, a
// request answered with the reason; a message whose record cannot be written (the inbox stayed
// full for peer_route::send_wait) is dropped and counted, a request answered with the error.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>

#include <caf/actor_proxy.hpp>
#include <caf/mailbox_element.hpp>

#include "fastpath/peer_route.hpp"
#include "fastpath/pending_requests.hpp"

namespace cafshm::fastpath {

/// What the proxies of one transport count (read by tests and statistics).
struct actor_path_counters {
  std::atomic<uint64_t> sent{0};        // message records written by this process's proxies
  std::atomic<uint64_t> send_failed{0}; // messages a proxy could not write
  std::atomic<uint64_t> delivered{0};   // message records delivered to an actor of this process
  std::atomic<uint64_t> malformed{0};   // records that are no actor record of a known kind
  std::atomic<uint64_t> unknown_receiver{0}; // message records for no actor of this process
  std::atomic<uint64_t> refused{0};     // records with a handle of a node without a route
  std::atomic<uint64_t> proxies_killed{0};
  std::atomic<uint64_t> requests_failed{0}; // requests answered with request_receiver_down
                                            // because their proxy was killed
  std::atomic<uint64_t> late_answers{0};    // answers to such requests, dropped
};

class inbox_actor_proxy final : public caf::actor_proxy {
public:
  inbox_actor_proxy(caf::actor_config& cfg, std::shared_ptr<peer_route> route,
                    std::shared_ptr<actor_path_counters> counters,
                    std::shared_ptr<pending_requests> pending);
  ~inbox_actor_proxy() override;

  void enqueue(caf::mailbox_element_ptr what, caf::execution_unit* context) override;
  bool add_backlink(caf::abstract_actor* x) override;
  bool remove_backlink(caf::abstract_actor* x) override;
  void kill_proxy(caf::execution_unit* context, caf::error reason) override;

private:
  /// Writes one message record; false (counted) if it could not be written: `why` says why.
  bool forward(const caf::strong_actor_ptr& sender, caf::message_id mid,
               const std::vector<caf::strong_actor_ptr>& stages, const caf::message& content,
               caf::error& why);
  /// Writes a link or unlink record from a scheduler thread (see add_backlink).
  void send_later(caf::message content);

  std::shared_ptr<actor_path_counters> counters_;
  std::shared_ptr<pending_requests> pending_; // shared with the transport's other proxies
  std::mutex route_mtx_;
  std::shared_ptr<peer_route> route_; // null once killed
  caf::error killed_for_;             // the reason, once killed
};

} // namespace cafshm::fastpath
