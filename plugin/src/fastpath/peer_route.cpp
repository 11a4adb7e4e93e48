#include "fastpath/peer_route.hpp"

#include <caf/actor_system.hpp>
#include <caf/binary_serializer.hpp>

#include "cafshm/error.hpp"

namespace cafshm::fastpath {

uint32_t pid_of(const caf::node_id& node) {
  if (!node)
    return 0;
  auto* n = dynamic_cast<const caf::node_id::default_data*>(&*node);
  return n != nullptr ? n->process_id() : 0;
}

namespace {

std::vector<char> with_header(const actor_record_header& h) {
  std::vector<char> buf(actor_record_header_bytes);
  write_header(reinterpret_cast<std::byte*>(buf.data()), h);
  return buf;
}

} // namespace

caf::error peer_route::append(const std::vector<char>& buf) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto r = writer_.send({reinterpret_cast<const std::byte*>(buf.data()), buf.size()}, send_wait);
  if (!r)
    return std::move(r.error());
  return caf::none;
}

caf::error peer_route::send_message(caf::actor_system& sys, const caf::strong_actor_ptr& sender,
                                    caf::message_id mid,
                                    const std::vector<caf::strong_actor_ptr>& stages,
                                    caf::actor_id receiver, const caf::message& content) {
  auto buf = with_header({actor_record_kind::message, mid.integer_value(), receiver});
  caf::binary_serializer sink{sys, buf};
  // The serialiser takes non-const references; writing a local sender also puts it into the
  // actor system's registry, where the answer's record finds it (caf::save_actor).
  auto from = sender;
  auto via = stages;
  auto msg = content;
  if (auto err = sink(from, via, msg))
    return make_error(errc::invalid_argument,
                      "cannot serialise the message for an actor inbox: " + sys.render(err));
  return append(buf);
}

caf::error peer_route::send_watch(caf::actor_system& sys, caf::actor_id watched) {
  auto buf = with_header({actor_record_kind::watch, 0, watched});
  caf::binary_serializer sink{sys, buf};
  auto here = sys.node();
  if (auto err = sink(here))
    return err;
  return append(buf);
}

caf::error peer_route::send_down(caf::actor_system& sys, caf::actor_id ended,
                                 const caf::error& reason) {
  auto buf = with_header({actor_record_kind::down, 0, ended});
  caf::binary_serializer sink{sys, buf};
  auto here = sys.node();
  auto why = reason;
  if (auto err = sink(here, why))
    return err;
  return append(buf);
}

} // namespace cafshm::fastpath
