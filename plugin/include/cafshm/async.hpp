// What the async calls of cafshm (client::map(self, ...), pool::loan(self), ...) answer: an
// operation that starts when .then(on_value, on_error) is called. The handlers run in the
// requesting actor's context, like those of a CAF request; when the answer is known at once (a
// free pool block, an already mapped view), they run inside .then() itself.
//
// Use it once: .then() consumes the operation.
#pragma once

#include <functional>
#include <utility>

#include <caf/error.hpp>

namespace cafshm {

template <class T>
class async_result {
public:
  using value_handler = std::function<void(T&&)>;
  using error_handler = std::function<void(caf::error&)>;
  using starter = std::function<void(value_handler, error_handler)>;

  explicit async_result(starter start) : start_(std::move(start)) {
  }

  template <class OnValue, class OnError>
  void then(OnValue on_value, OnError on_error) {
    auto start = std::move(start_);
    start([f = std::move(on_value)](T&& x) mutable { f(std::move(x)); },
          [g = std::move(on_error)](caf::error& e) mutable { g(e); });
  }

private:
  starter start_;
};

/// The answer of an async call without a value.
struct done {};

} // namespace cafshm
