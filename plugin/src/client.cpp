#include "cafshm/client.hpp"

#include <unistd.h>

#include <algorithm>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include <caf/actor_cast.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/node_id.hpp>
#include <set>
#include <caf/sec.hpp>
#include <caf/send.hpp>

#include "admin_layout.hpp"
#include "door_protocol.hpp"
#include "engine_link.hpp"
#include "fastpath/actor_transport.hpp"
#include "fastpath/answer_bound.hpp"
#include "fastpath/request_channel.hpp"
#include "fastpath/request_record.hpp"
#include "cafshm/module.hpp"
#include "scheduler_thread.hpp"

namespace cafshm {

namespace {

using reconnect_atom = caf::atom_constant<caf::atom("shm_recon")>;
using watch_atom = caf::atom_constant<caf::atom("shm_watch")>;

constexpr std::chrono::milliseconds first_backoff{20};
constexpr std::chrono::milliseconds max_backoff{1000};

// What the keeper knows: filled by client::connect before it sends watch_atom, then only the
// keeper's.
struct keeper_context {
  engine_actor engine; // the engine registered with
  std::optional<endpoint> address; // where to reconnect; none: no reconnection
  std::string door_path; // of the engine attached to ("" for an engine in this process)
  std::chrono::milliseconds timeout{0};
  std::shared_ptr<detail::engine_link> link;
  registration reg;
  std::chrono::milliseconds backoff{first_backoff};
  bool reconnecting = false;
};

using keeper_pointer = caf::event_based_actor*;

// Sessions of this process's clients closed while their engine was down, by engine id. An
// engine that adopts the segments keeps a slot as long as its process lives; the next keeper
// of this process that (re-)attaches to that engine takes each such session back and
// unregisters it (see bury).
class closed_while_down {
public:
  static closed_while_down& instance() {
    static closed_while_down x;
    return x;
  }

  void add(uint64_t engine_id, const session& s) {
    std::lock_guard<std::mutex> guard{mtx_};
    sessions_.emplace(engine_id, s);
  }

