#include "fastpath/process_gone_notice.hpp"

#include <array>

#include "admin_layout.hpp"
#include "fastpath/actor_record.hpp"
#include "fastpath/inbox_writer.hpp"
#include "shm_segment.hpp"

namespace cafshm::fastpath {

process_gone_notices::outcome process_gone_notices::write(uint32_t receiver, uint32_t gone,
                                                          int32_t pid) const {
  std::array<std::byte, actor_record_header_bytes> record;
  write_header(record.data(),
               {actor_record_kind::process_gone,
                uint64_t{gone} | uint64_t{static_cast<uint32_t>(pid)} << 32, 0});
  auto w = inbox_writer::open(actor_inbox_name(engine_name_, receiver), admin::engine_slot);
  if (!w)
    return outcome::no_inbox; // no actor inbox: no proxies to kill there
  return w->send(record) ? outcome::written : outcome::full;
}

size_t process_gone_notices::announce(uint32_t gone, int32_t pid,
                                      const std::vector<process_id>& others) {
  shm_segment::remove(actor_inbox_name(engine_name_, gone));
  size_t written = 0;
  for (auto p : others) {
    auto receiver = to_slot(p);
    if (receiver == gone)
      continue;
    switch (write(receiver, gone, pid)) {
      case outcome::written:
        ++written;
        break;
      case outcome::no_inbox:
        break;
      case outcome::full: {
        auto [i, added] = kept_.try_emplace({receiver, gone}, pid);
        if (!added && i->second != pid)
          i->second = 0; // two processes of that slot: any route to it ends
        break;
      }
    }
  }
  return written;
}

size_t process_gone_notices::retry() {
  size_t written = 0;
  for (auto i = kept_.begin(); i != kept_.end();) {
    auto [receiver, gone] = i->first;
    auto result = write(receiver, gone, i->second);
    if (result == outcome::full) {
      ++i;
      continue;
    }
    if (result == outcome::written) {
      ++written;
      ++delivered_late_;
    }
    i = kept_.erase(i);
  }
  return written;
}

void process_gone_notices::receiver_gone(uint32_t slot) {
  for (auto i = kept_.begin(); i != kept_.end();) {
    if (i->first.first == slot) {
      ++dropped_;
      i = kept_.erase(i);
    } else {
      ++i;
    }
  }
}

} // namespace cafshm::fastpath
