// Reads CAF's binary format from an inbox record (request_record.hpp) that any local process may
// have written. CAF's binary_deserializer resizes a byte sequence (std::vector<char>,
// std::vector<uint8_t>) to the length its prefix claims before it checks that the input holds
// that many bytes: a 30-byte record claiming 4 GiB makes the reader allocate and zero 4 GiB. This
// deserializer hands everything to a binary_deserializer but refuses a sequence whose claimed
// length exceeds the bytes left (end_of_stream), so decoding a record of n bytes allocates
// O(n). Every element of every type the fast path carries takes at least one byte. (Strings
// binary_deserializer checks itself before it allocates.)
//
// Actor handles: CAF restores a handle of another node through the proxy registry of the
// deserializer's execution unit, and a null handle, which carries no node, counts as one of
// another node wherever the actor system has a node id (it has one once the io middleman is
// loaded, as in cafshmd). The execution unit of actor_system's own deserializers has no proxy
// registry, so there a null handle (e.g. transmit_target::deliver_to) failed to decode
// (sec::no_proxy_registry) while the same bytes decoded in a process without the middleman.
// This deserializer's unit has a registry that makes no proxies: a null handle decodes as
// null, and a handle of another process is noted (foreign_handle()) — outside BASP it would
// mean nothing — for the reader to refuse the record.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include <caf/binary_deserializer.hpp>
#include <caf/deserializer.hpp>
#include <caf/proxy_registry.hpp>
#include <caf/scoped_execution_unit.hpp>

namespace cafshm::fastpath {

class record_deserializer final : public caf::deserializer {
public:
  record_deserializer(caf::actor_system& sys, std::span<const std::byte> bytes);
  /// The same, restoring handles of other nodes through `proxies` (e.g. the actor inboxes'
  /// registry, actor_transport.hpp) instead of the registry that makes none; foreign_handle()
  /// then stays false (the registry's backend notes what it could not make).
  record_deserializer(caf::actor_system& sys, std::span<const std::byte> bytes,
                      caf::proxy_registry& proxies);

  /// Bytes not read yet.
  size_t remaining() const noexcept { return inner_.remaining(); }

  /// Whether the record held a non-null actor handle of another node (decoded as null).
  bool foreign_handle() const noexcept { return no_proxies_.asked; }

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
  // Makes no proxy; notes whether one for a real actor was asked for.
  struct no_proxies final : caf::proxy_registry::backend {
    bool asked = false;
    caf::strong_actor_ptr make_proxy(caf::node_id nid, caf::actor_id aid) override;
    void set_last_hop(caf::node_id*) override;
  };

  // Declared before the base uses them: the base only stores the unit's address.
  caf::scoped_execution_unit unit_;
  no_proxies no_proxies_;
  caf::proxy_registry proxies_;
  caf::binary_deserializer inner_;
};

} // namespace cafshm::fastpath
