#include "fastpath/record_deserializer.hpp"

#include <caf/sec.hpp>

namespace cafshm::fastpath {

record_deserializer::record_deserializer(caf::actor_system& sys,
                                         std::span<const std::byte> bytes)
  : caf::deserializer(&unit_), unit_(&sys), proxies_(sys, no_proxies_),
    inner_(sys, reinterpret_cast<const char*>(bytes.data()), bytes.size()) {
  unit_.proxy_registry_ptr(&proxies_);
}

record_deserializer::record_deserializer(caf::actor_system& sys,
                                         std::span<const std::byte> bytes,
                                         caf::proxy_registry& proxies)
  : record_deserializer(sys, bytes) {
  unit_.proxy_registry_ptr(&proxies);
}

caf::strong_actor_ptr record_deserializer::no_proxies::make_proxy(caf::node_id nid,
                                                                  caf::actor_id aid) {
  if (aid != 0 || nid != caf::node_id{})
    asked = true;
  return nullptr;
}

void record_deserializer::no_proxies::set_last_hop(caf::node_id*) {
}

caf::error record_deserializer::begin_object(uint16_t& typenr, std::string& name) {
  return inner_.begin_object(typenr, name);
}

caf::error record_deserializer::end_object() {
  return inner_.end_object();
}

caf::error record_deserializer::begin_sequence(size_t& num) {
  if (auto err = inner_.begin_sequence(num))
    return err;
  if (num > inner_.remaining()) // more elements than bytes left: cannot be true
    return caf::make_error(caf::sec::end_of_stream);
  return caf::none;
}

caf::error record_deserializer::end_sequence() {
  return inner_.end_sequence();
}

caf::error record_deserializer::apply_raw(size_t num_bytes, void* data) {
  return inner_.apply_raw(num_bytes, data);
}

caf::error record_deserializer::apply_impl(int8_t& x) { return inner_.apply(x); }
caf::error record_deserializer::apply_impl(uint8_t& x) { return inner_.apply(x); }
caf::error record_deserializer::apply_impl(int16_t& x) { return inner_.apply(x); }
caf::error record_deserializer::apply_impl(uint16_t& x) { return inner_.apply(x); }
caf::error record_deserializer::apply_impl(int32_t& x) { return inner_.apply(x); }
caf::error record_deserializer::apply_impl(uint32_t& x) { return inner_.apply(x); }
caf::error record_deserializer::apply_impl(int64_t& x) { return inner_.apply(x); }
caf::error record_deserializer::apply_impl(uint64_t& x) { return inner_.apply(x); }
caf::error record_deserializer::apply_impl(float& x) { return inner_.apply(x); }
caf::error record_deserializer::apply_impl(double& x) { return inner_.apply(x); }
caf::error record_deserializer::apply_impl(long double& x) { return inner_.apply(x); }
caf::error record_deserializer::apply_impl(std::string& x) { return inner_.apply(x); }
caf::error record_deserializer::apply_impl(std::u16string& x) { return inner_.apply(x); }
caf::error record_deserializer::apply_impl(std::u32string& x) { return inner_.apply(x); }

} // namespace cafshm::fastpath
