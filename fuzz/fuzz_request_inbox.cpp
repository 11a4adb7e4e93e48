// Fuzz target: the engine's request inbox (plugin/src/engine/request_relay.cpp, record layout in
// plugin/src/fastpath/request_record.hpp) as any local process that may open it can fill it. An
// engine actor runs in this process (cafshm::module, engine role, local.transport: shm) with its
// relay thread reading "<engine>.inbox-0"; three processes register with it for each input and
// get reply inboxes, which this harness reads itself. Each input is a sequence of records written
// into the engine's inbox through inbox_writer, each with a sender slot of the input's choice:
//   - raw payloads (any bytes), and request headers over raw bodies;
//   - well-formed requests of every kind the relay carries and of kinds it must refuse
//     (unregister, register, reattach, door), with honest sessions, sessions of
//     other processes than the record's sender, forged tokens and random sessions; refs the engine
//     answered with and forged ones (engine id, index, generation, size); sizes, offsets, ranges,
//     names, slots, access modes and argument lists of the wrong shape;
//   - well-formed requests damaged afterwards (bytes changed, cut short, extended).
// Properties, after each input (once every record was taken and every answer arrived):
//   - every record was either refused or handed on, and every handed-on request answered exactly
//     once, into the reply inbox of the record's sender, or counted as lost;
//   - an answer carries the request id of a record its slot sent (never one of another slot);
//   - a request whose session is not the sender's own never succeeds; one the relay must not
//     carry is never answered;
//   - an allocation answered with a ref has the engine's id and the asked size;
//   - memory_manager::check() is "" (allocator invariants, exact accounting in admin memory);
//   - this process's peak memory stays below 2 GiB (decoding a record allocates no more than
//     the record's size);
// and after the processes are unregistered and the engine's named blocks freed: no block, name,
// grant or process is left, and check() is "" again.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/scoped_actor.hpp>

#include "admin_layout.hpp"
#include "cafshm/client.hpp"
#include "cafshm/engine.hpp"
#include "cafshm/module.hpp"
#include "fastpath/inbox.hpp"
#include "fastpath/inbox_writer.hpp"
#include "fastpath/record_deserializer.hpp"
#include "fastpath/request_record.hpp"
#include "fuzz_input.hpp"
#include "memory_manager.hpp"
#include "support/stale_segments.hpp"

using namespace cafshm;
using namespace std::chrono_literals;
using cafshm::fuzz::input;
using cafshm::fuzz::violation;

namespace {

constexpr uint64_t arena_bytes = 1 << 20;
constexpr uint64_t request_inbox_bytes = 64 << 10;
constexpr uint64_t reply_inbox_bytes = 8 << 10; // small: answers too large for it, a full one
constexpr int processes = 3;
constexpr int max_records = 48;
constexpr long max_peak_kib = 2 << 20; // far above a run's need (ASan included), far below 4 GiB
constexpr uint64_t fresh_prefix = 0xf022; // top 16 bits of the ids of the harness's requests

// Peak resident memory of this process (VmHWM), in KiB.
long peak_rss_kib() {
  std::ifstream status{"/proc/self/status"};
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0)
      return std::stol(line.substr(6));
  return 0;
}

// One engine in this process, created for the first input and kept. Never destroyed: the
// fuzzer ends with exit().
struct world {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  engine_actor engine;
  std::shared_ptr<memory_manager> mm;
  std::unique_ptr<caf::scoped_actor> self;
  std::string name;
  std::map<uint32_t, fastpath::inbox_writer> writers; // into the engine's inbox, by sender slot

  world() {
    cfg.load<cafshm::module>();
    cfg.set("scheduler.policy", caf::atom("sharing"));
    cfg.set("scheduler.max-threads", size_t{1});
    settings s;
    name = "cafshm-fuzz-reqinbox-" + std::to_string(::getpid());
    s.engine.name = name;
    s.engine.arena_bytes = arena_bytes;
    s.engine.max_blocks = 64;
    s.engine.liveness_interval = std::chrono::hours(1); // nothing runs between requests
    s.local.transport = local_transport::shm;
    s.local.request_inbox_bytes = request_inbox_bytes;
    s.local.reply_inbox_bytes = reply_inbox_bytes;
    module::configure(cfg, s);
    sys = std::make_unique<caf::actor_system>(cfg);
    auto e = local_engine(*sys);
    if (!e)
      violation("no engine: " + describe(e.error()));
    engine = *e;
    mm = module::of(*sys)->memory();
    self = std::make_unique<caf::scoped_actor>(*sys, true);
    // The fuzzer ends with exit(), never through the engine's shutdown: its segments, door and
    // inboxes go here (scripts/fuzz.sh and the stale-segment sweep cover a killed run).
    static std::string segments;
    segments = name;
    std::atexit([] { remove_engine_objects(segments); });
  }

