// Reads CAF's binary format from an inbox record (request_record.hpp) that any local process may
// have written. CAF's binary_deserializer resizes a byte sequence (std::vector<char>,
// std::vector<uint8_t>) to the length its prefix claims before it checks that the input holds
// that many bytes: a 30-byte record claiming 4 GiB makes the reader allocate and zero 4 GiB. This
// deserializer hands everything to a binary_deserializer but refuses a sequence whose claimed
// length exceeds the bytes left (end_of_stream), so decoding a record of n bytes allocates
// O(n). Every element of every type the fast path carries takes at least one byte. (Strings
// binary_deserializer checks itself before it allocates.)
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include <caf/binary_deserializer.hpp>
#include <caf/deserializer.hpp>

namespace cafshm::fastpath {

class record_deserializer final : public caf::deserializer {
public:
  record_deserializer(caf::actor_system& sys, std::span<const std::byte> bytes);

  /// Bytes not read yet.
  size_t remaining() const noexcept { return inner_.remaining(); }

  caf::error begin_object(uint16_t& typenr, std::string& name) override;
  caf::error end_object() override;
  caf::error begin_sequence(size_t& num) override;
  caf::error end_sequence() override;
  caf::error apply_raw(size_t num_bytes, void* data) override;

protected:
  caf::error apply_impl(int8_t& x) override;
  caf::error apply_impl(uint8_t& x) override;
  caf::error apply_impl(int16_t& x) override;
  caf::error apply_impl(uint16_t& x) override;
  caf::error apply_impl(int32_t& x) override;
  caf::error apply_impl(uint32_t& x) override;
  caf::error apply_impl(int64_t& x) override;
  caf::error apply_impl(uint64_t& x) override;
  caf::error apply_impl(float& x) override;
  caf::error apply_impl(double& x) override;
  caf::error apply_impl(long double& x) override;
  caf::error apply_impl(std::string& x) override;
  caf::error apply_impl(std::u16string& x) override;
  caf::error apply_impl(std::u32string& x) override;

private:
  caf::binary_deserializer inner_;
};

} // namespace cafshm::fastpath
