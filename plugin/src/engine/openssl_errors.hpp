#pragma once

// OpenSSL reports its failures in a queue per thread. Whoever reads it empties it, so that no
// stale reason leaks into the next OpenSSL call on the same thread (CAF's openssl module runs
// its TLS on the same threads as the engine's own checks).

#include <string>

namespace cafshm {

/// This thread's queued OpenSSL errors as one line ("; "-separated), the queue emptied;
/// `if_none` when it was empty.
std::string openssl_errors(const char* if_none = "no detail from OpenSSL");

} // namespace cafshm