  static void remove_engine_objects(const std::string& engine) {
    memory_manager::remove_segments(engine);
    ::shm_unlink(("/" + engine + ".inbox-0").c_str());
    ::unlink(("/dev/shm/" + engine + ".sock").c_str()); // the door (engine.socket's default)
  }

  template <class R, class... Ts>
  caf::expected<R> ask(Ts&&... xs) {
    caf::expected<R> result{caf::error{}};
    (*self)->request(engine, 10s, std::forward<Ts>(xs)...)
      .receive([&](R& r) { result = std::move(r); },
               [&](caf::error& e) { result = std::move(e); });
    return result;
  }

  engine_stats stats() { // unauthenticated form over BASP: counters only
    auto st = ask<engine_stats>(stats_atom::value);
    if (!st)
      violation("stats failed: " + describe(st.error()));
    return std::move(*st);
  }

  engine_stats full_stats() {
    auto st = ask<engine_stats>(stats_atom::value, mm->engine_session());
    if (!st)
      violation("stats failed: " + describe(st.error()));
    return std::move(*st);
  }

  fastpath::inbox_writer& writer(uint32_t slot) {
    if (auto i = writers.find(slot); i != writers.end())
      return i->second;
    if (writers.size() > 32)
      writers.clear();
    auto w = fastpath::inbox_writer::open(fastpath::inbox::segment_name(name, admin::engine_slot),
                                          slot);
    if (!w)
      violation("cannot open the engine's inbox: " + describe(w.error()));
    return writers.emplace(slot, std::move(*w)).first->second;
  }
};

world& the_world() {
  static world* w = new world;
  return *w;
}

struct proc {
  std::optional<client> c;
  session s;
  std::optional<fastpath::inbox> replies;
  uint64_t instance = 0;
};

// What the harness knows about one record it wrote.
struct record {
  uint32_t sender = 0;
  bool own_session = false;   // a well-formed request with its sender's own, honest session
  bool foreign = false;       // well-formed, with a session that is not its sender's own
  bool carried = true;        // false: a well-formed request of a kind the relay must refuse
  caf::atom_value kind = caf::atom("");
  uint64_t size = 0;          // allocate: the size asked for
  int answers = 0;
};

class harness {
public:
  harness(input& in, world& w) : in_(in), w_(w) {}

  void run() {
    register_processes();
    base_ = w_.stats();
    for (int n = 0; n < max_records && !in_.empty(); ++n) {
      write_one();
      if (in_.byte() & 1) // wait for the answers: later records may use the refs they hold
        settle();
    }
    settle();
    if (std::getenv("CAFSHM_FUZZ_VERBOSE") != nullptr) {
      auto st = w_.stats();
      std::fprintf(stderr, "records %llu, handed on %llu, refused %llu, answers %llu (%d ok), "
                   "lost %llu, rejected %llu\n",
                   static_cast<unsigned long long>(written_),
                   static_cast<unsigned long long>(st.inbox_requests - base_.inbox_requests),
                   static_cast<unsigned long long>(st.inbox_refused - base_.inbox_refused),
                   static_cast<unsigned long long>(answers_), successes_,
                   static_cast<unsigned long long>(st.inbox_replies_lost
                                                   - base_.inbox_replies_lost),
                   static_cast<unsigned long long>(st.rejected - base_.rejected));
    }
    verify_memory("after the records");
    cleanup();
  }

private:
  // -- processes ------------------------------------------------------------------------------

  void register_processes() {
    for (int i = 0; i < processes; ++i) {
      auto c = client::connect(*w_.sys, "p" + std::to_string(i));
      if (!c)
        violation("cannot register: " + describe(c.error()));
      auto& p = procs_[i];
      p.s = c->session();
      auto reg = c->info();
      if (reg.inbox_engine != w_.name)
        violation("the engine offered no request inbox to a process of this host");
      fastpath::inbox_options opts;
      opts.capacity = reg.reply_inbox_bytes;
      auto in = fastpath::inbox::create(reg.inbox_engine, to_slot(p.s.process), opts);
      if (!in)
        violation("cannot create a reply inbox: " + describe(in.error()));
      p.replies.emplace(std::move(*in));
      p.instance = p.replies->control().instance;
      p.c.emplace(std::move(*c));
    }
  }

