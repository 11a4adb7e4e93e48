#include "driver.hpp"

#include <cerrno>
#include <algorithm>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <poll.h>
#include <unistd.h>

#include "child_process.hpp"

namespace pipeline {

namespace {

using clock = std::chrono::steady_clock;

/// The running stages and the run's deadline. Destroying it kills and reaps every stage that is
/// still running.
class stage_set {
public:
  explicit stage_set(clock::time_point deadline) : deadline_(deadline) {
  }

  const std::string& error() const noexcept { return error_; }

  child_process* start(role r, const options& opts, const std::string& exe) {
    std::string why;
    auto child = child_process::spawn(to_string(r), exe, "cafshm-pipeline",
                                      stage_arguments(opts, r), why);
    if (!child) {
      error_ = std::string{"cannot start the "} + to_string(r) + ": " + why;
      return nullptr;
    }
    auto* result = child.get();
    stages_.push_back({std::move(child), {}, false});
    return result;
  }

  /// Waits for the next line `c` prints. False (and error()) if `c` ends first, another stage
  /// fails or the deadline passes.
  bool next_line(child_process* c, std::string& line) {
    for (;;) {
      auto& s = find(c);
      if (!s.lines.empty()) {
        line = std::move(s.lines.front());
        s.lines.pop_front();
        return true;
      }
      if (s.eof && c->exited()) {
        error_ = std::string{"the "} + c->name() + " " + c->status_text() + " before it was done";
        return false;
      }
      if (!wait_for_events())
        return false;
    }
  }

  /// Waits until every stage has exited. False (and error()) if one fails or the deadline
  /// passes.
  bool wait_all() {
    for (;;) {
      bool all = true;
      for (auto& s : stages_)
        all = all && s.child->exited();
      if (all)
        return true;
      if (!wait_for_events())
        return false;
    }
  }

private:
  struct stage {
    std::unique_ptr<child_process> child;
    std::deque<std::string> lines;
    bool eof;
  };

  stage& find(child_process* c) {
    for (auto& s : stages_)
      if (s.child.get() == c)
        return s;
    std::abort();
  }

  // One poll over every stage's stdout and pidfd. False (and error_) if a stage failed or the
  // deadline passed.
  bool wait_for_events() {
    std::vector<pollfd> fds;
    std::vector<std::pair<stage*, bool>> owners; // stage, is stdout
    for (auto& s : stages_) {
      if (!s.eof) {
        fds.push_back({s.child->stdout_fd(), POLLIN, 0});
        owners.emplace_back(&s, true);
      }
      if (!s.child->exited()) {
        fds.push_back({s.child->exit_fd(), POLLIN, 0});
        owners.emplace_back(&s, false);
      }
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - clock::now());
    if (left.count() <= 0) {
      error_ = "the deadline passed";
      return false;
    }
    int n = ::poll(fds.data(), fds.size(), static_cast<int>(left.count()));
    if (n < 0 && errno != EINTR) {
      error_ = std::string{"poll: "} + std::strerror(errno);
      return false;
    }
    std::string failures; // every stage seen failing; killed ones first
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents == 0)
        continue;
      auto& [s, is_stdout] = owners[i];
      if (is_stdout) {
        std::vector<std::string> lines;
        if (!s->child->read_available(lines))
          s->eof = true;
        s->lines.insert(s->lines.end(), lines.begin(), lines.end());
      } else if (s->child->reap() && !s->child->succeeded()) {
        add_failure(failures, *s->child);
      }
    }
    if (!failures.empty()) {
      settle(failures);
      error_ = failures;
      return false;
    }
    return true;
  }

  // Adds `c`'s end to `failures`: a killed stage, the likely cause of the others' failures,
  // goes first.
  static void add_failure(std::string& failures, const child_process& c) {
    auto what = std::string{"the "} + c.name() + " " + c.status_text();
    if (failures.empty())
      failures = what;
    else if (c.status_text().starts_with("was killed"))
      failures = what + "; " + failures;
    else
      failures += "; " + what;
  }

