// The frames the producer sends and the checksum the sink verifies.
//
// A frame is cheap to generate (row copies out of a small precomputed pattern that stays in
// cache, written with streaming stores) and different for every index. The producer knows the checksum of its gray image without
// converting the frame: gray rows are rows of the pattern's gray image, whose row hashes it
// computed once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pipeline {

/// The checksum of a gray image (width * height bytes, rows top to bottom) that the sink
/// verifies: XXH3-64 over the sequence of the rows' XXH3-64 hashes.
uint64_t frame_checksum(const char* gray, uint32_t width, uint32_t height) noexcept;

class frame_source {
public:
  frame_source(uint32_t width, uint32_t height);

  uint32_t width() const noexcept { return width_; }
  uint32_t height() const noexcept { return height_; }
  size_t rgb_bytes() const noexcept { return size_t{width_} * height_ * 3; }
  size_t gray_bytes() const noexcept { return size_t{width_} * height_; }

  /// Writes frame `index` (rgb_bytes() bytes, 3 bytes per pixel, rows top to bottom) to `rgb`.
  void fill(uint32_t index, char* rgb) const noexcept;

  /// frame_checksum() of the gray image (to_gray) of frame `index`.
  uint64_t gray_checksum(uint32_t index) const noexcept;

private:
  // The pattern has `rows_` rows of width + period pixels and carries noise. Row y of frame i is
  // pattern row (y + i / period) % rows_, from column (i + 37 * (y / rows_)) % period: frames
  // differ for period * rows_ indices (in the column offset or else in the row shift).
  static constexpr uint32_t period = 256;
  static constexpr uint32_t max_rows = 64;
  struct origin_t {
    size_t row;
    size_t column;
  };
  origin_t origin(uint32_t index, uint32_t y) const noexcept; // where frame row y comes from
  const char* rgb_row(uint32_t index, uint32_t y) const noexcept;

  uint32_t width_;
  uint32_t height_;
  uint32_t rows_;
  size_t stride_; // pixels per pattern row: width + period
  std::vector<char> rgb_pattern_;
  std::vector<uint64_t> row_hashes_; // [row * period + column]: hash of that gray pattern row
};

} // namespace pipeline