  // Records carry the sender's slot as a raw uint32_t (inbox_layout.hpp); sessions a process_id.
  proc* proc_of(uint32_t slot) {
    for (auto& p : procs_)
      if (to_slot(p.s.process) == slot)
        return &p;
    return nullptr;
  }

  // -- choosing -------------------------------------------------------------------------------

  uint32_t pick_sender() {
    auto sel = in_.byte();
    if (sel < 200)
      return to_slot(procs_[sel % processes].s.process);
    if (sel < 215)
      return admin::engine_slot;
    if (sel < 240)
      return static_cast<uint32_t>(in_.below(16));
    return in_.u32();
  }

  // The session a request claims; sets own/foreign for the record.
  session pick_session(record& r) {
    auto* sender = proc_of(r.sender);
    auto sel = in_.byte();
    session s;
    if (sel < 150 && sender != nullptr) {
      s = sender->s;
    } else if (sel < 190) { // another process's real session
      s = procs_[in_.below(processes)].s;
    } else if (sel < 230) { // the sender's slot, a forged token
      s = session{process_id{r.sender}, in_.u64()};
      if (sender != nullptr && s.token == sender->s.token)
        s.token ^= 1;
    } else if (sel < 245) {
      s = w_.mm->engine_session();
    } else {
      s = session{process_id{in_.u32()}, in_.u64()};
    }
    r.own_session = sender != nullptr && s == sender->s;
    r.foreign = !r.own_session;
    return s;
  }

  process_id pick_process() {
    auto sel = in_.byte();
    if (sel < 180)
      return procs_[sel % processes].s.process;
    if (sel < 220)
      return process_id::engine;
    return process_id{in_.u32()};
  }

  uint64_t pick_size() {
    switch (in_.byte() % 7) {
      case 0: return 0;
      case 1: return 1 + in_.below(4096);
      case 2: return 4096 * (1 + in_.below(16));
      case 3: return 1 + in_.below(arena_bytes);
      case 4: return arena_bytes + in_.below(2);
      case 5: return in_.u64();
      default: return 1 + in_.below(300);
    }
  }

  block_ref pick_ref() {
    block_ref r{w_.mm->engine_id(), 0, 0, 4096};
    if (!refs_.empty())
      r = refs_[in_.below(refs_.size())];
    auto sel = in_.byte();
    if (sel < 150)
      return r;
    switch (sel % 6) {
      case 0: r.engine ^= uint64_t{1} << in_.below(64); break;
      case 1: r.block = static_cast<uint32_t>(in_.below(70)); break;
      case 2: r.generation += static_cast<uint32_t>(in_.byte()) - 128u; break;
      case 3: r.size = in_.flag() ? r.size + 1 : r.size - 1; break;
      case 4: r.size = in_.u64(); break;
      default: r = block_ref{in_.u64(), in_.u32(), in_.u32(), in_.u64()};
    }
    return r;
  }

  std::string pick_name() {
    switch (in_.byte() % 5) {
      case 0: return "";
      case 1: case 2: return "n" + std::to_string(in_.below(3));
      case 3: return std::string(80, 'x');
      default: return in_.text(12);
    }
  }

  // -- records --------------------------------------------------------------------------------

  std::vector<char> header(uint64_t id, uint64_t instance) {
    std::vector<char> buf(fastpath::request_header_bytes, 0);
    fastpath::store_u64(reinterpret_cast<std::byte*>(buf.data()), id);
    fastpath::store_u64(reinterpret_cast<std::byte*>(buf.data()) + 8, instance);
    return buf;
  }

  uint64_t fresh_id() {
    return (fresh_prefix << 48) + ++next_id_;
  }

