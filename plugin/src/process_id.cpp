#include "cafshm/process_id.hpp"

#include <ostream>

namespace cafshm {

std::string to_string(process_id p) {
  return std::to_string(to_slot(p));
}

std::ostream& operator<<(std::ostream& out, process_id p) {
  return out << to_slot(p);
}

} // namespace cafshm
