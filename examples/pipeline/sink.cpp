// The sink stage: hashes every gray frame it receives (in place in the transformer's pool block,
// or in the message), releases the buffer, and compares the hash with the producer's
// announcement, whichever of the two arrives first.
#include <iostream>
#include <memory>
#include <utility>
#include <vector>

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>

#include "cafshm/client.hpp"
#include "cafshm/error.hpp"
#include "cafshm/pool.hpp"

#include "frames.hpp"
#include "messages.hpp"
#include "node.hpp"
#include "stages.hpp"

namespace pipeline {

namespace {

struct sink_report {
  uint32_t verified = 0;
  uint32_t mismatches = 0;
  int64_t first_mismatch = -1;
  int64_t elapsed_ns = 0; // from the start of frame 0 at the producer to the last verification
};

struct sink_setup {
  options opts;
  cafshm::client* client = nullptr; // shm only
  sink_report* report = nullptr;    // written before the actor quits successfully
};

struct sink_state {
  sink_setup setup;
  caf::actor transformer;
  caf::actor producer;
  std::unique_ptr<cafshm::pool_reader> gray; // shm, one engine: opens the transformer's frames
  std::vector<uint64_t> announced;  // by frame index
  std::vector<uint64_t> received;   // hash of what arrived, by frame index
  std::vector<uint8_t> seen;        // bit 0: announced, bit 1: received
  uint32_t announcements = 0;
  uint32_t frames = 0;              // received
  int64_t started_ns = -1;          // frame 0's production start
  bool producer_done = false;       // flushed its announcements, or went down
  sink_report report;
  static inline const char* name = "pipeline.sink";
};

using sink_actor = caf::stateful_actor<sink_state>;

constexpr uint8_t announced_bit = 1;
constexpr uint8_t received_bit = 2;

caf::error failure(cafshm::errc code, std::string what) {
  return cafshm::make_error(code, std::move(what));
}

// Done when every frame was compared and the producer's flush was answered (so that the producer
// never waits for an answer from a sink that is gone).
void maybe_finish(sink_actor* self) {
  auto& st = self->state;
  auto& r = st.report;
  if (r.verified + r.mismatches == st.setup.opts.frames && st.producer_done) {
    *st.setup.report = r;
    self->quit();
  }
}

void compare(sink_actor* self, uint32_t index) {
  auto& st = self->state;
  auto& r = st.report;
  if (st.announced[index] == st.received[index]) {
    ++r.verified;
  } else if (r.mismatches++ == 0) {
    r.first_mismatch = index;
  }
  if (r.verified + r.mismatches == st.setup.opts.frames) {
    r.elapsed_ns = steady_ns() - st.started_ns;
    maybe_finish(self);
  }
}

// Records what one of the two sides said about frame `index`; compares once both did.
void record(sink_actor* self, uint32_t index, uint8_t bit, uint64_t hash) {
  auto& st = self->state;
  if (index >= st.setup.opts.frames || (st.seen[index] & bit) != 0)
    return self->quit(failure(cafshm::errc::invalid_argument,
                              std::string{bit == announced_bit ? "announcement" : "frame"}
                                + " " + std::to_string(index) + " is unexpected"));
  st.seen[index] |= bit;
  (bit == announced_bit ? st.announced : st.received)[index] = hash;
  if (st.seen[index] == (announced_bit | received_bit))
    compare(self, index);
}

// Checks frame `index` (`size` bytes at `gray`); the caller releases its buffer afterwards.
void on_frame(sink_actor* self, uint32_t index, const char* gray, uint64_t size) {
  auto& st = self->state;
  if (!st.transformer || size != st.setup.opts.gray_bytes())
    return self->quit(failure(cafshm::errc::invalid_argument,
                              "frame " + std::to_string(index) + " has " + std::to_string(size)
                                + " bytes instead of "
                                + std::to_string(st.setup.opts.gray_bytes())));
  auto hash = frame_checksum(gray, st.setup.opts.width, st.setup.opts.height);
  ++st.frames;
  record(self, index, received_bit, hash);
}

// Two engines: `ref` is a block of our own engine, delivered to us by a transmit. Maps it, checks
// it like any frame and credits the transformer, then unmaps and frees it (unmap answered
// before the free, so the block never drains).
void on_delivered(sink_actor* self, uint32_t index, const cafshm::block_ref& ref) {
  auto* c = self->state.setup.client;
  auto fail = [self, index](caf::error& e) {
    self->quit(failure(cafshm::errc::peer_failure, "frame " + std::to_string(index) + ": "
                                                     + cafshm::describe(e)));
  };
  c->map(self, ref, cafshm::access_mode::read)
    .then(
      [self, c, index, ref, fail](cafshm::block_view&& view) {
        on_frame(self, index, view.chars().data(), view.size());
        if (self->state.transformer)
          self->send(self->state.transformer, credit_atom::value);
        c->unmap(self, std::move(view))
          .then(
            [self, c, ref, fail](cafshm::done&&) {
              c->free(self, ref).then([](cafshm::done&&) {}, fail);
            },
            fail);
      },
      fail);
}

caf::behavior sink(sink_actor* self, sink_setup setup) {
  auto& st = self->state;
  st.setup = std::move(setup);
  const auto frames = st.setup.opts.frames;
  st.announced.resize(frames);
  st.received.resize(frames);
  st.seen.resize(frames);
  if (st.setup.client != nullptr && !st.setup.opts.sink_engine_given)
    st.gray = std::make_unique<cafshm::pool_reader>(*st.setup.client);
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    const auto frames = st.setup.opts.frames;
    if (dm.source == st.transformer && st.frames < frames)
      self->quit(failure(cafshm::errc::peer_failure,
                         "the transformer went down after " + std::to_string(st.frames) + " of "
                           + std::to_string(frames) + " frames"));
    else if (dm.source == st.producer && st.announcements < frames)
      self->quit(failure(cafshm::errc::peer_failure,
                         "the producer went down after " + std::to_string(st.announcements)
                           + " of " + std::to_string(frames) + " announcements"));
    else if (dm.source == st.producer) {
      st.producer_done = true;
      maybe_finish(self);
    }
  });
  return {
    [self](hello_atom, uint8_t from, caf::actor& upstream,
           cafshm::process_id) -> caf::result<cafshm::process_id> {
      auto& st = self->state;
      caf::actor* peer = from == static_cast<uint8_t>(role::transformer) ? &st.transformer
                         : from == static_cast<uint8_t>(role::producer)  ? &st.producer
                                                                          : nullptr;
      if (peer == nullptr || *peer)
        return failure(cafshm::errc::invalid_argument, "unexpected hello");
      *peer = std::move(upstream);
      self->monitor(*peer);
      return st.setup.client ? st.setup.client->id() : cafshm::process_id{};
    },
    [self](announce_atom, uint32_t index, uint64_t hash, int64_t produced_ns) {
      auto& st = self->state;
      if (index == 0)
        st.started_ns = produced_ns;
      ++st.announcements;
      record(self, index, announced_bit, hash);
    },
    [self](flush_atom) {
      self->state.producer_done = true;
      maybe_finish(self);
      return ready_atom::value;
    },
    // shm, one engine: in place in the transformer's block, which goes back to its pool.
    [self](frame_atom, uint32_t index, const cafshm::pool_frame& frame) {
      if (!self->state.gray)
        return self->quit(failure(cafshm::errc::invalid_argument,
                                  "pool frame " + std::to_string(index) + " unexpected here"));
      self->state.gray->open(self, frame).then(
        [self, index](cafshm::frame_view&& view) {
          on_frame(self, index, view.chars().data(), view.chars().size());
          view.release();
        },
        [self, index](caf::error& err) {
          self->quit(failure(cafshm::errc::peer_failure, "cannot open frame "
                                                           + std::to_string(index) + ": "
                                                           + cafshm::describe(err)));
        });
    },
    // shm, second engine: a transmitted copy.
    [self](frame_atom, uint32_t index, const cafshm::block_ref& ref) {
      if (!self->state.setup.opts.sink_engine_given)
        return self->quit(failure(cafshm::errc::invalid_argument,
                                  "block " + std::to_string(index) + " unexpected here"));
      on_delivered(self, index, ref);
    },
    // caf
    [self](frame_atom, uint32_t index, const std::vector<char>& bytes) {
      on_frame(self, index, bytes.data(), bytes.size());
      if (self->state.transformer)
        self->send(self->state.transformer, credit_atom::value);
    },
  };
}

} // namespace

