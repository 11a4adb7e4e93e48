// Row 1 (hand-off round trip between two processes), the engine part of row 3 (allocate+free
// through the engine's messages) and the helper role "peer" that rows 1 and 5 start.
//
// Hand-off with a hand-made pool (like iceoryx loans): before the timed loop each side allocates
// one block of the payload size, writes it, shares it read-only with the other side, and the other
// side maps and pre-faults it. The timed path is then one ordinary CAF message each way carrying a
// block_ref, plus the touching of the payload on both sides. The same through the library's pool
// (cafshm::pool, two blocks per side, and cafshm::pool_reader): each side loans a block, seals
// it and sends the pool_frame; the other side opens it, touches it and releases it, which sends
// the block back to its pool. That release is one more message to the other process per
// direction, so the hand-made pool is also measured with one small extra message each way
// ("notify"). The plain CAF baseline moves a
// std::vector<char> of the same size both ways through the io middleman (moved, never copied
// outside CAF). The engine path shows what a hand-off costs without a pool: a fresh block,
// transfer of ownership, map/unmap on both sides and the free, all requests to cafshmd; its two
// messages go as a cafshm user's would, through the inbox proxy of client::find_actor (BASP only
// if the fast-path check below failed, and the report says so).
//
// The two processes find each other with the middleman (publish / remote_actor), so the
// hand-made pool's messages ride BASP. The same hand-off also runs through the local fast path:
// the peer publishes its actor at cafshmd, the driving side's client::find_actor answers an
// inbox proxy, and the messages go through the two processes' actor inboxes, read by a thread
// of each client or, with cafshm::polling_scheduler loaded in both processes, by the
// scheduler's workers (parking at once, or spinning first). A fast-path column counts only if
// its handle is an inbox proxy and the client's actor-path counters show one record out and one
// in per round trip; otherwise it is reported as an error.
#include <algorithm>
#include <csignal>
#include <cstring>
#include <functional>
#include <future>
#include <iostream>
#include <memory>
#include <cstdio>
#include <optional>
#include <random>
#include <sstream>
#include <map>
#include <unordered_map>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <xxhash.h>

#include "bench.hpp"
#include "cafshm/client.hpp"
#include "cafshm/config.hpp"
#include "cafshm/module.hpp"
#include "cafshm/polling_scheduler.hpp"
#include "cafshm/pool.hpp"
#include "fastpath/actor_proxy.hpp"
#include "fastpath/actor_transport.hpp"
#include "processes.hpp"

namespace bench {

using namespace cafshm;
using clock_type = std::chrono::steady_clock;

namespace {

using setup_atom = caf::atom_constant<caf::atom("b_setup")>;
using premap_atom = caf::atom_constant<caf::atom("b_premap")>;
using ping_atom = caf::atom_constant<caf::atom("b_ping")>;
using vping_atom = caf::atom_constant<caf::atom("b_vping")>;
using eping_atom = caf::atom_constant<caf::atom("b_eping")>;
using release_atom = caf::atom_constant<caf::atom("b_release")>;
using go_atom = caf::atom_constant<caf::atom("b_go")>;
using lsetup_atom = caf::atom_constant<caf::atom("b_lsetup")>;
using lpremap_atom = caf::atom_constant<caf::atom("b_lpremap")>;
using lping_atom = caf::atom_constant<caf::atom("b_lping")>;
using lrelease_atom = caf::atom_constant<caf::atom("b_lrelease")>;
using notice_atom = caf::atom_constant<caf::atom("b_notice")>;

constexpr auto msg_timeout = std::chrono::seconds(120);

volatile uint64_t sink_value = 0; // keeps the touching from being optimised away

enum class mode : uint8_t {
  touch = 0,
  sum = 1,
  fill = 2,
  caf = 3,
  engine = 4,
  library = 5,
  notify = 6, // touch, and each side sends the other process one small message per round trip
};

// Blocks in each side's library pool: two, so that a loan rarely waits for the block of the
// previous round trip to come back.
constexpr uint32_t library_pool_blocks = 2;

mode parse_mode(const std::string& s) {
  if (s == "sum")
    return mode::sum;
  if (s == "fill")
    return mode::fill;
  if (s == "caf")
    return mode::caf;
  if (s == "engine")
    return mode::engine;
  return mode::touch;
}

// Touch: the first and the last byte. Sum: XXH3 of every byte.
uint64_t consume(const std::byte* p, size_t n, bool sum) {
  if (n == 0)
    return 0;
  if (sum)
    return XXH3_64bits(p, n);
  auto* v = reinterpret_cast<const volatile unsigned char*>(p);
  return uint64_t{v[0]} | (uint64_t{v[n - 1]} << 8);
}

uint64_t prefault(const std::byte* p, size_t n) {
  uint64_t x = 0;
  auto* v = reinterpret_cast<const volatile unsigned char*>(p);
  for (size_t i = 0; i < n; i += 4096)
    x += v[i];
  if (n > 0)
    x += v[n - 1];
  return x;
}

// Who reads a process's actor inbox: a thread of its client (the scheduler of `sched`), or the
// workers of cafshm::polling_scheduler, which park at once (spin_us 0: local.idle park) or spin
// spin_us first (local.idle spin).
struct delivery {
  bool polling = false;
  uint32_t spin_us = 0;

  std::string text() const {
    if (!polling)
      return "receiver thread";
    return spin_us == 0 ? std::string{"polling scheduler, park at once"}
                        : "polling scheduler, spin " + std::to_string(spin_us) + " µs";
  }
};

void configure(caf::actor_system_config& cfg, const sched& s, const delivery& dv = {}) {
  if (dv.polling)
    cfg.load<cafshm::polling_scheduler>(); // scheduler.policy is then ignored
  cfg.load<caf::io::middleman>();
  cfg.load<cafshm::module>();
  cafshm::settings st;
  st.role = cafshm::role::client;
  if (dv.polling) {
    st.local.idle = dv.spin_us == 0 ? local_idle::park : local_idle::spin;
    st.local.spin_us = dv.spin_us;
  }
  cafshm::module::configure(cfg, st);
  cfg.set("scheduler.policy", s.policy == "sharing" ? caf::atom("sharing") : caf::atom("stealing"));
  cfg.set("scheduler.max-threads", static_cast<size_t>(s.threads));
}

caf::actor_system_config& configured(caf::actor_system_config& cfg, const sched& s,
                                     const delivery& dv = {}) {
  configure(cfg, s, dv);
  return cfg;
}

// -- the peer's actor -------------------------------------------------------------------------

struct peer_state {
  client* me = nullptr;
  std::vector<std::pair<block_ref, block_view>> own; // this side's pool blocks (read-write)
  block_ref last_own;
  std::unordered_map<uint32_t, block_view> mapped; // the other side's pool blocks, by index
  std::unordered_map<uint32_t, block_ref> partner; // other side's block -> this side's block
  std::unique_ptr<cafshm::pool_reader> reader;         // the other side's library pools
  std::map<uint64_t, cafshm::pool> library_pools;      // this side's, by block size

