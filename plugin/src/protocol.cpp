#include "cafshm/protocol.hpp"

namespace cafshm {

std::string to_string(access_mode m) {
  switch (m) {
    case access_mode::read: return "read";
    case access_mode::read_write: return "read_write";
  }
  return "access_mode(" + std::to_string(static_cast<unsigned>(m)) + ")";
}

} // namespace cafshm
