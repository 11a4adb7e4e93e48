#include "fastpath/inbox.hpp"

#include <bit>
#include <new>

#include <unistd.h>

#include "cafshm/error.hpp"
#include "secure_random.hpp"

namespace cafshm::fastpath {

std::string inbox::segment_name(const std::string& engine_name, uint32_t slot) {
  return engine_name + ".inbox-" + std::to_string(slot);
}

caf::expected<inbox> inbox::create(const std::string& engine_name, uint32_t slot,
                                   const inbox_options& options) {
  return create_named(segment_name(engine_name, slot), slot, options);
}

caf::expected<inbox> inbox::create_named(const std::string& name, uint32_t slot,
                                         const inbox_options& options) {
  if (!std::has_single_bit(options.capacity) || options.capacity < min_capacity
      || options.capacity > max_capacity)
    return make_error(errc::invalid_argument,
                      "inbox capacity " + std::to_string(options.capacity)
                        + " is not a power of two between " + std::to_string(min_capacity)
                        + " and " + std::to_string(max_capacity) + " bytes");
  // The engine hands a slot to one live process at a time: an object of this name belongs to a
  // holder of the slot that died before removing it.
  shm_segment::remove(name);
  auto seg = shm_segment::create(name, segment_bytes(options.capacity), options.permissions,
                                 options.group);
  if (!seg)
    return seg.error();
  // Removed by ~inbox (only while the name is still this object's) or by the engine.
  seg->remove_on_destroy(false);
  // Format: the object is zero-filled; the magic goes last, so a sender that opens it early
  // refuses it instead of using a half-written control block.
  auto* control = new (seg->data()) inbox_control{};
  control->layout_version = inbox_layout_version;
  control->control_bytes = sizeof(inbox_control);
  control->capacity = options.capacity;
  control->owner_pid = static_cast<int32_t>(::getpid());
  control->owner_slot = slot;
  control->instance = secure_token();
  __atomic_store_n(&control->magic, inbox_magic, __ATOMIC_RELEASE);
  inbox result;
  result.capacity_ = options.capacity;
  result.instance_ = control->instance;
  result.reader_ = std::make_unique<inbox_consumer>(control, seg->data() + ring_offset,
                                                    options.capacity, 0, options.reader);
  result.segment_ = std::move(*seg);
  return result;
}

inbox::~inbox() {
  if (!segment_)
    return; // moved from
  auto current = shm_segment::open(segment_.name(), false, 0, ring_offset);
  if (!current)
    return; // already removed (by the engine, or by a new holder of the slot)
  const auto* control = reinterpret_cast<const inbox_control*>(current->data());
  if (__atomic_load_n(&control->magic, __ATOMIC_ACQUIRE) == inbox_magic
      && control->instance == instance_)
    shm_segment::remove(segment_.name());
}

bool inbox::remove(const std::string& engine_name, uint32_t slot) {
  return shm_segment::remove(segment_name(engine_name, slot));
}

} // namespace cafshm::fastpath
