// The CAF module that loads cafshm into an actor system: `cfg.load<cafshm::module>()`.
// In engine role it creates both segments at start() and spawns the engine (hidden, registered
// under engine_registry_key); it removes the segments at stop(). In client role it only
// registers cafshm's message types; processes then use cafshm::client.
//
// Settings come from, in this order: module::configure(cfg, settings), the YAML file named by
// the CAF option "cafshm.config-file", or the defaults of settings.hpp.
//
// Mutual TLS between engines (remote.tls): load CAF's openssl module as well
// (`cfg.load<caf::io::middleman>(); cfg.load<caf::openssl::manager>();`). The module copies
// remote.tls into CAF's openssl options (cfg.openssl_certificate, ...) and the engine dials peers
// through the openssl manager, so that its outgoing links present our certificate. Without the
// openssl module, an engine with remote.tls set fails with config_error instead of linking in
// plain text. Accepting peers with TLS is the publisher's job (caf::openssl::publish; cafshmd
// does it on remote.listen). CAF 0.17.6's openssl module misreads OpenSSL 3's error queue, so one
// failed TLS connection can break healthy ones; cafshmd links a workaround
// (actors/daemon/openssl_error_queue.cpp) that a program of your own running a TLS engine needs
// too.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/detail/type_list.hpp>
#include <caf/expected.hpp>

#include "cafshm/engine.hpp"
#include "cafshm/settings.hpp"

namespace cafshm {

class memory_manager;
class ticket_office;
class local_door;
class request_relay;

class module : public caf::actor_system::module {
public:
  explicit module(caf::actor_system& sys);
  ~module() override;

  static caf::actor_system::module* make(caf::actor_system& sys, caf::detail::type_list<>);

  /// Settings to use for the system built from `cfg` (call before constructing it). Also sets
  /// CAF's openssl options from s.remote.tls when that is configured.
  static void configure(caf::actor_system_config& cfg, settings s);
  /// Same, from a YAML file; the file is read when the actor system starts.
  static void configure(caf::actor_system_config& cfg, const std::string& yaml_file);

  /// The module of `sys`, or nullptr if it was not loaded.
  static module* of(caf::actor_system& sys);

  void init(caf::actor_system_config& cfg) override;
  void start() override;
  void stop() override;
  id_t id() const override;
  void* subtype_ptr() override;

  const cafshm::settings& config() const noexcept { return settings_; }

  /// The engine of this system, or why there is none (client role, config or segment error).
  caf::expected<engine_actor> engine() const;

  /// The engine's memory manager (engine role), for tools and tests in the engine's process.
  std::shared_ptr<memory_manager> memory() const { return memory_; }

  /// A door ticket for this process (engine role): how clients in the engine's own process
  /// register, without the socket. client::connect uses it for a local engine.
  caf::expected<door_ticket> local_ticket();

  /// The tickets of the engine's door (engine role), for tests in the engine's process.
  std::shared_ptr<ticket_office> tickets() const { return office_; }

  /// Path of the engine's local door (engine role; empty otherwise).
  std::string door_path() const;

  /// Tells the engine where the program published it for clients (as cafshmd does once it
  /// listens): registrations carry the address, so that a client given only the engine's actor
  /// handle reconnects there after the engine restarts. A wildcard host (0.0.0.0, ::, empty)
  /// is told as the loopback address of its family.
  void listening_on(endpoint where);

  /// In engine role, what the engine found at start, in one line: "" (nothing of an earlier
  /// engine), "adopted the segments of a dead engine (...)", or "not adopting the segments of
  /// a dead engine: <why>; started fresh (...)".
  std::string start_report() const;

private:
  caf::actor_system& system_;
  cafshm::settings settings_;
  caf::error failure_; // why start() could not provide an engine
  std::shared_ptr<memory_manager> memory_;
  std::shared_ptr<ticket_office> office_;
  std::shared_ptr<listen_address> listen_;
  std::unique_ptr<local_door> door_;
  std::shared_ptr<request_relay> relay_; // the engine's request inbox (local.transport: shm)
  engine_actor engine_;
};

/// Registers cafshm's message types and error category. The module's init() calls it; a node
/// that talks to cafshm actors without loading the module must call it itself.
void add_message_types(caf::actor_system_config& cfg);

/// The engine of a module loaded in engine role in `sys`.
caf::expected<engine_actor> local_engine(caf::actor_system& sys);

} // namespace cafshm
