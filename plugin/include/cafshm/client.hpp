// The process side: one registered process and its requests to an engine. Blocking calls (with
// the configured timeout; a dead or unreachable engine yields errc::engine_unreachable) and an
// async form for event-based actors. A client is move-only and unregisters when destroyed.
//
// When the engine goes away, a client connected to an endpoint (host:port) rides through: its
// views stay mapped and readable and writable; requests fail at once with
// errc::engine_unreachable; in the background it reconnects to that endpoint with back-off
// (20 ms doubling to 1 s) and takes its session back through the door of an engine that adopted
// the segments; block refs from before stay valid, and requests work again without any call of
// the application. An engine that started fresh instead answers errc::engine_restarted, which
// every request of this client then fails with, for good. Requests already on their way when
// the engine went down fail at once with errc::engine_unreachable as soon as the client sees it
// go (a few ms for a killed cafshmd); only the request(self, ...) escape hatch below ends by
// its timeout. on_engine_state() tells an actor about each change.
// A client connected with an engine's actor handle rides through the same way when the engine
// is in another process that told its address at registration (cafshmd does): it reconnects
// there. A handle of an engine without an address (one that nobody published through
// module::listening_on) gives a client that stays down once its engine is gone; an engine in
// this very process ends only with it.
// Reconnecting connects with a timeout: set "middleman.attach-utility-actors" (see connect).
// A client closed while the engine is down cannot unregister then: an adopting engine keeps its
// slot while this process runs, until another client of this process attaches to that engine
// (re-attaching after the restart, or connecting anew), which unregisters it. A process whose
// last client was closed that way keeps the slot (and what it held) until it ends.
//
// Calls to an engine in another process of this machine go through shared-memory inboxes when
// both sides have local.transport: shm (transport(), docs/fastpath.md), the others as CAF
// requests. A blocking call waits for its answer; from inside an actor's message handler it
// blocks that scheduler thread. On the only thread of the scheduler (max-threads=1) nothing
// else could run meanwhile, so there they fail at once with errc::would_deadlock; event-based
// actors use the async forms taking `self` (allocate(self, ...), map(self, ...), ...), which
// answer through .then(on_value, on_error) in the actor's own context (over the inboxes too:
// the answer is put into the actor's mailbox as the response its handler awaits).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/expected.hpp>
#include <caf/message.hpp>
#include <caf/message_id.hpp>
#include <caf/scheduled_actor.hpp>
#include <caf/scoped_actor.hpp>

#include "cafshm/async.hpp"
#include "cafshm/block_ref.hpp"
#include "cafshm/block_view.hpp"
#include "cafshm/engine.hpp"
#include "cafshm/engine_stats.hpp"
#include "cafshm/error.hpp"
#include "cafshm/process_id.hpp"
#include "cafshm/protocol.hpp"
#include "cafshm/settings.hpp"

namespace cafshm {

class client;

namespace detail {
class engine_link;
std::shared_ptr<engine_link> link_of(const client& c);
} // namespace detail
namespace fastpath {
class request_channel;
class actor_transport;
}
namespace detail {
/// The fast path of `c`, or none (BASP).
std::shared_ptr<fastpath::request_channel> channel_of(const client& c);
/// The actor messages of `c` over inboxes (its actor inbox, its proxies), or none.
std::shared_ptr<fastpath::actor_transport> actors_of(const client& c);
} // namespace detail

/// What an observer of client::on_engine_state() receives, each with the client's process_id:
/// the engine went away, the client re-attached, or its session is lost for good
/// (the engine restarted without adopting it).
using engine_down_atom = caf::atom_constant<caf::atom("shm_edown")>;
using engine_up_atom = caf::atom_constant<caf::atom("shm_eup")>;
using engine_gone_atom = caf::atom_constant<caf::atom("shm_egone")>;

struct client_options {
  uint64_t quota_bytes = 0; // 0 = what the engine's quota rules give this user; more is refused
  /// Limit of each request; 0 = client.request_timeout of the module's settings (5 s by
  /// default, also when the module is not loaded).
  std::chrono::milliseconds timeout{0};
  /// Process names are unique per engine: registering under a live process's name fails with
  /// errc::process_name_taken. With unique_name, the client registers as "name-2", "name-3",
  /// ... instead (the base cut so that the whole stays within 31 bytes); the chosen name is
  /// the one stats() lists for id().
  bool unique_name = false;
  /// How blocking requests travel to an engine in another local process; none: local.transport
  /// of the module's settings (shm when the module is not loaded). See transport().
  std::optional<local_transport> transport = std::nullopt;
};

class client {
public:
  /// Registers a process called `name` with `engine` (local or remote handle).
  /// errc::process_name_taken if a live process already has the name (see unique_name).
  static caf::expected<client> connect(caf::actor_system& sys, engine_actor engine,
                                       std::string name, client_options opts = {});

