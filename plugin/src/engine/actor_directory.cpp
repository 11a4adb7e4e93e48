#include "actor_directory.hpp"

#include <algorithm>

#include <caf/exit_reason.hpp>

#include "cafshm/error.hpp"

namespace cafshm {

caf::error actor_directory::publish(process_id slot, const std::string& name, caf::actor actor) {
  if (name.empty())
    return make_error(errc::invalid_argument, "an actor needs a non-empty name to be published");
  if (!actor)
    return make_error(errc::invalid_argument, "cannot publish an invalid actor handle");
  auto i = entries_.find(name);
  if (i != entries_.end() && i->second.actor && i->second.process != slot)
    return make_error(errc::name_taken, "an actor of process " + to_string(i->second.process)
                                          + " is published as '" + name + "'");
  if (i == entries_.end() && entries_.size() >= capacity_) {
    // Make room by forgetting a record of an ended publication; live entries stay.
    auto old = std::find_if(entries_.begin(), entries_.end(),
                            [](const auto& kv) { return !kv.second.actor; });
    if (old == entries_.end())
      return make_error(errc::capacity_exceeded,
                        std::to_string(capacity_) + " actors are published already");
    entries_.erase(old);
  }
  entries_[name] = entry{std::move(actor), slot, {}};
  return {};
}

caf::error actor_directory::unpublish(process_id slot, const std::string& name) {
  auto i = entries_.find(name);
  if (i == entries_.end() || !i->second.actor)
    return make_error(errc::name_not_found, "no actor is published as '" + name + "'");
  if (i->second.process != slot)
    return make_error(errc::access_denied, "'" + name + "' was published by process "
                                             + to_string(i->second.process));
  entries_.erase(i);
  return {};
}

caf::expected<published_actor> actor_directory::lookup(const std::string& name) const {
  auto i = entries_.find(name);
  if (i == entries_.end())
    return make_error(errc::name_not_found, "no actor is published as '" + name + "'");
  if (!i->second.actor)
    return make_error(errc::actor_gone, "the actor published as '" + name + "' is gone: "
                                          + i->second.gone_why);
  return published_actor{i->second.actor, i->second.process};
}

void actor_directory::end(entry& e, std::string why) {
  e.actor = nullptr;
  e.gone_why = std::move(why);
}

void actor_directory::process_ended(process_id slot) {
  for (auto& [name, e] : entries_)
    if (e.actor && e.process == slot)
      end(e, "process " + to_string(slot) + ", which published it, has ended");
}

void actor_directory::actor_down(const caf::actor_addr& actor, const caf::error& reason) {
  auto why = reason == caf::exit_reason::remote_link_unreachable
               ? "the connection to the process that published it was lost"
               : "the actor has terminated";
  for (auto& [name, e] : entries_)
    if (e.actor && e.actor.address() == actor)
      end(e, why);
}

} // namespace cafshm
