#include "fastpath/actor_transport.hpp"

#include <vector>

#include <caf/actor_cast.hpp>
#include <caf/actor_registry.hpp>
#include <caf/actor_system.hpp>
#include <caf/exit_reason.hpp>
#include <caf/make_actor.hpp>

#include "admin_layout.hpp"
#include "fastpath/actor_inbox_reader.hpp"
#include "fastpath/actor_record.hpp"
#include "fastpath/poll_registry.hpp"

namespace cafshm::fastpath {

namespace {

// The record being decoded on this thread: its sender slot, and whether make_proxy refused a
// handle meanwhile (no_slot: no record is being decoded).
constexpr uint32_t no_slot = ~0u;
thread_local uint32_t decoding_slot = no_slot;
thread_local bool decoding_refused = false;
// The (node, actor) entries that make_proxy refused on this thread since the scope began.
thread_local std::vector<std::pair<caf::node_id, caf::actor_id>> refused_entries;

// How long the reading thread waits before it looks at its stop flag again.
constexpr std::chrono::milliseconds read_slice{200};

} // namespace

actor_transport::decoding_scope::decoding_scope(actor_transport& transport, uint32_t slot)
  : transport_(transport), lock_(transport.decoding_mtx_) {
  decoding_slot = slot;
  decoding_refused = false;
  refused_entries.clear();
}

actor_transport::decoding_scope::~decoding_scope() {
  for (auto& [node, aid] : refused_entries)
    if (!transport_.proxies_.get(node, aid)) // empty: erasing kills nothing
      transport_.proxies_.erase(node, aid);
  refused_entries.clear();
  decoding_slot = no_slot;
}

bool actor_transport::decoding_scope::refused() {
  return decoding_refused;
}

caf::expected<std::shared_ptr<actor_transport>>
actor_transport::create(caf::actor_system& sys, const std::string& engine_name, uint32_t slot,
                        actor_transport_options options) {
  auto in = inbox::create_named(actor_inbox_name(engine_name, slot), slot, options.inbox);
  if (!in)
    return in.error();
  std::shared_ptr<actor_transport> result{
    new actor_transport(sys, engine_name, slot, std::move(*in), options)};
  if (options.own_thread) {
    result->polled_ = poll_registry::instance().add(*result);
    if (!result->polled_)
      result->thread_ = std::thread{[t = result.get()] { t->read_loop(); }};
  }
  return result;
}

actor_transport::actor_transport(caf::actor_system& sys, std::string engine_name, uint32_t slot,
                                 inbox in, actor_transport_options options)
  : sys_(sys), engine_name_(std::move(engine_name)), slot_(slot), options_(options),
    inbox_(std::move(in)), counters_(std::make_shared<actor_path_counters>()),
    pending_(std::make_shared<pending_requests>()),
    proxies_(sys, *this),
    reader_(std::make_unique<actor_inbox_reader>(*this, inbox_.reader())) {
}

actor_transport::~actor_transport() {
  if (polled_)
    poll_registry::instance().remove(*this); // no worker reads the inbox after this
  stop_.store(true, std::memory_order_release);
  reader_->interrupt();
  if (thread_.joinable())
    thread_.join();
  proxies_.clear(); // kills every proxy: remote_link_unreachable for their monitors and links
  std::lock_guard<std::mutex> guard{routes_mtx_};
  routes_.clear();
}

void actor_transport::read_loop() {
  while (!stop_.load(std::memory_order_acquire))
    reader_->run(options_.idle, read_slice);
}

poll_outcome actor_transport::poll(caf::execution_unit* unit, size_t max) {
  return poll_registry::instance().poll_as_reader(reading_, *this,
                                                  [&] { return reader_->poll_once(unit, max); });
}

bool actor_transport::ready() const noexcept {
  return inbox_.reader().ready();
}

wake_words actor_transport::wake() noexcept {
  return {&inbox_.reader().data_sequence(), &inbox_.reader().reader_waiting()};
}

std::chrono::nanoseconds actor_transport::recheck_after() const noexcept {
  const auto& in = inbox_.reader();
  return in.claim_pending() ? in.liveness_check_after() : std::chrono::nanoseconds::max();
}

std::shared_ptr<peer_route> actor_transport::route_of(const caf::node_id& node,
                                                      uint32_t claimed_slot) {
  std::lock_guard<std::mutex> guard{routes_mtx_};
  if (auto i = routes_.find(node); i != routes_.end())
    return i->second;
  auto pid = pid_of(node);
  if (pid == 0 || node == sys_.node() || claimed_slot == no_slot
      || claimed_slot == admin::engine_slot || claimed_slot == slot_)
    return nullptr;
  auto w = inbox_writer::open(actor_inbox_name(engine_name_, claimed_slot), slot_);
  if (!w || static_cast<uint32_t>(w->owner_pid()) != pid)
    return nullptr;
  auto route = std::make_shared<peer_route>(std::move(*w), node, claimed_slot);
  routes_.emplace(node, route);
  return route;
}

caf::strong_actor_ptr actor_transport::make_proxy(caf::node_id node, caf::actor_id aid) {
  // Called by the registry with its lock held: nothing here may call back into it.
  if (aid == caf::invalid_actor_id || !node) {
    refused_entries.emplace_back(node, aid);
    return nullptr;
  }
  auto route = route_of(node, decoding_slot);
  if (!route) {
    decoding_refused = true;
    refused_entries.emplace_back(node, aid);
    return nullptr;
  }
  caf::actor_config cfg;
  auto proxy = caf::make_actor<inbox_actor_proxy, caf::strong_actor_ptr>(aid, node, &sys_, cfg,
                                                                         route, counters_,
                                                                         pending_);
  // Ask the actor's process to tell this one when the actor ends (a down record); a proxy
  // whose watch cannot be written is only killed with its process.
  route->send_watch(sys_, aid);
  return proxy;
}

void actor_transport::set_last_hop(caf::node_id*) {
}

caf::actor actor_transport::route(const caf::actor& actor, process_id process) {
  if (!actor || actor.node() == sys_.node())
    return actor;
  // The slot is the engine's word here: the scope routes a new node through it.
  decoding_scope scope{*this, to_slot(process)};
  auto ptr = proxies_.get_or_put(actor.node(), actor.id());
  if (!ptr)
    return actor;
  return caf::actor_cast<caf::actor>(ptr);
}

void actor_transport::process_gone(uint32_t slot, int32_t pid) {
  std::vector<caf::node_id> gone;
  {
    std::lock_guard<std::mutex> guard{routes_mtx_};
    for (auto i = routes_.begin(); i != routes_.end();) {
      if (i->second->slot() == slot
          && (pid == 0 || i->second->owner_pid() == pid
              || pid_of(i->first) == static_cast<uint32_t>(pid))) {
        gone.push_back(i->first);
        i = routes_.erase(i);
      } else {
        ++i;
      }
    }
  }
  for (auto& node : gone)
    proxies_.erase(node); // kills them with remote_link_unreachable
}

void actor_transport::watch_for(const caf::node_id& node, caf::actor_id actor,
                                uint32_t claimed_slot) {
  auto route = route_of(node, claimed_slot);
  if (!route)
    return;
  auto target = sys_.registry().get(actor);
  if (!target) {
    route->send_down(sys_, actor, caf::exit_reason::unknown);
    return;
  }
  {
    std::lock_guard<std::mutex> guard{watched_mtx_};
    if (!watched_.emplace(actor, node).second)
      return;
  }
  target->get()->attach_functor(
    [weak = weak_from_this(), route, node, actor](const caf::error& reason) {
      auto self = weak.lock();
      if (!self)
        return;
      {
        std::lock_guard<std::mutex> guard{self->watched_mtx_};
        self->watched_.erase({actor, node});
      }
      route->send_down(self->sys_, actor, reason);
    });
}

} // namespace cafshm::fastpath
