// A named POSIX shared-memory object mapped into this process (Boost.Interprocess).
// Owns the mapping; removes the object itself only when asked to (remove_on_destroy).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <sys/types.h>

#include <caf/expected.hpp>

namespace boost::interprocess {
class mapped_region;
}

namespace cafshm {

class shm_segment {
public:
  shm_segment();
  shm_segment(shm_segment&&) noexcept;
  shm_segment& operator=(shm_segment&&) noexcept;
  ~shm_segment();

  /// Creates a new object of `size` bytes with mode `permissions`, reserves its memory up front
  /// (so that a too small /dev/shm fails here with a clear segment_error, never with SIGBUS
  /// later), and maps it read-write. Fails if the object exists. With a `group`, the object
  /// belongs to that group and gets group read and write (permissions | 0060); the creating
  /// user must be a member of the group (or root).
  static caf::expected<shm_segment> create(const std::string& name, uint64_t size,
                                           uint32_t permissions,
                                           std::optional<gid_t> group = std::nullopt);

  /// Maps `length` bytes from `offset` (page-aligned) of an existing object; length 0 = all.
  static caf::expected<shm_segment> open(const std::string& name, bool writable,
                                         uint64_t offset = 0, uint64_t length = 0);

  static bool exists(const std::string& name);

  /// Removes the object's name; mappings stay valid until unmapped.
  static bool remove(const std::string& name);

  std::byte* data() const noexcept { return data_; }
  uint64_t size() const noexcept { return size_; }
  const std::string& name() const noexcept { return name_; }
  explicit operator bool() const noexcept { return data_ != nullptr; }

  /// Unlink the object when this handle is destroyed (set by the creator).
  void remove_on_destroy(bool flag) noexcept { remove_on_destroy_ = flag; }

private:
  std::unique_ptr<boost::interprocess::mapped_region> region_;
  std::byte* data_ = nullptr;
  uint64_t size_ = 0;
  std::string name_;
  bool remove_on_destroy_ = false;
};

/// Free and total bytes of the filesystem behind POSIX shared memory (/dev/shm).
struct shm_space {
  uint64_t free_bytes = 0;
  uint64_t total_bytes = 0;
};
shm_space query_shm_space();


} // namespace cafshm
