// The transformer stage: RGB frames in (read in place from the producer's blocks, or from the
// message), gray frames out into its own pool, credits both ways.
#include <csignal>
#include <deque>
#include <utility>
#include <vector>

#include <unistd.h>

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>

#include "cafshm/error.hpp"

#include "frame_pool.hpp"
#include "gray.hpp"
#include "messages.hpp"
#include "node.hpp"
#include "stages.hpp"

namespace pipeline {

namespace {

struct transformer_setup {
  options opts;
  cafshm::client* client = nullptr; // shm only
  frame_pool* pool = nullptr;       // gray buffers
  caf::actor sink;
};

// An RGB frame that waits for a free gray buffer (it keeps its RGB buffer until converted).
struct waiting_frame {
  uint32_t index = 0;
  uint32_t slot = 0;
  cafshm::block_ref ref;   // shm
  std::vector<char> bytes; // caf
};

struct transformer_state {
  transformer_setup setup;
  caf::actor producer;
  mapped_blocks rgb;                // shm: the producer's pool
  std::vector<uint32_t> free_slots; // credits: gray buffers the sink released
  std::deque<waiting_frame> waiting;
  uint32_t received = 0;
  uint32_t forwarded = 0;
  bool sink_gone = false;
  static inline const char* name = "pipeline.transformer";
};

using transformer_actor = caf::stateful_actor<transformer_state>;

caf::error failure(cafshm::errc code, std::string what) {
  return cafshm::make_error(code, std::move(what));
}

void maybe_finish(transformer_actor* self) {
  auto& st = self->state;
  if (st.forwarded == st.setup.opts.frames
      && (st.free_slots.size() == st.setup.pool->size() || st.sink_gone))
    self->quit();
}

// Two engines: sends the gray buffer to the sink's engine, which delivers a copy to the sink
// process; the sink then gets the new block's ref. The buffer comes back with the sink's release,
// as in the one-engine case.
void transmit(transformer_actor* self, uint32_t index, uint32_t gray_slot) {
  auto& st = self->state;
  const auto& to = st.setup.opts.sink_engine;
  cafshm::transmit_target target;
  target.process = "pipeline-sink";
  st.setup.client
    ->request(self, cafshm::transmit_atom::value, st.setup.pool->refs()[gray_slot],
              to.host + ":" + std::to_string(to.port), std::move(target))
    .then(
      [self, index, gray_slot](cafshm::transmit_receipt& r) {
        self->send(self->state.setup.sink, frame_atom::value, index, gray_slot, r.remote);
      },
      [self, index](caf::error& e) {
        self->quit(failure(cafshm::errc::peer_failure, "transmitting frame "
                                                         + std::to_string(index) + " failed: "
                                                         + cafshm::describe(e)));
      });
}

// Converts one frame into a free gray buffer, sends it on and releases the RGB buffer.
void convert(transformer_actor* self, uint32_t index, uint32_t rgb_slot, const char* rgb) {
  auto& st = self->state;
  const auto& opts = st.setup.opts;
  auto gray_slot = st.free_slots.back();
  st.free_slots.pop_back();
  char* gray = st.setup.pool->buffer(gray_slot);
  to_gray(rgb, gray, opts.pixels());
  if (opts.fault == fault::corrupt && index == opts.frames / 2)
    gray[opts.gray_bytes() / 2] ^= 1;
  if (opts.sink_engine_given)
    transmit(self, index, gray_slot);
  else
    st.setup.pool->send(self, st.setup.sink, index, gray_slot);
  self->send(st.producer, release_atom::value, rgb_slot);
  ++st.forwarded;
  if (opts.fault == fault::crash && index == opts.frames / 2)
    ::kill(::getpid(), SIGKILL);
}

// Converts waiting frames while gray buffers are free.
void drain(transformer_actor* self) {
  auto& st = self->state;
  while (!st.waiting.empty() && !st.free_slots.empty()) {
    auto frame = std::move(st.waiting.front());
    st.waiting.pop_front();
    if (frame.ref.valid())
      convert(self, frame.index, frame.slot, st.rgb.find(frame.ref));
    else
      convert(self, frame.index, frame.slot, frame.bytes.data());
  }
  maybe_finish(self);
}

// Checks a frame message; false if it broke the protocol (and the actor quits).
bool accept(transformer_actor* self, uint32_t index, uint64_t size) {
  auto& st = self->state;
  const auto& opts = st.setup.opts;
  if (!st.producer || index >= opts.frames || st.received >= opts.frames
      || size < opts.rgb_bytes()) {
    self->quit(failure(cafshm::errc::invalid_argument,
                       "unexpected frame " + std::to_string(index) + " of "
                         + std::to_string(size) + " bytes"));
    return false;
  }
  ++st.received;
  return true;
}

caf::behavior transformer(transformer_actor* self, transformer_setup setup) {
  auto& st = self->state;
  st.setup = std::move(setup);
  for (uint32_t slot = st.setup.pool->size(); slot-- > 0;)
    st.free_slots.push_back(slot);
  self->monitor(st.setup.sink);
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    const auto frames = st.setup.opts.frames;
    if (dm.source == st.producer && st.received < frames)
      return self->quit(failure(cafshm::errc::peer_failure,
                                "the producer went down after " + std::to_string(st.received)
                                  + " of " + std::to_string(frames) + " frames"));
    if (dm.source == st.setup.sink) {
      if (st.forwarded < frames)
        return self->quit(failure(cafshm::errc::peer_failure,
                                  "the sink went down after " + std::to_string(st.forwarded)
                                    + " of " + std::to_string(frames) + " frames"));
      st.sink_gone = true;
      maybe_finish(self);
    }
  });
  return {
    [self](hello_atom, uint8_t from, caf::actor& upstream,
           uint32_t) -> caf::result<uint32_t> {
      auto& st = self->state;
      if (from != static_cast<uint8_t>(role::producer) || st.producer)
        return failure(cafshm::errc::invalid_argument, "unexpected hello");
      st.producer = std::move(upstream);
      self->monitor(st.producer);
      return st.setup.client ? st.setup.client->slot() : 0u;
    },
    [self](pool_atom, const std::vector<cafshm::block_ref>& refs) -> caf::result<ready_atom> {
      auto& st = self->state;
      if (refs.empty())
        return ready_atom::value;
      if (st.setup.client == nullptr)
        return failure(cafshm::errc::invalid_argument, "blocks offered in caf mode");
      auto rp = self->make_response_promise<ready_atom>();
      st.rgb.map(self, *st.setup.client, refs, [rp](caf::error err) mutable {
        if (err)
          rp.deliver(std::move(err));
        else
          rp.deliver(ready_atom::value);
      });
      return rp;
    },
    [self](frame_atom, uint32_t index, uint32_t slot, const cafshm::block_ref& ref) {
      auto& st = self->state;
      const char* rgb = st.rgb.find(ref);
      if (rgb == nullptr)
        return self->quit(failure(cafshm::errc::stale_block,
                                  "frame " + std::to_string(index) + " in unmapped block "
                                    + cafshm::to_string(ref)));
      if (!accept(self, index, ref.size))
        return;
      if (st.free_slots.empty())
        st.waiting.push_back({index, slot, ref, {}});
      else
        convert(self, index, slot, rgb);
      maybe_finish(self);
    },
    [self](frame_atom, uint32_t index, uint32_t slot, std::vector<char>& bytes) {
      auto& st = self->state;
      if (!accept(self, index, bytes.size()))
        return;
      if (st.free_slots.empty())
        st.waiting.push_back({index, slot, {}, std::move(bytes)});
      else
        convert(self, index, slot, bytes.data());
      maybe_finish(self);
    },
    [self](release_atom, uint32_t slot) {
      auto& st = self->state;
      if (slot >= st.setup.pool->size() || st.free_slots.size() >= st.setup.pool->size())
        return self->quit(failure(cafshm::errc::invalid_argument,
                                  "bad release of slot " + std::to_string(slot)));
      st.free_slots.push_back(slot);
      drain(self);
    },
  };
}

} // namespace

