// Secrets that callers must not guess: session tokens, peer link tokens, door tickets, transfer
// ids. Drawn from the kernel's CSPRNG (getrandom), never from a seeded PRNG.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace cafshm {

/// Fills `out` from getrandom(2); aborts the process if the kernel cannot provide randomness
/// (a secret that might be predictable is worse than no engine).
void secure_random(std::span<std::byte> out);

/// A random non-zero 64-bit value (0 means "no token" in the protocol).
uint64_t secure_token();

} // namespace cafshm
