#include "cafshm/block_ref.hpp"

#include <cstdio>

namespace cafshm {

std::string to_string(const block_ref& x) {
  char buf[96];
  std::snprintf(buf, sizeof(buf), "block_ref(engine=%016llx, block=%u, gen=%u, size=%llu)",
                static_cast<unsigned long long>(x.engine), x.block, x.generation,
                static_cast<unsigned long long>(x.size));
  return buf;
}

} // namespace cafshm
