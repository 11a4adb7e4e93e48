#include "fastpath/coalescing_clock.hpp"

#include <caf/abstract_actor.hpp>

namespace cafshm::fastpath {

void coalescing_clock::set_ordinary_timeout(time_point t, caf::abstract_actor* self,
                                            caf::atom_value type, uint64_t id) {
  append(std::make_unique<ordinary_timeout>(t, self->ctrl(), type, id), t);
}

void coalescing_clock::set_request_timeout(time_point t, caf::abstract_actor* self,
                                           caf::message_id id) {
  append(std::make_unique<request_timeout>(t, self->ctrl(), id), t);
}

void coalescing_clock::set_multi_timeout(time_point t, caf::abstract_actor* self,
                                         caf::atom_value type, uint64_t id) {
  append(std::make_unique<multi_timeout>(t, self->ctrl(), type, id), t);
}

void coalescing_clock::cancel_ordinary_timeout(caf::abstract_actor* self, caf::atom_value type) {
  append(std::make_unique<ordinary_timeout_cancellation>(self->id(), type), time_point::max());
}

void coalescing_clock::cancel_request_timeout(caf::abstract_actor* self, caf::message_id id) {
  append(std::make_unique<request_timeout_cancellation>(self->id(), id), time_point::max());
}

void coalescing_clock::cancel_timeouts(caf::abstract_actor* self) {
  append(std::make_unique<timeouts_cancellation>(self->id()), time_point::max());
}

void coalescing_clock::schedule_message(time_point t, caf::strong_actor_ptr receiver,
                                        caf::mailbox_element_ptr content) {
  append(std::make_unique<actor_msg>(t, std::move(receiver), std::move(content)), t);
}

void coalescing_clock::schedule_message(time_point t, caf::group target,
                                        caf::strong_actor_ptr sender, caf::message content) {
  append(std::make_unique<group_msg>(t, std::move(target), std::move(sender), std::move(content)),
         t);
}

void coalescing_clock::cancel_all() {
  append(std::make_unique<drop_all>(), time_point::max(), true);
}

void coalescing_clock::stop() {
  append(std::make_unique<shutdown>(), time_point::max(), true);
}

void coalescing_clock::append(unique_event_ptr x, time_point due, bool always) {
  bool notify = false;
  {
    std::lock_guard<std::mutex> guard{lock_};
    pending_.push_back(std::move(x));
    // While the thread is awake it looks at pending_ again before it sleeps.
    notify = sleeping_ && (always || due < wake_at_ || pending_.size() >= batch_limit);
    if (notify)
      sleeping_ = false; // one notification per sleep is enough
  }
  if (notify) {
    wakeups_.fetch_add(1, std::memory_order_relaxed);
    wake_.notify_one();
  }
}

bool coalescing_clock::apply(unique_event_ptr& x) {
  switch (x->subtype) {
    case ordinary_timeout_cancellation_type:
      handle(static_cast<ordinary_timeout_cancellation&>(*x));
      break;
    case request_timeout_cancellation_type:
      handle(static_cast<request_timeout_cancellation&>(*x));
      break;
    case timeouts_cancellation_type:
      handle(static_cast<timeouts_cancellation&>(*x));
      break;
    case drop_all_type:
      schedule_.clear();
      actor_lookup_.clear();
      break;
    case shutdown_type:
      schedule_.clear();
      actor_lookup_.clear();
      return false;
    case ordinary_timeout_type:
      add_schedule_entry(std::unique_ptr<ordinary_timeout>{
        static_cast<ordinary_timeout*>(x.release())});
      break;
    case multi_timeout_type:
      add_schedule_entry(
        std::unique_ptr<multi_timeout>{static_cast<multi_timeout*>(x.release())});
      break;
    case request_timeout_type:
      add_schedule_entry(
        std::unique_ptr<request_timeout>{static_cast<request_timeout*>(x.release())});
      break;
    case actor_msg_type:
      add_schedule_entry(std::unique_ptr<actor_msg>{static_cast<actor_msg*>(x.release())});
      break;
    case group_msg_type:
      add_schedule_entry(std::unique_ptr<group_msg>{static_cast<group_msg*>(x.release())});
      break;
    default: // no other kind is ever appended
      break;
  }
  return true;
}

void coalescing_clock::run() {
  std::vector<unique_event_ptr> batch;
  std::unique_lock<std::mutex> guard{lock_};
  for (;;) {
    if (pending_.empty()) {
      auto next = schedule_.empty() ? time_point::max() : schedule_.begin()->first;
      if (next > now()) {
        wake_at_ = next;
        sleeping_ = true;
        if (next == time_point::max())
          wake_.wait(guard);
        else
          wake_.wait_until(guard, next);
        sleeping_ = false;
        wake_at_ = time_point::min();
        continue;
      }
    }
    batch.swap(pending_);
    guard.unlock();
    bool running = true;
    for (auto& x : batch)
      if (running && !apply(x))
        running = false;
    batch.clear(); // destroys events outside the lock
    if (!running)
      return;
    trigger_expired_timeouts();
    guard.lock();
  }
}

} // namespace cafshm::fastpath
