// The transformer stage: RGB frames in (read in place from the producer's pool blocks, or from
// the message), gray frames out into blocks of its own gray pool (or into messages).
#include <csignal>
#include <deque>
#include <iostream>
#include <memory>
#include <utility>
#include <vector>

#include <unistd.h>

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>

#include "cafshm/client.hpp"
#include "cafshm/error.hpp"
#include "cafshm/pool.hpp"
#include "cafshm/remote.hpp"

#include "collect_blocks.hpp"
#include "gray.hpp"
#include "messages.hpp"
#include "node.hpp"
#include "stages.hpp"

namespace pipeline {

namespace {

struct transformer_setup {
  options opts;
  cafshm::client* client = nullptr; // shm only
  cafshm::pool* gray = nullptr;     // shm only: the gray frames' pool
  caf::actor sink;
};

struct transformer_state {
  transformer_setup setup;
  caf::actor producer;
  std::unique_ptr<cafshm::pool_reader> rgb; // shm: opens the producer's frames
  // shm, sink behind a second engine: gray blocks whose transmitted copies the sink has not
  // credited yet (oldest first; a block is loaned again only after its credit).
  std::deque<cafshm::pool::loan> transmitted;
  std::vector<cafshm::pool::loan> returned; // shm, after the last frame: gray blocks back
  bool collecting = false;
  uint32_t credits = 0; // caf: gray frames the sink may still take
  std::deque<std::pair<uint32_t, std::vector<char>>> waiting; // caf: RGB frames without credit
  uint32_t received = 0;
  uint32_t forwarded = 0;
  bool sink_gone = false;
  static inline const char* name = "pipeline.transformer";
};

using transformer_actor = caf::stateful_actor<transformer_state>;

caf::error failure(cafshm::errc code, std::string what) {
  return cafshm::make_error(code, std::move(what));
}

// Done when every frame went on and every gray buffer came back (or its receiver is gone).
void maybe_finish(transformer_actor* self) {
  auto& st = self->state;
  if (st.forwarded != st.setup.opts.frames)
    return;
  if (st.setup.gray == nullptr) {
    if (st.credits == st.setup.opts.pool || st.sink_gone)
      self->quit();
    return;
  }
  if (st.collecting)
    return;
  st.collecting = true;
  collect_blocks(
    self, *st.setup.gray, st.returned, [self] { self->quit(); },
    [self](caf::error& err) {
      self->quit(failure(cafshm::errc::peer_failure,
                         "the gray blocks did not come back: " + cafshm::describe(err)));
    });
}

// The gray image of frame `index` into `gray`, with the injected corruption.
void convert(transformer_actor* self, uint32_t index, const char* rgb, char* gray) {
  const auto& opts = self->state.setup.opts;
  to_gray(rgb, gray, opts.pixels());
  if (opts.fault == fault::corrupt && index == opts.frames / 2)
    gray[opts.gray_bytes() / 2] ^= 1;
}

// Counts frame `index` as forwarded (and crashes there if told to).
void forwarded(transformer_actor* self, uint32_t index) {
  const auto& opts = self->state.setup.opts;
  ++self->state.forwarded;
  if (opts.fault == fault::crash && index == opts.frames / 2)
    ::kill(::getpid(), SIGKILL);
  maybe_finish(self);
}

// Two engines: sends the gray block to the sink's engine, which delivers a copy to the sink
// process; the sink then gets the new block's ref. The loan stays here until the sink's credit
// for a transmitted frame.
void transmit(transformer_actor* self, uint32_t index, cafshm::pool::loan&& gray) {
  auto& st = self->state;
  const auto& to = st.setup.opts.sink_engine;
  cafshm::transmit_target target;
  target.process = "pipeline-sink";
  auto held = std::make_shared<cafshm::pool::loan>(std::move(gray));
  st.setup.client
    ->request(self, cafshm::transmit_atom::value, st.setup.gray->blocks()[held->index()],
              to.host + ":" + std::to_string(to.port), std::move(target))
    .then(
      [self, index, held](cafshm::transmit_receipt& r) {
        self->state.transmitted.push_back(std::move(*held));
        self->send(self->state.setup.sink, frame_atom::value, index, r.remote);
      },
      [self, index](caf::error& e) {
        self->quit(failure(cafshm::errc::peer_failure, "transmitting frame "
                                                         + std::to_string(index) + " failed: "
                                                         + cafshm::describe(e)));
      });
}

// shm: converts the RGB frame into a gray block, releases the RGB block to the producer's pool
// and sends the gray frame on.
void forward_block(transformer_actor* self, uint32_t index, cafshm::frame_view& rgb,
                   cafshm::pool::loan&& gray) {
  auto& st = self->state;
  const auto& opts = st.setup.opts;
  convert(self, index, rgb.chars().data(), gray.data());
  rgb.release();
  if (opts.sink_engine_given)
    transmit(self, index, std::move(gray));
  else
    self->send(st.setup.sink, frame_atom::value, index,
               st.setup.gray->seal(std::move(gray), opts.gray_bytes(), st.setup.sink));
  forwarded(self, index);
}

// caf: converts waiting frames while the sink has credit, and gives the producer a credit for
// each.
void forward_messages(transformer_actor* self) {
  auto& st = self->state;
  while (!st.waiting.empty() && st.credits > 0) {
    --st.credits;
    auto [index, rgb] = std::move(st.waiting.front());
    st.waiting.pop_front();
    std::vector<char> gray(st.setup.opts.gray_bytes());
    convert(self, index, rgb.data(), gray.data());
    self->send(st.setup.sink, frame_atom::value, index, std::move(gray));
    self->send(st.producer, credit_atom::value);
    forwarded(self, index);
  }
}

// Checks a frame message; false if it broke the protocol (and the actor quits).
bool accept(transformer_actor* self, uint32_t index, uint64_t size, bool in_block) {
  auto& st = self->state;
  const auto& opts = st.setup.opts;
  if (!st.producer || index >= opts.frames || st.received >= opts.frames
      || size < opts.rgb_bytes() || in_block != (st.setup.gray != nullptr)) {
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
  st.credits = st.setup.opts.pool;
  if (st.setup.gray != nullptr)
    st.rgb = std::make_unique<cafshm::pool_reader>(*st.setup.client);
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
      st.transmitted.clear(); // their credits will not come: back to the pool
      maybe_finish(self);
    }
  });
  auto fail = [self](caf::error& err) {
    self->quit(failure(cafshm::errc::peer_failure, cafshm::describe(err)));
  };
  return {
    [self](hello_atom, uint8_t from, caf::actor& upstream,
           cafshm::process_id) -> caf::result<cafshm::process_id> {
      auto& st = self->state;
      if (from != static_cast<uint8_t>(role::producer) || st.producer)
        return failure(cafshm::errc::invalid_argument, "unexpected hello");
      st.producer = std::move(upstream);
      self->monitor(st.producer);
      return st.setup.client ? st.setup.client->id() : cafshm::process_id{};
    },
    // shm: opens the RGB frame (mapping its block on first sight), then waits for a gray block.
    [self, fail](frame_atom, uint32_t index, const cafshm::pool_frame& frame) {
      if (!accept(self, index, frame.length, true))
        return;
      self->state.rgb->open(self, frame).then(
        [self, index, fail](cafshm::frame_view&& rgb) {
          auto held = std::make_shared<cafshm::frame_view>(std::move(rgb));
          self->state.setup.gray->get_loan(self).then(
            [self, index, held](cafshm::pool::loan&& gray) {
              forward_block(self, index, *held, std::move(gray));
            },
            fail);
        },
        fail);
    },
    [self](frame_atom, uint32_t index, std::vector<char>& bytes) {
      if (!accept(self, index, bytes.size(), false))
        return;
      self->state.waiting.emplace_back(index, std::move(bytes));
      forward_messages(self);
    },
    [self](credit_atom) {
      auto& st = self->state;
      if (st.setup.gray == nullptr && st.credits < st.setup.opts.pool) {
        ++st.credits;
        forward_messages(self);
        maybe_finish(self);
      } else if (st.setup.gray != nullptr && !st.transmitted.empty()) {
        st.transmitted.pop_front(); // the block goes back to the gray pool
      } else {
        self->quit(failure(cafshm::errc::invalid_argument, "unexpected credit"));
      }
    },
  };
}

} // namespace