  // A request message of the input's choice; sets the record's kind and shape flags.
  caf::message pick_request(record& r) {
    auto s = pick_session(r);
    auto kind = in_.byte() % 24;
    switch (kind) {
      case 0: {
        r.kind = allocate_atom::value;
        r.size = pick_size();
        return caf::make_message(allocate_atom::value, s, r.size);
      }
      case 1: r.kind = free_atom::value; return caf::make_message(free_atom::value, s, pick_ref());
      case 2: {
        r.kind = write_atom::value;
        auto ref = pick_ref();
        auto offset = in_.flag() ? in_.below(ref.size + 1) : in_.u64();
        std::vector<char> bytes(in_.below(in_.flag() ? 64 : 20000), 'w');
        return caf::make_message(write_atom::value, s, ref, offset, std::move(bytes));
      }
      case 3: {
        r.kind = read_atom::value;
        auto ref = pick_ref();
        auto offset = in_.flag() ? in_.below(ref.size + 1) : in_.u64();
        auto length = in_.flag() ? in_.below(ref.size + 1) : in_.u64();
        return caf::make_message(read_atom::value, s, ref, offset, length);
      }
      case 4: {
        r.kind = copy_atom::value;
        std::vector<copy_range> ranges(in_.below(5));
        for (auto& cr : ranges)
          cr = copy_range{in_.below(8192), in_.below(8192), in_.flag() ? in_.u64() : in_.below(8192)};
        auto src = pick_ref();
        auto dst = pick_ref();
        return caf::make_message(copy_atom::value, s, src, dst, std::move(ranges));
      }
      case 5: {
        r.kind = share_atom::value;
        auto mode = static_cast<access_mode>(in_.flag() ? 1 + in_.below(2) : in_.byte());
        auto ref = pick_ref();
        auto to = pick_process();
        return caf::make_message(share_atom::value, s, ref, to, mode);
      }
      case 6: {
        r.kind = revoke_atom::value;
        auto ref = pick_ref();
        return caf::make_message(revoke_atom::value, s, ref, pick_process());
      }
      case 7: {
        r.kind = transfer_atom::value;
        auto ref = pick_ref();
        return caf::make_message(transfer_atom::value, s, ref, pick_process());
      }
      case 8: {
        r.kind = name_atom::value;
        auto ref = pick_ref();
        return caf::make_message(name_atom::value, s, ref, pick_name());
      }
      case 9: r.kind = lookup_atom::value; return caf::make_message(lookup_atom::value, s, pick_name());
      case 10: r.kind = remove_atom::value; return caf::make_message(remove_atom::value, s, pick_name());
      case 11: {
        r.kind = map_atom::value;
        auto ref = pick_ref();
        auto mode = static_cast<access_mode>(in_.flag() ? 1 + in_.below(2) : in_.byte());
        return caf::make_message(map_atom::value, s, ref, mode);
      }
      case 12: r.kind = unmap_atom::value; return caf::make_message(unmap_atom::value, s, pick_ref());
      case 13: r.kind = process_atom::value; return caf::make_message(process_atom::value, s, pick_name());
      case 14: r.kind = stats_atom::value; return caf::make_message(stats_atom::value, s);
      case 15: // link only with a session that is not the sender's: nothing is dialled
        r.kind = link_atom::value;
        if (r.own_session) {
          s.token ^= 0x5a5a;
          r.own_session = false;
          r.foreign = true;
        }
        return caf::make_message(link_atom::value, s, std::string{"127.0.0.1"}, uint16_t{1});
      case 16: // a carried kind with arguments of the wrong shape
        r.kind = allocate_atom::value;
        r.size = 0;
        return caf::make_message(allocate_atom::value, s, pick_name());
      case 17: r.kind = stats_atom::value; return caf::make_message(stats_atom::value);
      // kinds the relay must refuse
      case 18: r.carried = false; return caf::make_message(unregister_atom::value, s);
      case 19: {
        r.carried = false;
        auto name = pick_name();
        return caf::make_message(register_atom::value, name, in_.u64(), door_ticket{},
                                 protocol_version);
      }
      case 20:
        r.carried = false;
        return caf::make_message(reattach_atom::value, s, w_.mm->engine_id(), door_ticket{},
                                 protocol_version);
      case 21: { // carried; only with a session that is not the sender's: the engine refuses
                 // it before dialling anything
        r.kind = transmit_atom::value;
        if (r.own_session) {
          s.token ^= 0xa5a5;
          r.own_session = false;
          r.foreign = true;
        }
        auto ref = pick_ref();
        return caf::make_message(transmit_atom::value, s, ref, std::string{"127.0.0.1:1"},
                                 transmit_target{});
      }
      case 22:
        r.kind = unpublish_atom::value;
        return caf::make_message(unpublish_atom::value, s, pick_name());
      default: // the compound requests, or a kind the relay must refuse
        switch (in_.byte() % 5) {
          case 0:
            r.kind = allocate_map_atom::value;
            r.size = 1 + in_.below(1 << 16);
            return caf::make_message(allocate_map_atom::value, s, r.size);
          case 1:
            r.kind = unmap_transfer_atom::value;
            return caf::make_message(unmap_transfer_atom::value, s, pick_ref(), pick_process());
          case 2:
            r.kind = unmap_free_atom::value;
            return caf::make_message(unmap_free_atom::value, s, pick_ref());
          case 3: {
            r.kind = map_many_atom::value;
            std::vector<block_ref> refs(in_.below(max_map_many + 3)); // a few too many, too
            for (auto& ref : refs)
              ref = pick_ref();
            auto mode = static_cast<access_mode>(in_.byte() % 4);
            return caf::make_message(map_many_atom::value, s, std::move(refs), mode);
          }
          default: r.carried = false; return caf::make_message(door_atom::value);
        }
    }
  }