  std::vector<session> take(uint64_t engine_id) {
    std::lock_guard<std::mutex> guard{mtx_};
    std::vector<session> result;
    auto range = sessions_.equal_range(engine_id);
    for (auto i = range.first; i != range.second; ++i)
      result.push_back(i->second);
    sessions_.erase(range.first, range.second);
    return result;
  }

private:
  std::mutex mtx_;
  std::multimap<uint64_t, session> sessions_;
};

// Takes back and unregisters the sessions this process closed while the engine was down: a
// ticket of the engine's door for each (the engine checks that the slot is this process's),
// re-attach, unregister. One that is gone already (reclaimed, or an engine that started fresh)
// is done with; one the engine cannot take now waits for the next attach.
void bury(keeper_pointer self, const std::shared_ptr<keeper_context>& ctx) {
  if (ctx->door_path.empty())
    return;
  for (auto& s : closed_while_down::instance().take(ctx->reg.engine_id)) {
    auto ticket = door::ask(ctx->door_path, ctx->timeout);
    if (!ticket) {
      closed_while_down::instance().add(ctx->reg.engine_id, s);
      continue;
    }
    auto engine = ctx->link->engine();
    self->request(engine, ctx->timeout, reattach_atom::value, s, ctx->reg.engine_id, *ticket,
                  protocol_version)
      .then(
        [self, ctx, engine, s](registration&) {
          self->request(engine, ctx->timeout, unregister_atom::value, s)
            .then([](done_atom) {},
                  [ctx, s](caf::error& e) {
                    if (code_of(engine_error(e)) == errc::engine_unreachable)
                      closed_while_down::instance().add(ctx->reg.engine_id, s);
                  });
        },
        [ctx, s](caf::error& e) {
          if (code_of(engine_error(e)) == errc::engine_unreachable)
            closed_while_down::instance().add(ctx->reg.engine_id, s);
        });
  }
}

void reconnect(keeper_pointer self, std::shared_ptr<keeper_context> ctx);

void retry_later(keeper_pointer self, const std::shared_ptr<keeper_context>& ctx) {
  self->delayed_send(self, ctx->backoff, reconnect_atom::value);
  ctx->backoff = std::min(ctx->backoff * 2, max_backoff);
}

// One attempt: connect to the endpoint, ask the engine for its door, get a ticket there, and
// take the session back. A refusal that says the session is gone ends the attempts.
void reconnect(keeper_pointer self, std::shared_ptr<keeper_context> ctx) {
  auto& sys = self->system();
  if (!sys.has_middleman())
    return;
  self->request(sys.middleman().actor_handle(), ctx->timeout, caf::connect_atom::value,
                ctx->address->host, ctx->address->port)
    .then(
      [self, ctx](caf::node_id&, caf::strong_actor_ptr& ptr, std::set<std::string>& ifs) {
        if (!ptr || !self->system().assignable<engine_actor>(ifs))
          return retry_later(self, ctx);
        auto engine = caf::actor_cast<engine_actor>(ptr);
        self->request(engine, ctx->timeout, door_atom::value)
          .then(
            [self, ctx, engine](std::string& path) {
              // Blocks this scheduler thread on a local socket, for microseconds (the door
              // answers at once) and at most the timeout. The keeper is not detached: the
              // engine holds a reference to it, and ~actor_system would wait for a detached
              // actor's thread until that reference is gone.
              auto ticket = door::ask(path, ctx->timeout);
              if (!ticket)
                return retry_later(self, ctx);
              self->request(engine, ctx->timeout, reattach_atom::value, ctx->reg.session,
                            ctx->reg.engine_id, *ticket, protocol_version)
                .then(
                  [self, ctx, engine, path](registration& r) {
                    ctx->reconnecting = false;
                    ctx->backoff = first_backoff;
                    ctx->door_path = path;
                    self->monitor(engine);
                    // An engine that restarted with local.transport: basp offers no inbox:
                    // the client's calls take BASP then.
                    ctx->link->came_up(engine, !r.inbox_engine.empty());
                    bury(self, ctx);
                  },
                  [self, ctx](caf::error& e) {
                    auto code = code_of(e);
                    if (code == errc::engine_restarted || code == errc::unknown_process) {
                      ctx->reconnecting = false;
                      if (code == errc::engine_restarted) // their slots are gone with it
                        closed_while_down::instance().take(ctx->reg.engine_id);
                      ctx->link->lost(std::move(e));
                      return;
                    }
                    retry_later(self, ctx);
                  });
            },
            [self, ctx](caf::error&) { retry_later(self, ctx); });
      },
      [self, ctx](caf::error&) { retry_later(self, ctx); });
}

// Lives as long as the registration: the engine monitors it, so its end (or its process's)
// reclaims everything the process held. It monitors the engine in turn: when the engine goes
// away it marks the link down and, for a client of an endpoint, reconnects in the background.
caf::behavior keeper(keeper_pointer self, std::shared_ptr<keeper_context> ctx) {
  self->set_down_handler([self, ctx](caf::down_msg& dm) {
    if (!ctx->link)
      return;
    ctx->link->went_down(dm.source);
    if (ctx->link->state() == detail::engine_link::status::down && ctx->address
        && !ctx->reconnecting) {
      ctx->reconnecting = true;
      ctx->backoff = first_backoff;
      retry_later(self, ctx);
    }
  });
  return {
    [self, ctx](register_atom, std::string& name, uint64_t quota, door_ticket ticket) {
      auto rp = self->make_response_promise();
      self->request(ctx->engine, ctx->timeout, register_atom::value, std::move(name), quota,
                    ticket, protocol_version)
        .then([rp](registration& r) mutable { rp.deliver(std::move(r)); },
              [rp](caf::error& e) mutable { rp.deliver(std::move(e)); });
      return rp;
    },
    [self, ctx](watch_atom) {
      self->monitor(ctx->engine);
      bury(self, ctx);
    },
    [self, ctx](reconnect_atom) {
      if (ctx->link && ctx->link->state() == detail::engine_link::status::down)
        reconnect(self, ctx);
    },
  };
}

// The request limit of `opts`, or the configured one when it is 0.
std::chrono::milliseconds timeout_of(caf::actor_system& sys, const client_options& opts) {
  if (opts.timeout.count() > 0)
    return opts.timeout;
  if (auto* m = module::of(sys))
    return m->config().client.request_timeout;
  return client_settings{}.request_timeout;
}

} // namespace

caf::error engine_error(caf::error err) {
  if (err.category() == caf::atom("system")) {
    auto code = static_cast<caf::sec>(err.code());
    if (code == caf::sec::request_timeout)
      return make_error(errc::engine_unreachable, "the engine did not answer in time");
    if (code == caf::sec::request_receiver_down || code == caf::sec::invalid_argument
        || code == caf::sec::no_route_to_receiving_node)
      return make_error(errc::engine_unreachable, "the engine is down");
  }
  return err;
}

namespace {

// The n-th candidate name of a client that asked for a unique one: name, name-2, name-3, ...
std::string candidate_name(const std::string& name, uint32_t n) {
  if (n == 1)
    return name;
  auto suffix = "-" + std::to_string(n);
  constexpr size_t max_bytes = sizeof(admin::process_entry::name) - 1;
  return name.substr(0, max_bytes > suffix.size() ? max_bytes - suffix.size() : 0) + suffix;
}

} // namespace

caf::expected<client> client::connect(caf::actor_system& sys, engine_actor engine,
                                      std::string name, client_options opts) {
  return connect_at(sys, std::move(engine), std::nullopt, std::move(name), opts);
}

caf::expected<client> client::connect_at(caf::actor_system& sys, engine_actor engine,
                                         std::optional<endpoint> address, std::string name,
                                         client_options opts) {
  if (!engine)
    return make_error(errc::engine_unreachable, "no engine to connect to");
  if (auto why = check_may_block(sys, "client::connect"))
    return why;
  opts.timeout = timeout_of(sys, opts);
  // A ticket from the engine's door for every attempt (a ticket is good for one): in process
  // memory for an engine of this actor system, else through its Unix-domain socket (whose path
  // the engine tells).
  caf::error door_failure;
  auto* local = module::of(sys);
  bool in_process = engine.node() == sys.node() && local != nullptr && local->engine()
                    && local->engine()->address() == engine.address();
  std::string path;
  if (!in_process) {
    caf::scoped_actor asker{sys, true};
    asker->request(engine, opts.timeout, door_atom::value)
      .receive([&](std::string& p) { path = std::move(p); },
               [&](caf::error& e) { door_failure = engine_error(std::move(e)); });
    if (door_failure)
      return door_failure;
  }
  auto fetch_ticket = [&]() -> caf::expected<door_ticket> {
    if (in_process)
      return local->local_ticket();
    auto t = door::ask(path, opts.timeout);
    if (t || code_of(t.error()) == errc::access_denied)
      return t;
    door_failure = t.error(); // e.g. another host: the engine may accept plain registration
    return door_ticket{};
  };
  auto ctx = std::make_shared<keeper_context>();
  ctx->engine = engine;
  ctx->address = std::move(address);
  ctx->timeout = opts.timeout;
  auto k = sys.spawn<caf::hidden>(keeper, ctx);
  caf::scoped_actor self{sys, true};
  caf::expected<registration> reg{caf::error{}};
  // Without unique_name one attempt; with it, until a free name (bounded by the process table,
  // which the engine caps at 65535 slots).
  bool vouched = false; // registered with a ticket of the engine's door: a local process
  for (uint32_t n = 1; n <= 65536; ++n) {
    auto ticket = fetch_ticket();
    if (!ticket) {
      reg = ticket.error();
      break;
    }
    vouched = ticket->valid();
    self->request(k, opts.timeout + opts.timeout, register_atom::value, candidate_name(name, n),
                  opts.quota_bytes, *ticket)
      .receive([&](registration& r) { reg = std::move(r); },
               [&](caf::error& e) { reg = engine_error(std::move(e)); });
    if (reg || !opts.unique_name || code_of(reg.error()) != errc::process_name_taken)
      break;
  }
  if (!reg) {
    self->send_exit(k, caf::exit_reason::user_shutdown);
    if (door_failure && code_of(reg.error()) == errc::access_denied)
      return make_error(errc::access_denied,
                        describe(reg.error()) + "; " + describe(door_failure));
    return reg.error();
  }
  ctx->reg = *reg;
  ctx->door_path = path;
  // A handle of an engine in another process without an address: where the engine says it
  // is published, if it says so. (An engine in this process ends only with it.)
  if (!ctx->address && !in_process && reg->listen_port != 0)
    ctx->address = endpoint{reg->listen_host, reg->listen_port};
  ctx->link = std::make_shared<detail::engine_link>(engine, reg->session.process);
  // The fast path: for an engine in another process of this machine that offers its inbox.
  std::shared_ptr<fastpath::request_channel> channel;
  auto transport = opts.transport ? *opts.transport
                   : local != nullptr ? local->config().local.transport
                                      : local_transport::shm;
  if (!in_process && vouched && transport == local_transport::shm && !reg->inbox_engine.empty()) {
    // A process that may register but not open the engine's inbox (e.g. another user admitted
    // by engine.allow_users, outside engine.group) talks to the engine over BASP instead;
    // transport() then says basp.
    if (auto opened = fastpath::request_channel::open(sys, *reg)) {
      channel = std::move(*opened);
      ctx->link->set_channel(channel);
    }
  }
  // Actor messages between local processes: this process's actor inbox, beside the reply inbox
  // and with its mode and group. Without it, handles of other processes stay BASP proxies.
  std::shared_ptr<fastpath::actor_transport> actors;
  if (channel) {
    fastpath::actor_transport_options ao;
    ao.inbox.capacity = local != nullptr ? local->config().local.actor_inbox_bytes
                                         : local_settings{}.actor_inbox_bytes;
    ao.inbox.permissions = reg->inbox_permissions;
    if (reg->inbox_group != ~0u)
      ao.inbox.group = static_cast<gid_t>(reg->inbox_group);
    if (auto made = fastpath::actor_transport::create(sys, reg->inbox_engine,
                                                      to_slot(reg->session.process), ao))
      actors = std::move(*made);
  }
  caf::anon_send(k, watch_atom::value); // after ctx is complete: the message orders the writes
  client result{sys, ctx->link, std::move(k), std::move(*reg), opts.timeout};
  result.channel_ = std::move(channel);
  result.actors_ = std::move(actors);
  return result;
}

caf::expected<client> client::connect(caf::actor_system& sys, std::string name,
                                      client_options opts) {
  auto* m = module::of(sys);
  if (m != nullptr && m->config().role == role::client)
    return connect(sys, m->config().client.engine, std::move(name), opts);
  auto engine = local_engine(sys);
  if (!engine)
    return engine.error();
  return connect(sys, std::move(*engine), std::move(name), opts);
}

caf::expected<client> client::connect(caf::actor_system& sys, const endpoint& engine,
                                      std::string name, client_options opts) {
  if (!sys.has_middleman())
    return make_error(errc::config_error, "connecting to a remote engine needs caf::io::middleman");
  if (auto why = check_may_block(sys, "client::connect"))
    return why;
  opts.timeout = timeout_of(sys, opts);
  // Through the middleman actor, so that an endpoint that accepts but never answers costs one
  // timeout (middleman::remote_actor would wait for its handshake without limit).
  engine_actor handle;
  caf::error why;
  caf::scoped_actor self{sys, true};
  self->request(sys.middleman().actor_handle(), opts.timeout, caf::connect_atom::value,
                engine.host, engine.port)
    .receive(
      [&](caf::node_id&, caf::strong_actor_ptr& ptr, std::set<std::string>& ifs) {
        if (!ptr)
          why = caf::make_error(caf::sec::no_actor_published_at_port, engine.port);
        else if (!sys.assignable<engine_actor>(ifs))
          why = caf::make_error(caf::sec::unexpected_actor_messaging_interface);
        else
          handle = caf::actor_cast<engine_actor>(ptr);
      },
      [&](caf::error& e) { why = std::move(e); });
  if (!handle)
    return make_error(errc::engine_unreachable,
                      "no engine at " + engine.host + ":" + std::to_string(engine.port) + " ("
                        + sys.render(why) + ")");
  return connect_at(sys, std::move(handle), engine, std::move(name), opts);
}

std::shared_ptr<detail::engine_link> detail::link_of(const client& c) {
  return c.link_;
}

std::shared_ptr<fastpath::request_channel> detail::channel_of(const client& c) {
  return c.channel_;
}

std::shared_ptr<fastpath::actor_transport> detail::actors_of(const client& c) {
  return c.actors_;
}

client::client(caf::actor_system& sys, std::shared_ptr<detail::engine_link> link,
               caf::actor keeper, registration reg, std::chrono::milliseconds timeout)
  : sys_(&sys), link_(std::move(link)), keeper_(std::move(keeper)), reg_(std::move(reg)),
    timeout_(timeout) {
}

client::client(client&& other) noexcept
  : sys_(std::exchange(other.sys_, nullptr)), link_(std::move(other.link_)),
    keeper_(std::move(other.keeper_)), reg_(std::move(other.reg_)), timeout_(other.timeout_),
    channel_(std::move(other.channel_)), actors_(std::move(other.actors_)) {
}

local_transport client::transport() const noexcept {
  return channel_ && channel_->usable() ? local_transport::shm : local_transport::basp;
}

engine_actor client::engine() const {
  return link_ ? link_->engine() : engine_actor{};
}

void client::on_engine_state(caf::actor observer) {
  if (link_)
    link_->add_observer(std::move(observer));
}

bool client::engine_up() const {
  return link_ && link_->state() == detail::engine_link::status::up;
}

client& client::operator=(client&& other) noexcept {
  if (this != &other) {
    close();
    sys_ = std::exchange(other.sys_, nullptr);
    link_ = std::move(other.link_);
    keeper_ = std::move(other.keeper_);
    reg_ = std::move(other.reg_);
    timeout_ = other.timeout_;
    channel_ = std::move(other.channel_);
    actors_ = std::move(other.actors_);
  }
  return *this;
}

client::~client() {
  close();
}

caf::expected<void> client::close() {
  if (sys_ == nullptr)
    return {};
  // The keeper ends here in every case: CAF keeps actors known to a remote node in its
  // registry, and one still running when the actor system goes away crashes its destructor.
  // The actor inbox goes first: its proxies end (remote_link_unreachable) and the engine then
  // finds nothing of this process to remove.
  actors_.reset();
  // Over BASP: unregistering removes the reply inbox before the engine answers.
  auto r = call_basp<done_atom>(unregister_atom::value, reg_.session);
  if (!r && link_->state() == detail::engine_link::status::down)
    closed_while_down::instance().add(reg_.engine_id, reg_.session);
  caf::anon_send_exit(keeper_, caf::exit_reason::user_shutdown);
  if (link_)
    link_->set_channel(nullptr);
  channel_.reset(); // removes the reply inbox (the engine did already if it reclaimed the slot)
  sys_ = nullptr;
  if (!r)
    return r.error();
  return {};
}

namespace {

// The engine's answer to a request of result R, as the fast path brings it.
template <class R>
caf::expected<R> unpack(caf::message& answer) {
  if constexpr (std::is_same_v<R, done_atom>) {
    if (answer.match_elements<caf::atom_value>()
        && answer.get_as<caf::atom_value>(0) == done_atom::value)
      return done_atom::value;
  } else {
    if (answer.match_elements<R>())
      return std::move(answer.get_mutable_as<R>(0));
  }
  if (answer.match_elements<caf::error>())
    return engine_error(std::move(answer.get_mutable_as<caf::error>(0)));
  return make_error(errc::engine_unreachable, "the engine answered with an unexpected message");
}

} // namespace

template <class R, class... Ts>
caf::expected<R> client::call(Ts&&... xs) {
  if (!channel_ || !channel_->usable())
    return call_within<R>(timeout_, std::forward<Ts>(xs)...);
  if (sys_ == nullptr)
    return make_error(errc::unknown_process, "client is closed");
  if (auto why = check_may_block(*sys_, "cafshm::client call"))
    return why;
  if (auto why = link_->unavailable()) // down: fail at once; gone: for good
    return why;
  auto request = caf::make_message(xs...);
  auto answer = channel_->call(request, std::chrono::steady_clock::now() + timeout_);
  if (!answer) {
    // Too big for a record, or the inbox of a re-attached engine could not be opened (nothing
    // was sent): BASP.
    if (code_of(answer.error()) == errc::request_too_large || !channel_->usable())
      return call_within<R>(timeout_, std::forward<Ts>(xs)...);
    return answer.error();
  }
  return unpack<R>(*answer);
}

template <class R, class... Ts>
caf::expected<R> client::call_basp(Ts&&... xs) {
  return call_within<R>(timeout_, std::forward<Ts>(xs)...);
}

template <class R, class... Ts>
caf::expected<R> client::call_within(std::chrono::milliseconds limit, Ts&&... xs) {
  if (sys_ == nullptr)
    return make_error(errc::unknown_process, "client is closed");
  if (auto why = check_may_block(*sys_, "cafshm::client call"))
    return why;
  if (auto why = link_->unavailable()) // down: fail at once; gone: for good
    return why;
  caf::scoped_actor self{*sys_, true};
  caf::expected<R> result{caf::error{}};
  auto engine = link_->engine();
  auto answer = self->request(engine, limit, std::forward<Ts>(xs)...);
  // Should the engine go down first, the link answers for it at once.
  auto ticket = link_->awaiting(self->address(), answer.id(), engine.address());
  if (!ticket)
    return ticket.error();
  answer.receive([&](R& r) { result = std::move(r); },
                 [&](caf::error& e) { result = engine_error(std::move(e)); });
  link_->answered(*ticket);
  return result;
}

template <class... Ts>
caf::expected<void> client::call_done(Ts&&... xs) {
  auto r = call<done_atom>(std::forward<Ts>(xs)...);
  if (!r)
    return r.error();
  return {};
}

caf::expected<block_ref> client::allocate(uint64_t size) {
  return call<block_ref>(allocate_atom::value, reg_.session, size);
}

caf::expected<void> client::free(const block_ref& ref) {
  return call_done(free_atom::value, reg_.session, ref);
}

caf::expected<void> client::write(const block_ref& ref, uint64_t offset,
                                  std::span<const char> bytes) {
  return call_done(write_atom::value, reg_.session, ref, offset,
                   std::vector<char>(bytes.begin(), bytes.end()));
}

caf::expected<std::vector<char>> client::read(const block_ref& ref, uint64_t offset,
                                              uint64_t length) {
  return call<std::vector<char>>(read_atom::value, reg_.session, ref, offset, length);
}

caf::expected<void> client::copy(const block_ref& src, const block_ref& dst,
                                 std::vector<copy_range> ranges) {
  return call_done(copy_atom::value, reg_.session, src, dst, std::move(ranges));
}

caf::expected<void> client::share(const block_ref& ref, process_id process, access_mode mode) {
  return call_done(share_atom::value, reg_.session, ref, process, mode);
}

caf::expected<void> client::revoke(const block_ref& ref, process_id process) {
  return call_done(revoke_atom::value, reg_.session, ref, process);
}

caf::expected<block_ref> client::transfer(const block_ref& ref, process_id process) {
  return call<block_ref>(transfer_atom::value, reg_.session, ref, process);
}

caf::expected<block_ref> client::give_to_engine(const block_ref& ref) {
  return transfer(ref, process_id::engine);
}

caf::expected<block_ref> client::transfer(block_view&& view, process_id process) {
  auto ref = close_for_request(std::move(view));
  if (!ref)
    return ref.error();
  return call<block_ref>(unmap_transfer_atom::value, reg_.session, *ref, process);
}

caf::expected<void> client::free(block_view&& view) {
  auto ref = close_for_request(std::move(view));
  if (!ref)
    return ref.error();
  return call_done(unmap_free_atom::value, reg_.session, *ref);
}

caf::expected<block_ref> client::close_for_request(block_view&& view) {
  block_view closing = std::move(view);
  if (!closing)
    return make_error(errc::invalid_argument, "the view is not open");
  auto ref = closing.release();
  if (auto why = link_->unavailable()) {
    link_->unmap(reg_.session, ref); // while down: reported once re-attached
    return why;
  }
  return ref;
}

caf::expected<void> client::unmap(block_view&& view) {
  auto ref = close_for_request(std::move(view));
  if (!ref)
    return ref.error();
  return call_done(unmap_atom::value, reg_.session, *ref);
}

caf::expected<void> client::name(const block_ref& ref, const std::string& name) {
  return call_done(name_atom::value, reg_.session, ref, name);
}

caf::expected<block_ref> client::lookup(const std::string& name) {
  return call<block_ref>(lookup_atom::value, reg_.session, name);
}

caf::expected<void> client::remove(const std::string& name) {
  return call_done(remove_atom::value, reg_.session, name);
}

caf::expected<process_id> client::find_process(const std::string& name) {
  return call<process_id>(process_atom::value, reg_.session, name);
}

caf::expected<void> client::publish(const caf::actor& actor, const std::string& name) {
  auto r = call_basp<done_atom>(publish_atom::value, reg_.session, name, actor);
  if (!r)
    return r.error();
  return {};
}

caf::expected<void> client::unpublish(const std::string& name) {
  return call_done(unpublish_atom::value, reg_.session, name);
}

// publish and find_actor carry an actor handle (the request, the answer): only BASP can, whose
// proxies make a handle of another process usable here.
// With the fast path, the handle of an actor of another local process is then replaced by a
// proxy through that process's actor inbox (when it has one).
caf::expected<published_actor> client::find_actor(const std::string& name) {
  auto found = call_basp<published_actor>(find_actor_atom::value, reg_.session, name);
  if (found && actors_)
    found->actor = actors_->route(found->actor, found->process);
  return found;
}

caf::expected<engine_stats> client::stats() {
  return call<engine_stats>(stats_atom::value, reg_.session);
}

namespace {

// A request that may run for minutes, answered by `engine` or ended when the engine goes
// down: CAF 0.17 never fails a request in flight to a process that died (only its timeout
// would end it), so an actor of its own monitors the engine while it waits.
template <class R, class... Ts>
caf::expected<R> watched_request(caf::actor_system& sys, const engine_actor& engine,
                                 std::chrono::milliseconds limit, Ts... xs) {
  auto answer = std::make_shared<std::promise<caf::expected<R>>>();
  auto result = answer->get_future();
  sys.spawn<caf::hidden>([=](caf::event_based_actor* self) {
    auto finish = [self, answer](caf::expected<R> x) {
      answer->set_value(std::move(x));
      self->quit();
    };
    self->set_down_handler([finish](caf::down_msg& dm) {
      finish(make_error(errc::engine_unreachable,
                        "the engine went down during the request ("
                          + caf::to_string(dm.reason) + ")"));
    });
    self->monitor(engine);
    self->request(engine, limit, xs...)
      .then([finish](R& r) { finish(std::move(r)); },
            [finish](caf::error& e) { finish(engine_error(std::move(e))); });
  });
  return result.get();
}

} // namespace

caf::expected<transmit_receipt> client::transmit(const block_ref& ref, const std::string& peer,
                                                 transmit_target target,
                                                 std::chrono::milliseconds limit) {
  if (sys_ == nullptr)
    return make_error(errc::unknown_process, "client is closed");
  if (auto why = check_may_block(*sys_, "cafshm::client call"))
    return why;
  if (auto why = link_->unavailable())
    return why;
  // Through the engine's inbox unless the target names an actor (deliver_to): only BASP's
  // proxies carry an actor handle into another process. The channel fails the call at once
  // should the engine go down; over BASP an actor of its own watches the engine.
  if (!target.deliver_to && channel_ && channel_->usable()) {
    auto answer = channel_->call(caf::make_message(transmit_atom::value, reg_.session, ref, peer,
                                                   target),
                                 std::chrono::steady_clock::now() + limit);
    if (answer)
      return unpack<transmit_receipt>(*answer);
    if (code_of(answer.error()) != errc::request_too_large && channel_->usable())
      return answer.error();
  }
  return watched_request<transmit_receipt>(*sys_, link_->engine(), limit, transmit_atom::value,
                                           reg_.session, ref, peer, std::move(target));
}

caf::expected<uint64_t> client::link(const std::string& host, uint16_t port) {
  return call<uint64_t>(link_atom::value, reg_.session, host, port);
}

caf::expected<void> client::export_block(const block_ref& ref) {
  return share(ref, process_id::engine, access_mode::read);
}

caf::expected<block_view> client::map(const block_ref& ref, access_mode mode) {
  auto lease = call<view_lease>(map_atom::value, reg_.session, ref,
                                mode);
  if (!lease)
    return lease.error();
  auto view = block_view::open(*lease, ref, link_, reg_.session);
  if (!view) // the engine counted a view that never opened: close it again
    call_done(unmap_atom::value, reg_.session, ref);
  return view;
}

caf::expected<block_view> client::allocate_and_map(uint64_t size) {
  auto made = call<mapped_block>(allocate_map_atom::value, reg_.session, size);
  if (!made)
    return made.error();
  auto view = block_view::open(made->lease, made->ref, link_, reg_.session);
  if (!view) // a view the engine counted never opened, of a block nobody else knows: both go
    call_done(unmap_free_atom::value, reg_.session, made->ref);
  return view;
}

namespace {

// The error of the map_many request for blocks [first, first + n) of `total`.
caf::error map_part_error(const caf::error& e, size_t first, size_t n, size_t total) {
  if (n == total)
    return e;
  return make_error(code_of(e) == errc::ok ? errc::engine_unreachable : code_of(e),
                    "mapping blocks " + std::to_string(first + 1) + ".."
                      + std::to_string(first + n) + " of " + std::to_string(total) + ": "
                      + describe(e));
}

} // namespace

caf::expected<void> client::open_views(std::vector<block_view>& into,
                                       std::span<const block_ref> refs,
                                       std::vector<view_lease>& leases,
                                       const std::shared_ptr<detail::engine_link>& link,
                                       const cafshm::session& s) {
  if (leases.size() != refs.size()) {
    for (size_t i = 0; i < std::min(leases.size(), refs.size()); ++i)
      link->unmap(s, refs[i]);
    return make_error(errc::engine_unreachable, "the engine answered "
                                                  + std::to_string(leases.size())
                                                  + " leases for "
                                                  + std::to_string(refs.size()) + " blocks");
  }
  for (size_t i = 0; i < refs.size(); ++i) {
    auto view = block_view::open(leases[i], refs[i], link, s);
    if (!view) {
      for (size_t j = i; j < refs.size(); ++j)
        link->unmap(s, refs[j]);
      return view.error();
    }
    into.push_back(std::move(*view));
  }
  return {};
}

size_t client::blocks_per_map_request() const {
  if (!channel_ || !channel_->usable())
    return max_map_many;
  auto room = channel_->max_reply_payload();
  using fastpath::lease_bytes_bound, fastpath::map_answer_overhead;
  auto fit = room > map_answer_overhead ? (room - map_answer_overhead) / lease_bytes_bound : 0;
  return static_cast<size_t>(std::clamp<uint64_t>(fit, 1, max_map_many));
}

std::vector<std::pair<size_t, size_t>> client::map_parts(size_t count) const {
  std::vector<std::pair<size_t, size_t>> parts;
  auto per_request = blocks_per_map_request();
  for (size_t at = 0; at < count; at += per_request)
    parts.emplace_back(at, std::min(per_request, count - at));
  return parts;
}

caf::expected<std::vector<block_view>> client::map(std::span<const block_ref> refs,
                                                   access_mode mode) {
  std::vector<block_view> views;
  views.reserve(refs.size());
  for (auto [at, n] : map_parts(refs.size())) {
    auto part = refs.subspan(at, n);
    auto leases = call<std::vector<view_lease>>(map_many_atom::value, reg_.session,
                                                std::vector<block_ref>(part.begin(), part.end()),
                                                mode);
    if (!leases)
      return map_part_error(leases.error(), at, n, refs.size());
    if (auto opened = open_views(views, part, *leases, link_, reg_.session); !opened)
      return opened.error();
  }
  return views;
}

// -- async forms ----------------------------------------------------------------------------------

namespace {

// The answer of an async call that failed before any request: `why`.
template <class T>
async_result<T> failed_at_once(caf::error why) {
  return async_result<T>{[why = std::move(why)](auto, auto on_error) mutable { on_error(why); }};
}

// Sends `request` for `self` through the fast path's request channel if there is one: the
// answer (or the error) arrives in self's mailbox as the response to the returned id, with a
// CAF timeout of `limit` as for self->request(). The channel sends through the engine's request
// inbox what that takes, and the rest over BASP in its order with the rest. None: the caller
// sends it over BASP (no usable channel).
std::optional<caf::message_id>
through_inbox(caf::scheduled_actor* self, const std::shared_ptr<fastpath::request_channel>& channel,
              const engine_actor& engine, std::chrono::milliseconds limit,
              const caf::message& request, fastpath::request_channel::drop_handler on_drop) {
  if (!channel || !channel->usable())
    return std::nullopt;
  auto id = self->new_request_id(caf::message_priority::normal);
  auto why = channel->call_for_actor(request, self->address(), id.response_id(),
                                     caf::actor_cast<caf::actor>(engine),
                                     std::chrono::steady_clock::now() + limit,
                                     std::move(on_drop));
  if (why) {
    if (!channel->usable())
      return std::nullopt; // nothing was sent
    // The failure arrives like an answer (as CAF delivers one for a request it cannot send).
    self->enqueue(caf::make_mailbox_element(nullptr, id.response_id(), {}, std::move(why)),
                  self->context());
  }
  self->request_response_timeout(caf::duration{limit}, id);
  return id.response_id();
}

} // namespace

std::optional<caf::message_id> client::send_through_inbox(caf::scheduled_actor* self,
                                                          const caf::message& request) const {
  return through_inbox(self, channel_, engine(), timeout_, request, nullptr);
}

template <class R, class... Ts>
async_result<R> client::ask(caf::event_based_actor* self, reply_drop on_drop, Ts... xs) const {
  return async_result<R>{[self, link = link_, channel = channel_, limit = timeout_,
                          on_drop = std::move(on_drop), xs...](auto on_value,
                                                               auto on_error) mutable {
    if (auto why = link->unavailable())
      return on_error(why);
    auto engine = link->engine();
    using handle = decltype(self->request(engine, limit, xs...));
    std::optional<handle> answer;
    uint64_t ticket = 0; // none: through the inbox, whose channel answers for a dead engine
    if (auto id = through_inbox(self, channel, engine, limit, caf::make_message(xs...),
                                std::move(on_drop))) {
      answer.emplace(*id, self);
    } else {
      answer.emplace(self->request(engine, limit, xs...));
      // Should the engine go down first, the link answers for it at once.
      auto t = link->awaiting(self->address(), answer->id(), engine.address());
      if (!t) {
        auto why = t.error();
        return on_error(why);
      }
      ticket = *t;
    }
    answer->then(
      [link, ticket, on_value](R& r) {
        if (ticket != 0)
          link->answered(ticket);
        on_value(std::move(r));
      },
      [link, ticket, on_error](caf::error& e) {
        if (ticket != 0)
          link->answered(ticket);
        auto why = engine_error(std::move(e));
        on_error(why);
      });
  }};
}

template <class... Ts>
async_result<done> client::ask_done(caf::event_based_actor* self, Ts... xs) const {
  auto answer = std::make_shared<async_result<done_atom>>(
    ask<done_atom>(self, nullptr, std::move(xs)...));
  return async_result<done>{[answer](auto on_value, auto on_error) {
    answer->then([on_value](done_atom&&) { on_value(done{}); },
                 [on_error](caf::error& e) { on_error(e); });
  }};
}

async_result<block_ref> client::allocate(caf::event_based_actor* self, uint64_t size) {
  // A block whose requester ended before the answer came is freed: nobody else knows its ref.
  auto give_back = [link = std::weak_ptr<detail::engine_link>(link_),
                    s = reg_.session](caf::message& answer) {
    if (auto l = link.lock(); l && answer.match_elements<block_ref>())
      l->free(s, answer.get_as<block_ref>(0));
  };
  return ask<block_ref>(self, give_back, allocate_atom::value, reg_.session, size);
}

async_result<done> client::free(caf::event_based_actor* self, const block_ref& ref) {
  return ask_done(self, free_atom::value, reg_.session, ref);
}

async_result<done> client::share(caf::event_based_actor* self, const block_ref& ref,
                                 process_id process, access_mode mode) {
  return ask_done(self, share_atom::value, reg_.session, ref, process,
                  mode);
}

async_result<block_ref> client::transfer(caf::event_based_actor* self, const block_ref& ref,
                                         process_id process) {
  return ask<block_ref>(self, nullptr, transfer_atom::value, reg_.session, ref, process);
}

async_result<process_id> client::find_process(caf::event_based_actor* self,
                                            const std::string& name) {
  return ask<process_id>(self, nullptr, process_atom::value, reg_.session, name);
}

async_result<done> client::publish(caf::event_based_actor* self, const caf::actor& actor,
                                   const std::string& name) {
  return ask_done(self, publish_atom::value, reg_.session, name, actor);
}

async_result<published_actor> client::find_actor(caf::event_based_actor* self,
                                                  const std::string& name) {
  auto found = ask<published_actor>(self, nullptr, find_actor_atom::value, reg_.session, name);
  return async_result<published_actor>{
    [found = std::move(found), actors = actors_](auto on_value, auto on_error) mutable {
      found.then(
        [=](published_actor&& p) mutable {
          if (actors)
            p.actor = actors->route(p.actor, p.process);
          on_value(std::move(p));
        },
        on_error);
    }};
}

async_result<block_view> client::map(caf::event_based_actor* self, const block_ref& ref,
                                     access_mode mode) {
  // A view whose requester ended before the answer came is closed again at the engine.
  auto give_back = [link = std::weak_ptr<detail::engine_link>(link_), s = reg_.session,
                    ref](caf::message& answer) {
    if (auto l = link.lock(); l && answer.match_elements<view_lease>())
      l->unmap(s, ref);
  };
  auto lease = ask<view_lease>(self, give_back, map_atom::value, reg_.session, ref, mode);
  return async_result<block_view>{
    [lease = std::move(lease), ref, link = link_,
     s = reg_.session](auto on_value, auto on_error) mutable {
      lease.then(
        [=](view_lease&& l) {
          auto view = block_view::open(l, ref, link, s);
          if (!view) { // the engine counted a view that never opened: close it again
            link->unmap(s, ref);
            on_error(view.error());
            return;
          }
          on_value(std::move(*view));
        },
        on_error);
    }};
}

async_result<block_view> client::allocate_and_map(caf::event_based_actor* self, uint64_t size) {
  // A block whose requester ended before the answer came goes again: nobody knows its ref.
  auto give_back = [link = std::weak_ptr<detail::engine_link>(link_),
                    s = reg_.session](caf::message& answer) {
    if (auto l = link.lock(); l && answer.match_elements<mapped_block>()) {
      const auto& made = answer.get_as<mapped_block>(0);
      l->unmap(s, made.ref);
      l->free(s, made.ref);
    }
  };
  auto made = ask<mapped_block>(self, give_back, allocate_map_atom::value, reg_.session, size);
  return async_result<block_view>{
    [made = std::move(made), link = link_, s = reg_.session](auto on_value,
                                                             auto on_error) mutable {
      made.then(
        [=](mapped_block&& m) {
          auto view = block_view::open(m.lease, m.ref, link, s);
          if (!view) { // as in the blocking form
            link->unmap(s, m.ref);
            link->free(s, m.ref);
            on_error(view.error());
            return;
          }
          on_value(std::move(*view));
        },
        on_error);
    }};
}

async_result<block_ref> client::transfer(caf::event_based_actor* self, block_view&& view,
                                         process_id process) {
  // Closed here in any case; while the engine is down, the close is told once re-attached.
  auto ref = close_for_request(std::move(view));
  if (!ref)
    return failed_at_once<block_ref>(ref.error());
  return ask<block_ref>(self, nullptr, unmap_transfer_atom::value, reg_.session, *ref, process);
}

async_result<done> client::free(caf::event_based_actor* self, block_view&& view) {
  auto ref = close_for_request(std::move(view)); // as in transfer(self, view, ...)
  if (!ref)
    return failed_at_once<done>(ref.error());
  return ask_done(self, unmap_free_atom::value, reg_.session, *ref);
}

async_result<std::vector<block_view>> client::map(caf::event_based_actor* self,
                                                  std::vector<block_ref> refs, access_mode mode) {
  // One request per part, each sent once the one before was answered and its views opened.
  using leases_result = async_result<std::vector<view_lease>>;
  struct mapping {
    std::vector<block_ref> refs;
    struct part {
      size_t at; // its first block
      size_t n;
      leases_result request;
    };
    std::vector<part> parts;
    std::shared_ptr<detail::engine_link> link;
    cafshm::session s;
    std::vector<block_view> views;
    async_result<std::vector<block_view>>::value_handler on_value;
    async_result<std::vector<block_view>>::error_handler on_error;

    void fail(caf::error why) {
      views.clear(); // closes the views opened so far
      on_error(why);
    }

    void next(const std::shared_ptr<mapping>& me, size_t index) {
      if (index == parts.size())
        return on_value(std::move(views));
      // Plain copies: clang 14 cannot capture a structured binding in a lambda.
      size_t at = parts[index].at, n = parts[index].n;
      parts[index].request.then(
        [me, index, at, n](std::vector<view_lease>&& leases) {
          std::span<const block_ref> part{me->refs.data() + at, n};
          if (auto opened = open_views(me->views, part, leases, me->link, me->s); !opened)
            return me->fail(opened.error());
          me->next(me, index + 1);
        },
        [me, at, n](caf::error& e) { me->fail(map_part_error(e, at, n, me->refs.size())); });
    }
  };
  auto m = std::make_shared<mapping>();
  for (auto [at, n] : map_parts(refs.size())) {
    std::vector<block_ref> part(refs.begin() + at, refs.begin() + at + n);
    // Leases whose requester ended before the answer came are counted closed again.
    auto give_back = [link = std::weak_ptr<detail::engine_link>(link_), s = reg_.session,
                      part](caf::message& answer) {
      if (auto l = link.lock(); l && answer.match_elements<std::vector<view_lease>>()) {
        auto n = std::min(part.size(), answer.get_as<std::vector<view_lease>>(0).size());
        for (size_t i = 0; i < n; ++i)
          l->unmap(s, part[i]);
      }
    };
    m->parts.push_back({at, n, ask<std::vector<view_lease>>(self, give_back, map_many_atom::value,
                                                            reg_.session, part, mode)});
  }
  m->refs = std::move(refs);
  m->link = link_;
  m->s = reg_.session;
  return async_result<std::vector<block_view>>{[m](auto on_value, auto on_error) {
    m->on_value = std::move(on_value);
    m->on_error = std::move(on_error);
    m->views.reserve(m->refs.size());
    m->next(m, 0);
  }};
}

async_result<done> client::unmap(caf::event_based_actor* self, block_view&& view) {
  auto ref = close_for_request(std::move(view)); // as in transfer(self, view, ...)
  if (!ref)
    return failed_at_once<done>(ref.error());
  return ask_done(self, unmap_atom::value, reg_.session, *ref);
}

} // namespace cafshm
