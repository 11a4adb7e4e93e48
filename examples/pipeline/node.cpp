#include "node.hpp"

#include <chrono>
#include <iostream>
#include <vector>

#include <caf/atom.hpp>
#include <caf/exit_reason.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/system_messages.hpp>

#include "cafshm/error.hpp"
#include "cafshm/module.hpp"
#include "cafshm/polling_scheduler.hpp"

#include "messages.hpp"

namespace pipeline {

int64_t steady_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

node::config::config() {
  load<cafshm::polling_scheduler>();
  load<caf::io::middleman>();
  load<cafshm::module>();
  cafshm::settings s;
  s.role = cafshm::role::client;
  cafshm::module::configure(*this, s);
  // Three stage processes with a scheduler and a middleman thread each share two cores: one
  // scheduler thread each. cafshm's polling scheduler (its worker reads the actor inbox itself,
  // parking at once on fewer than 4 cores) made 640x480 in shm mode 1.5x faster than CAF's
  // "sharing" scheduler with the client's reading thread (8470-8822 against 5442-5876
  // frames/s, bench/results/pipeline-polling/) and left caf mode as it was; both transports
  // use the same settings.
  set("scheduler.max-threads", 1);
}

node::node(const options& opts) : opts_(opts), sys_(cfg_) {
}

node::~node() {
  close();
}

caf::error node::connect_engine() {
  if (opts_.transport != transport::shm)
    return {};
  cafshm::client_options copts;
  copts.timeout = opts_.request_timeout;
  auto name = std::string{"pipeline-"} + to_string(opts_.role);
  auto c = cafshm::client::connect(sys_, opts_.engine, std::move(name), copts);
  if (!c)
    return std::move(c.error());
  client_.emplace(std::move(*c));
  return {};
}

namespace {

// The name under which a stage is published at its engine: its port, which no other stage on
// this host holds while it listens.
std::string stage_name(uint16_t port) {
  return "pipeline-stage-" + std::to_string(port);
}

} // namespace

caf::expected<caf::actor> node::connect(uint16_t port) {
  if (client_) {
    // Found at the engine, a stage of another process of this engine comes as a proxy whose
    // messages go through that process's actor inbox instead of BASP. A stage behind another
    // engine is not published at this one: it is reached over BASP.
    auto found = client_->find_actor(stage_name(port));
    if (found)
      return std::move(found->actor);
    if (cafshm::code_of(found.error()) != cafshm::errc::name_not_found)
      return std::move(found.error());
  }
  return sys_.middleman().remote_actor("127.0.0.1", port);
}

caf::expected<uint16_t> node::publish(const caf::actor& stage) {
  auto port = sys_.middleman().publish(stage, 0, "127.0.0.1");
  if (!port || !client_)
    return port;
  if (auto ok = client_->publish(stage, stage_name(*port)); !ok)
    return std::move(ok.error());
  return port;
}

caf::error node::link(const caf::actor& peer, const caf::actor& stage, cafshm::pool* pool) {
  caf::scoped_actor self{sys_, true};
  caf::error err;
  cafshm::process_id peer_process{};
  self
    ->request(peer, opts_.request_timeout, hello_atom::value, static_cast<uint8_t>(opts_.role),
              stage, process())
    .receive([&](cafshm::process_id p) { peer_process = p; },
             [&](caf::error& e) { err = std::move(e); });
  if (err || pool == nullptr)
    return err;
  if (auto ok = pool->share_with(peer_process); !ok)
    return std::move(ok.error());
  return {};
}

caf::error node::await(const caf::actor& stage) {
  caf::scoped_actor self{sys_, true};
  caf::error reason;
  self->monitor(stage);
  self->receive([&](caf::down_msg& dm) { reason = std::move(dm.reason); });
  if (reason == caf::exit_reason::normal)
    return {};
  return reason;
}

caf::error node::close() {
  if (!client_)
    return {};
  auto result = client_->close();
  client_.reset();
  if (!result)
    return std::move(result.error());
  return {};
}

std::string node::render(const caf::error& err) const {
  return cafshm::describe(err);
}

} // namespace pipeline

namespace pipeline {

int stage_failure(const options& opts, const std::string& what) {
  std::cerr << "cafshm-pipeline: " << to_string(opts.role) << ": " << what << std::endl;
  return 1;
}

} // namespace pipeline
