// Upper bounds of the engine's answers to the requests that travel by inbox (request_record.hpp).
// A client holds room for the bound of every request it has sent in its reply inbox
// (request_channel), so the engine, which never waits for room, always finds it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include <caf/atom.hpp>
#include <caf/message.hpp>

#include "cafshm/block_ref.hpp"
#include "cafshm/engine.hpp"
#include "fastpath/request_record.hpp"

namespace cafshm::fastpath {

/// Any answer but those below: a few values of fixed size (refs, leases, counters, receipts) or
/// an engine error, whose text repeats at most max_echoed_bytes of caller text (bounded_text.hpp)
/// and is a few hundred bytes.
constexpr uint64_t small_answer_bound = 1024;

/// One view_lease in a serialised answer: the data segment's name (an engine name of at most 64
/// characters, ".data", "-<index>") with its length, offset, size, flag.
constexpr uint64_t lease_bytes_bound = 128;
/// The rest of a map_many answer (type names, the vector's length).
constexpr uint64_t map_answer_overhead = 256;

/// The most bytes the engine's answer to `request` (atom, session, ...) takes after the reply
/// header: for read its length more than a small answer, for map_many its leases; none for stats
/// (it lists every process and block name: no bound a client knows). Where an answer finds no
/// room the engine leaves a "too large" mark of a few bytes instead (request_relay.cpp), which
/// room for a small answer always takes: the client asks a stats request again over BASP.
inline std::optional<uint64_t> answer_bound(const caf::message& request) {
  auto kind = kind_of(request);
  if (kind == stats_atom::value)
    return std::nullopt;
  if (kind == read_atom::value && request.size() == 5 && request.match_element<uint64_t>(4))
    return small_answer_bound + request.get_as<uint64_t>(4);
  if (kind == map_many_atom::value && request.size() >= 3
      && request.match_element<std::vector<block_ref>>(2)) {
    auto n = request.get_as<std::vector<block_ref>>(2).size();
    return std::max(small_answer_bound, map_answer_overhead + n * lease_bytes_bound);
  }
  return small_answer_bound;
}

/// Whether asking `request` twice has no effect beyond the answer: only such a request is
/// asked again over BASP when its answer came back too large for the reply inbox.
inline bool may_ask_again(const caf::message& request) {
  auto kind = kind_of(request);
  return kind == read_atom::value || kind == stats_atom::value || kind == lookup_atom::value
         || kind == process_atom::value;
}

} // namespace cafshm::fastpath
