// The communications engine actor: a thin, serialising front of memory_manager. It monitors every
// registering actor and polls a pidfd of every process its door vouched for, so that the memory
// of a process that dies, even by kill -9, is reclaimed, and only then: a process whose
// connection ends while it lives is detached (it may still have its blocks mapped).
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

#include <unistd.h>

#include "memory_manager.hpp"
#include "engine_state.hpp"
#include "peer_gateway.hpp"
#include "process_identity.hpp"
#include "remote_link.hpp"
#include "unix_identity.hpp"

namespace cafshm {

namespace {

caf::result<done_atom> done(caf::expected<void> x) {
  if (!x)
    return std::move(x.error());
  return done_atom::value;
}

// A process built against another cafshm: its messages may not even read the same.
caf::error client_of_another_version(uint32_t version) {
  return make_error(errc::version_mismatch,
                    "the client speaks protocol version " + std::to_string(version)
                      + ", this engine protocol version " + std::to_string(protocol_version)
                      + ": build both from one cafshm version");
}

caf::error not_from_gateway() {
  return make_error(errc::access_denied,
                    "peer messages go to the engine's peer gateway (gateway_atom), not to it");
}

// The process a redeemed ticket stands for has exited: it is not registered (nor re-attached)
// and its pidfd is not watched. (The door checked it was alive when it issued the ticket; it
// may have ended since.)
caf::error exited_caller(peer_credentials& creds) {
  ::close(creds.pidfd);
  creds.pidfd = -1;
  return make_error(errc::process_exited,
                    "the process the door ticket stands for (pid " + std::to_string(creds.pid)
                      + ") has exited");
}

void close_pidfd(engine_state& st, process_id slot) {
  if (auto i = st.pidfds.find(slot); i != st.pidfds.end()) {
    ::close(i->second);
    st.pidfds.erase(i);
  }
}

// Removes `slot` from the registering actor it was known by.
void unbind_slot(engine_state& st, process_id slot) {
  for (auto i = st.slots_by_actor.begin(); i != st.slots_by_actor.end(); ++i) {
    auto& v = i->second;
    if (auto j = std::find(v.begin(), v.end(), slot); j != v.end()) {
      v.erase(j);
      return;
    }
  }
}

void forget_slot(engine_state& st, process_id slot) {
  close_pidfd(st, slot);
  st.directory->process_ended(slot);
  unbind_slot(st, slot);
}

// Watches the processes of adopted segments: a pidfd of each recorded pid, opened and then
// checked against the recorded start time (so the pidfd is of that very process, not of a
// later one that got its pid). A process whose pidfd cannot be opened or that is not the
// recorded one any more is dead: crash reclaim.
void watch_adopted(engine_state& st, memory_manager& mmr) {
  for (auto slot : mmr.live_processes()) {
    int fd = open_pidfd(mmr.pid_of(slot));
    if (fd >= 0 && mmr.still_runs(slot)) {
      st.pidfds[slot] = fd;
      continue;
    }
    if (fd >= 0)
      ::close(fd);
    mmr.reclaim(slot);
  }
}

// Monitors the actor that registered (or re-attached) `slot` for it.
void bind_slot(engine_pointer self, process_id slot) {
  if (auto sender = self->current_sender()) {
    auto addr = caf::actor_cast<caf::actor_addr>(sender);
    auto& slots = self->state.slots_by_actor[addr];
    if (slots.empty())
      self->monitor(addr);
    slots.push_back(slot);
  }
}

// Reclaims every process the OS reports ended (its pidfd readable): what the periodic liveness
// check does, also run before a registration so that a process restarted under the name of one
// that just died does not find that name still taken.
void reclaim_exited(engine_state& st, memory_manager& mmr) {
  std::vector<process_id> dead;
  for (auto [slot, fd] : st.pidfds)
    if (has_exited(fd))
      dead.push_back(slot);
  for (auto slot : dead) {
    forget_slot(st, slot);
    mmr.reclaim(slot);
  }
}

// Where clients reach this engine, for a client given only its handle to reconnect.
void tell_address(const engine_state& st, registration& reg) {
  if (!st.listen)
    return;
  auto where = st.listen->get();
  reg.listen_host = std::move(where.host);
  reg.listen_port = where.port;
}

// Tells a local process (one the door vouched for) the fast path's inboxes.
void offer_inbox(const engine_state& st, registration& reg) {
  if (!st.relay)
    return;
  const auto& cfg = st.relay->config();
  reg.inbox_engine = cfg.engine.name;
  reg.inbox_permissions = cfg.engine.permissions;
  if (!cfg.engine.group.empty())
    if (auto gid = group_id_of(cfg.engine.group))
      reg.inbox_group = *gid;
  reg.reply_inbox_bytes = cfg.local.reply_inbox_bytes;
}

void fill_inbox_stats(const engine_state& st, engine_stats& out) {
  if (!st.relay)
    return;
  const auto& c = st.relay->stats();
  out.inbox_requests = c.requests.load(std::memory_order_relaxed);
  out.inbox_refused = c.refused.load(std::memory_order_relaxed);
  out.inbox_replies_lost = c.replies_lost.load(std::memory_order_relaxed);
  out.inbox_replies_too_large = c.replies_too_large.load(std::memory_order_relaxed);
}

engine_impl::behavior_type engine_behavior(engine_pointer self,
                                           std::shared_ptr<memory_manager> mm, settings config,
                                           caf::io::middleman_actor connector,
                                           std::shared_ptr<ticket_office> office,
                                           std::string door_path,
                                           std::shared_ptr<const peer_authenticator> peers,
                                           std::shared_ptr<request_relay> relay,
                                           std::shared_ptr<const listen_address> listen) {
  self->state.relay = std::move(relay);
  self->state.office = std::move(office);
  self->state.listen = std::move(listen);
  self->state.door_path = std::move(door_path);
  self->state.mm = std::move(mm);
  self->state.config = std::move(config);
  self->state.connector = std::move(connector);
  self->state.directory = std::make_unique<actor_directory>(self->state.config.engine.max_names);
  if (self->state.config.remote.cache_bytes > 0)
    self->state.cache = std::make_unique<block_cache>(self->state.config.remote.cache_bytes);
  spawn_peer_gateway(self, std::move(peers));
  auto liveness_interval = self->state.config.engine.liveness_interval;
  self->set_down_handler([self](caf::down_msg& dm) {
    remote::peer_down(self, dm.source);
    self->state.directory->actor_down(dm.source, dm.reason);
    auto i = self->state.slots_by_actor.find(dm.source);
    if (i == self->state.slots_by_actor.end())
      return;
    for (auto slot : i->second) {
      auto fd = self->state.pidfds.find(slot);
      if (fd != self->state.pidfds.end() && !has_exited(fd->second))
        continue; // alive: detached, not reclaimed; the pidfd says when it ends
      close_pidfd(self->state, slot);
      self->state.directory->process_ended(slot);
      self->state.mm->reclaim(slot);
    }
    self->state.slots_by_actor.erase(i);
  });
  if (liveness_interval.count() > 0)
    self->delayed_send(self, liveness_interval, liveness_atom::value);
  remote::keep_linked(self);
  auto& mmr = *self->state.mm;
  if (mmr.adopted())
    watch_adopted(self->state, mmr);
  return {
    [self, &mmr](register_atom, const std::string& name, uint64_t quota,
                 const door_ticket& ticket, uint32_t version) -> caf::result<registration> {
      if (version != protocol_version)
        return client_of_another_version(version);
      std::optional<peer_credentials> creds;
      if (ticket.valid()) {
        creds = self->state.office ? self->state.office->redeem(ticket) : std::nullopt;
        if (!creds)
          return make_error(errc::access_denied, "unknown, used or expired door ticket");
      } else if (!self->state.config.engine.unauthenticated_tcp) {
        return make_error(errc::access_denied,
                          "registration needs a ticket from the engine's door "
                            + self->state.door_path
                            + " (or engine.unauthenticated_tcp on the engine)");
      }
      int32_t pid = creds ? creds->pid : 0; // never what the caller claims
      // Quota rules apply to the user the door vouched for; a ticketless (unauthenticated)
      // caller is nobody in particular: no user or group rule matches it.
      auto who = creds ? process_credentials{creds->uid, creds->gid}
                       : process_credentials{~uint32_t{0}, ~uint32_t{0}};
      if (creds && creds->pidfd >= 0 && has_exited(creds->pidfd))
        return exited_caller(*creds);
      reclaim_exited(self->state, mmr);
      auto reg = mmr.register_process(name, pid, quota, who);
      if (!reg) {
        if (creds && creds->pidfd >= 0)
          ::close(creds->pidfd);
        return std::move(reg.error());
      }
      // Still running after register_process read its start time: so that was the start time
      // of this very process (a process that has not exited keeps its pid).
      if (creds && creds->pidfd >= 0 && has_exited(creds->pidfd)) {
        mmr.reclaim(reg->session.process);
        return exited_caller(*creds);
      }
      if (creds && creds->pidfd >= 0)
        self->state.pidfds[reg->session.process] = creds->pidfd;
      bind_slot(self, reg->session.process);
      if (creds)
        offer_inbox(self->state, *reg);
      tell_address(self->state, *reg);
      return std::move(*reg);
    },
    [self, &mmr](reattach_atom, const session& s, uint64_t engine_id, const door_ticket& ticket,
                 uint32_t version) -> caf::result<registration> {
      if (version != protocol_version)
        return client_of_another_version(version);
      if (engine_id != mmr.engine_id())
        return make_error(errc::engine_restarted,
                          "engine " + std::to_string(engine_id)
                            + " is gone: this engine (" + std::to_string(mmr.engine_id())
                            + ") started without adopting its segments; its sessions and blocks "
                              "no longer exist");
      auto creds = ticket.valid() && self->state.office ? self->state.office->redeem(ticket)
                                                        : std::nullopt;
      if (!creds)
        return make_error(errc::access_denied, "re-attaching needs a ticket from the engine's "
                                               "door " + self->state.door_path);
      if (creds->pidfd >= 0 && has_exited(creds->pidfd))
        return exited_caller(*creds);
      reclaim_exited(self->state, mmr);
      auto reg = mmr.reattach(s, creds->pid);
      if (!reg) {
        if (creds->pidfd >= 0)
          ::close(creds->pidfd);
        return std::move(reg.error());
      }
      if (creds->pidfd >= 0) { // the door's pidfd of the caller, who is the slot's process
        close_pidfd(self->state, s.process);
        self->state.pidfds[s.process] = creds->pidfd;
      }
      unbind_slot(self->state, s.process);
      bind_slot(self, s.process);
      offer_inbox(self->state, *reg);
      tell_address(self->state, *reg);
      return std::move(*reg);
    },
    [self](door_atom) { return self->state.door_path; },
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
    [&mmr](share_atom, const session& s, const block_ref& ref, process_id to, access_mode mode) {
      return done(mmr.share(s, ref, to, mode));
    },
    [&mmr](revoke_atom, const session& s, const block_ref& ref, process_id from) {
      return done(mmr.revoke(s, ref, from));
    },
    [&mmr](transfer_atom, const session& s, const block_ref& ref,
           process_id to) -> caf::result<block_ref> { return mmr.transfer(s, ref, to); },
    [&mmr](name_atom, const session& s, const block_ref& ref, const std::string& name) {
      return done(mmr.name(s, ref, name));
    },
    [&mmr](lookup_atom, const session& s, const std::string& name) -> caf::result<block_ref> {
      return mmr.lookup(s, name);
    },
    [&mmr](remove_atom, const session& s, const std::string& name) {
      return done(mmr.remove(s, name));
    },
    [&mmr](map_atom, const session& s, const block_ref& ref,
           access_mode mode) -> caf::result<view_lease> {
      if (!is_valid(mode)) // any byte arrives on the wire
        return make_error(errc::invalid_argument, "unknown access mode");
      return mmr.map(s, ref, mode);
    },
    [&mmr](unmap_atom, const session& s, const block_ref& ref) {
      return done(mmr.unmap(s, ref));
    },
    [&mmr](allocate_map_atom, const session& s, uint64_t size) -> caf::result<mapped_block> {
      auto ref = mmr.allocate(s, size);
      if (!ref)
        return std::move(ref.error());
      auto lease = mmr.map(s, *ref, access_mode::read_write);
      if (!lease) {
        mmr.free(s, *ref); // nobody knows the ref: the block goes again
        return std::move(lease.error());
      }
      return mapped_block{*ref, std::move(*lease)};
    },
    [&mmr](unmap_transfer_atom, const session& s, const block_ref& ref,
           process_id to) -> caf::result<block_ref> {
      if (auto closed = mmr.unmap(s, ref); !closed)
        return std::move(closed.error());
      return mmr.transfer(s, ref, to);
    },
    [&mmr](unmap_free_atom, const session& s, const block_ref& ref) -> caf::result<done_atom> {
      if (auto closed = mmr.unmap(s, ref); !closed)
        return std::move(closed.error());
      return done(mmr.free(s, ref));
    },
    [&mmr](map_many_atom, const session& s, const std::vector<block_ref>& refs,
           access_mode mode) -> caf::result<std::vector<view_lease>> {
      if (!is_valid(mode))
        return make_error(errc::invalid_argument, "unknown access mode");
      if (refs.size() > max_map_many)
        return make_error(errc::request_too_large,
                          "one request maps at most " + std::to_string(max_map_many)
                            + " blocks, not " + std::to_string(refs.size()));
      std::vector<view_lease> leases;
      leases.reserve(refs.size());
      for (const auto& ref : refs) {
        auto lease = mmr.map(s, ref, mode);
        if (!lease) {
          for (size_t i = 0; i < leases.size(); ++i)
            mmr.unmap(s, refs[i]);
          auto why = std::move(lease.error());
          return make_error(code_of(why), "block " + std::to_string(leases.size() + 1) + " of "
                                            + std::to_string(refs.size()) + ": "
                                            + describe(why));
        }
        leases.push_back(std::move(*lease));
      }
      return leases;
    },
    [&mmr](process_atom, const session& s, const std::string& name) -> caf::result<process_id> {
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
      fill_inbox_stats(self->state, st);
      st.process_list.clear(); // who runs what is for registered processes only
      st.name_list.clear();
      st.peers.clear();
      st.outgoing.clear();
      return st;
    },
    [self, &mmr](stats_atom, const session& s) -> caf::result<engine_stats> {
      if (auto ok = mmr.check_session(s); !ok)
        return std::move(ok.error());
      auto st = mmr.stats();
      remote::fill_stats(self->state, st);
      fill_inbox_stats(self->state, st);
      return st;
    },
    [self](transmit_atom, const session& s, const block_ref& ref, const std::string& peer,
           transmit_target& target) {
      return remote::transmit(self, s, ref, peer, std::move(target));
    },
    [self, &mmr](link_atom, const session& s, const std::string& host,
                 uint16_t port) -> caf::result<uint64_t> {
      if (auto ok = mmr.check_session(s); !ok)
        return std::move(ok.error());
      return remote::link(self, host, port);
    },
    [self](gateway_atom) { return caf::actor_cast<caf::actor>(self->state.gateway); },
    [self](data_end_atom, uint64_t key, uint64_t peer, uint64_t id, bool incoming,
           uint64_t digest, caf::error& err) {
      if (key == self->state.gateway_key)
        remote::data_ended(self, peer, id, incoming, digest, std::move(err));
    },
    // Peer messages, only as the gateway hands them on (with its key): see forward_atom.
    [self](forward_atom, uint64_t key, hello_atom, uint64_t peer, uint64_t reverse_token,
           caf::actor& gateway, std::string& identity,
           std::vector<char>& keys) -> caf::result<uint64_t, uint64_t> {
      if (key != self->state.gateway_key)
        return not_from_gateway();
      return remote::hello(self, peer, reverse_token, std::move(gateway), std::move(identity),
                           keys);
    },
    [self](forward_atom, uint64_t key, offer_atom, const peer_seal& seal,
           transmit_offer& o) -> caf::result<transmit_receipt, peer_seal> {
      if (key != self->state.gateway_key)
        return not_from_gateway();
      return remote::offer(self, seal, o);
    },
    [self](forward_atom, uint64_t key, chunk_atom, const peer_seal& seal,
           transmit_chunk& c) -> caf::result<done_atom, peer_seal> {
      if (key != self->state.gateway_key)
        return not_from_gateway();
      return remote::chunk(self, seal, c);
    },
    [self](forward_atom, uint64_t key, commit_atom, const peer_seal& seal, uint64_t id,
           uint64_t hash) -> caf::result<transmit_receipt, peer_seal> {
      if (key != self->state.gateway_key)
        return not_from_gateway();
      return remote::commit(self, seal, id, hash);
    },
    [self](forward_atom, uint64_t key, abort_atom, const peer_seal& seal, uint64_t id) {
      if (key == self->state.gateway_key)
        remote::abort(self, seal, id);
    },
    [self](forward_atom, uint64_t key, version_atom, const peer_seal& seal,
           const block_ref& ref) -> caf::result<uint64_t, peer_seal> {
      if (key != self->state.gateway_key)
        return not_from_gateway();
      return remote::version(self, seal, ref);
    },
    [self](forward_atom, uint64_t key, pull_atom, const peer_seal& seal,
           const block_ref& ref) -> caf::result<uint64_t, peer_seal> {
      if (key != self->state.gateway_key)
        return not_from_gateway();
      return remote::pull(self, seal, ref);
    },
    [self](redial_atom, uint64_t index) { remote::redial(self, index); },
    [self, &mmr](liveness_atom) {
      reclaim_exited(self->state, mmr);
      mmr.retry_gone_notices(); // those that found an actor inbox full
      // A peer silent for remote.stall_timeout ends its transmits even if no down message
      // said it is gone.
      remote::check_stalls(self);
      self->delayed_send(self, self->state.config.engine.liveness_interval,
                         liveness_atom::value);
    },
  };
}

} // namespace

engine_actor spawn_engine(caf::actor_system& sys, std::shared_ptr<memory_manager> mm,
                          const settings& config, caf::io::middleman_actor connector,
                          std::shared_ptr<ticket_office> office, std::string door_path,
                          std::shared_ptr<const peer_authenticator> peers,
                          std::shared_ptr<request_relay> relay,
                          std::shared_ptr<const listen_address> listen) {
  auto impl = sys.spawn<caf::hidden>(engine_behavior, std::move(mm), config, std::move(connector),
                                     std::move(office), std::move(door_path), std::move(peers),
                                     std::move(relay), std::move(listen));
  return caf::actor_cast<engine_actor>(impl);
}

} // namespace cafshm
