// Fuzz target: the reader of an inbox ring (plugin/src/fastpath/inbox_consumer.cpp and
// inbox_decoder.cpp) over a ring that senders may have filled with anything.
// The input picks the reader's start position, the tail, and either
//  - raw ring bytes (first byte even): anything at all, or
//  - honest records (first byte odd): sizes and bytes from the input, written as the layout says
//    (inbox_layout.hpp), followed by raw damage only if the input asks for it.
// Properties: the reader never reads outside the ring (ASan), every poll returns, passes at most
// one ring (plus the record it was on) and keeps its position aligned; no payload exceeds the
// ring's limit; undamaged honest records come out exactly, in order, with nothing skipped.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "fastpath/inbox_consumer.hpp"
#include "fastpath/inbox_layout.hpp"
#include "fuzz_input.hpp"

using namespace cafshm::fastpath;
using cafshm::fuzz::violation;

namespace {

constexpr uint64_t capacity = 4096;

struct free_deleter {
  void operator()(std::byte* p) const { std::free(p); }
};

/// Writes a committed record at `position` as an honest sender does; returns the next position.
uint64_t write_record(std::byte* ring, uint64_t position, uint32_t sender, uint32_t sequence,
                      const std::string& payload) {
  auto need = record_bytes(payload.size());
  auto offset = position & (capacity - 1);
  if (capacity - offset < need) {
    auto pad = make_state(position, capacity - offset, record_kind::padding);
    std::memcpy(ring + offset, &pad, 8);
    position += capacity - offset;
    offset = 0;
  }
  record_header h{};
  h.length = static_cast<uint32_t>(payload.size());
  h.sender = sender;
  h.sequence = sequence;
  h.pid = 0;
  std::memcpy(ring + offset + 8, reinterpret_cast<const std::byte*>(&h) + 8, 24);
  std::memcpy(ring + offset + record_header_bytes, payload.data(), payload.size());
  auto state = make_state(position, need, record_kind::committed);
  std::memcpy(ring + offset, &state, 8);
  return position + need;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cafshm::fuzz::input in{data, size};
  std::unique_ptr<std::byte, free_deleter> memory{
    static_cast<std::byte*>(std::aligned_alloc(64, ring_offset + capacity))};
  std::memset(memory.get(), 0, ring_offset + capacity);
  auto* control = new (memory.get()) inbox_control{};
  auto* ring = memory.get() + ring_offset;
  auto mode = in.byte();
  uint64_t start = in.u64() / record_align * record_align;
  consumer_options options;
  options.abandon_after = std::chrono::nanoseconds{0}; // give up on every claim at once
  std::vector<std::string> honest;
  bool damaged = false;
  if (mode & 1) {
    auto position = start;
    auto count = in.below(40);
    for (uint64_t i = 0; i < count; ++i) {
      auto payload = in.text(max_payload(capacity));
      auto need = record_bytes(payload.size());
      auto to_end = capacity - (position & (capacity - 1));
      auto total = need <= to_end ? need : to_end + need;
      if (position - start + total > capacity) // a sender would wait for space
        break;
      position = write_record(ring, position, 1, static_cast<uint32_t>(i), payload);
      honest.push_back(std::move(payload));
    }
    control->tail.store(position);
    damaged = (mode & 2) != 0;
  } else {
    control->tail.store(start + in.below(2 * capacity + 16));
    damaged = true;
  }
  if (damaged) {
    // Raw bytes over the ring: a run at an input-chosen offset, then single bytes.
    auto offset = in.below(capacity);
    auto run = in.text(256);
    std::memcpy(ring + offset, run.data(), std::min<uint64_t>(run.size(), capacity - offset));
    while (!in.empty())
      ring[in.below(capacity)] = static_cast<std::byte>(in.byte());
    if (mode & 4)
      control->tail.store(start + (mode >> 3) * 97);
  }
  inbox_consumer reader{control, ring, capacity, start, options};
  std::vector<std::string> got;
  for (int poll = 0; poll < 4; ++poll) {
    auto before = reader.head();
    reader.poll([&](const inbox_record& r) {
      if (r.payload.size() > max_payload(capacity))
        violation("a payload above the ring's limit came out");
      got.emplace_back(reinterpret_cast<const char*>(r.payload.data()), r.payload.size());
    });
    if (reader.head() - before >= 2 * capacity)
      violation("one poll passed more than a ring");
    if (reader.head() % record_align != 0)
      violation("the reader's position lost its alignment");
  }
  if (!damaged) {
    if (got != honest)
      violation("honest records did not come out exactly and in order");
    if (reader.abandoned() != 0 || reader.rejected() != 0)
      violation("an honest record was skipped");
  }
  return 0;
}
