// The producer stage: frames into its RGB pool, credits back from the transformer.
#include <chrono>
#include <utility>
#include <vector>

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>

#include "cafshm/error.hpp"

#include "frame_pool.hpp"
#include "frames.hpp"
#include "messages.hpp"
#include "node.hpp"
#include "stages.hpp"

namespace pipeline {

namespace {

struct producer_setup {
  uint32_t frames = 0;
  std::chrono::milliseconds timeout{0};
  const frame_source* source = nullptr;
  frame_pool* pool = nullptr;
  caf::actor transformer;
  caf::actor sink;
};

struct producer_state {
  producer_setup setup;
  std::vector<uint32_t> free_slots; // credits: pool slots the transformer released
  uint32_t next = 0;                // next frame to produce
  uint32_t released = 0;
  bool flush_sent = false;
  bool flushed = false;             // the sink handled every announcement
  bool transformer_gone = false;
  bool sink_gone = false;
  static inline const char* name = "pipeline.producer";
};

using producer_actor = caf::stateful_actor<producer_state>;

caf::error failure(std::string what) {
  return cafshm::make_error(cafshm::errc::peer_failure, std::move(what));
}

void maybe_finish(producer_actor* self) {
  auto& st = self->state;
  if (st.next == st.setup.frames && (st.released == st.setup.frames || st.transformer_gone)
      && (st.flushed || st.sink_gone))
    self->quit();
}

// Fills every free buffer with the next frame: announce its gray checksum to the sink, then send
// it to the transformer. At the end, asks the sink to confirm it has all announcements.
void produce(producer_actor* self) {
  auto& st = self->state;
  auto& s = st.setup;
  while (st.next < s.frames && !st.free_slots.empty()) {
    auto slot = st.free_slots.back();
    st.free_slots.pop_back();
    auto started = steady_ns();
    s.source->fill(st.next, s.pool->buffer(slot));
    self->send(s.sink, announce_atom::value, st.next, s.source->gray_checksum(st.next), started);
    s.pool->send(self, s.transformer, st.next, slot);
    ++st.next;
  }
  if (st.next == s.frames && !st.flush_sent && !st.sink_gone) {
    st.flush_sent = true;
    self->request(s.sink, s.timeout, flush_atom::value)
      .then(
        [self](ready_atom) {
          self->state.flushed = true;
          maybe_finish(self);
        },
        [self](caf::error& err) {
          if (!self->state.sink_gone)
            self->quit(failure("the sink did not confirm the announcements: "
                               + cafshm::describe(err)));
        });
  }
  maybe_finish(self);
}

caf::behavior producer(producer_actor* self, producer_setup setup) {
  auto& st = self->state;
  st.setup = std::move(setup);
  for (uint32_t slot = st.setup.pool->size(); slot-- > 0;)
    st.free_slots.push_back(slot);
  self->monitor(st.setup.transformer);
  self->monitor(st.setup.sink);
  // A downstream stage that ends after everything was sent to it is no error (the driver judges
  // its exit status); before that, the pipeline is broken.
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    bool all_sent = st.next == st.setup.frames;
    if (dm.source == st.setup.transformer)
      st.transformer_gone = true;
    else if (dm.source == st.setup.sink)
      st.sink_gone = true;
    else
      return;
    if (!all_sent)
      return self->quit(failure(std::string{"the "}
                                + (st.transformer_gone ? "transformer" : "sink")
                                + " went down after " + std::to_string(st.next) + " of "
                                + std::to_string(st.setup.frames) + " frames"));
    maybe_finish(self);
  });
  return {
    [self](start_atom) { produce(self); },
    [self](release_atom, uint32_t slot) {
      auto& st = self->state;
      if (slot >= st.setup.pool->size() || st.released >= st.next)
        return self->quit(failure("bad release of slot " + std::to_string(slot)));
      ++st.released;
      st.free_slots.push_back(slot);
      produce(self);
    },
  };
}

} // namespace

int run_producer(const options& opts) {
  node n{opts};
  if (auto err = n.connect_engine())
    return stage_failure(opts, "cannot register with the engine: " + n.render(err));
  frame_source source{opts.width, opts.height};
  auto pool = frame_pool::make(opts.transport, n.client(), opts.pool, source.rgb_bytes());
  if (!pool)
    return stage_failure(opts, "cannot set up the RGB pool: " + n.render(pool.error()));
  auto transformer = n.connect(opts.transformer_port);
  if (!transformer)
    return stage_failure(opts, "cannot reach the transformer: " + n.render(transformer.error()));
  auto sink = n.connect(opts.sink_port);
  if (!sink)
    return stage_failure(opts, "cannot reach the sink: " + n.render(sink.error()));
  auto stage = n.system().spawn(producer, producer_setup{opts.frames, opts.request_timeout,
                                                         &source, &*pool, *transformer, *sink});
  auto stop = [&](const std::string& what) { // the stage must end before the pool does
    caf::anon_send_exit(stage, caf::exit_reason::user_shutdown);
    n.await(stage);
    return stage_failure(opts, what);
  };
  if (auto err = n.link(*sink, stage, nullptr))
    return stop("cannot link to the sink: " + n.render(err));
  if (auto err = n.link(*transformer, stage, &*pool))
    return stop("cannot link to the transformer: " + n.render(err));
  caf::anon_send(stage, start_atom::value);
  auto err = n.await(stage);
  auto freed = pool->close();
  auto closed = n.close();
  if (err)
    return stage_failure(opts, n.render(err));
  if (!freed)
    return stage_failure(opts, "cannot free the RGB pool: " + n.render(freed.error()));
  if (closed)
    return stage_failure(opts, "cannot unregister: " + n.render(closed));
  return 0;
}

} // namespace pipeline