  void release() {
    library_pools.clear();
    for (auto& [k, v] : mapped)
      (void) me->unmap(std::move(v));
    mapped.clear();
    partner.clear();
    for (auto& [ref, view] : own) {
      (void) me->unmap(std::move(view));
      (void) me->free(ref);
    }
    own.clear();
    last_own = {};
  }
};

// The peer's blocking work (requests to the engine through client's blocking calls) runs in a
// detached actor of its own: with scheduler.max-threads=1 a blocking call inside a scheduled
// actor would also block CAF's BASP workers, which run on the scheduler's threads and deliver the
// engine's answer, until the request times out.
caf::behavior peer_admin(caf::event_based_actor*, std::shared_ptr<peer_state> st) {
  return {
    // Allocates, writes and shares this side's pool block of `size`.
    [st](setup_atom, uint64_t size, process_id other) -> caf::result<block_ref> {
      auto ref = st->me->allocate(size);
      if (!ref)
        return std::move(ref.error());
      auto view = st->me->map(*ref, access_mode::read_write);
      if (!view)
        return std::move(view.error());
      std::memset(view->data(), 0x5a, view->size());
      if (auto ok = st->me->share(*ref, other, access_mode::read); !ok)
        return std::move(ok.error());
      st->own.emplace_back(*ref, std::move(*view));
      st->last_own = *ref;
      return *ref;
    },
    // Maps and pre-faults the other side's pool block; pairs it with the block of the last setup.
    [st](premap_atom, const block_ref& ref) -> caf::result<uint64_t> {
      auto view = st->me->map(ref, access_mode::read);
      if (!view)
        return std::move(view.error());
      auto x = prefault(view->data(), view->size());
      st->mapped.insert_or_assign(ref.block, std::move(*view));
      st->partner[ref.block] = st->last_own;
      return x;
    },
    // Without a pool: map, touch, unmap, give the block back.
    [st](eping_atom, const block_ref& ref, process_id back) -> caf::result<block_ref> {
      auto view = st->me->map(ref, access_mode::read);
      if (!view)
        return std::move(view.error());
      sink_value = consume(view->data(), view->size(), false);
      auto moved = st->me->transfer(std::move(*view), back); // unmap+transfer: one request
      if (!moved)
        return std::move(moved.error());
      return *moved;
    },
    // Makes this side's library pool of `size`, shared with `other`, and lends every block to
    // the caller once, so that it maps them before the timed loop.
    [st](lsetup_atom, uint64_t size, process_id other) -> caf::result<std::vector<pool_frame>> {
      auto made = cafshm::pool::create(*st->me, {library_pool_blocks, size, {other}});
      if (!made)
        return std::move(made.error());
      std::vector<cafshm::pool::loan> loans;
      while (auto l = made->try_loan())
        loans.push_back(std::move(*l));
      std::vector<pool_frame> frames;
      for (auto& l : loans)
        frames.push_back(made->seal(std::move(l), size, caf::actor{}));
      st->library_pools.insert_or_assign(size, std::move(*made));
      return frames;
    },
    // Maps the caller's library-pool blocks (the views go back at once).
    [st](lpremap_atom, const std::vector<pool_frame>& frames) -> caf::result<uint64_t> {
      for (const auto& f : frames)
        if (auto v = st->reader->open(f); !v)
          return std::move(v.error());
      return uint64_t{frames.size()};
    },
    [st](lrelease_atom) -> uint64_t {
      st->library_pools.clear();
      return 0;
    },
    [st](release_atom) -> uint64_t {
      st->release();
      return 0;
    },
  };
}

// The published actor: the timed hand-off handlers run here, on the scheduler, without any
// blocking call; everything else goes to the admin actor.
caf::behavior peer_front(caf::event_based_actor* self, caf::actor admin,
                         std::shared_ptr<peer_state> st) {
  return {
    // The hand-off: consume the payload in place, hand this side's block back.
    [self, st](ping_atom, uint8_t m, const block_ref& ref) -> caf::result<block_ref> {
      auto i = st->mapped.find(ref.block);
      if (i == st->mapped.end())
        return make_error(errc::invalid_argument, "block not in the pool");
      if (m == uint8_t(mode::notify)) // like a pool_frame's release: before the answer
        caf::anon_send(caf::actor_cast<caf::actor>(self->current_sender()), notice_atom::value);
      sink_value = consume(i->second.data(), i->second.size(), m == uint8_t(mode::sum));
      return st->partner[ref.block];
    },
    // The hand-off through the library pools: touch the frame in place and release it (its
    // block goes back to the caller's pool), answer with a frame of this side's pool.
    [self, st](lping_atom, const pool_frame& f) -> caf::result<pool_frame> {
      auto i = st->library_pools.find(f.length);
      if (i == st->library_pools.end())
        return make_error(errc::invalid_argument, "no library pool of that size");
      auto* own = &i->second;
      auto holder = caf::actor_cast<caf::actor>(self->current_sender());
      auto rp = self->make_response_promise<pool_frame>();
      auto fail = [rp](caf::error& e) mutable { rp.deliver(std::move(e)); };
      st->reader->open(self, f).then(
        [self, own, holder, rp, fail](frame_view&& v) mutable {
          auto b = v.bytes();
          sink_value = consume(b.data(), b.size(), false);
          v.release();
          own->get_loan(self).then(
            [own, holder, rp](cafshm::pool::loan&& l) mutable {
              auto n = l.size();
              rp.deliver(own->seal(std::move(l), n, holder));
            },
            fail);
        },
        fail);
      return rp;
    },
    [](notice_atom) {},
    [](vping_atom, std::vector<char>& v) -> std::vector<char> {
      sink_value = consume(reinterpret_cast<const std::byte*>(v.data()), v.size(), false);
      return std::move(v);
    },
    [self, admin](setup_atom a, uint64_t size, process_id other) {
      return self->delegate(admin, a, size, other);
    },
    [self, admin](premap_atom a, const block_ref& ref) { return self->delegate(admin, a, ref); },
    [self, admin](eping_atom a, const block_ref& ref, process_id back) {
      return self->delegate(admin, a, ref, back);
    },
    [self, admin](release_atom a) { return self->delegate(admin, a); },
    [self, admin](lsetup_atom a, uint64_t size, process_id other) {
      return self->delegate(admin, a, size, other);
    },
    [self, admin](lpremap_atom a, const std::vector<pool_frame>& frames) {
      return self->delegate(admin, a, frames);
    },
    [self, admin](lrelease_atom a) { return self->delegate(admin, a); },
  };
}

// -- the driving side ---------------------------------------------------------------------------

struct pool {
  block_ref mine;
  std::optional<block_view> my_view;
  block_ref theirs;
  std::optional<block_view> their_view;
};

template <class T, class... Ts>
caf::expected<T> ask(caf::actor_system& sys, const caf::actor& whom, Ts&&... xs) {
  caf::scoped_actor self{sys, true};
  caf::expected<T> result{caf::error{}};
  self->request(whom, msg_timeout, std::forward<Ts>(xs)...)
    .receive([&](T& x) { result = std::move(x); }, [&](caf::error& e) { result = std::move(e); });
  return result;
}

caf::expected<pool> make_pool(caf::actor_system& sys, client& me, const caf::actor& peer,
                              process_id peer_process, uint64_t size) {
  pool p;
  auto ref = me.allocate(size);
  if (!ref)
    return ref.error();
  p.mine = *ref;
  auto view = me.map(*ref, access_mode::read_write);
  if (!view)
    return view.error();
  std::memset(view->data(), 0xa5, view->size());
  p.my_view.emplace(std::move(*view));
  if (auto ok = me.share(*ref, peer_process, access_mode::read); !ok)
    return ok.error();
  auto theirs = ask<block_ref>(sys, peer, setup_atom::value, size, me.id());
  if (!theirs)
    return theirs.error();
  p.theirs = *theirs;
  auto tv = me.map(*theirs, access_mode::read);
  if (!tv)
    return tv.error();
  sink_value = prefault(tv->data(), tv->size());
  p.their_view.emplace(std::move(*tv));
  if (auto x = ask<uint64_t>(sys, peer, premap_atom::value, p.mine); !x)
    return x.error();
  return p;
}

// This side's library pool of `size`, shared with the peer, after the peer made its own: each
// side has opened every block of the other's pool once (mapped and pre-faulted it), so that no
// timed round trip maps.
caf::expected<cafshm::pool> make_library_pool(caf::actor_system& sys, client& me,
                                              cafshm::pool_reader& reader,
                                              const caf::actor& peer, process_id peer_process,
                                              uint64_t size) {
  auto mine = cafshm::pool::create(me, {library_pool_blocks, size, {peer_process}});
  if (!mine)
    return mine.error();
  auto theirs = ask<std::vector<pool_frame>>(sys, peer, lsetup_atom::value, size, me.id());
  if (!theirs)
    return theirs.error();
  for (const auto& f : *theirs)
    if (auto v = reader.open(f); !v)
      return v.error();
  std::vector<cafshm::pool::loan> loans;
  while (auto l = mine->try_loan())
    loans.push_back(std::move(*l));
  std::vector<pool_frame> frames;
  for (auto& l : loans)
    frames.push_back(mine->seal(std::move(l), size, peer));
  if (auto x = ask<uint64_t>(sys, peer, lpremap_atom::value, frames); !x)
    return x.error();
  return std::move(*mine);
}

// Releases every pool of both sides.
void release_pools(caf::actor_system& sys, client& me, const caf::actor& peer,
                   std::vector<pool>& pools) {
  (void) ask<uint64_t>(sys, peer, release_atom::value);
  for (auto& p : pools) {
    if (p.their_view)
      (void) me.unmap(std::move(*p.their_view));
    if (p.my_view)
      (void) me.unmap(std::move(*p.my_view));
    p.their_view.reset();
    p.my_view.reset();
    if (p.mine.valid())
      (void) me.free(p.mine);
  }
  pools.clear();
}

struct drive {
  // what to do
  caf::actor peer;
  mode m = mode::touch;
  uint64_t size = 0;
  client* me = nullptr;
  process_id peer_process{};
  pool* p = nullptr;
  cafshm::pool* library = nullptr;        // mode library: this side's pool of the payload size
  cafshm::pool_reader* reader = nullptr;  // mode library: maps the peer's pool blocks
  std::vector<char> vec;
  size_t warmup = 3;
  size_t max_iter = 1000;
  size_t min_iter = 10;
  double budget_s = 1.0;
  // results
  std::vector<double> rtt_us;
  double elapsed_s = 0;
  std::string error;
  // running
  size_t i = 0;
  bool timing = false;
  clock_type::time_point t0, started, deadline;
  std::promise<void> done;
};

void step(caf::event_based_actor* self, std::shared_ptr<drive> d);

void finish(caf::event_based_actor* self, const std::shared_ptr<drive>& d) {
  d->elapsed_s = seconds_since(d->started);
  d->done.set_value();
  self->quit();
}

void failed(caf::event_based_actor* self, const std::shared_ptr<drive>& d, const std::string& e) {
  d->error = e;
  finish(self, d);
}

void record(caf::event_based_actor* self, const std::shared_ptr<drive>& d) {
  auto us = std::chrono::duration<double, std::micro>(clock_type::now() - d->t0).count();
  if (d->timing)
    d->rtt_us.push_back(us);
  ++d->i;
  step(self, d);
}

void step(caf::event_based_actor* self, std::shared_ptr<drive> d) {
  auto now = clock_type::now();
  if (!d->timing && d->i >= d->warmup) {
    d->timing = true;
    d->started = now;
    d->deadline = now + std::chrono::duration_cast<clock_type::duration>(
                          std::chrono::duration<double>(d->budget_s));
  }
  if (d->timing) {
    auto n = d->rtt_us.size();
    if (n >= d->max_iter || (n >= d->min_iter && now >= d->deadline)) {
      finish(self, d);
      return;
    }
  }
  auto on_error = [self, d](caf::error& e) { failed(self, d, self->system().render(e)); };
  d->t0 = clock_type::now();
  switch (d->m) {
    case mode::touch:
    case mode::notify:
    case mode::sum:
    case mode::fill: {
      if (d->m == mode::fill)
        std::memset(d->p->my_view->data(), static_cast<int>(d->i & 0xff), d->p->my_view->size());
      uint8_t peer_mode = d->m == mode::sum || d->m == mode::notify ? uint8_t(d->m)
                                                                    : uint8_t(mode::touch);
      self->request(d->peer, msg_timeout, ping_atom::value, peer_mode, d->p->mine)
        .then(
          [self, d](const block_ref&) {
            if (d->m == mode::notify)
              caf::anon_send(d->peer, notice_atom::value);
            const auto& v = *d->p->their_view;
            sink_value = consume(v.data(), v.size(), d->m == mode::sum);
            record(self, d);
          },
          on_error);
      break;
    }
    case mode::caf: {
      self->request(d->peer, msg_timeout, vping_atom::value, std::move(d->vec))
        .then(
          [self, d](std::vector<char>& v) {
            sink_value = consume(reinterpret_cast<const std::byte*>(v.data()), v.size(), false);
            d->vec = std::move(v);
            record(self, d);
          },
          on_error);
      break;
    }
    case mode::library: {
      d->library->get_loan(self).then(
        [self, d, on_error](cafshm::pool::loan&& l) {
          auto n = l.size();
          auto frame = d->library->seal(std::move(l), n, d->peer);
          self->request(d->peer, msg_timeout, lping_atom::value, std::move(frame))
            .then(
              [self, d, on_error](pool_frame& back) {
                d->reader->open(self, back).then(
                  [self, d](frame_view&& v) {
                    auto b = v.bytes();
                    sink_value = consume(b.data(), b.size(), false);
                    v.release();
                    record(self, d);
                  },
                  on_error);
              },
              on_error);
        },
        on_error);
      break;
    }
    case mode::engine: {
      auto* me = d->me;
      auto view = me->allocate_and_map(d->size); // allocate+map: one request
      if (!view)
        return failed(self, d, describe(view.error()));
      view->data()[0] = std::byte(d->i);
      view->data()[view->size() - 1] = std::byte(d->i);
      auto moved = me->transfer(std::move(*view), d->peer_process);
      if (!moved)
        return failed(self, d, describe(moved.error()));
      self->request(d->peer, msg_timeout, eping_atom::value, *moved, me->id())
        .then(
          [self, d](const block_ref& back) {
            auto* me = d->me;
            auto v = me->map(back, access_mode::read);
            if (!v)
              return failed(self, d, describe(v.error()));
            sink_value = consume(v->data(), v->size(), false);
            if (auto ok = me->free(std::move(*v)); !ok) // unmap+free: one request
              return failed(self, d, describe(ok.error()));
            record(self, d);
          },
          on_error);
      break;
    }
  }
}

std::shared_ptr<drive> run_drive(caf::actor_system& sys, std::shared_ptr<drive> d) {
  auto fut = d->done.get_future();
  auto body = [d](caf::event_based_actor* self) -> caf::behavior {
    self->send(self, go_atom::value);
    return {[self, d](go_atom) { step(self, d); }, [](notice_atom) {}};
  };
  // The no-pool path makes blocking client calls: in a detached actor (see peer_admin).
  if (d->m == mode::engine)
    sys.spawn<caf::detached>(body);
  else
    sys.spawn(body);
  fut.wait();
  return d;
}

// One process's side of row 1: an actor system with the given scheduler, a client of cafshmd
// and a peer process (the same program, --role peer) with the same scheduler.
struct session {
  caf::actor_system_config cfg;
  caf::actor_system sys;
  std::optional<client> me;
  std::unique_ptr<cafshm::pool_reader> reader; // the peer's library pools
  std::unique_ptr<child_process> peer_proc;
  caf::actor peer; // through the middleman: a BASP proxy
  process_id peer_process{};
  delivery how;
  std::string published; // the peer actor's name at the engine
  caf::actor fast;       // after find_fast(): the same actor through client::find_actor
  std::string peer_reader; // who reads the peer's actor inbox, as its ready line says
  std::string error;

