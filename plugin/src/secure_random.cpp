#include "secure_random.hpp"

#include <sys/random.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace cafshm {

void secure_random(std::span<std::byte> out) {
  size_t done = 0;
  while (done < out.size()) {
    auto n = ::getrandom(out.data() + done, out.size() - done, 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      std::fprintf(stderr, "cafshm: getrandom failed: %s\n", std::strerror(errno));
      std::abort();
    }
    done += static_cast<size_t>(n);
  }
}

uint64_t secure_token() {
  uint64_t x = 0;
  while (x == 0)
    secure_random(std::as_writable_bytes(std::span{&x, 1}));
  return x;
}

} // namespace cafshm