  // After a first failure, the other stages end soon (their peer is gone). Waits for them up
  // to settle_time, so that a stage that was killed is named even if a stage it took down was
  // reaped first (a killed process's sockets close before its exit can be waited for).
  void settle(std::string& failures) {
    constexpr auto settle_time = std::chrono::seconds(2);
    auto until = std::min(deadline_, clock::now() + settle_time);
    for (;;) {
      std::vector<pollfd> fds;
      std::vector<stage*> owners;
      for (auto& s : stages_)
        if (!s.child->exited()) {
          fds.push_back({s.child->exit_fd(), POLLIN, 0});
          owners.push_back(&s);
        }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock::now());
      if (fds.empty() || left.count() <= 0)
        return;
      if (::poll(fds.data(), fds.size(), static_cast<int>(left.count())) < 0 && errno != EINTR)
        return;
      for (size_t i = 0; i < fds.size(); ++i)
        if (fds[i].revents != 0 && owners[i]->child->reap() && !owners[i]->child->succeeded())
          add_failure(failures, *owners[i]->child);
    }
  }

  clock::time_point deadline_;
  std::vector<stage> stages_;
  std::string error_;
};

int fail(const std::string& what) {
  std::cerr << "cafshm-pipeline: " << what << std::endl;
  return 1;
}

// "ready PORT" -> PORT
std::optional<uint16_t> ready_port(const std::string& line) {
  constexpr std::string_view prefix = "ready ";
  if (!line.starts_with(prefix))
    return std::nullopt;
  uint16_t port = 0;
  const char* first = line.data() + prefix.size();
  const char* last = line.data() + line.size();
  auto [end, ec] = std::from_chars(first, last, port);
  if (ec != std::errc{} || end != last || port == 0)
    return std::nullopt;
  return port;
}

struct sink_result {
  uint32_t frames = 0;
  uint32_t verified = 0;
  uint32_t mismatches = 0;
  int64_t elapsed_ns = 0;
};

std::optional<sink_result> parse_result(const std::string& line) {
  sink_result r;
  if (std::sscanf(line.c_str(), "result frames=%" SCNu32 " verified=%" SCNu32
                                " mismatches=%" SCNu32 " elapsed_ns=%" SCNd64,
                  &r.frames, &r.verified, &r.mismatches, &r.elapsed_ns)
      != 4)
    return std::nullopt;
  return r;
}

} // namespace

int run_driver(options opts) {
  if (auto why = apply_config(opts); !why.empty())
    return fail(why);
  // Destroying `stages` (at every return below) kills and reaps what still runs.
  stage_set stages{clock::now() + opts.run_deadline()};
  const std::string exe = "/proc/self/exe"; // this program, even if its file was replaced
  std::string line;
  // Starts a stage that listens; its port from its "ready PORT" line.
  auto start_listening = [&](role r, uint16_t& port) -> child_process* {
    auto* c = stages.start(r, opts, exe);
    if (c == nullptr || !stages.next_line(c, line)) {
      fail(stages.error());
      return nullptr;
    }
    auto p = ready_port(line);
    if (!p) {
      fail(std::string{"the "} + to_string(r) + " printed '" + line
           + "' instead of 'ready PORT'");
      return nullptr;
    }
    port = *p;
    return c;
  };
  auto* sink = start_listening(role::sink, opts.sink_port);
  if (sink == nullptr || start_listening(role::transformer, opts.transformer_port) == nullptr)
    return 1;
  if (stages.start(role::producer, opts, exe) == nullptr)
    return fail(stages.error());
  if (!stages.next_line(sink, line))
    return fail(stages.error());
  auto result = parse_result(line);
  if (!result)
    return fail("the sink printed '" + line + "' instead of its result");
  if (result->mismatches > 0)
    return fail(std::to_string(result->mismatches) + " of " + std::to_string(opts.frames)
                + " frames failed their checksum");
  if (result->frames != opts.frames || result->verified != opts.frames)
    return fail("the sink verified " + std::to_string(result->verified) + " of "
                + std::to_string(opts.frames) + " frames");
  if (!stages.wait_all())
    return fail(stages.error());
  const double seconds = static_cast<double>(result->elapsed_ns) / 1e9;
  const double fps = seconds > 0 ? opts.frames / seconds : 0.0;
  const double gbps = fps * static_cast<double>(opts.rgb_bytes()) / 1e9;
  std::printf("pipeline transport=%s frames=%" PRIu32 " fps=%.1f GBps=%.3f\n",
              to_string(opts.transport), opts.frames, fps, gbps);
  std::fflush(stdout);
  return 0;
}

} // namespace pipeline