  session(const options& opts, const daemon_process& d, const sched& s, const std::string& name,
          const delivery& dv = {})
    : sys(configured(cfg, s, dv)), how(dv), published(name + "-front") {
    auto c = client::connect(sys, endpoint{"127.0.0.1", d.port()}, name);
    if (!c) {
      error = "connect: " + describe(c.error());
      return;
    }
    me.emplace(std::move(*c));
    reader = std::make_unique<cafshm::pool_reader>(*me);
    peer_proc = std::make_unique<child_process>(std::vector<std::string>{
      opts.self, "--role", "peer", "--engine", d.address_text(), "--name", name + "-peer", "--policy",
      s.policy, "--threads", std::to_string(s.threads), "--polling", dv.polling ? "1" : "0",
      "--spin-us", std::to_string(dv.spin_us), "--publish", published});
    auto ready = peer_proc->wait_for_line("ready ", std::chrono::seconds(30));
    if (!ready) {
      error = "the peer did not start";
      return;
    }
    std::istringstream in{*ready};
    int port = 0;
    uint32_t slot = 0;
    in >> port >> slot >> peer_reader;
    peer_process = process_id{slot}; // as the peer printed it in its ready line
    auto h = sys.middleman().remote_actor("127.0.0.1", static_cast<uint16_t>(port));
    if (!h) {
      error = "remote_actor: " + sys.render(h.error());
      return;
    }
    peer = *h;
  }