int run_transformer(const options& opts) {
  node n{opts};
  if (auto err = n.connect_engine())
    return stage_failure(opts, "cannot register with the engine: " + n.render(err));
  cafshm::pool gray; // shm only; shared with the sink by link() (one engine)
  if (auto* c = n.client()) {
    auto made = cafshm::pool::create(*c, {opts.pool, opts.gray_bytes(), {}});
    if (!made)
      return stage_failure(opts, "cannot set up the gray pool: " + n.render(made.error()));
    gray = std::move(*made);
  }
  auto sink = n.connect(opts.sink_port);
  if (!sink)
    return stage_failure(opts, "cannot reach the sink: " + n.render(sink.error()));
  auto stage = n.system().spawn(
    transformer, transformer_setup{opts, n.client(), gray ? &gray : nullptr, *sink});
  auto stop = [&](const std::string& what) { // the stage must end before the pool does
    caf::anon_send_exit(stage, caf::exit_reason::user_shutdown);
    n.await(stage);
    return stage_failure(opts, what);
  };
  // With a second engine the sink cannot map our blocks: it gets transmitted copies instead.
  if (auto err = n.link(*sink, stage, opts.sink_engine_given || !gray ? nullptr : &gray))
    return stop("cannot link to the sink: " + n.render(err));
  auto port = n.publish(stage);
  if (!port)
    return stop("cannot publish: " + n.render(port.error()));
  std::cout << "ready " << *port << std::endl;
  auto err = n.await(stage);
  gray.close();
  auto closed = n.close();
  if (err)
    return stage_failure(opts, n.render(err));
  if (closed)
    return stage_failure(opts, "cannot unregister: " + n.render(closed));
  return 0;
}

} // namespace pipeline
