// CAF 0.17's deserializer fills a std::vector<T> through an uninitialised T that it then loads;
// for an enum (access_mode, process_id), g++ 12 cannot see the load and warns inside CAF's and the standard
// library's headers. The code is correct; the warning is switched off for this file only.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "cafshm/module.hpp"

#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include <unistd.h>

#include <caf/actor_cast.hpp>
#include <caf/actor_registry.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp> // only the inline actor_handle(): no link dependency
#include <caf/send.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/system_messages.hpp>

#include "cafshm/config.hpp"
#include "cafshm/engine_stats.hpp"
#include "cafshm/error.hpp"
#include "door.hpp"
#include "fastpath/poll_registry.hpp"
#include "listen_address.hpp"
#include "cafshm/pool.hpp"
#include "memory_manager.hpp"
#include "peer_auth.hpp"
#include "request_relay.hpp"
#include "ticket_office.hpp"
#include "cafshm/protocol.hpp"
#include "cafshm/remote.hpp"

namespace cafshm {

namespace {

// Settings handed to configure(), waiting for the actor system built from that config.
std::mutex pending_mutex;
std::map<const caf::actor_system_config*, settings> pending_settings;

std::string render_error(uint8_t code, caf::atom_value, const caf::message& ctx) {
  std::string result = to_string(static_cast<errc>(code));
  if (ctx.size() == 1 && ctx.match_element<std::string>(0))
    result += ": " + ctx.get_as<std::string>(0);
  return result;
}

// Hands remote.tls to CAF's openssl module, which reads these members when it opens a
// connection (and checks them when the actor system is constructed).
void apply_tls(caf::actor_system_config& cfg, const settings& s) {
  const auto& tls = s.remote.tls;
  if (!tls.enabled())
    return; // leave openssl options set elsewhere alone
  cfg.openssl_certificate = tls.certificate;
  cfg.openssl_key = tls.key;
  cfg.openssl_cafile = tls.cafile;
  cfg.openssl_passphrase = tls.passphrase;
  cfg.openssl_capath = tls.capath;
}

// An engine's middleman deserializes peer messages on its own thread: no BASP worker threads
// (middleman.workers 0), unless the configuration sets them. CAF 0.17 names a connection by its
// socket's file descriptor and removes a connection closed by its peer only after the messages
// its workers still deserialize: a connection accepted meanwhile under the same descriptor loses
// its routing entry, and every request that arrives over it has no sender, so its answers are
// dropped. Engines that dial each other at once close redundant connections and accept new ones
// in the same moments; with a worker, 16 such engines left 1-4 pairs unable to link for good.
void prefer_inline_deserialization(caf::actor_system_config& cfg) {
  if (caf::get_if(&cfg.content, "middleman.workers") == nullptr)
    caf::put(cfg.content, "middleman.workers", size_t{0});
}

// Hands local.idle to the polling scheduler of `sys`, if it runs one (cafshm/polling_scheduler.hpp):
// its workers read the strategy each time they become idle, so the workers that the scheduler
// started before this module's init() follow it too.
void apply_idle(caf::actor_system& sys, const local_settings& local) {
  auto spin = fastpath::idle_strategy::spin_then_park(std::chrono::microseconds{local.spin_us});
  auto idle = fastpath::idle_strategy::park();
  switch (local.idle) {
    case local_idle::park:
      break;
    case local_idle::spin:
      idle = spin;
      break;
    case local_idle::yield:
      idle = fastpath::idle_strategy::yielding_spin_then_park(
        std::chrono::microseconds{local.spin_us});
      break;
    case local_idle::automatic:
      if (std::thread::hardware_concurrency() >= 4)
        idle = spin;
      break;
  }
  fastpath::poll_registry::instance().set_idle(sys, idle);
}

} // namespace

void add_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<block_ref>("cafshm::block_ref");
  cfg.add_message_type<session>("cafshm::session");
  cfg.add_message_type<door_ticket>("cafshm::door_ticket");
  cfg.add_message_type<registration>("cafshm::registration");
  cfg.add_message_type<copy_range>("cafshm::copy_range");
  cfg.add_message_type<view_lease>("cafshm::view_lease");
  cfg.add_message_type<mapped_block>("cafshm::mapped_block");
  cfg.add_message_type<std::vector<view_lease>>("std::vector<cafshm::view_lease>");
  cfg.add_message_type<std::vector<block_ref>>("std::vector<cafshm::block_ref>");
  cfg.add_message_type<access_mode>("cafshm::access_mode");
  cfg.add_message_type<process_id>("cafshm::process_id");
  cfg.add_message_type<pool_frame>("cafshm::pool_frame");
  cfg.add_message_type<published_actor>("cafshm::published_actor");
  cfg.add_message_type<process_stats>("cafshm::process_stats");
  cfg.add_message_type<named_block>("cafshm::named_block");
  cfg.add_message_type<capacity_use>("cafshm::capacity_use");
  cfg.add_message_type<engine_stats>("cafshm::engine_stats");
  cfg.add_message_type<transmit_progress>("cafshm::transmit_progress");
  cfg.add_message_type<transmit_target>("cafshm::transmit_target");
  cfg.add_message_type<transmit_receipt>("cafshm::transmit_receipt");
  cfg.add_message_type<transmit_offer>("cafshm::transmit_offer");
  cfg.add_message_type<transmit_chunk>("cafshm::transmit_chunk");
  cfg.add_message_type<peer_proof>("cafshm::peer_proof");
  cfg.add_message_type<peer_seal>("cafshm::peer_seal");
  cfg.add_message_type<std::vector<std::string>>("std::vector<std::string>");
  cfg.add_message_type<std::vector<char>>("std::vector<char>");
  cfg.add_message_type<std::vector<uint64_t>>("std::vector<uint64_t>");
  cfg.add_message_type<std::vector<uint8_t>>("std::vector<uint8_t>");
  cfg.add_error_category(error_category, render_error);
}