  void write_one() {
    record r;
    r.sender = pick_sender();
    auto* sender = proc_of(r.sender);
    auto mode = in_.byte() % 8;
    std::vector<char> payload;
    uint64_t id = 0;
    if (mode == 0) { // anything at all
      auto raw = in_.text(300);
      payload.assign(raw.begin(), raw.end());
      r.foreign = true; // a session in it could only be guessed
      if (payload.size() >= 8) {
        std::memcpy(&id, payload.data(), 8);
        if (id >> 48 == fresh_prefix) { // never the id of a well-formed record
          id ^= uint64_t{1} << 48;
          std::memcpy(payload.data(), &id, 8);
        }
      }
    } else if (mode == 1) { // a header over any bytes
      id = fresh_id();
      payload = header(id, sender != nullptr && in_.flag() ? sender->instance : in_.u64());
      auto raw = in_.text(300);
      payload.insert(payload.end(), raw.begin(), raw.end());
      r.foreign = true;
    } else {
      id = fresh_id();
      auto instance = sender != nullptr && in_.byte() < 230 ? sender->instance : in_.u64();
      payload = header(id, instance);
      auto msg = pick_request(r);
      caf::binary_serializer sink{*w_.sys, payload};
      if (auto err = sink(msg))
        violation("cannot serialise a request: " + w_.sys->render(err));
      if (mode == 7) { // damaged after the fact: any kind, shape or id now (the session's
                       // token, if changed, is a forged one)
        r.kind = caf::atom("");
        r.carried = true;
        switch (in_.byte() % 4) {
          case 0: payload.resize(payload.size() - in_.below(payload.size() + 1)); break;
          case 1: payload.push_back(static_cast<char>(in_.byte())); break;
          default:
            for (int k = 0, n = 1 + static_cast<int>(in_.below(4)); k < n; ++k)
              payload[in_.below(payload.size())] = static_cast<char>(in_.byte());
        }
        id = 0;
        if (payload.size() >= 8)
          std::memcpy(&id, payload.data(), 8);
      }
    }
    auto& out = w_.writer(r.sender);
    auto sent = out.send({reinterpret_cast<const std::byte*>(payload.data()), payload.size()},
                         std::chrono::seconds{10});
    if (!sent) {
      if (code_of(sent.error()) == errc::request_too_large && payload.size() > out.max_payload())
        return; // never entered the inbox
      violation("a record could not be written: " + describe(sent.error()));
    }
    ++written_;
    records_.push_back(r);
    by_id_.emplace(std::make_pair(r.sender, id), records_.size() - 1);
  }

  // -- answers --------------------------------------------------------------------------------