  // Finds the peer actor through the engine and checks that the handle is an inbox proxy and
  // that both processes' actor inboxes are read as `how` says. Empty on success, else why not.
  std::string find_fast() {
    auto found = me->find_actor(published);
    if (!found)
      return "find_actor: " + describe(found.error());
    auto transport = detail::actors_of(*me);
    if (!transport)
      return "this client has no actor inbox (transport " +
             std::string{me->transport() == local_transport::shm ? "shm" : "basp"} + ")";
    if (!dynamic_cast<fastpath::inbox_actor_proxy*>(
          caf::actor_cast<caf::abstract_actor*>(found->actor)))
      return "find_actor answered no inbox proxy: its messages would ride BASP";
    if (transport->polled() != how.polling)
      return std::string{"the actor inbox is read by "}
             + (transport->polled() ? "the scheduler's workers" : "a thread") + ", not by "
             + (how.polling ? "the polling scheduler's workers" : "a thread");
    if (peer_reader != (how.polling ? "workers" : "thread"))
      return "the peer's actor inbox is read by " + peer_reader + ", not by "
             + (how.polling ? "the polling scheduler's workers" : "a thread");
    fast = found->actor;
    return {};
  }

  // Records this process's proxies wrote and message records delivered from its actor inbox.
  std::pair<uint64_t, uint64_t> fast_counts() const {
    auto transport = detail::actors_of(*me);
    if (!transport)
      return {0, 0};
    return {transport->counters().sent.load(), transport->counters().delivered.load()};
  }

  ~session() {
    fast = nullptr;
    peer = nullptr;
    if (peer_proc) {
      peer_proc->close_stdin();
      if (!peer_proc->wait(std::chrono::seconds(10)))
        peer_proc->kill(SIGKILL);
    }
    reader.reset();
    me.reset();
  }

