#include "fastpath/inbox_delivery.hpp"

#include <vector>

#include <caf/actor_system.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/message.hpp>
#include <caf/message_id.hpp>

#include "cafshm/error.hpp"
#include "fastpath/poll_registry.hpp"
#include "fastpath/record_deserializer.hpp"

namespace cafshm::fastpath {

caf::expected<void> send_message(inbox_writer& out, caf::actor_system& sys,
                                 const caf::message& msg, std::chrono::nanoseconds wait) {
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  auto copy = msg; // the serialiser's operator() takes a non-const reference
  if (auto err = sink(copy))
    return make_error(errc::invalid_argument,
                      "cannot serialise the message for an inbox: " + sys.render(err));
  return out.send({reinterpret_cast<const std::byte*>(buf.data()), buf.size()}, wait);
}

inbox_receiver::inbox_receiver(caf::actor_system& sys, inbox& in, caf::actor target,
                               idle_strategy idle)
  : sys_(sys), in_(in), target_(std::move(target)), idle_(idle) {
  polled_ = poll_registry::instance().add(*this);
  if (!polled_)
    thread_ = std::thread{[this] { run(); }};
}

inbox_receiver::~inbox_receiver() {
  if (polled_) {
    poll_registry::instance().remove(*this);
    return;
  }
  stop_.store(true, std::memory_order_release);
  in_.reader().interrupt();
  thread_.join();
}

void inbox_receiver::deliver(const inbox_record& r, caf::execution_unit* unit) {
  caf::message msg;
  record_deserializer src{sys_, r.payload}; // allocates no more than the record holds
  bool ok = false;
  try {
    ok = !src(msg) && src.remaining() == 0 && !msg.empty();
  } catch (...) { // whatever a type's inspect throws on bytes it did not write
    ok = false;
  }
  if (!ok) {
    malformed_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // Counted first: once enqueued, the target may act on it (and whoever it tells may read the
  // count) before this thread runs on.
  delivered_.fetch_add(1, std::memory_order_relaxed);
  target_->enqueue(caf::make_mailbox_element(nullptr, caf::make_message_id(), {}, std::move(msg)),
                   unit);
}

void inbox_receiver::run() {
  auto handler = [this](const inbox_record& r) {
    by_thread_.fetch_add(1, std::memory_order_relaxed); // before the target can see it
    deliver(r, nullptr);
  };
  while (!stop_.load(std::memory_order_acquire))
    in_.reader().receive(handler, idle_, std::chrono::seconds{1});
}

poll_outcome inbox_receiver::poll(caf::execution_unit* unit, size_t max) {
  return poll_registry::instance().poll_as_reader(reading_, *this, [&] {
    return in_.reader().poll([&](const inbox_record& r) { deliver(r, unit); }, max);
  });
}

wake_words inbox_receiver::wake() noexcept {
  return {&in_.reader().data_sequence(), &in_.reader().reader_waiting()};
}

std::chrono::nanoseconds inbox_receiver::recheck_after() const noexcept {
  return in_.reader().claim_pending() ? in_.reader().liveness_check_after()
                                      : std::chrono::nanoseconds::max();
}

} // namespace cafshm::fastpath
