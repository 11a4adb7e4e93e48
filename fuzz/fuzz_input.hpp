// Reads typed values from a fuzzer's input, front to back; an exhausted input yields zeros, so
// every byte string is a valid (if short) program for the targets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace cafshm::fuzz {

class input {
public:
  input(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool empty() const noexcept { return pos_ >= size_; }
  size_t left() const noexcept { return empty() ? 0 : size_ - pos_; }

  uint8_t byte() noexcept { return empty() ? 0 : data_[pos_++]; }

  bool flag() noexcept { return (byte() & 1) != 0; }

  /// Little-endian integer of `bytes` bytes (1..8).
  uint64_t integer(int bytes = 8) noexcept {
    uint64_t x = 0;
    for (int i = 0; i < bytes; ++i)
      x |= uint64_t{byte()} << (8 * i);
    return x;
  }

  uint32_t u32() noexcept { return static_cast<uint32_t>(integer(4)); }
  uint64_t u64() noexcept { return integer(8); }

  /// A value in [0, n); n must be > 0.
  uint64_t below(uint64_t n) noexcept {
    int bytes = n <= 0x100 ? 1 : n <= 0x10000 ? 2 : n <= 0x100000000ull ? 4 : 8;
    return integer(bytes) % n;
  }

  /// A string of up to `max` bytes (length byte first; any byte values).
  std::string text(size_t max) {
    size_t n = below(max + 1);
    std::string out;
    while (out.size() < n && !empty())
      out.push_back(static_cast<char>(byte()));
    return out;
  }

  /// The rest of the input.
  std::string rest() {
    std::string out(reinterpret_cast<const char*>(data_ + pos_), left());
    pos_ = size_;
    return out;
  }

private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

/// Reports a violated property and aborts, which libFuzzer (and the replay test) count as a
/// crash.
[[noreturn]] inline void violation(const std::string& what) {
  std::fprintf(stderr, "fuzz property violated: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

} // namespace cafshm::fuzz