module::module(caf::actor_system& sys) : system_(sys) {
}

module::~module() = default;

caf::actor_system::module* module::make(caf::actor_system& sys, caf::detail::type_list<>) {
  return new module(sys);
}

void module::configure(caf::actor_system_config& cfg, settings s) {
  apply_tls(cfg, s);
  std::lock_guard<std::mutex> guard{pending_mutex};
  pending_settings[&cfg] = std::move(s);
}

void module::configure(caf::actor_system_config& cfg, const std::string& yaml_file) {
  caf::put(cfg.content, "cafshm.config-file", yaml_file);
}

module* module::of(caf::actor_system& sys) {
  if (!sys.has_network_manager())
    return nullptr;
  return reinterpret_cast<module*>(&sys.network_manager());
}

void module::init(caf::actor_system_config& cfg) {
  add_message_types(cfg);
  {
    std::lock_guard<std::mutex> guard{pending_mutex};
    if (auto i = pending_settings.find(&cfg); i != pending_settings.end()) {
      settings_ = std::move(i->second);
      pending_settings.erase(i);
      if (auto why = validate(settings_))
        failure_ = make_error(errc::config_error, *why);
      if (settings_.role == role::engine)
        prefer_inline_deserialization(cfg);
      apply_idle(system_, settings_.local);
      return;
    }
  }
  auto file = caf::get_or(cfg, "cafshm.config-file", std::string{});
  if (!file.empty()) {
    auto loaded = load_config(file);
    if (auto* err = std::get_if<config_error>(&loaded)) {
      failure_ = make_error(errc::config_error, err->to_string());
      return;
    }
    settings_ = std::get<settings>(std::move(loaded));
    apply_tls(cfg, settings_); // in time: CAF's openssl module reads them per connection
  }
  if (settings_.role == role::engine)
    prefer_inline_deserialization(cfg);
  apply_idle(system_, settings_.local);
}