int run_transformer(const options& opts) {
  node n{opts};
  if (auto err = n.connect_engine())
    return stage_failure(opts, "cannot register with the engine: " + n.render(err));
  auto pool = frame_pool::make(opts.transport, n.client(), opts.pool, opts.gray_bytes());
  if (!pool)
    return stage_failure(opts, "cannot set up the gray pool: " + n.render(pool.error()));
  auto sink = n.connect(opts.sink_port);
  if (!sink)
    return stage_failure(opts, "cannot reach the sink: " + n.render(sink.error()));
  auto stage = n.system().spawn(transformer, transformer_setup{opts, n.client(), &*pool, *sink});
  auto stop = [&](const std::string& what) { // the stage must end before the pool does
    caf::anon_send_exit(stage, caf::exit_reason::user_shutdown);
    n.await(stage);
    return stage_failure(opts, what);
  };
  // With a second engine the sink cannot map our blocks: it gets transmitted copies instead.
  if (auto err = n.link(*sink, stage, opts.sink_engine_given ? nullptr : &*pool))
    return stop("cannot link to the sink: " + n.render(err));
  auto port = n.publish(stage);
  if (!port)
    return stop("cannot publish: " + n.render(port.error()));
  std::cout << "ready " << *port << std::endl;
  auto err = n.await(stage);
  auto freed = pool->close();
  auto closed = n.close();
  if (err)
    return stage_failure(opts, n.render(err));
  if (!freed)
    return stage_failure(opts, "cannot free the gray pool: " + n.render(freed.error()));
  if (closed)
    return stage_failure(opts, "cannot unregister: " + n.render(closed));
  return 0;
}

} // namespace pipeline
