#include "fastpath/actor_proxy.hpp"

#include <functional>

#include <caf/actor_system.hpp>
#include <caf/ref_counted.hpp>
#include <caf/resumable.hpp>
#include <caf/scheduler/abstract_coordinator.hpp>
#include <caf/atom.hpp>
#include <caf/detail/sync_request_bouncer.hpp>
#include <caf/exit_reason.hpp>
#include <caf/sec.hpp>
#include <caf/system_messages.hpp>

#include "cafshm/error.hpp"

namespace cafshm::fastpath {

namespace {

// Runs `fn` once on a scheduler thread. A proxy's add_backlink runs inside the critical section
// of both actors (monitorable_actor::add_link); writing the link record there would put the
// linking actor into the registry (caf::save_actor), which attaches to that very actor and
// takes its lock again: the record is written from here instead.
class deferred_job final : public caf::resumable, public caf::ref_counted {
public:
  explicit deferred_job(std::function<void()> fn) : fn_(std::move(fn)) {
  }
  subtype_t subtype() const override { return function_object; }
  resume_result resume(caf::execution_unit*, size_t) override {
    fn_();
    return done;
  }
  void intrusive_ptr_add_ref_impl() override { ref(); }
  void intrusive_ptr_release_impl() override { deref(); }

private:
  std::function<void()> fn_;
};

} // namespace

inbox_actor_proxy::inbox_actor_proxy(caf::actor_config& cfg, std::shared_ptr<peer_route> route,
                                     std::shared_ptr<actor_path_counters> counters,
                                     std::shared_ptr<pending_requests> pending)
  : caf::actor_proxy(cfg), counters_(std::move(counters)), pending_(std::move(pending)),
    route_(std::move(route)) {
}

inbox_actor_proxy::~inbox_actor_proxy() {
  // Normally killed before (the registry kills what it erases): nothing is left then.
  pending_->fail_all(this, caf::make_error(caf::sec::request_receiver_down),
                     &counters_->requests_failed);
}

bool inbox_actor_proxy::forward(const caf::strong_actor_ptr& sender, caf::message_id mid,
                                const std::vector<caf::strong_actor_ptr>& stages,
                                const caf::message& content, caf::error& why) {
  std::shared_ptr<peer_route> route;
  {
    std::lock_guard<std::mutex> guard{route_mtx_};
    route = route_;
    if (!route)
      why = killed_for_;
  }
  if (!route)
    return false;
  // Counted before the write: once written, the answer may come (and whoever it reaches may
  // read the count) before this thread runs on.
  counters_->sent.fetch_add(1, std::memory_order_relaxed);
  why = route->send_message(home_system(), sender, mid, stages, id(), content);
  if (why) {
    counters_->sent.fetch_sub(1, std::memory_order_relaxed);
    counters_->send_failed.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  return true;
}

void inbox_actor_proxy::enqueue(caf::mailbox_element_ptr what, caf::execution_unit*) {
  auto content = what->move_content_to_message();
  // As CAF's forwarding proxy: an exit message to the remote actor ends the link from here.
  if (content.match_elements<caf::exit_msg>())
    unlink_from(content.get_as<caf::exit_msg>(0).source);
  auto mid = what->mid;
  bool request = mid.is_request() && !mid.is_answered();
  // A request of an actor of this process that awaits the answer itself (no further stages):
  // kept until its answer comes, failed if this proxy is killed first. Kept before the record
  // is written, so that an answer read at once finds it.
  bool kept = request && what->sender && what->stages.empty()
              && what->sender->node() == home_system().node();
  if (kept)
    pending_->add(what->sender, mid, this);
  caf::error why;
  if (forward(what->sender, mid, what->stages, content, why) || !request)
    return;
  // A request always gets an answer: the reason it could not go (unless a kill of this proxy
  // answered it meanwhile).
  if (kept && !pending_->remove(what->sender->id(), mid))
    return;
  caf::detail::sync_request_bouncer bouncer{why};
  bouncer(what->sender, mid);
}

bool inbox_actor_proxy::add_backlink(caf::abstract_actor* x) {
  if (!caf::monitorable_actor::add_backlink(x))
    return false;
  // The remote side links its proxy of `x` to the actor (as BASP's forwarding proxy does).
  send_later(caf::make_message(caf::link_atom::value, x->ctrl()));
  return true;
}

void inbox_actor_proxy::send_later(caf::message content) {
  caf::strong_actor_ptr self{ctrl()};
  home_system().scheduler().enqueue(new deferred_job([self, content] {
    caf::error why;
    static_cast<inbox_actor_proxy*>(self->get())
      ->forward(self, caf::make_message_id(), {}, content, why);
  }));
}

bool inbox_actor_proxy::remove_backlink(caf::abstract_actor* x) {
  if (!caf::monitorable_actor::remove_backlink(x))
    return false;
  send_later(caf::make_message(caf::unlink_atom::value, x->ctrl()));
  return true;
}

void inbox_actor_proxy::kill_proxy(caf::execution_unit* context, caf::error reason) {
  {
    std::lock_guard<std::mutex> guard{route_mtx_};
    if (!route_)
      return;
    route_.reset();
    killed_for_ = reason;
  }
  counters_->proxies_killed.fetch_add(1, std::memory_order_relaxed);
  // The actor will not answer what it was asked through this proxy: as CAF answers a request
  // to an actor that is gone.
  pending_->fail_all(this, caf::make_error(caf::sec::request_receiver_down),
                     &counters_->requests_failed);
  cleanup(std::move(reason), context);
}

} // namespace cafshm::fastpath
