// What every stage process has: an actor system with CAF's io middleman and cafshm's module in
// client role (the same tuned settings in both transports), in shm mode a cafshm client, and the
// blocking set-up steps that main() performs before the stage's actor starts streaming.
// (publish and remote_actor block: they must never run inside a message handler.)
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "cafshm/client.hpp"
#include "cafshm/pool.hpp"

#include "options.hpp"

namespace pipeline {

/// steady_clock (CLOCK_MONOTONIC, the same in every process of this host) in nanoseconds.
int64_t steady_ns() noexcept;

class node {
public:
  explicit node(const options& opts);
  ~node();

  caf::actor_system& system() noexcept { return sys_; }
  const options& opts() const noexcept { return opts_; }

  /// shm: registers this process with the engine (--engine). caf: does nothing.
  caf::error connect_engine();
  /// The cafshm client (nullptr in caf mode) and its process (process_id{}, unused, in caf mode).
  cafshm::client* client() noexcept { return client_ ? &*client_ : nullptr; }
  cafshm::process_id process() const noexcept {
    return client_ ? client_->id() : cafshm::process_id{};
  }

  /// The actor a stage published on 127.0.0.1:port: in shm mode the proxy find_actor() gives
  /// for the name it has at this process's engine (messages through its actor inbox), else, and
  /// for a stage behind another engine, over BASP.
  caf::expected<caf::actor> connect(uint16_t port);
  /// Publishes `stage` on 127.0.0.1 on a free port and returns that port; in shm mode also at
  /// the engine, under a name made of that port.
  caf::expected<uint16_t> publish(const caf::actor& stage);

  /// Introduces `stage` (this process's stage actor) to the downstream stage `peer` and, if
  /// `pool` is given (shm), lets the peer's process read its blocks.
  caf::error link(const caf::actor& peer, const caf::actor& stage, cafshm::pool* pool);

  /// Waits until `stage` terminates and returns why (empty on success).
  caf::error await(const caf::actor& stage);

  /// Unregisters from the engine (shm).
  caf::error close();

  /// One readable line for any error.
  std::string render(const caf::error& err) const;

private:
  struct config : caf::actor_system_config {
    config();
  };

  options opts_;
  config cfg_;
  caf::actor_system sys_;
  std::optional<cafshm::client> client_;
};

} // namespace pipeline

namespace pipeline {

/// Prints "cafshm-pipeline: <role>: <what>" on stderr and returns exit code 1.
int stage_failure(const options& opts, const std::string& what);

} // namespace pipeline