int run_sink(const options& given) {
  auto opts = given;
  if (opts.sink_engine_given) // behind a second engine
    opts.engine = opts.sink_engine;
  node n{opts};
  if (auto err = n.connect_engine())
    return stage_failure(opts, "cannot register with the engine: " + n.render(err));
  sink_report report;
  auto stage = n.system().spawn(sink, sink_setup{opts, n.client(), &report});
  auto port = n.publish(stage);
  if (!port) {
    caf::anon_send_exit(stage, caf::exit_reason::user_shutdown);
    n.await(stage);
    return stage_failure(opts, "cannot publish: " + n.render(port.error()));
  }
  std::cout << "ready " << *port << std::endl;
  auto err = n.await(stage);
  auto closed = n.close();
  if (err)
    return stage_failure(opts, n.render(err));
  std::cout << "result frames=" << opts.frames << " verified=" << report.verified
            << " mismatches=" << report.mismatches << " elapsed_ns=" << report.elapsed_ns
            << std::endl;
  if (report.mismatches > 0)
    return stage_failure(opts, std::to_string(report.mismatches) + " of "
                                 + std::to_string(opts.frames)
                                 + " frames failed their checksum, the first is frame "
                                 + std::to_string(report.first_mismatch));
  if (closed)
    return stage_failure(opts, "cannot unregister: " + n.render(closed));
  return 0;
}

} // namespace pipeline
