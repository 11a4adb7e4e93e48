#include "fastpath/inbox_delivery.hpp"

#include <vector>

#include <caf/actor_system.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/message.hpp>
#include <caf/message_id.hpp>

#include "cafshm/error.hpp"
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
  : sys_(sys), in_(in), target_(std::move(target)), idle_(idle), thread_([this] { run(); }) {
}

inbox_receiver::~inbox_receiver() {
  stop_.store(true, std::memory_order_release);
  in_.reader().interrupt();
  thread_.join();
}

void inbox_receiver::run() {
  auto deliver = [this](const inbox_record& r) {
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
    target_->enqueue(caf::make_mailbox_element(nullptr, caf::make_message_id(), {},
                                               std::move(msg)),
                     nullptr);
    delivered_.fetch_add(1, std::memory_order_relaxed);
  };
  while (!stop_.load(std::memory_order_acquire))
    in_.reader().receive(deliver, idle_, std::chrono::seconds{1});
}

} // namespace cafshm::fastpath