void module::start() {
  if (failure_ || settings_.role != role::engine)
    return;
  caf::io::middleman_actor connector;
  if (settings_.remote.tls.enabled()) {
    // Peer links must use TLS with our certificate: dial through the openssl manager.
    if (!system_.has_openssl_manager()) {
      failure_ = make_error(errc::config_error,
                            "remote.tls is configured but CAF's openssl module is not loaded "
                            "(cfg.load<caf::openssl::manager>() after the middleman)");
      return;
    }
    connector = system_.openssl_manager().actor_handle();
  } else if (system_.has_middleman()) {
    connector = system_.middleman().actor_handle();
  }
  auto peers = peer_authenticator::create(settings_.remote);
  if (!peers) {
    failure_ = std::move(peers.error());
    return;
  }
  auto mm = memory_manager::create(settings_.engine);
  if (!mm) {
    failure_ = std::move(mm.error());
    return;
  }
  memory_ = std::move(*mm);
  memory_->set_log([name = settings_.engine.name](const std::string& line) {
    std::cerr << "cafshm engine '" << name << "': " << line << std::endl;
  });
  if (!memory_->start_report().empty())
    std::cerr << "cafshm engine '" << settings_.engine.name << "': " << memory_->start_report()
              << std::endl;
  memory_->log_capacities("started; capacities");
  office_ = std::make_shared<ticket_office>();
  auto door = local_door::open(settings_.engine, office_);
  if (!door) {
    failure_ = std::move(door.error());
    memory_.reset();
    return;
  }
  door_ = std::move(*door);
  if (settings_.local.transport == local_transport::shm) {
    auto relay = request_relay::create(system_, settings_);
    if (!relay) {
      failure_ = std::move(relay.error());
      door_.reset();
      memory_.reset();
      return;
    }
    relay_ = std::move(*relay);
  }
  listen_ = std::make_shared<listen_address>();
  engine_ = spawn_engine(system_, memory_, settings_, connector, office_, door_->path(),
                         std::move(*peers), relay_, listen_);
  if (relay_)
    relay_->start(caf::actor_cast<caf::actor>(engine_));
  system_.registry().put(engine_registry_key, caf::actor_cast<caf::strong_actor_ptr>(engine_));
}

void module::stop() {
  if (!engine_)
    return;
  system_.registry().erase(engine_registry_key);
  if (relay_)
    relay_->stop(); // no more requests through the inbox; the engine state holds the rest
  { // wait until the engine has terminated, so that its state releases the memory manager
    caf::scoped_actor self{system_, true};
    self->monitor(engine_);
    self->send_exit(engine_, caf::exit_reason::user_shutdown);
    self->receive([](const caf::down_msg&) {},
                  caf::after(std::chrono::seconds(5)) >> [] {});
  }
  engine_ = nullptr;
  relay_.reset(); // removes the request inbox
  door_.reset(); // removes the socket
  memory_->log_capacities("stopped; high-water marks");
  memory_.reset(); // last reference: removes both segments
}

caf::actor_system::module::id_t module::id() const {
  // Module ids are a fixed enum; this slot is unused by Debian's CAF and starts after the
  // middleman and the openssl manager (CAF starts modules in slot order).
  return network_manager;
}

void* module::subtype_ptr() {
  return this;
}

caf::expected<engine_actor> module::engine() const {
  if (failure_)
    return failure_;
  if (!engine_)
    return make_error(errc::config_error, "cafshm runs in client role: no local engine");
  return engine_;
}

caf::expected<door_ticket> module::local_ticket() {
  if (!office_)
    return make_error(errc::config_error, "cafshm runs in client role: no local engine");
  auto t = office_->issue(peer_credentials{::getuid(), ::getgid(), ::getpid(), -1, false});
  if (!t)
    return make_error(errc::capacity_exceeded, "too many open door tickets");
  return *t;
}

std::string module::start_report() const {
  return memory_ ? memory_->start_report() : std::string{};
}

std::string module::door_path() const {
  return door_ ? door_->path() : std::string{};
}

void module::listening_on(endpoint where) {
  if (!listen_)
    return;
  if (where.host.empty() || where.host == "0.0.0.0")
    where.host = "127.0.0.1";
  else if (where.host == "::")
    where.host = "::1";
  listen_->set(std::move(where));
}

caf::expected<engine_actor> local_engine(caf::actor_system& sys) {
  auto* m = module::of(sys);
  if (m == nullptr)
    return make_error(errc::config_error, "cafshm::module is not loaded");
  return m->engine();
}

} // namespace cafshm