  std::shared_ptr<drive> make(mode m, uint64_t size, pool* p) {
    auto d = std::make_shared<drive>();
    d->peer = (m == mode::engine && fast) ? fast : peer;
    d->m = m;
    d->size = size;
    d->me = &*me;
    d->peer_process = peer_process;
    d->p = p;
    d->reader = reader.get();
    if (m == mode::caf)
      d->vec.assign(size, 'x');
    return d;
  }
};

// The floor of a copying transport. Source and destination are placed 2 KiB apart modulo 4 KiB:
// glibc's `rep movsb` copy runs ~20x slower on this AMD VM when the destination sits a few bytes
// after the source modulo 4 KiB (4K aliasing), which two equal-sized vectors often do.
stat memcpy_stat(uint64_t size, size_t max_reps, double budget_s) {
  std::vector<char> a(size + 8192, 1), b(size + 8192, 2);
  char* src = a.data() + (4096 - reinterpret_cast<uintptr_t>(a.data()) % 4096);
  char* dst = b.data() + (4096 - reinterpret_cast<uintptr_t>(b.data()) % 4096) + 2048;
  std::memcpy(dst, src, size); // fault in
  std::vector<double> us;
  auto start = clock_type::now();
  for (size_t i = 0; i < max_reps; ++i) {
    auto t0 = clock_type::now();
    std::memcpy(dst, src, size);
    asm volatile("" ::"r"(dst) : "memory");
    us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
    if (i >= 20 && seconds_since(start) > budget_s)
      break;
  }
  sink_value = static_cast<uint64_t>(dst[size / 2]);
  return summarize(us);
}

// Iteration budgets per mode and size.
struct budget {
  size_t max_iter;
  size_t min_iter;
  double seconds;
  size_t warmup;
};

budget budget_for(bool quick, mode m, uint64_t size) {
  size_t warm = size >= (16u << 20) ? 2 : 10;
  switch (m) {
    case mode::touch:
    case mode::library:
    case mode::notify:
      return quick ? budget{400, 20, 0.4, warm} : budget{3000, 50, 2.0, warm};
    case mode::sum:
    case mode::fill:
      return quick ? budget{200, 10, 0.4, warm} : budget{1000, 30, 1.5, warm};
    case mode::caf:
      return quick ? budget{300, 8, 1.5, size >= (16u << 20) ? 1 : warm}
                   : budget{2000, 30, 5.0, warm};
    case mode::engine:
      return quick ? budget{200, 10, 0.5, warm} : budget{1000, 30, 2.0, warm};
  }
  return {100, 10, 1, 2};
}

stat timed(session& s, mode m, uint64_t size, pool* p, const budget& b, std::string& error) {
  auto d = s.make(m, size, p);
  d->warmup = b.warmup;
  d->max_iter = b.max_iter;
  d->min_iter = b.min_iter;
  d->budget_s = b.seconds;
  run_drive(s.sys, d);
  if (!d->error.empty() && error.empty())
    error = d->error;
  return summarize(d->rtt_us);
}

} // namespace

// -- row 1 ----------------------------------------------------------------------------------------

handoff_report run_handoff(const options& opts) {
  handoff_report rep;
  // Room for the pools of every size at once: one block per side (hand-made) in each of the
  // three process pairs and two per side (library) in one, 10 × 81 MiB, and a 64 MiB block of
  // the no-pool path.
  daemon_process d{unique_name("cafshm-bench-h"), engine_options(opts.bin_dir, "1280MiB")};
  if (!d.ready()) {
    rep.error = "cafshmd did not start";
    return rep;
  }
  // Scheduler settings: the same for both transports and both processes.
  std::vector<sched> candidates;
  if (!opts.policy.empty())
    candidates.push_back({opts.policy, opts.threads > 0 ? opts.threads : 1});
  else
    candidates = {{"stealing", 2}, {"sharing", 1}, {"stealing", 1}, {"sharing", 2}};
  double best = 1e300;
  for (const auto& c : candidates) {
    std::cerr << "bench: handoff: scheduler " << c.text() << "\n";
    session s{opts, d, c, unique_name("bench-sched")};
    sched_trial t;
    t.s = c;
    if (!s.error.empty()) {
      rep.error = s.error;
      continue;
    }
    auto p = make_pool(s.sys, *s.me, s.peer, s.peer_process, 64);
    if (!p) {
      rep.error = "pool: " + describe(p.error());
      continue;
    }
    std::vector<pool> pools;
    pools.push_back(std::move(*p));
    budget b = opts.quick ? budget{300, 50, 0.3, 20} : budget{2000, 100, 1.0, 50};
    t.shm = timed(s, mode::touch, 64, &pools[0], b, rep.error);
    t.caf = timed(s, mode::caf, 64, nullptr, b, rep.error);
    budget b1 = opts.quick ? budget{60, 10, 0.3, 5} : budget{300, 30, 1.0, 10};
    t.caf_1m = timed(s, mode::caf, 1u << 20, nullptr, b1, rep.error);
    release_pools(s.sys, *s.me, s.peer, pools);
    double score = t.shm.median + t.caf.median;
    if (!t.shm.empty() && !t.caf.empty() && score < best) {
      best = score;
      rep.chosen = c;
    }
    rep.trials.push_back(t);
  }
  if (best == 1e300)
    return rep;
  std::cerr << "bench: handoff: using " << rep.chosen.text() << "\n";
  session s{opts, d, rep.chosen, unique_name("bench-handoff")};
  if (!s.error.empty()) {
    rep.error = s.error;
    return rep;
  }
  const std::vector<uint64_t> sizes{64, 4u << 10, 64u << 10, 1u << 20, 16u << 20, 64u << 20};
  // Pools for every size at once, so that the cafshm round trips of all sizes can be measured in
  // interleaved rounds: a change of the machine's load during the run then affects every size
  // alike instead of favouring the sizes measured first.
  std::vector<pool> pools;
  for (auto size : sizes) {
    auto p = make_pool(s.sys, *s.me, s.peer, s.peer_process, size);
    if (!p) {
      rep.error = "pool of " + human_size(size) + ": " + describe(p.error());
      release_pools(s.sys, *s.me, s.peer, pools);
      return rep;
    }
    pools.push_back(std::move(*p));
  }
  std::vector<cafshm::pool> library;
  for (auto size : sizes) {
    auto p = make_library_pool(s.sys, *s.me, *s.reader, s.peer, s.peer_process, size);
    if (!p) {
      rep.error = "library pool of " + human_size(size) + ": " + describe(p.error());
      break;
    }
    library.push_back(std::move(*p));
  }
  // The hand-made pool through the local fast path, in three forms: this session's processes
  // (their clients' receiver threads read the actor inboxes), and two more pairs of processes
  // that run cafshm::polling_scheduler with one worker each, as the inbox row does, parking at
  // once or spinning first. The spin is 200 µs: the inbox row measured a 20 µs spin, which ends
  // before the answer comes, 3.5–3.8× slower than parking at once, and a 200 µs spin, which
  // outlasts the round trip, fastest (docs/fastpath.md).
  constexpr uint32_t spin_us = 200;
  rep.fast_spin_us = spin_us;
  const sched polling_sched{"sharing", 1}; // the polling scheduler ignores the policy
  struct fast_lane {
    session* s = nullptr;
    std::vector<pool>* pools = nullptr;
    fast_column col;
  };
  auto park = std::make_unique<session>(opts, d, polling_sched, unique_name("bench-park"),
                                        delivery{true, 0});
  auto spin = std::make_unique<session>(opts, d, polling_sched, unique_name("bench-spin"),
                                        delivery{true, spin_us});
  std::vector<pool> park_pools, spin_pools;
  fast_lane lanes[3] = {{&s, &pools, {}}, {park.get(), &park_pools, {}},
                        {spin.get(), &spin_pools, {}}};
  for (auto& l : lanes) {
    l.col.name = l.s->how.text();
    l.col.scheduler = l.s->how.polling ? "cafshm::polling_scheduler/1" : rep.chosen.text();
    if (!l.s->error.empty()) {
      l.col.error = l.s->error;
      continue;
    }
    if (l.pools != &pools)
      for (auto size : sizes) {
        auto p = make_pool(l.s->sys, *l.s->me, l.s->peer, l.s->peer_process, size);
        if (!p) {
          l.col.error = "pool of " + human_size(size) + ": " + describe(p.error());
          break;
        }
        l.pools->push_back(std::move(*p));
      }
    if (l.col.error.empty())
      l.col.error = l.s->find_fast();
    std::cerr << "bench: handoff: fast path, " << l.col.name << ": "
              << (l.col.error.empty()
                    ? std::string{"client::find_actor gave an inbox proxy, both actor inboxes "
                                  "read by "}
                        + (l.s->how.polling ? "the scheduler's workers" : "the client's thread")
                    : l.col.error)
              << "\n";
  }
  // The BASP hand-made pool (also with one extra message each way), the library pool and the
  // three fast-path forms in the same rounds, in a rotating order.
  std::vector<std::vector<double>> touch(sizes.size()), notify(sizes.size()),
    through_library(sizes.size());
  std::vector<std::vector<double>> fast_samples[3];
  for (auto& f : fast_samples)
    f.resize(sizes.size());
  const int rounds = opts.quick ? 5 : 10;
  std::cerr << "bench: handoff: " << rounds << " interleaved rounds over all sizes\n";
  auto measure_in = [&](session& ss, std::vector<pool>& pp, const caf::actor& whom, mode m,
                        size_t i, std::vector<double>& samples) {
    auto d = ss.make(m, sizes[i], &pp[i]);
    d->peer = whom;
    d->library = m == mode::library ? &library[i] : nullptr;
    d->warmup = 5;
    d->max_iter = opts.quick ? 80 : 300;
    d->min_iter = d->max_iter;
    d->budget_s = 60;
    run_drive(ss.sys, d);
    samples.insert(samples.end(), d->rtt_us.begin(), d->rtt_us.end());
    return d;
  };
  auto measure = [&](mode m, size_t i, std::vector<double>& samples) {
    auto d = measure_in(s, pools, s.peer, m, i, samples);
    if (!d->error.empty() && rep.error.empty())
      rep.error = d->error;
  };
  // Each completed round trip is one request record written to the peer's actor inbox and one
  // answer record delivered from this process's; fewer means some went another way.
  auto measure_fast = [&](fast_lane& l, size_t i, std::vector<double>& samples) {
    if (!l.col.error.empty())
      return;
    auto [sent0, delivered0] = l.s->fast_counts();
    auto d = measure_in(*l.s, *l.pools, l.s->fast, mode::touch, i, samples);
    auto [sent1, delivered1] = l.s->fast_counts();
    l.col.round_trips += d->i;
    l.col.records_sent += sent1 - sent0;
    l.col.records_delivered += delivered1 - delivered0;
    if (!d->error.empty())
      l.col.error = d->error;
    else if (sent1 - sent0 < d->i || delivered1 - delivered0 < d->i)
      l.col.error = "not through the actor inboxes: " + std::to_string(d->i) + " round trips of "
                    + human_size(sizes[i]) + ", " + std::to_string(sent1 - sent0)
                    + " records written, " + std::to_string(delivered1 - delivered0)
                    + " delivered";
  };
  for (int r = 0; r < rounds; ++r)
    for (size_t i = 0; i < sizes.size(); ++i)
      for (int k = 0; k < 6; ++k)
        switch ((r + k) % 6) {
          case 0:
            measure(mode::touch, i, touch[i]);
            break;
          case 1:
            measure(mode::notify, i, notify[i]);
            break;
          case 2:
            if (i < library.size())
              measure(mode::library, i, through_library[i]);
            break;
          default: {
            auto f = static_cast<size_t>((r + k) % 6 - 3);
            measure_fast(lanes[f], i, fast_samples[f][i]);
          }
        }
  for (auto& l : lanes) {
    l.col.verified = l.col.error.empty() && l.col.round_trips > 0;
    std::cerr << "bench: handoff: fast path, " << l.col.name << ": "
              << (l.col.verified ? "verified: " : "NOT verified: ") << l.col.round_trips
              << " round trips, " << l.col.records_sent << " message records written to the "
              << "peer's actor inbox, " << l.col.records_delivered
              << " delivered from this process's" << (l.col.error.empty() ? "" : "; ")
              << l.col.error << "\n";
    rep.fast.push_back(l.col);
  }
  for (auto* l : {&lanes[1], &lanes[2]})
    if (l->s->error.empty())
      release_pools(l->s->sys, *l->s->me, l->s->peer, *l->pools);
  spin.reset();
  park.reset();
  // The library pools are done: their blocks make room for the no-pool path's.
  library.clear();
  (void) ask<uint64_t>(s.sys, s.peer, lrelease_atom::value);
  rep.nopool_path = s.fast ? "the actor inboxes (client::find_actor's inbox proxy)"
                           : "BASP (no verified inbox proxy: " + rep.fast[0].error + ")";
  for (size_t i = 0; i < sizes.size(); ++i) {
    auto size = sizes[i];
    std::cerr << "bench: handoff: " << human_size(size) << "\n";
    handoff_row row;
    row.size = size;
    row.shm = summarize(touch[i]);
    row.shm_library = summarize(through_library[i]);
    row.shm_notify = summarize(notify[i]);
    if (rep.fast[0].verified)
      row.fast_thread = summarize(fast_samples[0][i]);
    if (rep.fast[1].verified)
      row.fast_park = summarize(fast_samples[1][i]);
    if (rep.fast[2].verified)
      row.fast_spin = summarize(fast_samples[2][i]);
    row.shm_sum = timed(s, mode::sum, size, &pools[i], budget_for(opts.quick, mode::sum, size),
                        rep.error);
    row.shm_fill = timed(s, mode::fill, size, &pools[i], budget_for(opts.quick, mode::fill, size),
                         rep.error);
    row.caf = timed(s, mode::caf, size, nullptr, budget_for(opts.quick, mode::caf, size), rep.error);
    row.shm_engine = timed(s, mode::engine, size, nullptr,
                           budget_for(opts.quick, mode::engine, size), rep.error);
    row.memcpy_us = memcpy_stat(size, opts.quick ? 200 : 1000, opts.quick ? 0.3 : 1.0);
    rep.rows.push_back(row);
  }
  release_pools(s.sys, *s.me, s.peer, pools);
  rep.iceoryx = run_iceoryx(opts, sizes);
  return rep;
}

// -- row 3, through the engine ---------------------------------------------------------------------

namespace {

struct lanes {
  client* me = nullptr;
  const workload* w = nullptr;
  std::vector<block_ref> slots;
  size_t count = 0;
  std::vector<size_t> next_op;
  clock_type::time_point deadline;
  size_t pairs = 0;
  size_t active = 0;
  std::string error;
  std::promise<void> done;
};

void lane_step(caf::event_based_actor* self, std::shared_ptr<lanes> c, size_t j) {
  auto k = c->count;
  auto i = c->next_op[j];
  if (i >= c->w->sizes.size() || clock_type::now() >= c->deadline || !c->error.empty()) {
    if (--c->active == 0) {
      c->done.set_value();
      self->quit();
    }
    return;
  }
  c->next_op[j] += k;
  size_t per_lane = c->slots.size() / k;
  size_t slot = j + k * (c->w->victims[i] % per_lane);
  uint64_t size = c->w->sizes[i];
  auto on_error = [self, c, j](caf::error& e) {
    c->error = describe(e);
    lane_step(self, c, j);
  };
  c->me->request(self, free_atom::value, c->slots[slot])
    .then(
      [self, c, j, slot, size, on_error](done_atom) {
        c->me->request(self, allocate_atom::value, size)
          .then(
            [self, c, j, slot](const block_ref& r) {
              c->slots[slot] = r;
              ++c->pairs;
              lane_step(self, c, j);
            },
            on_error);
      },
      on_error);
}

} // namespace

namespace {

// One engine to measure: a cafshmd (its built-in scheduler settings: not configurable) or
// this program in the role engine-host (the same engine and module, with the given scheduler).
std::vector<alloc_rate> alloc_rates_at(caf::actor_system& sys, const endpoint& ep,
                                       const std::string& label, const workload& w, int runs,
                                       double seconds, std::vector<request_rtt>& rtts) {
  std::vector<alloc_rate> result;
  auto c = client::connect(sys, ep, "bench-alloc");
  if (!c)
    return result;
  auto& me = *c;
  // A request round trip: find_process, which only looks a name up. Through the client's
  // blocking call (a new scoped_actor per call), through one long-lived scoped_actor, and from an
  // event-based actor (request, then the next request in the response handler).
  {
    const int n = 300, warm = 20;
    std::vector<double> us;
    // The blocking call over both local transports, interleaved so that both see the same load:
    // `me` as configured (shm: the engine's request inbox), a second client over BASP.
    client_options over_basp;
    over_basp.transport = local_transport::basp;
    auto b = client::connect(sys, ep, "bench-alloc-basp", over_basp);
    std::vector<double> basp_us;
    for (int i = 0; i < n; ++i) {
      auto t0 = clock_type::now();
      if (!me.find_process("bench-alloc"))
        break;
      auto t1 = clock_type::now();
      if (b && !b->find_process("bench-alloc"))
        break;
      if (i >= warm) {
        us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
        if (b)
          basp_us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t1).count());
      }
    }
    rtts.push_back({label + ", client::find_process over "
                      + (me.transport() == local_transport::shm ? "the fast path (shm)" : "BASP"),
                    summarize(us)});
    if (b)
      rtts.push_back({label + ", client::find_process over BASP (scoped_actor per call)",
                      summarize(basp_us)});
    // The same calls back to back, as a program makes them (allocate, map, ...): n with `me`,
    // then n with the BASP client. Between interleaved calls the threads that wait for the fast
    // path's records have parked; back to back they may still be polling.
    auto back_to_back = [&](client& who, std::vector<double>& out) {
      out.clear();
      for (int i = 0; i < n; ++i) {
        auto t0 = clock_type::now();
        if (!who.find_process("bench-alloc"))
          return;
        if (i >= warm)
          out.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
      }
    };
    back_to_back(me, us);
    rtts.push_back({label + ", client::find_process over "
                      + (me.transport() == local_transport::shm ? "the fast path (shm)" : "BASP")
                      + ", back to back",
                    summarize(us)});
    if (b) {
      back_to_back(*b, basp_us);
      rtts.push_back(
        {label + ", client::find_process over BASP (scoped_actor per call), back to back",
         summarize(basp_us)});
    }
    b = caf::error{}; // unregisters
    us.clear();
    {
      caf::scoped_actor self{sys, true};
      for (int i = 0; i < n; ++i) {
        auto t0 = clock_type::now();
        bool ok = false;
        self->request(me.engine(), std::chrono::seconds(10), process_atom::value, me.session(),
                      std::string{"bench-alloc"})
          .receive([&](process_id) { ok = true; }, [&](caf::error&) {});
        if (!ok)
          break;
        if (i >= warm)
          us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
      }
    }
    rtts.push_back({label + ", one reused scoped_actor", summarize(us)});
    // From an event-based actor through client::request(self, ...): with `me` (shm: the engine's
    // request inbox, the answer put into the actor's mailbox by the client's reading thread)
    // and with a client over BASP, one after the other.
    auto event_based = [&](client* mp) {
      auto samples = std::make_shared<std::vector<double>>();
      auto done = std::make_shared<std::promise<void>>();
      auto fut = done->get_future();
      sys.spawn([samples, done, mp, n, warm](caf::event_based_actor* self) -> caf::behavior {
        auto next = std::make_shared<std::function<void(int)>>();
        *next = [self, samples, done, mp, n, warm, next](int i) {
          if (i == n) {
            done->set_value();
            self->quit();
            return;
          }
          auto t0 = clock_type::now();
          mp->request(self, process_atom::value, std::string{"bench-alloc"})
            .then(
              [=](process_id) {
                if (i >= warm)
                  samples->push_back(
                    std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
                (*next)(i + 1);
              },
              [=](caf::error&) { (*next)(n); });
        };
        self->send(self, go_atom::value);
        return {[next](go_atom) { (*next)(0); }};
      });
      fut.wait();
      return summarize(*samples);
    };
    rtts.push_back({label + ", event-based actor over "
                      + (me.transport() == local_transport::shm ? "the fast path (shm)" : "BASP"),
                    event_based(&me)});
    if (auto eb = client::connect(sys, ep, "bench-alloc-basp", over_basp))
      rtts.push_back({label + ", event-based actor over BASP", event_based(&*eb)});
  }
  auto fill_live = [&](std::vector<block_ref>& slots) {
    slots.clear();
    for (auto size : w.initial)
      if (auto r = me.allocate(size))
        slots.push_back(*r);
  };
  auto free_live = [&](std::vector<block_ref>& slots) {
    for (auto& r : slots)
      (void) me.free(r);
    slots.clear();
  };
  // Blocking: one allocate and one free request at a time, as client::allocate/free do.
  {
    std::vector<double> rates;
    for (int run = 0; run < runs; ++run) {
      std::vector<block_ref> slots;
      fill_live(slots);
      auto t0 = clock_type::now();
      size_t pairs = 0;
      for (size_t i = 0; i < w.sizes.size() && !slots.empty(); ++i) {
        auto& slot = slots[w.victims[i] % slots.size()];
        if (!me.free(slot))
          break;
        auto r = me.allocate(w.sizes[i]);
        if (!r)
          break;
        slot = *r;
        ++pairs;
        if ((i & 15) == 0 && seconds_since(t0) > seconds)
          break;
      }
      rates.push_back(pairs / seconds_since(t0));
      free_live(slots);
    }
    result.push_back({label + ", blocking client calls",
                      "client::free + client::allocate: two request round trips per pair",
                      summarize(rates)});
  }
  // Pipelined: 16 lanes of async requests from one event-based actor.
  {
    std::vector<double> rates;
    const size_t k = 16;
    for (int run = 0; run < runs; ++run) {
      auto ctx = std::make_shared<lanes>();
      ctx->me = &me;
      ctx->w = &w;
      fill_live(ctx->slots);
      ctx->count = k;
      ctx->active = k;
      for (size_t j = 0; j < k; ++j)
        ctx->next_op.push_back(j);
      auto fut = ctx->done.get_future();
      auto t0 = clock_type::now();
      ctx->deadline = t0 + std::chrono::duration_cast<clock_type::duration>(
                             std::chrono::duration<double>(seconds));
      sys.spawn([ctx, k](caf::event_based_actor* self) -> caf::behavior {
        self->send(self, go_atom::value);
        return {[self, ctx, k](go_atom) {
          for (size_t j = 0; j < k; ++j)
            lane_step(self, ctx, j);
        }};
      });
      fut.wait();
      rates.push_back(ctx->pairs / seconds_since(t0));
      free_live(ctx->slots);
    }
    result.push_back({label + ", 16 requests in flight",
                      "client::request from one event-based actor, 16 free->allocate chains",
                      summarize(rates)});
  }
  return result;
}

} // namespace

