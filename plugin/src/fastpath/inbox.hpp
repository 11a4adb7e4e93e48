// A process's inbox: the shared-memory object other local processes append records to
// (inbox_writer) and this process reads (inbox_consumer). One per receiving process, named after
// the engine and the process's slot with it: "<engine name>.inbox-<slot>".
//
// Lifecycle: the receiving process creates it once the engine gave it a slot (create(), which
// replaces an object that a dead earlier holder of the slot left behind) and removes it when it
// ends (the destructor, which removes the name only while it still names this object, never a
// later holder's inbox); the engine removes the inbox of a process it reclaims after that
// process died (remove()).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <sys/types.h>

#include <caf/expected.hpp>

#include "fastpath/inbox_consumer.hpp"
#include "shm_segment.hpp"

namespace cafshm::fastpath {

struct inbox_options {
  uint64_t capacity = 64 * 1024;      // ring bytes: a power of two in [4 KiB, 16 MiB]
  uint32_t permissions = 0600;        // like the engine's segments (engine.permissions)
  std::optional<gid_t> group;         // with a group: group read/write (engine.group)
  consumer_options reader;
};

class inbox {
public:
  /// "<engine_name>.inbox-<slot>".
  static std::string segment_name(const std::string& engine_name, uint32_t slot);

  /// Creates and formats the inbox of process `slot` of engine `engine_name`, owned by this
  /// process. An object of that name left by an earlier holder of the slot is removed first.
  /// errc::invalid_argument for a bad capacity; errc::segment_error if the object cannot be made.
  static caf::expected<inbox> create(const std::string& engine_name, uint32_t slot,
                                     const inbox_options& options = {});

  /// The same under another name than "<engine>.inbox-<slot>" (a process's actor inbox,
  /// actor_record.hpp); `slot` is what the control block names as owner slot.
  static caf::expected<inbox> create_named(const std::string& name, uint32_t slot,
                                           const inbox_options& options = {});

  /// Removes the inbox object of process `slot` (the engine, for a process that died); true if
  /// there was one. Mappings stay valid until unmapped: senders then fill it until they time out.
  static bool remove(const std::string& engine_name, uint32_t slot);

  /// Which inboxes remove_inboxes() removes.
  enum class owners { ended, any };
  /// Removes the inboxes of engine `engine_name` ("<engine>.inbox-<n>", "<engine>.actors-<n>"):
  /// with owners::ended those whose owner process has ended (what a process killed before it
  /// could remove its own left, and its engine did not reclaim), with owners::any all of them (an
  /// engine that stops: processes that live on keep their mappings, and register anew with the
  /// next engine). Objects not (yet) formatted stay. Returns how many were removed. A pid reused
  /// since its owner ended keeps the object until a later sweep.
  static size_t remove_inboxes(const std::string& engine_name, owners which);

  inbox(inbox&&) noexcept = default;
  inbox& operator=(inbox&&) = delete;
  ~inbox(); // removes the name if it still names this object

  const std::string& name() const noexcept { return segment_.name(); }
  uint64_t capacity() const noexcept { return capacity_; }

  /// The reading side (one thread).
  inbox_consumer& reader() noexcept { return *reader_; }
  const inbox_consumer& reader() const noexcept { return *reader_; }

  /// The control block as every sender sees it (statistics, waiting writers); untrusted.
  const inbox_control& control() const noexcept {
    return *reinterpret_cast<const inbox_control*>(segment_.data());
  }

private:
  inbox() = default;

  shm_segment segment_;
  uint64_t capacity_ = 0;
  uint64_t instance_ = 0;
  std::unique_ptr<inbox_consumer> reader_;
};

} // namespace cafshm::fastpath
