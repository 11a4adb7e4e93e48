// A reference to one block of one engine's arena. It is a plain value: copying it grants
// nothing; every use is checked by the engine (owner or grant, generation, bounds).
#pragma once

#include <cstdint>
#include <string>

#include <caf/meta/type_name.hpp>

namespace cafshm {

struct block_ref {
  uint64_t engine = 0;      // id of the engine that owns the arena (random per engine start)
  uint32_t block = 0;       // index into that engine's block table
  uint32_t generation = 0;  // incarnation of the table entry; bumped on every free
  uint64_t size = 0;        // bytes requested at allocation (readable/writable range)

  bool valid() const noexcept { return engine != 0; }
  friend bool operator==(const block_ref&, const block_ref&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, block_ref& x) {
  return f(caf::meta::type_name("cafshm::block_ref"), x.engine, x.block, x.generation, x.size);
}

std::string to_string(const block_ref& x);

} // namespace cafshm
