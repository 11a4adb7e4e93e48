// Helpers shared by the tests: unique engine names (testing/unique_name.hpp), an RAII guard
// that removes an engine's segments even when a test fails, readable doctest output for
// cafshm::errc, and waiting on a condition with a deadline.
#pragma once

#include <chrono>
#include <string>
#include <thread>

#include <unistd.h>

#include <doctest/doctest.h>

#include "cafshm/error.hpp"
#include "memory_manager.hpp"
#include "shm_segment.hpp"
#include "testing/unique_name.hpp"

namespace doctest {
template <>
struct StringMaker<cafshm::errc> {
  static String convert(cafshm::errc code) { return cafshm::to_string(code); }
};
} // namespace doctest

namespace cafshm_test {

using cafshm::test::unique_name; // "<prefix>-<pid>-<n>"

/// Removes every segment of engine `name` when it goes out of scope (declare it before whatever
/// creates the segments, so that it runs last).
struct segment_guard {
  std::string name;
  explicit segment_guard(std::string engine_name) : name(std::move(engine_name)) {
  }
  segment_guard(const segment_guard&) = delete;
  segment_guard& operator=(const segment_guard&) = delete;
  ~segment_guard() {
    cafshm::memory_manager::remove_segments(name); // the added data segments too
  }
  std::string data() const {
    return cafshm::memory_manager::data_segment_name(name);
  }
  std::string admin() const {
    return cafshm::memory_manager::admin_segment_name(name);
  }
};

/// The cafshm code of a result (ok on success).
template <class T>
cafshm::errc errc_of(const caf::expected<T>& x) {
  return x ? cafshm::errc::ok : cafshm::code_of(x.error());
}

/// Why a result failed, for messages.
template <class T>
std::string why(const caf::expected<T>& x) {
  return x ? std::string{"succeeded"} : cafshm::describe(x.error());
}

/// Polls `cond` until it holds or `timeout` passes; returns its last value.
template <class Predicate>
bool wait_until(Predicate cond, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!cond()) {
    if (std::chrono::steady_clock::now() >= deadline)
      return cond();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

} // namespace cafshm_test

/// Checks that `expr` (a caf::expected) failed with cafshm code `code`; says why otherwise.
#define CHECK_ERRC(expr, code)                                                                   \
  do {                                                                                           \
    auto&& cafshm_result_ = (expr);                                                              \
    CHECK_MESSAGE(::cafshm_test::errc_of(cafshm_result_) == (code),                              \
                  #expr " -> " << ::cafshm_test::why(cafshm_result_));                           \
  } while (false)

/// Requires that `expr` (a caf::expected) succeeded; says why otherwise.
#define REQUIRE_OK(expr)                                                                         \
  do {                                                                                           \
    auto&& cafshm_result_ = (expr);                                                              \
    REQUIRE_MESSAGE(static_cast<bool>(cafshm_result_), #expr " -> " << ::cafshm_test::why(cafshm_result_)); \
  } while (false)

#define CHECK_OK(expr)                                                                           \
  do {                                                                                           \
    auto&& cafshm_result_ = (expr);                                                              \
    CHECK_MESSAGE(static_cast<bool>(cafshm_result_), #expr " -> " << ::cafshm_test::why(cafshm_result_)); \
  } while (false)