std::vector<alloc_rate> engine_alloc_rates(const options& opts, const sched& s, const workload& w,
                                           int runs, double seconds,
                                           std::vector<request_rtt>& rtts) {
  std::vector<alloc_rate> result;
  caf::actor_system_config cfg;
  caf::actor_system sys{configured(cfg, s)};
  {
    daemon_process d{unique_name("cafshm-bench-a"), engine_options(opts.bin_dir, "256MiB")};
    if (d.ready()) {
      auto r = alloc_rates_at(sys, endpoint{"127.0.0.1", d.port()}, "cafshmd", w, runs, seconds,
                              rtts);
      result.insert(result.end(), r.begin(), r.end());
    }
  }
  {
    auto name = unique_name("cafshm-bench-eh");
    child_process host{{opts.self, "--role", "engine-host", "--name", name, "--policy", s.policy,
                "--threads", std::to_string(s.threads)}};
    if (auto rest = host.wait_for_line("cafshmd listening on ", std::chrono::seconds(30))) {
      auto port = static_cast<uint16_t>(std::stoi(rest->substr(rest->rfind(':') + 1)));
      auto r = alloc_rates_at(sys, endpoint{"127.0.0.1", port}, "engine with " + s.text(), w,
                              runs, seconds, rtts);
      result.insert(result.end(), r.begin(), r.end());
    }
    host.close_stdin();
    if (!host.wait(std::chrono::seconds(20)))
      host.kill(SIGKILL);
  }
  return result;
}

