// Where the engine is published for clients: set by the program that publishes it once it
// knows the port (cafshmd, through module::listening_on), read by the engine for every
// registration, which tells clients where to reconnect after a restart. Thread-safe: written
// by the publishing thread, read by the engine actor.
#pragma once

#include <mutex>
#include <utility>

#include "cafshm/settings.hpp"

namespace cafshm {

class listen_address {
public:
  void set(endpoint where) {
    std::lock_guard<std::mutex> guard{mtx_};
    where_ = std::move(where);
  }

  /// The address; port 0 until set.
  endpoint get() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return where_;
  }

private:
  mutable std::mutex mtx_;
  endpoint where_{"", 0};
};

} // namespace cafshm
