#include "fastpath/inbox.hpp"

#include <bit>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <new>

#include <signal.h>
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

namespace {

// Whether `name` is "<prefix>inbox-<n>" or "<prefix>actors-<n>" with a decimal n.
bool is_inbox_name(std::string_view name, std::string_view prefix) {
  if (!name.starts_with(prefix))
    return false;
  name.remove_prefix(prefix.size());
  for (std::string_view kind : {"inbox-", "actors-"})
    if (name.starts_with(kind)) {
      auto digits = name.substr(kind.size());
      uint32_t n = 0;
      auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
      return !digits.empty() && ec == std::errc{} && end == digits.data() + digits.size();
    }
  return false;
}

} // namespace

size_t inbox::remove_inboxes(const std::string& engine_name, owners which) {
  size_t removed = 0;
  std::error_code ec;
  auto prefix = engine_name + ".";
  for (auto& entry : std::filesystem::directory_iterator{"/dev/shm", ec}) {
    auto name = entry.path().filename().string();
    if (!is_inbox_name(name, prefix))
      continue;
    auto seg = shm_segment::open(name, false, 0, ring_offset);
    if (!seg || seg->size() < sizeof(inbox_control))
      continue;
    const auto* control = reinterpret_cast<const inbox_control*>(seg->data());
    if (__atomic_load_n(&control->magic, __ATOMIC_ACQUIRE) != inbox_magic)
      continue; // being formatted
    auto owner = static_cast<pid_t>(control->owner_pid);
    bool ended = owner > 0 && ::kill(owner, 0) != 0 && errno == ESRCH;
    if ((which == owners::any || ended) && shm_segment::remove(name))
      ++removed;
  }
  return removed;
}

} // namespace cafshm::fastpath