// -- helper role "engine-host" --------------------------------------------------------------------

// The engine as cafshmd runs it (module in engine role, published through the middleman), but
// with the scheduler of --policy/--threads. Prints "cafshmd listening on HOST:PORT", serves until
// stdin closes.
int role_engine_host(const std::map<std::string, std::string>& args) {
  auto get = [&](const std::string& k, const std::string& def = {}) {
    auto i = args.find(k);
    return i == args.end() ? def : i->second;
  };
  sched s{get("--policy", "sharing"), std::stoi(get("--threads", "1"))};
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  cfg.load<cafshm::module>();
  cafshm::settings st;
  st.role = cafshm::role::engine;
  st.engine.name = get("--name", "cafshm-bench-eh");
  st.engine.arena_bytes = 256ull << 20;
  st.engine.max_blocks = 8192;
  st.engine.max_grants = 4096;
  st.engine.listen = {"127.0.0.1", 0};
  cafshm::module::configure(cfg, st);
  cfg.set("scheduler.policy", s.policy == "sharing" ? caf::atom("sharing") : caf::atom("stealing"));
  cfg.set("scheduler.max-threads", static_cast<size_t>(s.threads));
  caf::actor_system sys{cfg};
  auto engine = cafshm::local_engine(sys);
  if (!engine) {
    std::cerr << "engine-host: " << describe(engine.error()) << "\n";
    return 1;
  }
  auto port = sys.middleman().publish(*engine, 0, "127.0.0.1", true);
  if (!port)
    return 1;
  std::cout << "cafshmd listening on 127.0.0.1:" << *port << std::endl;
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  sys.middleman().unpublish(*engine, *port);
  return 0;
}

