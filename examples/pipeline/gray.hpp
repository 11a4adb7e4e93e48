// The transformer's per-pixel operation: RGB (3 bytes per pixel) to 8-bit gray,
// y = (77 r + 150 g + 29 b) >> 8. The weights sum to 256, so every intermediate fits 16 bits.
#pragma once

#include <cstddef>

namespace pipeline {

/// Converts `pixels` pixels from `rgb` (3 * pixels bytes) to `gray` (pixels bytes).
/// The buffers must not overlap.
void to_gray(const char* rgb, char* gray, size_t pixels) noexcept;

} // namespace pipeline