  /// Registers with the engine of this actor system's cafshm module: in engine role the
  /// module's own engine, in client role the engine at client.engine of its settings.
  static caf::expected<client> connect(caf::actor_system& sys, std::string name,
                                       client_options opts = {});

  /// Registers with an engine in another process (cafshmd) on this host, reached through CAF's
  /// io middleman, which `sys` must have loaded.
  /// With a timeout that can end while the middleman is still connecting (a few ms), set
  /// "middleman.attach-utility-actors" to true in `sys`'s config: CAF 0.17 keeps a reference
  /// to the middleman's actor in the unfinished connection, and with that actor on a thread of
  /// its own (the default) ~actor_system then waits for that thread forever.
  static caf::expected<client> connect(caf::actor_system& sys, const endpoint& engine,
                                       std::string name, client_options opts = {});

  client(client&& other) noexcept;
  client& operator=(client&& other) noexcept;
  ~client();

  /// Unregisters now: the engine reclaims every block, grant and name of this process. While
  /// the engine is down: fails with errc::engine_unreachable; the next client of this process
  /// that attaches to the engine that adopted the segments unregisters the slot then (see the
  /// top of this file).
  caf::expected<void> close();

  /// From now on `observer` receives (engine_down_atom, id()), (engine_up_atom, id()) and
  /// (engine_gone_atom, id()) when the engine goes away, when this client re-attached to the
  /// engine that adopted its segments, and when its session is lost for good.
  void on_engine_state(caf::actor observer);

  /// Whether the engine is reachable now (false while it is down or after it restarted
  /// without this client's session).
  bool engine_up() const;

  const cafshm::session& session() const noexcept { return reg_.session; }
  /// This process as its engine knows it (what other processes share with, transfer to).
  process_id id() const noexcept { return reg_.session.process; }
  const registration& info() const noexcept { return reg_; }
  /// The engine this client is attached to now (another one after an adopting restart).
  engine_actor engine() const;
  std::chrono::milliseconds timeout() const noexcept { return timeout_; }
  /// How blocking requests travel: shm (the engine's request inbox, for a client of an engine
  /// in another process on this machine when both have local.transport: shm and the client
  /// registered through the engine's door) or basp (CAF requests, as for an engine in this
  /// process or on another machine, or when this process may not open the engine's inbox).
  /// publish(), find_actor() and a transmit() to a deliver_to actor (they carry actor handles)
  /// and close() (unregistering removes the reply inbox) always use CAF requests, also in
  /// their async forms (docs/fastpath.md); the other async forms take the same path as the
  /// blocking calls.
  local_transport transport() const noexcept;
  caf::actor_system& system() const noexcept { return *sys_; }

  caf::expected<block_ref> allocate(uint64_t size);
  caf::expected<void> free(const block_ref& ref);
  caf::expected<void> write(const block_ref& ref, uint64_t offset, std::span<const char> bytes);
  caf::expected<std::vector<char>> read(const block_ref& ref, uint64_t offset, uint64_t length);
  caf::expected<void> copy(const block_ref& src, const block_ref& dst,
                           std::vector<copy_range> ranges);
  caf::expected<void> share(const block_ref& ref, process_id process, access_mode mode);
  caf::expected<void> revoke(const block_ref& ref, process_id process);
  /// Makes `process` the block's owner; answers the ref the new owner uses.
  caf::expected<block_ref> transfer(const block_ref& ref, process_id process);
  /// Gives the block to the engine, which then holds it for nobody in particular (a named block
  /// that outlives this process, as `cafshm put` makes): transfer(ref, process_id::engine).
  /// Answers the engine-held ref.
  caf::expected<block_ref> give_to_engine(const block_ref& ref);
  /// Closes `view` (unmapping it) and transfers its block, in one request. The view is closed
  /// also when the transfer fails.
  caf::expected<block_ref> transfer(block_view&& view, process_id process);
  /// Closes `view` and frees its block, in one request (the view is closed in any case).
  caf::expected<void> free(block_view&& view);
  caf::expected<void> name(const block_ref& ref, const std::string& name);
  caf::expected<block_ref> lookup(const std::string& name);
  caf::expected<void> remove(const std::string& name);
  /// The live process registered under `name` (errc::unknown_process if there is none).
  caf::expected<process_id> find_process(const std::string& name);
  caf::expected<engine_stats> stats();