// -- helper role "peer" ---------------------------------------------------------------------------

// Registers with the engine, publishes the peer actor (through the middleman, and with
// --publish NAME also at the engine) and prints "ready PORT SLOT READER", READER saying who
// reads its actor inbox (workers, thread, none). --polling 1 loads
// cafshm::polling_scheduler, --spin-us N makes its workers spin N µs before parking. Then reads
// commands on stdin (for the scale row) until EOF:
//   pair PORT SLOT          connect to another peer's actor
//   prepare MODE SIZE       MODE touch|engine: make the pool with the paired peer;
//                           alloc: allocate the live set of the allocation workload
//   run SECONDS             run the prepared thing; prints "result n=N seconds=S median=M p99=P"
//   release                 undo prepare
int role_peer(const std::map<std::string, std::string>& args) {
  auto get = [&](const std::string& k, const std::string& def = {}) {
    auto i = args.find(k);
    return i == args.end() ? def : i->second;
  };
  sched s{get("--policy", "sharing"), std::stoi(get("--threads", "1"))};
  delivery dv{get("--polling", "0") == "1",
              static_cast<uint32_t>(std::stoul(get("--spin-us", "0")))};
  caf::actor_system_config cfg;
  caf::actor_system sys{configured(cfg, s, dv)};
  auto engine = parse_endpoint(get("--engine"));
  if (!engine) {
    std::fprintf(stderr, "bench peer: --engine HOST:PORT expected\n");
    return 2;
  }
  auto c = client::connect(sys, *engine, get("--name", "bench-peer"));
  if (!c) {
    std::cerr << "peer: " << describe(c.error()) << "\n";
    return 1;
  }
  auto st = std::make_shared<peer_state>();
  st->me = &*c;
  st->reader = std::make_unique<cafshm::pool_reader>(*c);
  auto admin = sys.spawn<caf::detached>(peer_admin, st);
  auto handler = sys.spawn(peer_front, admin, st);
  auto port = sys.middleman().publish(handler, 0, "127.0.0.1");
  if (!port) {
    std::cerr << "peer: cannot publish: " << sys.render(port.error()) << "\n";
    return 1;
  }
  // Also at the engine, for client::find_actor (the local fast path).
  if (auto name = get("--publish"); !name.empty())
    if (auto ok = c->publish(handler, name); !ok) {
      std::cerr << "peer: cannot publish at the engine: " << describe(ok.error()) << "\n";
      return 1;
    }
  // Who reads this process's actor inbox: the polling scheduler's workers, a thread, or no one
  // (no actor inbox: messages to it ride BASP).
  auto actors = detail::actors_of(*c);
  const char* reader = !actors ? "none" : actors->polled() ? "workers" : "thread";
  std::cout << "ready " << *port << " " << to_slot(c->id()) << " " << reader
            << std::endl; // the process as text
  caf::actor other;
  process_id other_process{};
  std::vector<pool> pools; // at most one
  mode m = mode::touch;
  bool allocating = false;
  uint64_t size = 0;
  std::vector<block_ref> live;
  workload w;
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in{line};
    std::string cmd;
    in >> cmd;
    if (cmd == "pair") {
      int port2 = 0;
      uint32_t slot = 0;
      in >> port2 >> slot;
      other_process = process_id{slot};
      auto h = sys.middleman().remote_actor("127.0.0.1", static_cast<uint16_t>(port2));
      if (!h) {
        std::cout << "error remote_actor " << sys.render(h.error()) << std::endl;
        continue;
      }
      other = *h;
      std::cout << "paired" << std::endl;
    } else if (cmd == "prepare") {
      std::string what;
      in >> what >> size;
      allocating = what == "alloc";
      m = parse_mode(what);
      if (allocating) {
        w = make_workload(static_cast<uint64_t>(::getpid()), 32, 2'000'000, 64, 64u << 10);
        live.clear();
        for (auto sz : w.initial)
          if (auto r = c->allocate(sz))
            live.push_back(*r);
        std::cout << "prepared" << std::endl;
      } else if (m == mode::touch) {
        auto made = make_pool(sys, *c, other, other_process, size);
        if (!made) {
          std::cout << "error pool " << describe(made.error()) << std::endl;
          continue;
        }
        pools.push_back(std::move(*made));
        std::cout << "prepared" << std::endl;
      } else {
        std::cout << "prepared" << std::endl;
      }
    } else if (cmd == "run") {
      double seconds = 1;
      in >> seconds;
      if (allocating) {
        auto t0 = clock_type::now();
        size_t pairs = 0;
        for (size_t i = 0; i < w.sizes.size() && !live.empty(); ++i) {
          auto& slot = live[w.victims[i] % live.size()];
          if (!c->free(slot))
            break;
          auto r = c->allocate(w.sizes[i]);
          if (!r)
            break;
          slot = *r;
          ++pairs;
          if ((i & 15) == 0 && seconds_since(t0) > seconds)
            break;
        }
        auto el = seconds_since(t0);
        std::cout << "result n=" << pairs << " seconds=" << el << " median=0 p99=0" << std::endl;
        continue;
      }
      auto d = std::make_shared<drive>();
      d->peer = other;
      d->m = m;
      d->size = size;
      d->me = &*c;
      d->peer_process = other_process;
      d->p = pools.empty() ? nullptr : &pools[0];
      d->warmup = 10;
      d->max_iter = 100'000'000;
      d->min_iter = 1;
      d->budget_s = seconds;
      run_drive(sys, d);
      auto stt = summarize(d->rtt_us);
      std::cout << "result n=" << d->rtt_us.size() << " seconds=" << d->elapsed_s
                << " median=" << stt.median << " p99=" << stt.p99;
      if (!d->error.empty())
        std::cout << " error=" << d->error;
      std::cout << std::endl;
      // all samples, for the pooled percentiles
      std::cout << "samples";
      for (auto x : d->rtt_us)
        std::cout << ' ' << x;
      std::cout << std::endl;
    } else if (cmd == "release") {
      if (!pools.empty())
        release_pools(sys, *c, other, pools);
      for (auto& r : live)
        (void) c->free(r);
      live.clear();
      std::cout << "released" << std::endl;
    } else if (cmd == "quit") {
      break;
    }
  }
  other = nullptr;
  st->release();
  st->reader.reset();
  caf::anon_send_exit(handler, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(admin, caf::exit_reason::user_shutdown);
  return 0;
}

} // namespace bench