  void take_answer(proc& p, const fastpath::inbox_record& a) {
    ++answers_;
    if (a.payload.size() < fastpath::reply_header_bytes)
      violation("an answer shorter than its header");
    auto id = fastpath::load_u64(a.payload, 0);
    record* r = nullptr;
    auto range = by_id_.equal_range({to_slot(p.s.process), id});
    for (auto i = range.first; i != range.second && r == nullptr; ++i)
      if (records_[i->second].answers == 0)
        r = &records_[i->second];
    if (r == nullptr)
      violation("an answer in the inbox of slot " + to_string(p.s.process)
                + " for a request that slot did not send, or a second answer");
    ++r->answers;
    if (!r->carried)
      violation("a request of a kind the relay must refuse was answered");
    auto kind = static_cast<fastpath::reply_kind>(a.payload[8]);
    if (kind == fastpath::reply_kind::too_large)
      return;
    if (kind != fastpath::reply_kind::message)
      violation("an answer of an unknown kind");
    caf::message msg;
    fastpath::record_deserializer src{*w_.sys, a.payload.subspan(fastpath::reply_header_bytes)};
    if (src(msg) || src.remaining() != 0)
      violation("an answer that does not deserialise");
    bool failed = msg.match_elements<caf::error>();
    successes_ += failed ? 0 : 1;
    if (!failed && r->foreign)
      violation("a request with a session not its sender's own succeeded: "
                + to_string(msg));
    if (!failed && r->kind == allocate_atom::value) {
      if (!msg.match_elements<block_ref>())
        violation("an allocation answered with " + to_string(msg));
      auto ref = msg.get_as<block_ref>(0);
      if (ref.engine != w_.mm->engine_id() || ref.size != r->size)
        violation("an allocation answered with a ref of another engine or size");
    }
    if (!failed && r->kind == allocate_map_atom::value) {
      if (!msg.match_elements<mapped_block>())
        violation("an allocate+map answered with " + to_string(msg));
      const auto& made = msg.get_as<mapped_block>(0);
      if (made.ref.engine != w_.mm->engine_id() || made.ref.size != r->size
          || made.lease.size != r->size || !made.lease.writable)
        violation("an allocate+map answered with a ref or lease of another engine or size");
      refs_.push_back(made.ref);
    }
    if (!failed && msg.match_elements<block_ref>()) {
      refs_.push_back(msg.get_as<block_ref>(0));
      if (refs_.size() > 32)
        refs_.erase(refs_.begin());
    }
  }

  void drain() {
    for (auto& p : procs_)
      p.replies->reader().poll([&](const fastpath::inbox_record& a) { take_answer(p, a); });
  }

  // Waits until the relay took every record and every request it handed on was answered.
  void settle() {
    auto end = std::chrono::steady_clock::now() + 30s;
    for (;;) {
      drain();
      auto st = w_.stats();
      auto handed = st.inbox_requests - base_.inbox_requests;
      auto refused = st.inbox_refused - base_.inbox_refused;
      auto lost = st.inbox_replies_lost - base_.inbox_replies_lost;
      if (handed + refused > written_)
        violation("the relay took more records than were written");
      if (answers_ + lost > handed)
        violation("more answers than requests handed to the engine");
      if (handed + refused == written_ && answers_ + lost == handed)
        return;
      if (std::chrono::steady_clock::now() > end)
        violation("records or answers missing: written " + std::to_string(written_)
                  + ", handed on " + std::to_string(handed) + ", refused "
                  + std::to_string(refused) + ", answered " + std::to_string(answers_)
                  + ", lost " + std::to_string(lost));
      std::this_thread::yield();
    }
  }

  void verify_memory(const std::string& when) {
    w_.stats(); // a round trip: the engine finished every request before
    if (auto err = w_.mm->check(); !err.empty())
      violation("check() " + when + ": " + err);
    if (auto kib = peak_rss_kib(); kib > max_peak_kib)
      violation("peak memory " + std::to_string(kib) + " KiB " + when);
  }

  void cleanup() {
    for (auto& p : procs_) {
      p.replies.reset();
      if (auto closed = p.c->close(); !closed)
        violation("cannot unregister: " + describe(closed.error()));
      p.c.reset();
    }
    auto engine = w_.mm->engine_session();
    auto st = w_.full_stats();
    for (const auto& nb : st.name_list)
      if (nb.owner == process_id::engine)
        if (auto done = w_.ask<done_atom>(free_atom::value, engine, nb.ref); !done)
          violation("cannot free an engine-held block: " + describe(done.error()));
    st = w_.full_stats();
    if (st.blocks != 0 || st.names != 0 || st.grants != 0 || st.processes != 0
        || st.used_bytes != 0)
      violation("left after the input: " + std::to_string(st.blocks) + " blocks, "
                + std::to_string(st.names) + " names, " + std::to_string(st.grants)
                + " grants, " + std::to_string(st.processes) + " processes, "
                + std::to_string(st.used_bytes) + " bytes");
    verify_memory("after the cleanup");
  }

  input& in_;
  world& w_;
  proc procs_[processes];
  engine_stats base_;
  std::vector<record> records_;
  std::multimap<std::pair<uint32_t, uint64_t>, size_t> by_id_;
  std::vector<block_ref> refs_;
  uint64_t written_ = 0;
  uint64_t answers_ = 0;
  uint64_t next_id_ = 0;
  int successes_ = 0;
};

} // namespace

// Before the first input: segments of earlier runs of this target that were stopped (timeout,
// Ctrl-C, a crash) before they could remove them.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  cafshm::test::remove_stale_test_segments();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  input in{data, size};
  harness{in, the_world()}.run();
  return 0;
}
