#include "fastpath/actor_inbox_reader.hpp"

#include <vector>

#include <caf/actor_cast.hpp>
#include <caf/actor_registry.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/detail/sync_request_bouncer.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/message.hpp>
#include <caf/sec.hpp>

#include "admin_layout.hpp"
#include "fastpath/actor_record.hpp"
#include "fastpath/actor_transport.hpp"
#include "fastpath/record_deserializer.hpp"

namespace cafshm::fastpath {

namespace {

// Decodes `xs...` from the whole of `body` (nothing left over), restoring handles through
// `proxies`; false if the bytes are not that, whatever a type's inspect throws.
template <class... Ts>
bool decode(caf::actor_system& sys, std::span<const std::byte> body, caf::proxy_registry& proxies,
            Ts&... xs) {
  record_deserializer src{sys, body, proxies};
  try {
    return !src(xs...) && src.remaining() == 0;
  } catch (...) {
    return false;
  }
}

void answer_with(const caf::strong_actor_ptr& sender, caf::message_id mid, caf::sec code) {
  if (sender && mid.is_request() && !mid.is_answered())
    caf::detail::sync_request_bouncer{caf::make_error(code)}(sender, mid);
}

} // namespace

actor_inbox_reader::actor_inbox_reader(actor_transport& transport, inbox_consumer& in)
  : transport_(transport), in_(in) {
}

size_t actor_inbox_reader::poll_once(caf::execution_unit* context, size_t max) {
  return in_.poll([this, context](const inbox_record& r) { take(r, context); }, max);
}

size_t actor_inbox_reader::run(const idle_strategy& idle, std::chrono::nanoseconds timeout,
                               caf::execution_unit* context) {
  return in_.receive([this, context](const inbox_record& r) { take(r, context); }, idle,
                     timeout);
}

void actor_inbox_reader::interrupt() noexcept {
  in_.interrupt();
}

void actor_inbox_reader::take(const inbox_record& r, caf::execution_unit* context) {
  auto& counters = transport_.counters();
  if (r.payload.size() < actor_record_header_bytes) {
    counters.malformed.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  switch (read_header(r.payload).kind) {
    case actor_record_kind::message:
      return take_message(r, context);
    case actor_record_kind::watch:
      return take_watch(r);
    case actor_record_kind::down:
      return take_down(r, context);
    case actor_record_kind::process_gone: {
      auto h = read_header(r.payload);
      if (r.sender != admin::engine_slot || r.payload.size() != actor_record_header_bytes) {
        counters.malformed.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      transport_.process_gone(static_cast<uint32_t>(h.word),
                              static_cast<int32_t>(h.word >> 32));
      return;
    }
  }
  counters.malformed.fetch_add(1, std::memory_order_relaxed);
}

void actor_inbox_reader::take_message(const inbox_record& r, caf::execution_unit* context) {
  auto& sys = transport_.system();
  auto& counters = transport_.counters();
  auto h = read_header(r.payload);
  caf::strong_actor_ptr sender;
  std::vector<caf::strong_actor_ptr> stages;
  caf::message content;
  bool refused = false;
  {
    // a new sender node: through this slot
    actor_transport::decoding_scope scope{transport_, r.sender};
    if (!decode(sys, r.payload.subspan(actor_record_header_bytes), transport_.proxies(), sender,
                stages, content)) {
      counters.malformed.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    refused = actor_transport::decoding_scope::refused();
  }
  caf::message_id mid{h.word}; // exactly as the sender had it (priority included)
  // An answer to a request that was failed here when its proxy was killed: the requester has
  // its answer already (pending_requests.hpp).
  if (mid.is_response()
      && transport_.pending().answered(static_cast<caf::actor_id>(h.actor), mid)
           == pending_requests::answer::late) {
    counters.late_answers.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (refused) { // a handle came out null: the message would not be what was sent
    counters.refused.fetch_add(1, std::memory_order_relaxed);
    answer_with(sender, mid, caf::sec::no_route_to_receiving_node);
    return;
  }
  // A request of an actor of this process, back here: the actor it went to handed it on
  // (delegate) to an actor of this process, which answers the requester here, not through the
  // inbox. Nothing waits for that answer through the proxy any more.
  if (mid.is_request() && stages.empty() && sender && sender->node() == sys.node())
    transport_.pending().remove(sender->id(), mid);
  auto receiver = sys.registry().get(static_cast<caf::actor_id>(h.actor));
  if (!receiver) {
    counters.unknown_receiver.fetch_add(1, std::memory_order_relaxed);
    answer_with(sender, mid, caf::sec::request_receiver_down);
    return;
  }
  // A proxy asks for a link (as BASP's forwarding proxies do): (link_atom, the linking actor),
  // from the proxy's actor itself. The linking actor is one of another process: a proxy here.
  if (content.match_elements<caf::atom_value, caf::strong_actor_ptr>()) {
    auto atom = content.get_as<caf::atom_value>(0);
    if (atom == caf::link_atom::value || atom == caf::unlink_atom::value) {
      const auto& other = content.get_as<caf::strong_actor_ptr>(1);
      auto* proxy = other ? dynamic_cast<caf::actor_proxy*>(other->get()) : nullptr;
      if (proxy == nullptr) {
        counters.refused.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      counters.delivered.fetch_add(1, std::memory_order_relaxed); // first, as below
      if (atom == caf::link_atom::value)
        proxy->add_link(receiver->get());
      else
        proxy->remove_link(receiver->get());
      return;
    }
  }
  // Counted first: once enqueued, the actor may act on it (and whoever it answers may read the
  // count) before this thread runs on.
  counters.delivered.fetch_add(1, std::memory_order_relaxed);
  receiver->enqueue(caf::make_mailbox_element(std::move(sender), mid, std::move(stages),
                                              std::move(content)),
                    context);
}

void actor_inbox_reader::take_watch(const inbox_record& r) {
  auto h = read_header(r.payload);
  caf::node_id watcher;
  if (!decode(transport_.system(), r.payload.subspan(actor_record_header_bytes),
              transport_.proxies(), watcher)) {
    transport_.counters().malformed.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  transport_.watch_for(watcher, static_cast<caf::actor_id>(h.actor), r.sender);
}

void actor_inbox_reader::take_down(const inbox_record& r, caf::execution_unit*) {
  auto h = read_header(r.payload);
  caf::node_id origin;
  caf::error reason;
  if (!decode(transport_.system(), r.payload.subspan(actor_record_header_bytes),
              transport_.proxies(), origin, reason)) {
    transport_.counters().malformed.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  transport_.proxies().erase(origin, static_cast<caf::actor_id>(h.actor), std::move(reason));
}

} // namespace cafshm::fastpath