  /// Publishes `actor` at the engine as `name`, for processes of this engine to find with
  /// find_actor(). The entry ends with the actor, with this process, or with unpublish().
  caf::expected<void> publish(const caf::actor& actor, const std::string& name);
  caf::expected<void> unpublish(const std::string& name);
  /// The actor published as `name` and its process; errc::name_not_found if there is
  /// none, errc::actor_gone if it or its process has ended. With the fast path (transport()
  /// shm), an actor of another local process with an actor inbox comes as a proxy whose
  /// messages travel through that inbox instead of BASP (docs/fastpath.md, "Actor messages");
  /// such proxies end with this client (close()).
  caf::expected<published_actor> find_actor(const std::string& name);

  /// Sends a block this process may read to another engine ("host:port" or a configured peer
  /// name). Answers once the destination verified and delivered the copy. Transfers of large
  /// blocks take a while: `limit` bounds the whole transfer, not one message.
  caf::expected<transmit_receipt> transmit(const block_ref& ref, const std::string& peer,
                                           transmit_target target = {},
                                           std::chrono::milliseconds limit = std::chrono::minutes(10));
  /// Links this process's engine to the engine at host:port; answers its engine id.
  caf::expected<uint64_t> link(const std::string& host, uint16_t port);
  /// Lets processes on linked engines read the block (through their engines).
  caf::expected<void> export_block(const block_ref& ref);

  /// Asks the engine for access and maps the block's pages.
  caf::expected<block_view> map(const block_ref& ref, access_mode mode);
  /// Allocates a block and maps it for writing, in one request; the view's ref() is the block.
  caf::expected<block_view> allocate_and_map(uint64_t size);
  /// Maps every block of `refs` with the same access, in order, in one request per
  /// max_map_many blocks (fewer where the reply inbox is small). All or none: on an error, the
  /// views already opened are closed again.
  caf::expected<std::vector<block_view>> map(std::span<const block_ref> refs, access_mode mode);

  /// Unmaps `view` and waits until the engine counted it closed (a view's destructor only
  /// tells the engine asynchronously). While the engine is down: unmaps, fails with
  /// errc::engine_unreachable, and tells the engine once re-attached.
  caf::expected<void> unmap(block_view&& view);

  // -- async forms for event-based actors ------------------------------------------------------
  async_result<block_ref> allocate(caf::event_based_actor* self, uint64_t size);
  async_result<done> free(caf::event_based_actor* self, const block_ref& ref);
  async_result<done> share(caf::event_based_actor* self, const block_ref& ref,
                           process_id process, access_mode mode);
  async_result<block_ref> transfer(caf::event_based_actor* self, const block_ref& ref,
                                   process_id process);
  async_result<process_id> find_process(caf::event_based_actor* self, const std::string& name);
  async_result<done> publish(caf::event_based_actor* self, const caf::actor& actor,
                             const std::string& name);
  async_result<published_actor> find_actor(caf::event_based_actor* self,
                                           const std::string& name);
  /// Asks the engine for access and maps the block's pages.
  async_result<block_view> map(caf::event_based_actor* self, const block_ref& ref,
                               access_mode mode);
  /// Unmaps `view` now; answers once the engine counted it closed. While the engine is down:
  /// fails with errc::engine_unreachable and tells the engine once re-attached (as the
  /// blocking form; the same for transfer and free of a view).
  async_result<done> unmap(caf::event_based_actor* self, block_view&& view);
  /// The compound requests, as their blocking forms above.
  async_result<block_view> allocate_and_map(caf::event_based_actor* self, uint64_t size);
  async_result<block_ref> transfer(caf::event_based_actor* self, block_view&& view,
                                   process_id process);
  async_result<done> free(caf::event_based_actor* self, block_view&& view);
  async_result<std::vector<block_view>> map(caf::event_based_actor* self,
                                            std::vector<block_ref> refs, access_mode mode);

