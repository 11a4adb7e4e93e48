#include "fastpath/pending_requests.hpp"

#include <algorithm>
#include <vector>

#include <caf/detail/sync_request_bouncer.hpp>

namespace cafshm::fastpath {

void pending_requests::add(const caf::strong_actor_ptr& requester, caf::message_id mid,
                           const void* via) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (open_.size() >= sweep_at_)
    sweep_gone_requesters();
  open_.insert_or_assign(key_of(requester->id(), mid),
                         entry{caf::weak_actor_ptr{requester.get()}, mid, via});
}

bool pending_requests::remove(caf::actor_id requester, caf::message_id mid) {
  std::lock_guard<std::mutex> guard{mtx_};
  return open_.erase(key_of(requester, mid)) > 0;
}

pending_requests::answer pending_requests::answered(caf::actor_id requester,
                                                    caf::message_id mid) {
  auto k = key_of(requester, mid);
  std::lock_guard<std::mutex> guard{mtx_};
  if (open_.erase(k) > 0)
    return answer::expected;
  if (failed_.erase(k) > 0)
    return answer::late;
  return answer::unknown;
}

size_t pending_requests::fail_all(const void* via, const caf::error& reason,
                                  std::atomic<uint64_t>* failed_count) {
  std::vector<std::pair<caf::weak_actor_ptr, caf::message_id>> to_fail;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    for (auto i = open_.begin(); i != open_.end();) {
      if (i->second.via != via) {
        ++i;
        continue;
      }
      to_fail.emplace_back(std::move(i->second.requester), i->second.mid);
      remember_failed(i->first);
      i = open_.erase(i);
    }
  }
  if (failed_count)
    failed_count->fetch_add(to_fail.size(), std::memory_order_relaxed);
  // Outside the lock: the answer goes into the requester's mailbox.
  caf::detail::sync_request_bouncer bouncer{reason};
  for (auto& [requester, mid] : to_fail)
    if (auto strong = requester.lock())
      bouncer(strong, mid);
  return to_fail.size();
}

size_t pending_requests::size() {
  std::lock_guard<std::mutex> guard{mtx_};
  return open_.size();
}

void pending_requests::sweep_gone_requesters() {
  for (auto i = open_.begin(); i != open_.end();) {
    if (i->second.requester.lock())
      ++i;
    else
      i = open_.erase(i);
  }
  sweep_at_ = std::max(size_t{1024}, 2 * open_.size());
}

void pending_requests::remember_failed(const key& k) {
  failed_.insert(k);
  failed_order_.push_back(k);
  while (failed_order_.size() > max_failed) {
    failed_.erase(failed_order_.front());
    failed_order_.pop_front();
  }
}

} // namespace cafshm::fastpath
