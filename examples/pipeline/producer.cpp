// The producer stage: frames into blocks loaned from its RGB pool (shm), whose loans wait while
// every block is out at the transformer, or into messages, at most --pool of them without a
// credit back (caf).
#include <chrono>
#include <utility>
#include <vector>

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>

#include "cafshm/error.hpp"
#include "cafshm/pool.hpp"

#include "collect_blocks.hpp"
#include "frames.hpp"
#include "messages.hpp"
#include "node.hpp"
#include "stages.hpp"

namespace pipeline {

namespace {

struct producer_setup {
  uint32_t frames = 0;
  uint32_t credits = 0; // caf: frames in flight to the transformer (--pool)
  std::chrono::milliseconds timeout{0};
  const frame_source* source = nullptr;
  cafshm::pool* pool = nullptr; // shm: the RGB pool; nullptr in caf mode
  caf::actor transformer;
  caf::actor sink;
};

struct producer_state {
  producer_setup setup;
  uint32_t next = 0;                        // next frame to produce
  uint32_t credits = 0;                     // caf: frames the transformer may still take
  uint32_t credited = 0;                    // caf: credits that came back
  std::vector<cafshm::pool::loan> returned; // shm, after the last frame: blocks back
  bool collecting = false;                  // shm: collect_blocks started
  bool all_back = false;                    // every frame's buffer came back (or never will)
  bool flush_sent = false;
  bool flushed = false;                     // the sink handled every announcement
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
  if (st.next == st.setup.frames && st.all_back && (st.flushed || st.sink_gone))
    self->quit();
}

// Generates frame st.next into `rgb`, announcing its gray checksum to the sink first.
uint32_t generate(producer_actor* self, char* rgb) {
  auto& st = self->state;
  auto& s = st.setup;
  auto index = st.next++;
  auto started = steady_ns();
  s.source->fill(index, rgb);
  self->send(s.sink, announce_atom::value, index, s.source->gray_checksum(index), started);
  return index;
}

void send_frame(producer_actor* self, cafshm::pool::loan&& loan) {
  auto& s = self->state.setup;
  auto index = generate(self, loan.data());
  auto frame = s.pool->seal(std::move(loan), s.source->rgb_bytes(), s.transformer);
  self->send(s.transformer, frame_atom::value, index, std::move(frame));
}

void produce(producer_actor* self);

// shm: a frame into every free block; when none is free, the next one when a block comes back.
void produce_into_pool(producer_actor* self) {
  auto& st = self->state;
  auto* pool = st.setup.pool;
  while (st.next < st.setup.frames) {
    auto loan = pool->try_loan();
    if (!loan) {
      pool->get_loan(self).then(
        [self](cafshm::pool::loan&& l) {
          send_frame(self, std::move(l));
          produce(self);
        },
        [self](caf::error& err) {
          self->quit(failure("no block of the RGB pool: " + cafshm::describe(err)));
        });
      return;
    }
    send_frame(self, std::move(*loan));
  }
  if (!st.collecting) {
    st.collecting = true;
    collect_blocks(
      self, *pool, st.returned,
      [self] {
        self->state.all_back = true;
        maybe_finish(self);
      },
      [self](caf::error& err) {
        self->quit(failure("the RGB blocks did not come back: " + cafshm::describe(err)));
      });
  }
}

// caf: a frame message for every credit.
void produce_into_messages(producer_actor* self) {
  auto& st = self->state;
  auto& s = st.setup;
  while (st.next < s.frames && st.credits > 0) {
    --st.credits;
    std::vector<char> rgb(s.source->rgb_bytes());
    auto index = generate(self, rgb.data());
    self->send(s.transformer, frame_atom::value, index, std::move(rgb));
  }
  if (st.credited == s.frames || st.transformer_gone)
    st.all_back = true;
}

// Sends frames while buffers are free; after the last one, asks the sink to confirm it has all
// announcements.
void produce(producer_actor* self) {
  auto& st = self->state;
  auto& s = st.setup;
  if (s.pool != nullptr)
    produce_into_pool(self);
  else
    produce_into_messages(self);
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
  st.credits = st.setup.credits;
  self->monitor(st.setup.transformer);
  self->monitor(st.setup.sink);
  // A downstream stage that ends after everything was sent to it is no error (the driver judges
  // its exit status); before that, the pipeline is broken. (shm: the blocks the transformer
  // held come back to the pool by themselves.)
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
    if (st.transformer_gone && st.setup.pool == nullptr)
      st.all_back = true; // caf: its credits will not come
    maybe_finish(self);
  });
  return {
    [self](start_atom) { produce(self); },
    [self](credit_atom) {
      auto& st = self->state;
      if (st.setup.pool != nullptr || st.credited >= st.next)
        return self->quit(failure("unexpected credit"));
      ++st.credited;
      ++st.credits;
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
  cafshm::pool pool; // shm only; shared with the transformer by link()
  if (auto* c = n.client()) {
    auto made = cafshm::pool::create(*c, {opts.pool, source.rgb_bytes(), {}});
    if (!made)
      return stage_failure(opts, "cannot set up the RGB pool: " + n.render(made.error()));
    pool = std::move(*made);
  }
  auto transformer = n.connect(opts.transformer_port);
  if (!transformer)
    return stage_failure(opts, "cannot reach the transformer: " + n.render(transformer.error()));
  auto sink = n.connect(opts.sink_port);
  if (!sink)
    return stage_failure(opts, "cannot reach the sink: " + n.render(sink.error()));
  auto stage = n.system().spawn(producer,
                                producer_setup{opts.frames, opts.pool, opts.request_timeout,
                                               &source, pool ? &pool : nullptr, *transformer,
                                               *sink});
  auto stop = [&](const std::string& what) { // the stage must end before the pool does
    caf::anon_send_exit(stage, caf::exit_reason::user_shutdown);
    n.await(stage);
    return stage_failure(opts, what);
  };
  if (auto err = n.link(*sink, stage, nullptr))
    return stop("cannot link to the sink: " + n.render(err));
  if (auto err = n.link(*transformer, stage, pool ? &pool : nullptr))
    return stop("cannot link to the transformer: " + n.render(err));
  caf::anon_send(stage, start_atom::value);
  auto err = n.await(stage);
  pool.close();
  auto closed = n.close();
  if (err)
    return stage_failure(opts, n.render(err));
  if (closed)
    return stage_failure(opts, "cannot unregister: " + n.render(closed));
  return 0;
}

} // namespace pipeline
