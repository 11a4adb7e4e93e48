#include "output.hpp"

#include <cstdio>
#include <string_view>

namespace cafshm::cli {

namespace {

// Length of the well-formed UTF-8 sequence starting at s[i], or 0 if it is malformed.
size_t utf8_length(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  auto c = byte(i);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
  if (n == 0 || i + n > s.size())
    return 0;
  uint32_t cp = n == 1 ? c : c & (0x7f >> n);
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3f);
  }
  static constexpr uint32_t min_of[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min_of[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

// A JSON string literal; bytes that are not well-formed UTF-8 become U+FFFD.
std::string quote(std::string_view s) {
  std::string r = "\"";
  for (size_t i = 0; i < s.size();) {
    char c = s[i];
    if (c == '"' || c == '\\') {
      r += '\\';
      r += c;
      ++i;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      r += buf;
      ++i;
    } else if (auto n = utf8_length(s, i); n > 0) {
      r.append(s, i, n);
      i += n;
    } else {
      r += "\\ufffd";
      ++i;
    }
  }
  return r + '"';
}

} // namespace

void write_json(std::ostream& out, const engine_stats& s) {
  char fragmentation[32];
  std::snprintf(fragmentation, sizeof fragmentation, "%.6f", s.fragmentation());
  out << "{\"engine_id\":" << s.engine_id << ",\"data_segment\":" << quote(s.data_segment)
      << ",\"admin_segment\":" << quote(s.admin_segment) << ",\"arena_bytes\":" << s.arena_bytes
      << ",\"initial_arena_bytes\":" << s.initial_arena_bytes
      << ",\"max_arena_bytes\":" << s.max_arena_bytes
      << ",\"segments_added\":" << s.segments_added
      << ",\"segments_removed\":" << s.segments_removed << ",\"data_segments\":[";
  for (size_t i = 0; i < s.data_segments.size(); ++i)
    out << (i ? "," : "") << "{\"name\":" << quote(s.data_segments[i])
        << ",\"bytes\":" << s.segment_bytes[i] << "}";
  out << "]"
      << ",\"admin_bytes\":" << s.admin_bytes << ",\"min_block_bytes\":" << s.min_block_bytes
      << ",\"free_bytes\":" << s.free_bytes << ",\"used_bytes\":" << s.used_bytes
      << ",\"requested_bytes\":" << s.requested_bytes
      << ",\"largest_free_block\":" << s.largest_free_block
      << ",\"unscrubbed_bytes\":" << s.unscrubbed_bytes
      << ",\"scrubbed_in_background\":" << s.scrubbed_in_background
      << ",\"scrubbed_on_allocation\":" << s.scrubbed_on_allocation
      << ",\"scrub_skipped_for_writer\":" << s.scrub_skipped_for_writer
      << ",\"fragmentation\":" << fragmentation << ",\"free_bytes_by_order\":[";
  for (size_t i = 0; i < s.free_bytes_by_order.size(); ++i)
    out << (i ? "," : "") << "{\"block_bytes\":" << (s.min_block_bytes << i)
        << ",\"free_bytes\":" << s.free_bytes_by_order[i] << "}";
  out << "],\"blocks\":" << s.blocks << ",\"draining_blocks\":" << s.draining_blocks
      << ",\"grants\":" << s.grants << ",\"max_processes\":" << s.max_processes
      << ",\"max_blocks\":" << s.max_blocks << ",\"max_grants\":" << s.max_grants
      << ",\"max_names\":" << s.max_names << ",\"requests\":" << s.requests
      << ",\"rejected\":" << s.rejected << ",\"inbox_requests\":" << s.inbox_requests
      << ",\"inbox_refused\":" << s.inbox_refused
      << ",\"inbox_replies_lost\":" << s.inbox_replies_lost
      << ",\"inbox_replies_too_large\":" << s.inbox_replies_too_large
      << ",\"gone_notices_pending\":" << s.gone_notices_pending
      << ",\"gone_notices_late\":" << s.gone_notices_late
      << ",\"gone_notices_dropped\":" << s.gone_notices_dropped << ",\"capacities\":[";
  for (size_t i = 0; i < s.capacities.size(); ++i) {
    const auto& c = s.capacities[i];
    out << (i ? "," : "") << "{\"name\":" << quote(c.name) << ",\"setting\":"
        << quote(c.setting) << ",\"used\":" << c.used << ",\"peak\":" << c.peak
        << ",\"capacity\":" << c.capacity << "}";
  }
  out << "],\"processes\":[";
  for (size_t i = 0; i < s.process_list.size(); ++i) {
    const auto& p = s.process_list[i];
    out << (i ? "," : "") << "{\"process\":" << to_slot(p.id) << ",\"pid\":" << p.pid
        << ",\"name\":" << quote(p.name) << ",\"bytes_in_use\":" << p.bytes_in_use
        << ",\"blocks\":" << p.blocks << ",\"quota_bytes\":" << p.quota_bytes
        << ",\"allocations\":" << p.allocations << ",\"frees\":" << p.frees
        << ",\"reads\":" << p.reads << ",\"writes\":" << p.writes
        << ",\"bytes_read\":" << p.bytes_read << ",\"bytes_written\":" << p.bytes_written
        << ",\"denied\":" << p.denied << "}";
  }
  out << "],\"names\":[";
  for (size_t i = 0; i < s.name_list.size(); ++i) {
    const auto& n = s.name_list[i];
    out << (i ? "," : "") << "{\"name\":" << quote(n.name) << ",\"size\":" << n.ref.size
        << ",\"owner\":" << to_slot(n.owner) << ",\"block\":" << n.ref.block << "}";
  }
  out << "],\"peers\":[";
  for (size_t i = 0; i < s.peers.size(); ++i)
    out << (i ? "," : "") << quote(s.peers[i]);
  out << "],\"outgoing\":[";
  for (size_t i = 0; i < s.outgoing.size(); ++i) {
    const auto& t = s.outgoing[i];
    out << (i ? "," : "") << "{\"peer\":" << quote(t.peer) << ",\"bytes\":" << t.bytes
        << ",\"acked\":" << t.acked << ",\"cache_fill\":" << (t.cache_fill ? "true" : "false")
        << "}";
  }
  out << "],\"incoming\":[";
  for (size_t i = 0; i < s.incoming.size(); ++i) {
    const auto& t = s.incoming[i];
    out << (i ? "," : "") << "{\"peer\":" << quote(t.peer) << ",\"bytes\":" << t.bytes
        << ",\"received\":" << t.acked
        << ",\"cache_fill\":" << (t.cache_fill ? "true" : "false") << "}";
  }
  out << "],\"transfers_by_peer\":[";
  auto by_peer = transfers_by_peer(s);
  for (size_t i = 0; i < by_peer.size(); ++i) {
    const auto& p = by_peer[i];
    out << (i ? "," : "") << "{\"peer\":" << quote(p.peer) << ",\"out\":" << p.out
        << ",\"out_done_bytes\":" << p.out_done << ",\"out_bytes\":" << p.out_bytes
        << ",\"in\":" << p.in << ",\"in_done_bytes\":" << p.in_done
        << ",\"in_bytes\":" << p.in_bytes << "}";
  }
  out << "],\"transmits_out\":" << s.transmits_out << ",\"transmits_in\":" << s.transmits_in
      << ",\"peer_messages_refused\":" << s.peer_messages_refused
      << ",\"data_connections_refused\":" << s.data_connections_refused
      << ",\"data_connections_sent\":" << s.data_connections_sent
      << ",\"data_connections_received\":" << s.data_connections_received
      << ",\"cache\":{\"capacity_bytes\":" << s.cache_capacity << ",\"bytes\":" << s.cache_bytes
      << ",\"entries\":" << s.cache_entries << ",\"hits\":" << s.cache_hits
      << ",\"misses\":" << s.cache_misses << ",\"evictions\":" << s.cache_evictions
      << ",\"bytes_saved\":" << s.cache_bytes_saved << "}}\n";
}

void write_transmit_json(std::ostream& out, const std::string& name, const std::string& to,
                         const std::string& as, const transmit_receipt& r, double seconds) {
  char timing[96];
  std::snprintf(timing, sizeof timing, "\"seconds\":%.3f,\"bytes_per_second\":%.0f", seconds,
                seconds > 0 ? static_cast<double>(r.payload_bytes) / seconds : 0.0);
  out << "{\"name\":" << quote(name) << ",\"to\":" << quote(to) << ",\"as\":" << quote(as)
      << ",\"bytes\":" << r.bytes << ",\"payload_bytes\":" << r.payload_bytes
      << ",\"cache_hit\":" << (r.cache_hit ? "true" : "false") << "," << timing << "}\n";
}

} // namespace cafshm::cli
