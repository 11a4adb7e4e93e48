#include "background_scrubber.hpp"

#include <cstring>
#include <vector>

namespace cafshm {

background_scrubber::background_scrubber(std::chrono::microseconds settle, size_t piece_bytes)
  : settle_(settle), piece_bytes_(piece_bytes == 0 ? 1 : piece_bytes) {
}

background_scrubber::~background_scrubber() {
  stop();
}

void background_scrubber::start() {
  std::lock_guard guard{mutex_};
  if (thread_.joinable())
    return;
  stop_ = false;
  thread_ = std::thread{[this] { run(); }};
}

void background_scrubber::stop() {
  {
    std::lock_guard guard{mutex_};
    stop_ = true;
  }
  work_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

void background_scrubber::add(std::byte* at, size_t bytes, writer by) {
  if (bytes == 0)
    return;
  bool first = false;
  {
    std::lock_guard guard{mutex_};
    first = ranges_.empty();
    insert(reinterpret_cast<key>(at), range{bytes, by, clock::now()});
    counts_.pending_bytes += bytes;
  }
  // With ranges before it, the thread already waits for the oldest, due no later than this one.
  if (first)
    work_.notify_one();
}

void background_scrubber::wait_for_piece(std::unique_lock<std::mutex>& lock, key from, key to) {
  piece_done_.wait(lock, [&] { return busy_to_ <= from || to <= busy_from_; });
}

std::map<background_scrubber::key, background_scrubber::range>::iterator
background_scrubber::insert(key start, const range& r) {
  by_age_.emplace(r.since, start);
  return ranges_.emplace(start, r).first;
}

std::map<background_scrubber::key, background_scrubber::range>::iterator
background_scrubber::erase(std::map<key, range>::iterator i) {
  by_age_.erase({i->second.since, i->first});
  return ranges_.erase(i);
}

template <class F>
void background_scrubber::cut(key from, key to, F&& inner) {
  auto i = ranges_.upper_bound(from);
  if (i != ranges_.begin())
    --i;
  while (i != ranges_.end() && i->first < to) {
    key start = i->first, end = start + i->second.bytes;
    if (end <= from) {
      ++i;
      continue;
    }
    auto r = i->second;
    i = erase(i);
    if (start < from) // the part before stays, under its own key
      insert(start, range{from - start, r.by, r.since});
    if (to < end) // the part after stays
      i = insert(to, range{end - to, r.by, r.since});
    key a = std::max(start, from), b = std::min(end, to);
    counts_.pending_bytes -= b - a;
    inner(reinterpret_cast<std::byte*>(a), size_t{b - a}, r.by);
  }
}

bool background_scrubber::claim(std::byte* at, size_t bytes, writer by) {
  key from = reinterpret_cast<key>(at), to = from + bytes;
  std::vector<std::pair<std::byte*, size_t>> zero;
  bool kept = false;
  {
    std::unique_lock lock{mutex_};
    wait_for_piece(lock, from, to);
    cut(from, to, [&](std::byte* p, size_t n, writer w) {
      if (by.token != 0 && w == by) {
        kept = true;
        counts_.kept_for_writer += n;
      } else {
        zero.emplace_back(p, n);
        counts_.zeroed_by_engine += n;
      }
    });
  }
  // Outside the lock: the parts are no range any more, and nobody else writes them until the
  // allocation this claim is for hands them out.
  for (auto [p, n] : zero)
    std::memset(p, 0, n);
  return kept;
}

void background_scrubber::forget(std::byte* at, size_t bytes) {
  key from = reinterpret_cast<key>(at), to = from + bytes;
  std::unique_lock lock{mutex_};
  wait_for_piece(lock, from, to);
  cut(from, to, [](std::byte*, size_t, writer) {});
}

void background_scrubber::zero_all() {
  std::unique_lock lock{mutex_};
  wait_for_piece(lock, 0, ~key{0});
  for (auto& [start, r] : ranges_) {
    std::memset(reinterpret_cast<std::byte*>(start), 0, r.bytes);
    counts_.zeroed_by_engine += r.bytes;
  }
  counts_.pending_bytes = 0;
  ranges_.clear();
  by_age_.clear();
}

background_scrubber::counts background_scrubber::stats() const {
  std::lock_guard guard{mutex_};
  return counts_;
}

void background_scrubber::run() {
  std::unique_lock lock{mutex_};
  while (!stop_) {
    if (ranges_.empty()) {
      work_.wait(lock);
      continue;
    }
    // The range that became free first; a piece from its start once it has settled.
    auto oldest = ranges_.find(by_age_.begin()->second);
    auto due = oldest->second.since + settle_;
    if (clock::now() < due) {
      work_.wait_until(lock, due);
      continue;
    }
    key from = oldest->first;
    key to = from + std::min(oldest->second.bytes, piece_bytes_);
    cut(from, to, [](std::byte*, size_t, writer) {});
    counts_.pending_bytes += to - from; // until zeroed
    busy_from_ = from;
    busy_to_ = to;
    lock.unlock();
    std::memset(reinterpret_cast<std::byte*>(from), 0, to - from);
    lock.lock();
    busy_from_ = busy_to_ = 0;
    counts_.pending_bytes -= to - from;
    counts_.zeroed_in_background += to - from;
    piece_done_.notify_all();
  }
}

} // namespace cafshm
