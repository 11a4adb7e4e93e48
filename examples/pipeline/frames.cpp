#include "frames.hpp"

#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define XXH_STATIC_LINKING_ONLY // XXH3_state_t on the stack
#include <xxhash.h>
#if defined(__x86_64__)
// Replaces XXH3_64bits(_update) by libxxhash's runtime dispatch: the AVX2 code path when the CPU
// has it (the default build is SSE2 only; same results, about a third less time here).
#include <xxh_x86dispatch.h>
#endif

#include "gray.hpp"

namespace pipeline {

namespace {

// memcpy with non-temporal stores: a frame is far larger than the caches, and streaming stores
// skip reading every destination line before overwriting it (half the memory traffic).
void stream_copy(char* dst, const char* src, size_t n) noexcept {
#if defined(__SSE2__)
  size_t head = (16 - reinterpret_cast<uintptr_t>(dst) % 16) % 16;
  if (head > n)
    head = n;
  std::memcpy(dst, src, head);
  size_t i = head;
  for (; i + 64 <= n; i += 64) {
    auto a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    auto b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 16));
    auto c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 32));
    auto d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 48));
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i), a);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 16), b);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 32), c);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 48), d);
  }
  std::memcpy(dst + i, src + i, n - i);
#else
  std::memcpy(dst, src, n);
#endif
}

uint64_t row_hash(const char* row, uint32_t width) noexcept {
  return XXH3_64bits(row, width);
}

// XXH3-64 over a sequence of row hashes, fed in batches.
template <class RowHash>
uint64_t combine_rows(uint32_t height, RowHash&& hash_of_row) noexcept {
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  uint64_t batch[128];
  for (uint32_t y = 0; y < height;) {
    uint32_t n = 0;
    for (; n < 128 && y < height; ++n, ++y)
      batch[n] = hash_of_row(y);
    XXH3_64bits_update(&state, batch, n * sizeof(uint64_t));
  }
  return XXH3_64bits_digest(&state);
}

} // namespace

uint64_t frame_checksum(const char* gray, uint32_t width, uint32_t height) noexcept {
  return combine_rows(height, [=](uint32_t y) { return row_hash(gray + size_t{y} * width, width); });
}

frame_source::frame_source(uint32_t width, uint32_t height)
  : width_(width), height_(height), rows_(height < max_rows ? height : max_rows),
    stride_(size_t{width} + period), rgb_pattern_(stride_ * rows_ * 3) {
  // A gradient with a few bits of xorshift noise.
  uint64_t s = 0x9e3779b97f4a7c15ull;
  auto* out = reinterpret_cast<uint8_t*>(rgb_pattern_.data());
  for (uint32_t y = 0; y < rows_; ++y) {
    for (size_t x = 0; x < stride_; ++x) {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      *out++ = static_cast<uint8_t>(x + (s & 31));
      *out++ = static_cast<uint8_t>(2 * y + ((s >> 8) & 31));
      *out++ = static_cast<uint8_t>((x ^ y) + ((s >> 16) & 31));
    }
  }
  std::vector<char> gray_pattern(stride_ * rows_);
  to_gray(rgb_pattern_.data(), gray_pattern.data(), stride_ * rows_);
  row_hashes_.resize(size_t{rows_} * period);
  for (uint32_t row = 0; row < rows_; ++row)
    for (uint32_t column = 0; column < period; ++column)
      row_hashes_[row * period + column] =
        row_hash(gray_pattern.data() + row * stride_ + column, width_);
}

frame_source::origin_t frame_source::origin(uint32_t index, uint32_t y) const noexcept {
  return {(y + index / period) % rows_, (index + 37 * (y / rows_)) % period};
}

const char* frame_source::rgb_row(uint32_t index, uint32_t y) const noexcept {
  auto [row, column] = origin(index, y);
  return rgb_pattern_.data() + (row * stride_ + column) * 3;
}

void frame_source::fill(uint32_t index, char* rgb) const noexcept {
  const size_t row_bytes = size_t{width_} * 3;
  for (uint32_t y = 0; y < height_; ++y, rgb += row_bytes)
    stream_copy(rgb, rgb_row(index, y), row_bytes);
#if defined(__SSE2__)
  _mm_sfence(); // streaming stores are weakly ordered: complete them before the frame is sent
#endif
}

uint64_t frame_source::gray_checksum(uint32_t index) const noexcept {
  return combine_rows(height_, [this, index](uint32_t y) {
    auto [row, column] = origin(index, y);
    return row_hashes_[row * period + column];
  });
}

} // namespace pipeline