  /// Any other request: `c.request(self, allocate_atom::value, size)` sends
  /// (atom, session, args...) to the engine with the client's timeout and returns the response
  /// handle, e.g. `.then([](block_ref r) {...}, [](caf::error& e) {...})`. From an event-based
  /// actor on the fast path it takes the engine's inbox like the calls above (the kinds the
  /// blocking calls send there; any other, or one too large for the inbox, goes over BASP in
  /// its order with the actor's requests around it); then an engine that dies before answering
  /// fails it at once with errc::engine_unreachable. Without the fast path such a request ends
  /// only by the timeout.
  template <class Self, class Atom, class... Ts>
  auto request(Self* self, Atom atom, Ts&&... xs) const {
    using handle = decltype(self->request(engine(), timeout_, atom, reg_.session,
                                          std::forward<Ts>(xs)...));
    if constexpr (std::is_base_of_v<caf::scheduled_actor, Self>)
      if (auto id = send_through_inbox(self, caf::make_message(atom, reg_.session, xs...)))
        return handle{*id, self};
    return self->request(engine(), timeout_, atom, reg_.session, std::forward<Ts>(xs)...);
  }

private:
  friend std::shared_ptr<detail::engine_link> detail::link_of(const client& c);
  friend std::shared_ptr<fastpath::request_channel> detail::channel_of(const client& c);
  friend std::shared_ptr<fastpath::actor_transport> detail::actors_of(const client& c);

  /// What to do with an answer that no actor will see (its requester ended, or it came after
  /// the deadline): give back what it carried.
  using reply_drop = std::function<void(caf::message& answer)>;

  client(caf::actor_system& sys, std::shared_ptr<detail::engine_link> link, caf::actor keeper,
         registration reg, std::chrono::milliseconds timeout);

  /// Registers with `engine`; with an `address`, the client reconnects there when the engine
  /// goes away.
  static caf::expected<client> connect_at(caf::actor_system& sys, engine_actor engine,
                                          std::optional<endpoint> address, std::string name,
                                          client_options opts);

  template <class R, class... Ts>
  caf::expected<R> call(Ts&&... xs);
  /// call() over BASP even when the fast path is there.
  template <class R, class... Ts>
  caf::expected<R> call_basp(Ts&&... xs);
  template <class R, class... Ts>
  caf::expected<R> call_within(std::chrono::milliseconds limit, Ts&&... xs);
  template <class... Ts>
  caf::expected<void> call_done(Ts&&... xs);
  template <class R, class... Ts>
  async_result<R> ask(caf::event_based_actor* self, reply_drop on_drop, Ts... xs) const;
  template <class... Ts>
  async_result<done> ask_done(caf::event_based_actor* self, Ts... xs) const;
  /// Sends `request` (atom, session, ...) from `self` through the engine's request inbox when
  /// the fast path takes it; the answer arrives as the response with the returned id, with the
  /// client's timeout. None: send it over BASP.
  std::optional<caf::message_id> send_through_inbox(caf::scheduled_actor* self,
                                                    const caf::message& request) const;
  /// Opens a view per lease of the map_many answer for `refs`, appending them to `into`. On an
  /// error, the leases not opened are counted closed at the engine (the views appended before
  /// close with `into`).
  static caf::expected<void> open_views(std::vector<block_view>& into,
                                        std::span<const block_ref> refs,
                                        std::vector<view_lease>& leases,
                                        const std::shared_ptr<detail::engine_link>& link,
                                        const cafshm::session& s);
  /// Closes `view` (its pages unmapped here) for a request that counts it closed at the
  /// engine: its ref; errc::invalid_argument for a view that is not open; while the engine is
  /// down its error, the close being told to the engine once re-attached.
  caf::expected<block_ref> close_for_request(block_view&& view);
  /// How many blocks one map_many request of this client maps: max_map_many, or fewer where
  /// their answer could exceed the reply inbox's largest record.
  size_t blocks_per_map_request() const;
  /// The map_many requests of a map of `count` blocks: (first block, how many) each.
  std::vector<std::pair<size_t, size_t>> map_parts(size_t count) const;

  caf::actor_system* sys_ = nullptr;
  std::shared_ptr<detail::engine_link> link_; // the engine now, shared with keeper_ and views
  caf::actor keeper_; // registered the process; the engine monitors it, it monitors the engine
                      // and re-attaches after an adopting restart
  registration reg_;
  std::chrono::milliseconds timeout_{5000};
  std::shared_ptr<fastpath::request_channel> channel_; // the fast path, or none (BASP)
  std::shared_ptr<fastpath::actor_transport> actors_;  // actor messages over inboxes, or none
};

/// Maps CAF's own request failures (timeout, broken link) to errc::engine_unreachable.
caf::error engine_error(caf::error err);

} // namespace cafshm
