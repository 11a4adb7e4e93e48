#include "cafshm/error.hpp"

#include <caf/message.hpp>
#include <caf/sec.hpp>

namespace cafshm {

const char* to_string(errc code) noexcept {
  switch (code) {
    case errc::ok: return "ok";
    case errc::unknown_process: return "unknown_process";
    case errc::stale_block: return "stale_block";
    case errc::access_denied: return "access_denied";
    case errc::out_of_range: return "out_of_range";
    case errc::out_of_memory: return "out_of_memory";
    case errc::quota_exceeded: return "quota_exceeded";
    case errc::name_taken: return "name_taken";
    case errc::name_not_found: return "name_not_found";
    case errc::invalid_argument: return "invalid_argument";
    case errc::capacity_exceeded: return "capacity_exceeded";
    case errc::block_in_use: return "block_in_use";
    case errc::segment_error: return "segment_error";
    case errc::engine_unreachable: return "engine_unreachable";
    case errc::config_error: return "config_error";
    case errc::busy: return "busy";
    case errc::checksum_mismatch: return "checksum_mismatch";
    case errc::peer_failure: return "peer_failure";
    case errc::process_name_taken: return "process_name_taken";
    case errc::request_too_large: return "request_too_large";
    case errc::would_deadlock: return "would_deadlock";
    case errc::pool_exhausted: return "pool_exhausted";
    case errc::actor_gone: return "actor_gone";
    case errc::inbox_full: return "inbox_full";
    case errc::record_abandoned: return "record_abandoned";
    case errc::peer_not_allowed: return "peer_not_allowed";
    case errc::engine_restarted: return "engine_restarted";
    case errc::process_exited: return "process_exited";
    case errc::too_many_processes: return "too_many_processes";
    case errc::version_mismatch: return "version_mismatch";
  }
  return "unknown_error";
}

caf::error make_error(errc code) {
  return caf::error{static_cast<uint8_t>(code), error_category};
}

caf::error make_error(errc code, std::string what) {
  return caf::error{static_cast<uint8_t>(code), error_category,
                    caf::make_message(std::move(what))};
}

errc code_of(const caf::error& err) noexcept {
  if (!err || err.category() != error_category)
    return errc::ok;
  return static_cast<errc>(err.code());
}

std::string describe(const caf::error& err) {
  if (!err)
    return "no error";
  std::string result;
  if (err.category() == error_category)
    result = to_string(static_cast<errc>(err.code()));
  else if (err.category() == caf::atom("system"))
    result = caf::to_string(static_cast<caf::sec>(err.code()));
  else
    return caf::to_string(err);
  const auto& ctx = err.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0))
    result += ": " + ctx.get_as<std::string>(0);
  return result;
}

} // namespace cafshm
