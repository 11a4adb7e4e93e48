// The communications engine actor: a thin, serialising front of memory_manager. It monitors every
// registering actor and (for processes on this host) polls their pids, so that the memory of a
// process that dies, even by kill -9, is reclaimed.
#include "cafshm/engine.hpp"

#include <chrono>
#include <csignal>
#include <cerrno>
#include <algorithm>
#include <unordered_map>
#include <vector>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/system_messages.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "memory_manager.hpp"
#include "engine_state.hpp"
#include "remote_link.hpp"

namespace cafshm {

namespace {

caf::result<done_atom> done(caf::expected<void> x) {
  if (!x)
    return std::move(x.error());
  return done_atom::value;
}

// Whether two nodes run on the same host: node ids render as "<host hash>#<pid>".
bool same_host(const caf::node_id& a, const caf::node_id& b) {
  auto host = [](const caf::node_id& n) {
    auto s = to_string(n);
    return s.substr(0, s.find('#'));
  };
  return host(a) == host(b);
}

bool pid_gone(int32_t pid) {
  return ::kill(pid, 0) != 0 && errno == ESRCH;
}

void forget_slot(engine_state& st, uint32_t slot) {
  st.polled_pids.erase(slot);
  st.directory->process_ended(slot);
  for (auto i = st.slots_by_actor.begin(); i != st.slots_by_actor.end(); ++i) {
    auto& v = i->second;
    if (auto j = std::find(v.begin(), v.end(), slot); j != v.end()) {
      v.erase(j);
      return;
    }
  }
}

engine_impl::behavior_type engine_behavior(engine_pointer self,
                                           std::shared_ptr<memory_manager> mm, settings config,
                                           caf::io::middleman_actor connector) {
  self->state.mm = std::move(mm);
  self->state.config = std::move(config);
  self->state.connector = std::move(connector);
  self->state.directory = std::make_unique<actor_directory>(self->state.config.engine.max_names);
  if (self->state.config.remote.cache_bytes > 0)
    self->state.cache = std::make_unique<block_cache>(self->state.config.remote.cache_bytes);
  auto liveness_interval = self->state.config.engine.liveness_interval;
  self->set_down_handler([self](caf::down_msg& dm) {
    remote::peer_down(self, dm.source);
    self->state.directory->actor_down(dm.source);
    auto i = self->state.slots_by_actor.find(dm.source);
    if (i == self->state.slots_by_actor.end())
      return;
    for (auto slot : i->second) {
      self->state.polled_pids.erase(slot);
      self->state.directory->process_ended(slot);
      self->state.mm->reclaim(slot);
    }
    self->state.slots_by_actor.erase(i);
  });
  if (liveness_interval.count() > 0)
    self->delayed_send(self, liveness_interval, liveness_atom::value);
  auto& mmr = *self->state.mm;
  return {
    [self, &mmr](register_atom, const std::string& name, uint64_t quota, int32_t pid,
                 uint32_t version) -> caf::result<registration> {
      if (version != protocol_version)
        return make_error(errc::invalid_argument,
                          "protocol version " + std::to_string(version) + " of the client, "
                            + std::to_string(protocol_version) + " of the engine: rebuild one");
      // Quota rules apply to the user the engine knows for the caller; an actor that reaches
      // the engine through its actor system or CAF's middleman is counted as the engine's own.
      auto reg = mmr.register_process(name, pid, quota, own_credentials());
      if (!reg)
        return std::move(reg.error());
      auto sender = self->current_sender();
      if (sender) {
        auto addr = caf::actor_cast<caf::actor_addr>(sender);
        auto& slots = self->state.slots_by_actor[addr];
        if (slots.empty())
          self->monitor(addr);
        slots.push_back(reg->session.process);
        if (same_host(sender->node(), self->node()) && pid > 0 && pid != ::getpid())
          self->state.polled_pids.emplace(reg->session.process, pid);
      }
      return std::move(*reg);
    },
    [self, &mmr](unregister_atom, const session& s) -> caf::result<done_atom> {
      auto r = mmr.unregister(s);
      if (r)
        forget_slot(self->state, s.process);
      return done(std::move(r));
    },
    [&mmr](allocate_atom, const session& s, uint64_t size) -> caf::result<block_ref> {
      return mmr.allocate(s, size);
    },
    [&mmr](free_atom, const session& s, const block_ref& ref) {
      return done(mmr.free(s, ref));
    },
    [&mmr](write_atom, const session& s, const block_ref& ref, uint64_t offset,
           const std::vector<char>& bytes) { return done(mmr.write(s, ref, offset, bytes)); },
    [self, &mmr](read_atom, const session& s, const block_ref& ref, uint64_t offset,
                 uint64_t length) -> caf::result<std::vector<char>> {
      if (ref.engine != mmr.engine_id() && ref.engine != 0)
        return remote::read(self, s, ref, offset, length);
      return mmr.read(s, ref, offset, length);
    },
    [&mmr](copy_atom, const session& s, const block_ref& src, const block_ref& dst,
           const std::vector<copy_range>& ranges) { return done(mmr.copy(s, src, dst, ranges)); },
    [&mmr](share_atom, const session& s, const block_ref& ref, uint32_t to, uint8_t mode) {
      return done(mmr.share(s, ref, to, static_cast<access_mode>(mode)));
    },
    [&mmr](revoke_atom, const session& s, const block_ref& ref, uint32_t from) {
      return done(mmr.revoke(s, ref, from));
    },
    [&mmr](transfer_atom, const session& s, const block_ref& ref,
           uint32_t to) -> caf::result<block_ref> { return mmr.transfer(s, ref, to); },
    [&mmr](name_atom, const session& s, const block_ref& ref, const std::string& name) {
      return done(mmr.name(s, ref, name));
    },
    [&mmr](lookup_atom, const session& s, const std::string& name) -> caf::result<block_ref> {
      return mmr.lookup(s, name);
    },
    [&mmr](remove_atom, const session& s, const std::string& name) {
      return done(mmr.remove(s, name));
    },
    [&mmr](attach_atom, const session& s, const block_ref& ref,
           uint8_t mode) -> caf::result<view_lease> {
      if (mode != static_cast<uint8_t>(access_mode::read)
          && mode != static_cast<uint8_t>(access_mode::read_write))
        return make_error(errc::invalid_argument, "unknown access mode");
      return mmr.attach(s, ref, static_cast<access_mode>(mode));
    },
    [&mmr](detach_atom, const session& s, const block_ref& ref) {
      return done(mmr.detach(s, ref));
    },
    [&mmr](process_atom, const session& s, const std::string& name) -> caf::result<uint32_t> {
      return mmr.find_process(s, name);
    },
    [self, &mmr](publish_atom, const session& s, const std::string& name,
                 caf::actor& actor) -> caf::result<done_atom> {
      if (auto known = mmr.check_session(s); !known)
        return std::move(known.error());
      auto addr = actor.address();
      if (auto why = self->state.directory->publish(s.process, name, std::move(actor)))
        return why;
      self->monitor(addr);
      return done_atom::value;
    },
    [self, &mmr](unpublish_atom, const session& s,
                 const std::string& name) -> caf::result<done_atom> {
      if (auto known = mmr.check_session(s); !known)
        return std::move(known.error());
      if (auto why = self->state.directory->unpublish(s.process, name))
        return why;
      return done_atom::value;
    },
    [self, &mmr](find_actor_atom, const session& s,
                 const std::string& name) -> caf::result<published_actor> {
      if (auto known = mmr.check_session(s); !known)
        return std::move(known.error());
      return self->state.directory->lookup(name);
    },
    [self, &mmr](stats_atom) {
      auto st = mmr.stats();
      remote::fill_stats(self->state, st);
      return st;
    },
    [self](transmit_atom, const session& s, const block_ref& ref, const std::string& peer,
           transmit_target& target) {
      return remote::transmit(self, s, ref, peer, std::move(target));
    },
    [self](link_atom, const std::string& host, uint16_t port) {
      return remote::link(self, host, port);
    },
    [self](hello_atom, uint64_t peer) { return remote::hello(self, peer); },
    [self](offer_atom, transfer_offer& o) { return remote::offer(self, o); },
    [self](chunk_atom, transfer_chunk& c) { return remote::chunk(self, c); },
    [self](commit_atom, uint64_t sender, uint64_t id) {
      return remote::commit(self, sender, id);
    },
    [self](abort_atom, uint64_t sender, uint64_t id) { remote::abort(self, sender, id); },
    [self](version_atom, const block_ref& ref) { return remote::version(self, ref); },
    [self](pull_atom, const block_ref& ref, uint64_t requester) {
      return remote::pull(self, ref, requester);
    },
    [self, &mmr](liveness_atom) {
      std::vector<uint32_t> dead;
      for (auto [slot, pid] : self->state.polled_pids)
        if (pid_gone(pid))
          dead.push_back(slot);
      for (auto slot : dead) {
        forget_slot(self->state, slot);
        mmr.reclaim(slot);
      }
      // A sender silent for twice the request timeout is gone even if no down message said so.
      remote::expire_idle(self, self->state.config.client.request_timeout * 2);
      self->delayed_send(self, self->state.config.engine.liveness_interval,
                         liveness_atom::value);
    },
  };
}

} // namespace

engine_actor spawn_engine(caf::actor_system& sys, std::shared_ptr<memory_manager> mm,
                          const settings& config, caf::io::middleman_actor connector) {
  auto impl = sys.spawn<caf::hidden>(engine_behavior, std::move(mm), config, std::move(connector));
  return caf::actor_cast<engine_actor>(impl);
}

} // namespace cafshm
