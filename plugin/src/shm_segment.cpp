#include "shm_segment.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <vector>
#include <unistd.h>

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>

#include "cafshm/error.hpp"

namespace bip = boost::interprocess;

namespace cafshm {

namespace {

std::string mib(uint64_t bytes) {
  return std::to_string(bytes >> 20) + " MiB";
}

} // namespace

shm_segment::shm_segment() = default;

shm_segment::shm_segment(shm_segment&& other) noexcept
  : region_(std::move(other.region_)),
    data_(std::exchange(other.data_, nullptr)),
    size_(std::exchange(other.size_, 0)),
    name_(std::move(other.name_)),
    remove_on_destroy_(std::exchange(other.remove_on_destroy_, false)) {
}

shm_segment& shm_segment::operator=(shm_segment&& other) noexcept {
  if (this != &other) {
    this->~shm_segment();
    new (this) shm_segment(std::move(other));
  }
  return *this;
}

shm_segment::~shm_segment() {
  region_.reset();
  if (remove_on_destroy_ && !name_.empty())
    bip::shared_memory_object::remove(name_.c_str());
}

shm_space query_shm_space() {
  struct statvfs st {};
  if (::statvfs("/dev/shm", &st) != 0)
    return {};
  return {uint64_t{st.f_bavail} * st.f_frsize, uint64_t{st.f_blocks} * st.f_frsize};
}


caf::expected<shm_segment> shm_segment::create(const std::string& name, uint64_t size,
                                               uint32_t permissions,
                                               std::optional<gid_t> group) {
  shm_segment result;
  try {
    bip::permissions perm;
    perm.set_permissions(static_cast<int>(permissions));
    bip::shared_memory_object shm{bip::create_only, name.c_str(), bip::read_write, perm};
    result.name_ = name;
    result.remove_on_destroy_ = true; // until handed out, failures clean up
    shm.truncate(static_cast<bip::offset_t>(size));
    int fd = shm.get_mapping_handle().handle;
    if (group) { // an access group (like iceoryx's): its members may map the object too
      if (::fchown(fd, static_cast<uid_t>(-1), *group) != 0)
        return make_error(errc::segment_error,
                          "cannot give shared-memory object '" + name + "' to group "
                            + std::to_string(*group) + ": " + std::strerror(errno)
                            + " (the engine's user must be a member of engine.group)");
      permissions |= 0060;
    }
    ::fchmod(fd, static_cast<mode_t>(permissions)); // umask must not narrow the mode
    if (int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(size)); rc != 0) {
      auto space = query_shm_space();
      std::string what = "cannot reserve " + mib(size) + " for shared-memory object '" + name
                         + "': " + std::strerror(rc);
      if (rc == ENOSPC)
        what += "; /dev/shm has " + mib(space.free_bytes) + " free of " + mib(space.total_bytes)
                + ". Enlarge it (docker run --shm-size=<n>g, or mount -o remount,size=<n>G "
                  "/dev/shm) or configure a smaller engine.arena (or engine.max_arena, when "
                  "an arena that grows adds the segment)";
      return make_error(errc::segment_error, std::move(what));
    }
    result.region_ = std::make_unique<bip::mapped_region>(shm, bip::read_write);
  } catch (const bip::interprocess_exception& e) {
    std::string what = "cannot create shared-memory object '" + name + "': " + e.what();
    if (e.get_error_code() == bip::already_exists_error)
      what += " (it already exists)";
    return make_error(errc::segment_error, std::move(what));
  }
  result.data_ = static_cast<std::byte*>(result.region_->get_address());
  result.size_ = size;
  result.remove_on_destroy_ = false;
  return result;
}

caf::expected<shm_segment> shm_segment::open(const std::string& name, bool writable,
                                             uint64_t offset, uint64_t length) {
  shm_segment result;
  try {
    auto mode = writable ? bip::read_write : bip::read_only;
    bip::shared_memory_object shm{bip::open_only, name.c_str(), mode};
    bip::offset_t total = 0;
    shm.get_size(total);
    if (length == 0)
      length = static_cast<uint64_t>(total) - offset;
    if (offset + length > static_cast<uint64_t>(total))
      return make_error(errc::segment_error, "range beyond the end of '" + name + "'");
    result.region_ = std::make_unique<bip::mapped_region>(
      shm, mode, static_cast<bip::offset_t>(offset), static_cast<size_t>(length));
  } catch (const bip::interprocess_exception& e) {
    return make_error(errc::segment_error,
                      "cannot map shared-memory object '" + name + "': " + e.what());
  }
  result.data_ = static_cast<std::byte*>(result.region_->get_address());
  result.size_ = length;
  result.name_ = name;
  return result;
}

bool shm_segment::exists(const std::string& name) {
  try {
    bip::shared_memory_object shm{bip::open_only, name.c_str(), bip::read_only};
    return true;
  } catch (const bip::interprocess_exception&) {
    return false;
  }
}

bool shm_segment::remove(const std::string& name) {
  return bip::shared_memory_object::remove(name.c_str());
}

} // namespace cafshm
