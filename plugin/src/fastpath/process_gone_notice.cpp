#include "fastpath/process_gone_notice.hpp"

#include <array>

#include "admin_layout.hpp"
#include "fastpath/actor_record.hpp"
#include "fastpath/inbox_writer.hpp"
#include "shm_segment.hpp"

namespace cafshm::fastpath {

size_t announce_process_gone(const std::string& engine_name, uint32_t gone, int32_t pid,
                             const std::vector<process_id>& others) {
  shm_segment::remove(actor_inbox_name(engine_name, gone));
  std::array<std::byte, actor_record_header_bytes> record;
  write_header(record.data(),
               {actor_record_kind::process_gone,
                uint64_t{gone} | uint64_t{static_cast<uint32_t>(pid)} << 32, 0});
  size_t written = 0;
  for (auto p : others) {
    if (to_slot(p) == gone)
      continue;
    auto w = inbox_writer::open(actor_inbox_name(engine_name, to_slot(p)), admin::engine_slot);
    if (w && w->send(record))
      ++written;
  }
  return written;
}

} // namespace cafshm::fastpath
