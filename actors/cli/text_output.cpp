#include "output.hpp"

#include <algorithm>
#include <cstdio>
#include <iomanip>

namespace cafshm::cli {

std::string human_size(uint64_t bytes) {
  static constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  for (; value >= 1024 && unit + 1 < std::size(units); ++unit)
    value /= 1024;
  char buf[32];
  bool whole = value == static_cast<double>(static_cast<uint64_t>(value));
  std::snprintf(buf, sizeof buf, whole ? "%.0f %s" : "%.1f %s", value, units[unit]);
  return buf;
}

std::vector<peer_transfers> transfers_by_peer(const engine_stats& s) {
  std::vector<peer_transfers> result;
  auto of = [&](const std::string& peer) -> peer_transfers& {
    auto i = std::lower_bound(result.begin(), result.end(), peer,
                              [](const peer_transfers& t, const std::string& p) {
                                return t.peer < p;
                              });
    if (i == result.end() || i->peer != peer)
      i = result.insert(i, peer_transfers{peer});
    return *i;
  };
  for (const auto& t : s.outgoing) {
    auto& p = of(t.peer);
    ++p.out;
    p.out_done += t.acked;
    p.out_bytes += t.bytes;
  }
  for (const auto& t : s.incoming) {
    auto& p = of(t.peer);
    ++p.in;
    p.in_done += t.acked;
    p.in_bytes += t.bytes;
  }
  return result;
}

namespace {

template <class Range, class F>
size_t widest(const Range& xs, size_t at_least, F text_of) {
  for (const auto& x : xs)
    at_least = std::max(at_least, text_of(x).size());
  return at_least;
}

std::string quota_text(uint64_t quota) {
  return quota == 0 ? "unlimited" : human_size(quota);
}

} // namespace

void write_text(std::ostream& out, const engine_stats& s) {
  auto row = [&](const char* label) -> std::ostream& {
    return out << std::left << std::setw(15) << label << std::right;
  };
  char fragmentation[32];
  std::snprintf(fragmentation, sizeof fragmentation, "%.4f", s.fragmentation());
  row("engine") << std::hex << s.engine_id << std::dec << " (" << s.data_segment << ", "
                << s.admin_segment << ")\n";
  row("arena") << human_size(s.arena_bytes) << " in blocks of " << human_size(s.min_block_bytes)
               << " and up; admin memory " << human_size(s.admin_bytes) << "\n";
  row("segments") << s.data_segments.size() << " (arena " << human_size(s.arena_bytes)
                  << ", initial " << human_size(s.initial_arena_bytes) << ", ceiling "
                  << human_size(s.max_arena_bytes) << "; " << s.segments_added << " added, "
                  << s.segments_removed << " removed since the start)\n";
  for (size_t i = 0; i < s.data_segments.size() && s.data_segments.size() > 1; ++i)
    row("") << "  " << s.data_segments[i] << "  " << human_size(s.segment_bytes[i]) << "\n";
  row("free") << human_size(s.free_bytes) << " (used " << human_size(s.used_bytes)
              << ", requested " << human_size(s.requested_bytes) << ")\n";
  row("largest free") << human_size(s.largest_free_block) << "\n";
  row("unscrubbed") << human_size(s.unscrubbed_bytes) << " of the free bytes (zeroed so far: "
                    << human_size(s.scrubbed_in_background) << " in the background, "
                    << human_size(s.scrubbed_on_allocation) << " on allocation; "
                    << human_size(s.scrub_skipped_for_writer)
                    << " handed back to their only writer)\n";
  row("fragmentation") << fragmentation << "\n";
  row("blocks") << s.blocks << " of " << s.max_blocks << " (" << s.draining_blocks
                << " draining)\n";
  row("grants") << s.grants << " of " << s.max_grants << "\n";
  row("names") << s.name_list.size() << " of " << s.max_names << "\n";
  row("requests") << s.requests << " (" << s.rejected << " rejected; " << s.inbox_requests
                  << " through the request inbox, " << s.inbox_refused << " records refused, "
                  << s.inbox_replies_too_large << " answers too large for the reply inbox, "
                  << s.inbox_replies_lost << " lost)\n";
  if (s.gone_notices_pending + s.gone_notices_late + s.gone_notices_dropped != 0)
    row("gone notices") << s.gone_notices_pending << " waiting for space in an actor inbox, "
                        << s.gone_notices_late << " written late, " << s.gone_notices_dropped
                        << " dropped with their receiver\n";
  row("peers") << s.peers.size() << " linked, transmits " << s.transmits_out << " out / "
               << s.transmits_in << " in\n";
  for (const auto& p : s.peers)
    out << std::string(15, ' ') << p << "\n";
  if (s.peer_messages_refused != 0) // forged or replayed: a wrong MAC or an old sequence
    row("refused") << s.peer_messages_refused << " peer messages (MAC or sequence wrong)\n";
  if (s.data_connections_refused != 0) // a forged or replayed data token
    row("refused") << s.data_connections_refused << " data connections (token or proof wrong)\n";
  auto percent = [](uint64_t done, uint64_t all) { return all == 0 ? 100 : done * 100 / all; };
  for (const auto& t : s.outgoing)
    row(t.cache_fill ? "sending" : "transmit")
      << "to " << t.peer << ": " << human_size(t.acked) << " of " << human_size(t.bytes)
      << " sent (" << percent(t.acked, t.bytes) << "%)"
      << (t.cache_fill ? ", for its remote read" : "") << "\n";
  for (const auto& t : s.incoming)
    row("receiving") << "from " << t.peer << ": " << human_size(t.acked) << " of "
                     << human_size(t.bytes) << " received (" << percent(t.acked, t.bytes)
                     << "%)" << (t.cache_fill ? ", for a remote read" : "") << "\n";
  for (const auto& p : transfers_by_peer(s))
    row("transfers") << p.peer << ": " << p.out << " out (" << human_size(p.out_done) << " of "
                     << human_size(p.out_bytes) << "), " << p.in << " in ("
                     << human_size(p.in_done) << " of " << human_size(p.in_bytes) << ")\n";
  if (s.cache_capacity == 0)
    row("cache") << "off\n";
  else
    row("cache") << human_size(s.cache_bytes) << " of " << human_size(s.cache_capacity) << " in "
                 << s.cache_entries << " blocks; " << s.cache_hits << " hits, " << s.cache_misses
                 << " misses, " << s.cache_evictions << " evictions, "
                 << human_size(s.cache_bytes_saved) << " saved\n";

  out << "\ncapacity (in use now, high-water mark, limit)\n";
  for (const auto& c : s.capacities) {
    bool bytes = c.name == "arena bytes";
    auto amount = [&](uint64_t n) { return bytes ? human_size(n) : std::to_string(n); };
    out << "  " << std::left << std::setw(13) << c.name << std::right << std::setw(10)
        << amount(c.used) << std::setw(10) << amount(c.peak) << std::setw(10)
        << amount(c.capacity) << "  " << c.setting << "\n";
  }

  out << "\nfree memory by block size\n" << std::setw(12) << "block from" << std::setw(12)
      << "free\n";
  for (size_t i = 0; i < s.free_bytes_by_order.size(); ++i)
    if (s.free_bytes_by_order[i] != 0)
      out << std::setw(12) << human_size(s.min_block_bytes << i) << std::setw(12)
          << human_size(s.free_bytes_by_order[i]) << "\n";

  auto name_width = widest(s.process_list, 4, [](const auto& p) { return p.name; });
  out << "\nprocesses (" << s.process_list.size() << " of " << s.max_processes << ")\n"
      << std::setw(8) << "process" << std::setw(9) << "pid" << "  " << std::left
      << std::setw(static_cast<int>(name_width)) << "name" << std::right << std::setw(12)
      << "in use" << std::setw(8) << "blocks" << std::setw(12) << "quota" << "\n";
  for (const auto& p : s.process_list)
    out << std::setw(8) << to_string(p.id) << std::setw(9) << p.pid << "  " << std::left
        << std::setw(static_cast<int>(name_width)) << p.name << std::right << std::setw(12)
        << human_size(p.bytes_in_use) << std::setw(8) << p.blocks << std::setw(12)
        << quota_text(p.quota_bytes) << "\n";

  out << "\nnamed blocks\n";
  if (s.name_list.empty())
    out << "  (none)\n";
  else
    write_names(out, s, true);
}

void write_names(std::ostream& out, const engine_stats& s, bool header) {
  auto name_width = widest(s.name_list, 4, [](const auto& n) { return n.name; });
  if (header)
    out << std::left << std::setw(static_cast<int>(name_width)) << "name" << std::right
        << std::setw(14) << "bytes" << std::setw(7) << "owner" << "\n";
  for (const auto& n : s.name_list)
    out << std::left << std::setw(static_cast<int>(name_width)) << n.name << std::right
        << std::setw(14) << n.ref.size << std::setw(7) << to_string(n.owner) << "\n";
}

} // namespace cafshm::cli
