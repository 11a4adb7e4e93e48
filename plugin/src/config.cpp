// YAML configuration loader.
//
// Reading happens in two passes. The first walks the YAML tree with one table of fields per
// section, converting each value and rejecting unknown keys, duplicates and wrong types at the
// offending node. The second is validate()'s check of the typed settings (ranges and
// combinations); its complaint names a dotted key, which the loader maps back to the position
// it recorded for that key in the first pass. Range rules therefore live in one place and hold
// for settings filled in code as well.

#include "cafshm/config.hpp"


#include <algorithm>
#include <charconv>
#include <cstdint>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <system_error>
#include <utility>
#include <vector>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <unistd.h>
#include <unordered_map>

#include "dial_policy.hpp"
#include "peer_key_file.hpp"
#include "quota_policy.hpp"
#include "shm_segment.hpp"
#include "unix_identity.hpp"

namespace cafshm {

namespace {

// Sizes and durations are kept below 2^63 so that they fit signed 64-bit arithmetic too.
constexpr uint64_t max_quantity = uint64_t{std::numeric_limits<int64_t>::max()};
constexpr uint64_t kib = 1024;
constexpr uint64_t mib = kib << 10;
constexpr uint64_t tib = mib << 20;

// ---------------------------------------------------------------------------------------------
// Quantities: an unsigned decimal integer followed by an optional unit.

struct unit {
  std::string_view name;
  uint64_t factor;
};

constexpr unit size_units[] = {
    {"", 1},          {"B", 1},          {"KiB", kib},         {"MiB", mib},
    {"GiB", mib << 10}, {"TiB", tib},    {"KB", 1000},         {"MB", 1000'000},
    {"GB", 1000'000'000},
};

constexpr unit duration_units[] = {{"", 1}, {"ms", 1}, {"s", 1000}, {"min", 60'000}};

constexpr unit no_units[] = {{"", 1}};

std::string_view trim(std::string_view text) {
  constexpr std::string_view blanks = " \t\r\n";
  size_t first = text.find_first_not_of(blanks);
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(blanks) - first + 1);
}

// Splits "64 MiB" into its digits and the factor of its unit. False unless the text is one or
// more ASCII digits followed by a unit listed in `units` (blanks around and between allowed).
template <size_t N>
bool split_quantity(std::string_view text, const unit (&units)[N], std::string_view& digits,
                    uint64_t& factor) {
  text = trim(text);
  size_t end = 0;
  while (end < text.size() && text[end] >= '0' && text[end] <= '9') ++end;
  if (end == 0) return false;
  digits = text.substr(0, end);
  std::string_view suffix = trim(text.substr(end));
  for (const unit& u : units) {
    if (u.name == suffix) {
      factor = u.factor;
      return true;
    }
  }
  return false;
}

// Value of a quantity in its base unit; nullopt when malformed or not below 2^63.
template <size_t N>
std::optional<uint64_t> parse_quantity(std::string_view text, const unit (&units)[N]) {
  std::string_view digits;
  uint64_t factor = 1;
  if (!split_quantity(text, units, digits, factor)) return std::nullopt;
  uint64_t number = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), number);
  if (ec != std::errc{} || end != digits.data() + digits.size()) return std::nullopt;
  if (number > max_quantity / factor) return std::nullopt;
  return number * factor;
}

// Why parse_quantity() rejected `text`, completing "expected <what>".
template <size_t N>
std::string quantity_problem(std::string_view text, const unit (&units)[N],
                             std::string_view what) {
  std::string shown = "'" + std::string(text) + "'";
  if (trim(text).starts_with('-')) return "must not be negative, got " + shown;
  std::string_view digits;
  uint64_t factor = 1;
  if (split_quantity(text, units, digits, factor)) return "too large (2^63 or more), got " + shown;
  return "expected " + std::string(what) + ", got " + shown;
}

bool is_power_of_two(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

// "64MiB" when a binary unit divides `bytes` exactly, else "1000B".
std::string format_size(uint64_t bytes) {
  constexpr std::pair<uint64_t, const char*> units[] = {
      {tib, "TiB"}, {mib << 10, "GiB"}, {mib, "MiB"}, {kib, "KiB"}};
  for (auto [factor, name] : units) {
    if (bytes != 0 && bytes % factor == 0) return std::to_string(bytes / factor) + name;
  }
  return std::to_string(bytes) + "B";
}

std::string format_octal(uint32_t mode) {
  std::ostringstream out;
  out << '0' << std::oct << mode;
  return out.str();
}

// ---------------------------------------------------------------------------------------------
// Key suggestions.

// Optimal string alignment distance: edits are insert, delete, substitute and swapping two
// adjacent characters, so "arnea" is one edit away from "arena".
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

// The candidate nearest to `word` if it is close enough to be a plausible typo, else empty.
// Close enough: at most one edit per three characters of the candidate (at least one, at most
// three), so short keys do not suggest unrelated short keys.
template <class Range, class Name>
std::string_view nearest(std::string_view word, const Range& candidates, Name name_of) {
  std::string_view best;
  size_t best_distance = std::numeric_limits<size_t>::max();
  for (const auto& c : candidates) {
    std::string_view name = name_of(c);
    size_t distance = edit_distance(word, name);
    size_t allowed = std::clamp<size_t>(name.size() / 3, 1, 3);
    if (distance <= allowed && distance < best_distance) {
      best = name;
      best_distance = distance;
    }
  }
  return best;
}

template <class Range, class Name>
std::string join_names(const Range& items, Name name_of) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += ", ";
    out += name_of(item);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Checks of typed settings, shared by validate() and the loaders.

// A violated rule. `key` is the dotted key most responsible; `also` (may be empty) is a second
// key involved, used for the position when `key` does not appear in the file.
struct problem {
  std::string key;
  std::string reason;
  std::string also = {};
};

using check_result = std::optional<problem>;

check_result check_name(const std::string& name) {
  if (name.empty() || name.size() > 64)
    return problem{"engine.name", "must be 1..64 characters, got " +
                                      std::to_string(name.size())};
  auto allowed = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
  };
  if (!std::all_of(name.begin(), name.end(), allowed))
    return problem{"engine.name", "may contain only A-Z a-z 0-9 _ . -, got '" + name + "'"};
  if (name.find_first_not_of('.') == std::string::npos)
    return problem{"engine.name", "'" + name + "' is a directory name, not a name of its own"};
  return std::nullopt;
}

// Arena geometry: the allocator hands out whole blocks of min_block bytes.
check_result check_arena(const engine_settings& e, uint64_t page_bytes) {
  if (!is_power_of_two(e.min_block_bytes) || e.min_block_bytes < page_bytes)
    return problem{"engine.min_block", "must be a power of two of at least the page size (" +
                                           format_size(page_bytes) + "), got " +
                                           format_size(e.min_block_bytes)};
  if (e.arena_bytes == 0) return problem{"engine.arena", "must not be zero"};
  if (e.arena_bytes > tib)
    return problem{"engine.arena", "must be at most 1TiB, got " + format_size(e.arena_bytes)};
  if (e.arena_bytes < e.min_block_bytes)
    return problem{"engine.arena",
                   "arena (" + format_size(e.arena_bytes) + ") is smaller than min_block (" +
                       format_size(e.min_block_bytes) + ")",
                   "engine.min_block"};
  if (e.arena_bytes % e.min_block_bytes != 0)
    return problem{"engine.arena",
                   "must be a multiple of min_block (" + format_size(e.min_block_bytes) +
                       "), got " + format_size(e.arena_bytes) + " (nearest below: " +
                       format_size(e.arena_bytes / e.min_block_bytes * e.min_block_bytes) + ")",
                   "engine.min_block"};
  if (e.max_arena_bytes != 0) { // 0: the arena does not grow
    if (e.max_arena_bytes < e.arena_bytes)
      return problem{"engine.max_arena",
                     "must be at least arena (" + format_size(e.arena_bytes) + "), got " +
                         format_size(e.max_arena_bytes),
                     "engine.arena"};
    if (e.max_arena_bytes > tib)
      return problem{"engine.max_arena",
                     "must be at most 1TiB, got " + format_size(e.max_arena_bytes)};
    if (e.max_arena_bytes % e.min_block_bytes != 0)
      return problem{"engine.max_arena",
                     "must be a multiple of min_block (" + format_size(e.min_block_bytes) +
                         "), got " + format_size(e.max_arena_bytes),
                     "engine.min_block"};
  }
  return std::nullopt;
}

check_result check_range(const char* key, uint64_t value, uint64_t low, uint64_t high) {
  if (value >= low && value <= high) return std::nullopt;
  return problem{key, "must be in " + std::to_string(low) + ".." + std::to_string(high) +
                          ", got " + std::to_string(value)};
}

check_result check_capacities(const engine_settings& e) {
  if (auto p = check_range("engine.max_processes", e.max_processes, 2, 65535)) return p;
  // Slot 0 is the engine's: max_processes - 1 processes fit in all, so a cap at or above that
  // would limit nothing.
  if (e.max_processes_per_user != 0 && e.max_processes_per_user >= e.max_processes)
    return problem{"engine.max_processes_per_user",
                   "must be 0 (unlimited) or below engine.max_processes ("
                       + std::to_string(e.max_processes) + "), got "
                       + std::to_string(e.max_processes_per_user),
                   "engine.max_processes"};
  if (auto p = check_range("engine.max_blocks", e.max_blocks, 1, 16777216)) return p;
  if (e.max_grants == 0) return problem{"engine.max_grants", "must be at least 1"};
  if (e.max_names == 0) return problem{"engine.max_names", "must be at least 1"};
  return std::nullopt;
}

check_result check_permissions(uint32_t mode) {
  if ((mode & ~0777u) != 0)
    return problem{"engine.permissions",
                   "mode " + format_octal(mode) +
                       " has bits outside 0777 (write it in octal with a leading 0, e.g. 0600)"};
  if ((mode & 0600u) != 0600u)
    return problem{"engine.permissions", "mode " + format_octal(mode) +
                                             " must include owner read and write (0600)"};
  return std::nullopt;
}

check_result check_quotas(const std::vector<quota_rule>& quotas) {
  for (size_t i = 0; i < quotas.size(); ++i) {
    const quota_rule& q = quotas[i];
    std::string key = "engine.quotas[" + std::to_string(i) + "]";
    if (q.user.empty() == q.group.empty())
      return problem{key, "set exactly one of user and group"};
    if (!q.user.empty() && !user_id_of(q.user))
      return problem{key + ".user", "no such Unix user '" + q.user + "'"};
    if (!q.group.empty() && !group_id_of(q.group))
      return problem{key + ".group", "no such Unix group '" + q.group + "'"};
  }
  return std::nullopt;
}

check_result check_engine(const engine_settings& e, uint64_t page_bytes) {
  if (auto p = check_name(e.name)) return p;
  if (auto p = check_arena(e, page_bytes)) return p;
  if (auto p = check_capacities(e)) return p;
  if (auto p = check_permissions(e.permissions)) return p;
  if (!e.group.empty() && !group_id_of(e.group))
    return problem{"engine.group", "no such Unix group '" + e.group + "'"};
  if (auto p = check_quotas(e.quotas)) return p;
  if (auto p = check_range("engine.max_copy_ranges", e.max_copy_ranges, 1, 16777216)) return p;
  if (e.max_copy_bytes == 0) return problem{"engine.max_copy_bytes", "must be at least 1"};
  if (e.listen.host.empty()) return problem{"engine.listen.host", "must not be empty"};
  if (e.scrub_delay.count() < 0 || e.scrub_delay > std::chrono::minutes{1})
    return problem{"engine.scrub_delay", "must be between 0 and 1min"};
  if (e.liveness_interval.count() <= 0)
    return problem{"engine.liveness_interval", "must be greater than 0"};
  if (!e.socket.empty() && (e.socket[0] != '/' || e.socket.size() > 107))
    return problem{"engine.socket", "must be an absolute path of at most 107 bytes"};
  for (size_t i = 0; i < e.allow_users.size(); ++i)
    if (!user_id_of(e.allow_users[i]))
      return problem{"engine.allow_users[" + std::to_string(i) + "]",
                     "no such Unix user '" + e.allow_users[i] + "'"};
  for (size_t i = 0; i < e.allow_groups.size(); ++i)
    if (!group_id_of(e.allow_groups[i]))
      return problem{"engine.allow_groups[" + std::to_string(i) + "]",
                     "no such Unix group '" + e.allow_groups[i] + "'"};
  return std::nullopt;
}

check_result check_client(const client_settings& c) {
  if (c.engine.host.empty()) return problem{"client.engine.host", "must not be empty"};
  if (c.request_timeout.count() <= 0)
    return problem{"client.request_timeout", "must be greater than 0"};
  return std::nullopt;
}

check_result check_inbox_size(const char* key, uint64_t bytes) {
  if (bytes < (4u << 10) || bytes > (16u << 20) || (bytes & (bytes - 1)) != 0)
    return problem{key, "must be a power of two from 4KiB to 16MiB, not " + std::to_string(bytes)
                          + " bytes"};
  return std::nullopt;
}

check_result check_local(const local_settings& l) {
  if (l.spin_us > 1'000'000)
    return problem{"local.spin_us", "must be at most 1000000 (one second), not "
                                      + std::to_string(l.spin_us)};
  if (auto p = check_inbox_size("local.request_inbox", l.request_inbox_bytes)) return p;
  if (auto p = check_inbox_size("local.reply_inbox", l.reply_inbox_bytes)) return p;
  return check_inbox_size("local.actor_inbox", l.actor_inbox_bytes);
}

// `first_by_name`: peer name -> index of its first occurrence, filled by the caller's loop.
check_result check_peer(const std::vector<remote_peer>& peers, size_t i,
                        std::unordered_map<std::string_view, size_t>& first_by_name) {
  const remote_peer& peer = peers[i];
  std::string key = "remote.peers[" + std::to_string(i) + "]";
  if (peer.name.empty()) return problem{key + ".name", "must not be empty"};
  if (peer.address.host.empty()) return problem{key + ".host", "must not be empty"};
  // A peer exists only to be connected to; port 0 is never reachable.
  if (peer.address.port == 0) return problem{key + ".port", "must be in 1..65535, got 0"};
  auto [first, fresh] = first_by_name.emplace(peer.name, i);
  if (!fresh)
    return problem{key + ".name", "duplicate peer name '" + peer.name + "' (also remote.peers[" +
                                      std::to_string(first->second) + "])"};
  return std::nullopt;
}

// A configured TLS path must name a readable file (capath: a directory).
check_result check_tls_path(const char* key, const std::string& path, bool directory) {
  if (path.empty()) return std::nullopt;
  std::error_code ec;
  auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status))
    return problem{key, std::string(directory ? "no such directory" : "no such file") + ": '" +
                            path + "'"};
  if (directory != std::filesystem::is_directory(status))
    return problem{key, "'" + path + (directory ? "' is not a directory" : "' is a directory")};
  if (!directory && !std::ifstream(path)) return problem{key, "cannot read '" + path + "'"};
  return std::nullopt;
}

// Mutual TLS (CAF's openssl module): certificate, key and CA certificates belong together, and
// peers need a port of their own (local clients keep the plain engine.listen).
check_result check_tls(const remote_settings& r) {
  const tls_settings& t = r.tls;
  if (!t.enabled()) return std::nullopt;
  if (!t.certificate.empty() && t.key.empty())
    return problem{"remote.tls.certificate",
                   "certificate without key: set remote.tls.key (its private key) too"};
  if (!t.key.empty() && t.certificate.empty())
    return problem{"remote.tls.key", "key without certificate: set remote.tls.certificate too"};
  if (!t.cafile.empty() && t.certificate.empty())
    return problem{"remote.tls.cafile", "cafile without certificate: mutual TLS also needs "
                                        "remote.tls.certificate and remote.tls.key"};
  if (!t.capath.empty() && t.certificate.empty())
    return problem{"remote.tls.capath", "capath without certificate: mutual TLS also needs "
                                        "remote.tls.certificate and remote.tls.key"};
  if (!t.passphrase.empty() && t.key.empty())
    return problem{"remote.tls.passphrase", "passphrase without key: set remote.tls.certificate "
                                            "and remote.tls.key too"};
  if (t.cafile.empty() && t.capath.empty())
    return problem{"remote.tls.cafile", "missing: mutual TLS needs the CA certificates that "
                                        "peers' certificates must chain to (cafile or capath)"};
  if (r.listen.port == 0)
    return problem{"remote.listen.port", "must be 1..65535 when remote.tls is configured: peers "
                                         "connect to this TLS port, local clients keep the "
                                         "plain engine.listen"};
  if (auto p = check_tls_path("remote.tls.certificate", t.certificate, false)) return p;
  if (auto p = check_tls_path("remote.tls.key", t.key, false)) return p;
  if (auto p = check_tls_path("remote.tls.cafile", t.cafile, false)) return p;
  return check_tls_path("remote.tls.capath", t.capath, true);
}

// The shared peer key authenticates engines to each other: a file only its owner may read.
check_result check_peer_key_file(const std::string& path) {
  if (path.empty()) return std::nullopt;
  if (auto why = peer_key_file_problem(path)) return problem{"remote.peer_key_file", *why};
  return std::nullopt;
}

check_result check_remote(const remote_settings& r) {
  if (r.chunk_bytes < 64 * kib || r.chunk_bytes > 256 * mib)
    return problem{"remote.chunk", "must be in 64KiB..256MiB, got " + format_size(r.chunk_bytes)};
  if (auto p = check_range("remote.window", r.window_chunks, 1, 64)) return p;
  if (r.stall_timeout < std::chrono::milliseconds{100} || r.stall_timeout > std::chrono::hours{1})
    return problem{"remote.stall_timeout", "must be in 100ms..60min, got "
                                             + std::to_string(r.stall_timeout.count()) + "ms"};
  if (r.redial_min.count() <= 0)
    return problem{"remote.redial_min", "must be greater than 0"};
  if (r.redial_max < r.redial_min || r.redial_max > std::chrono::hours{1})
    return problem{"remote.redial_max", "must be in remote.redial_min..60min, got "
                                          + std::to_string(r.redial_max.count()) + "ms"};
  std::unordered_map<std::string_view, size_t> first_by_name;
  for (size_t i = 0; i < r.peers.size(); ++i) {
    if (auto p = check_peer(r.peers, i, first_by_name)) return p;
  }
  if (r.listen.host.empty()) return problem{"remote.listen.host", "must not be empty"};
  for (size_t i = 0; i < r.allow_dial.size(); ++i)
    if (auto why = dial_pattern_problem(r.allow_dial[i]))
      return problem{"remote.allow_dial[" + std::to_string(i) + "]", *why};
  if (auto p = check_peer_key_file(r.peer_key_file)) return p;
  return check_tls(r);
}

uint64_t system_page_bytes() {
  return static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

check_result check_settings(const settings& s, uint64_t page_bytes = system_page_bytes()) {
  if (auto p = check_engine(s.engine, page_bytes)) return p;
  if (auto p = check_client(s.client)) return p;
  if (auto p = check_local(s.local)) return p;
  if (s.remote.listen.port != 0 && s.remote.listen == s.engine.listen)
    return problem{"remote.listen.port", "is engine.listen (" + s.engine.listen.host + ":" +
                                             std::to_string(s.engine.listen.port) +
                                             "): the peer listener needs a port of its own"};
  return check_remote(s.remote);
}

// ---------------------------------------------------------------------------------------------
// Reading the YAML tree.

// Dotted key -> where it was written. Filled while reading; used to place validate() problems.
using mark_table = std::map<std::string, YAML::Mark, std::less<>>;

// A node being read. `mark` is where errors about it are reported: the value for scalars, the
// key for sections and for empty values (yaml-cpp places those on the following line).
struct entry {
  YAML::Node node;
  std::string path;
  YAML::Mark mark;
  mark_table& marks;
};

// Thrown by the readers, caught by read_document(); never leaves this file.
struct rejection {
  YAML::Mark mark;
  std::string key;
  std::string reason;
};

[[noreturn]] void reject(const entry& e, std::string reason) {
  throw rejection{e.mark, e.path, std::move(reason)};
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar: return "'" + node.Scalar() + "'";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    default: return "nothing";
  }
}

std::string child_path(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

const std::string& read_scalar(const entry& e, std::string_view expected) {
  if (!e.node.IsScalar())
    reject(e, "expected " + std::string(expected) + ", got " + describe(e.node));
  return e.node.Scalar();
}

std::string read_text(const entry& e) { return read_scalar(e, "a string"); }

bool read_bool(const entry& e) {
  const auto& text = read_scalar(e, "true or false");
  if (text == "true") return true;
  if (text == "false") return false;
  reject(e, "expected true or false, got '" + text + "'");
}

// A list of strings (user or group names); each item's position is remembered for validate().
std::vector<std::string> read_names(const entry& e) {
  if (e.node.IsNull()) return {};
  if (!e.node.IsSequence()) reject(e, "expected a list of names, got " + describe(e.node));
  std::vector<std::string> out;
  for (size_t i = 0; i < e.node.size(); ++i) {
    YAML::Node item = e.node[i];
    entry name{item, e.path + "[" + std::to_string(i) + "]", item.Mark(), e.marks};
    if (name.mark.is_null()) name.mark = e.mark;
    e.marks.emplace(name.path, name.mark);
    out.push_back(read_scalar(name, "a name"));
  }
  return out;
}

uint64_t read_integer(const entry& e, uint64_t max) {
  const std::string& text = read_scalar(e, "a non-negative integer");
  auto value = parse_quantity(text, no_units);
  if (!value) reject(e, quantity_problem(text, no_units, "a non-negative integer"));
  if (*value > max) reject(e, "must be at most " + std::to_string(max) + ", got " + text);
  return *value;
}

uint32_t read_u32(const entry& e) {
  return static_cast<uint32_t>(read_integer(e, std::numeric_limits<uint32_t>::max()));
}

uint16_t read_port(const entry& e) {
  const std::string& text = read_scalar(e, "a port number");
  auto value = parse_quantity(text, no_units);
  if (!value || *value > 65535) reject(e, "expected a port in 0..65535, got '" + text + "'");
  return static_cast<uint16_t>(*value);
}

uint64_t read_size(const entry& e) {
  constexpr std::string_view what =
      "a size: an integer with an optional unit B, KiB, MiB, GiB, TiB, KB, MB or GB";
  const std::string& text = read_scalar(e, "a size such as 64MiB");
  auto value = parse_size(text);
  if (!value) reject(e, quantity_problem(text, size_units, what));
  return *value;
}

std::chrono::milliseconds read_duration(const entry& e) {
  constexpr std::string_view what =
      "a duration: an integer with unit ms, s or min (no unit = milliseconds)";
  const std::string& text = read_scalar(e, "a duration such as 200ms");
  auto value = parse_duration(text);
  if (!value) reject(e, quantity_problem(text, duration_units, what));
  return *value;
}

// A file mode: octal with a leading 0 or 0o ("0600", "0o600"), decimal otherwise ("384").
uint32_t read_mode(const entry& e) {
  const std::string& text = read_scalar(e, "a file mode such as 0600");
  std::string_view digits = trim(text);
  int base = 10;
  if (digits.starts_with("0o")) {
    digits.remove_prefix(2);
    base = 8;
  } else if (digits.size() > 1 && digits.starts_with('0')) {
    base = 8;
  }
  uint32_t mode = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), mode, base);
  if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size())
    reject(e, "expected a file mode in octal such as 0600, got '" + text + "'");
  return mode;
}

template <class E>
struct choice {
  std::string_view name;
  E value;
};

template <class E, size_t N>
E read_choice(const entry& e, const choice<E> (&choices)[N]) {
  auto name_of = [](const choice<E>& c) { return c.name; };
  const std::string& text = read_scalar(e, "one of " + join_names(choices, name_of));
  for (const choice<E>& c : choices) {
    if (c.name == text) return c.value;
  }
  std::string reason = "unknown value '" + text + "'";
  if (auto hint = nearest(text, choices, name_of); !hint.empty())
    reason += " (did you mean '" + std::string(hint) + "'?)";
  reject(e, reason + "; allowed: " + join_names(choices, name_of));
}

// One key of a section and how its value is stored into the section's settings.
template <class T>
struct field {
  std::string_view key;
  void (*read)(const entry& value, T& out);
};

template <class T, size_t N>
std::string unknown_key_reason(std::string_view key, const field<T> (&fields)[N]) {
  auto key_of = [](const field<T>& f) { return f.key; };
  std::string reason = "unknown key '" + std::string(key) + "'";
  if (auto hint = nearest(key, fields, key_of); !hint.empty())
    return reason + " (did you mean '" + std::string(hint) + "'?)";
  return reason + " (valid keys: " + join_names(fields, key_of) + ")";
}

entry value_entry(const YAML::Node& key, const YAML::Node& value, std::string path,
                  mark_table& marks) {
  bool at_value = value.IsScalar() && !value.Mark().is_null();
  return entry{value, std::move(path), at_value ? value.Mark() : key.Mark(), marks};
}

// Reads a mapping whose keys must all be in `fields`, each at most once. An empty value
// ("engine:" with nothing below) leaves every field at its default.
template <class T, size_t N>
void read_mapping(const entry& e, const field<T> (&fields)[N], T& out) {
  if (e.node.IsNull()) return;
  if (!e.node.IsMap()) {
    auto key_of = [](const field<T>& f) { return f.key; };
    reject(e, "expected a mapping with keys " + join_names(fields, key_of) + ", got " +
                  describe(e.node));
  }
  std::map<std::string, int, std::less<>> first_line; // key -> 1-based line of its first use
  for (const auto& kv : e.node) {
    entry key{kv.first, e.path, kv.first.Mark(), e.marks};
    if (!kv.first.IsScalar()) reject(key, "expected a key name, got " + describe(kv.first));
    const std::string& name = kv.first.Scalar();
    key.path = child_path(e.path, name);
    auto [first, fresh] = first_line.emplace(name, key.mark.line + 1);
    if (!fresh)
      reject(key, "duplicate key '" + name + "' (first at line " +
                      std::to_string(first->second) + ")");
    auto f = std::find_if(std::begin(fields), std::end(fields),
                          [&](const field<T>& candidate) { return candidate.key == name; });
    if (f == std::end(fields)) reject(key, unknown_key_reason(name, fields));
    entry value = value_entry(kv.first, kv.second, key.path, e.marks);
    e.marks.emplace(value.path, value.mark);
    f->read(value, out);
  }
}

constexpr choice<role> roles[] = {{"engine", role::engine}, {"client", role::client}};

constexpr choice<scrub_policy> scrub_policies[] = {
    {"on-free", scrub_policy::on_free},
    {"on-allocate", scrub_policy::on_allocate},
    {"off", scrub_policy::off},
};

constexpr choice<connection_mode> connection_modes[] = {
    {"persistent", connection_mode::persistent},
};

constexpr field<endpoint> endpoint_fields[] = {
    {"host", [](const entry& v, endpoint& out) { out.host = read_text(v); }},
    {"port", [](const entry& v, endpoint& out) { out.port = read_port(v); }},
};

constexpr field<remote_peer> peer_fields[] = {
    {"name", [](const entry& v, remote_peer& out) { out.name = read_text(v); }},
    {"host", [](const entry& v, remote_peer& out) { out.address.host = read_text(v); }},
    {"port", [](const entry& v, remote_peer& out) { out.address.port = read_port(v); }},
};

// A peer must say who it is and where: name and port have no sensible default.
remote_peer read_peer(const entry& e) {
  if (!e.node.IsMap())
    reject(e, "expected a mapping with keys name, host, port, got " + describe(e.node));
  remote_peer peer;
  read_mapping(e, peer_fields, peer);
  for (const char* required : {"name", "port"}) {
    if (!e.node[required]) reject(e, std::string("missing key '") + required + "'");
  }
  return peer;
}

std::vector<remote_peer> read_peers(const entry& e) {
  if (e.node.IsNull()) return {};
  if (!e.node.IsSequence())
    reject(e, "expected a list of peers {name, host, port}, got " + describe(e.node));
  std::vector<remote_peer> peers;
  for (size_t i = 0; i < e.node.size(); ++i) {
    YAML::Node item = e.node[i];
    entry peer{item, e.path + "[" + std::to_string(i) + "]", item.Mark(), e.marks};
    if (peer.mark.is_null()) peer.mark = e.mark;
    e.marks.emplace(peer.path, peer.mark);
    peers.push_back(read_peer(peer));
  }
  return peers;
}

constexpr field<quota_rule> quota_fields[] = {
    {"user", [](const entry& v, quota_rule& out) { out.user = read_text(v); }},
    {"group", [](const entry& v, quota_rule& out) { out.group = read_text(v); }},
    {"bytes", [](const entry& v, quota_rule& out) { out.bytes = read_size(v); }},
};

std::vector<quota_rule> read_quotas(const entry& e) {
  if (e.node.IsNull()) return {};
  if (!e.node.IsSequence())
    reject(e, "expected a list of quotas {user or group, bytes}, got " + describe(e.node));
  std::vector<quota_rule> quotas;
  for (size_t i = 0; i < e.node.size(); ++i) {
    YAML::Node item = e.node[i];
    entry rule{item, e.path + "[" + std::to_string(i) + "]", item.Mark(), e.marks};
    if (rule.mark.is_null()) rule.mark = e.mark;
    e.marks.emplace(rule.path, rule.mark);
    if (!item.IsMap())
      reject(rule, "expected a mapping with keys user or group, and bytes, got " + describe(item));
    quota_rule q;
    read_mapping(rule, quota_fields, q);
    if (!item["bytes"]) reject(rule, "missing key 'bytes'");
    quotas.push_back(std::move(q));
  }
  return quotas;
}

constexpr field<engine_settings> engine_fields[] = {
    {"name", [](const entry& v, engine_settings& out) { out.name = read_text(v); }},
    {"arena", [](const entry& v, engine_settings& out) { out.arena_bytes = read_size(v); }},
    {"max_arena",
     [](const entry& v, engine_settings& out) { out.max_arena_bytes = read_size(v); }},
    {"min_block",
     [](const entry& v, engine_settings& out) { out.min_block_bytes = read_size(v); }},
    {"max_processes",
     [](const entry& v, engine_settings& out) { out.max_processes = read_u32(v); }},
    {"max_processes_per_user",
     [](const entry& v, engine_settings& out) { out.max_processes_per_user = read_u32(v); }},
    {"max_blocks", [](const entry& v, engine_settings& out) { out.max_blocks = read_u32(v); }},
    {"max_grants", [](const entry& v, engine_settings& out) { out.max_grants = read_u32(v); }},
    {"max_names", [](const entry& v, engine_settings& out) { out.max_names = read_u32(v); }},
    {"default_quota",
     [](const entry& v, engine_settings& out) { out.default_quota_bytes = read_size(v); }},
    {"quotas", [](const entry& v, engine_settings& out) { out.quotas = read_quotas(v); }},
    {"max_copy_ranges",
     [](const entry& v, engine_settings& out) { out.max_copy_ranges = read_u32(v); }},
    {"max_copy_bytes",
     [](const entry& v, engine_settings& out) { out.max_copy_bytes = read_size(v); }},
    {"scrub",
     [](const entry& v, engine_settings& out) { out.scrub = read_choice(v, scrub_policies); }},
    {"scrub_delay",
     [](const entry& v, engine_settings& out) { out.scrub_delay = read_duration(v); }},
    {"permissions", [](const entry& v, engine_settings& out) { out.permissions = read_mode(v); }},
    {"group", [](const entry& v, engine_settings& out) { out.group = read_text(v); }},
    {"listen",
     [](const entry& v, engine_settings& out) { read_mapping(v, endpoint_fields, out.listen); }},
    {"liveness_interval",
     [](const entry& v, engine_settings& out) { out.liveness_interval = read_duration(v); }},
    {"socket", [](const entry& v, engine_settings& out) { out.socket = read_text(v); }},
    {"allow_users",
     [](const entry& v, engine_settings& out) { out.allow_users = read_names(v); }},
    {"allow_groups",
     [](const entry& v, engine_settings& out) { out.allow_groups = read_names(v); }},
    {"unauthenticated_tcp",
     [](const entry& v, engine_settings& out) { out.unauthenticated_tcp = read_bool(v); }},
};

constexpr field<client_settings> client_fields[] = {
    {"engine",
     [](const entry& v, client_settings& out) { read_mapping(v, endpoint_fields, out.engine); }},
    {"mode",
     [](const entry& v, client_settings& out) {
       if (v.node.IsScalar() && v.node.Scalar() == "per-request")
         reject(v, "per-request is not supported: a client stays registered until it closes or "
                   "its process ends (persistent)");
       out.mode = read_choice(v, connection_modes);
     }},
    {"request_timeout",
     [](const entry& v, client_settings& out) { out.request_timeout = read_duration(v); }},
};

constexpr field<tls_settings> tls_fields[] = {
    {"certificate", [](const entry& v, tls_settings& out) { out.certificate = read_text(v); }},
    {"key", [](const entry& v, tls_settings& out) { out.key = read_text(v); }},
    {"cafile", [](const entry& v, tls_settings& out) { out.cafile = read_text(v); }},
    {"passphrase", [](const entry& v, tls_settings& out) { out.passphrase = read_text(v); }},
    {"capath", [](const entry& v, tls_settings& out) { out.capath = read_text(v); }},
};

constexpr choice<cache_hit_policy> cache_hit_policies[] = {
    {"copy", cache_hit_policy::copy},
    {"hand_over", cache_hit_policy::hand_over},
};

constexpr field<remote_settings> remote_fields[] = {
    {"peers", [](const entry& v, remote_settings& out) { out.peers = read_peers(v); }},
    {"listen",
     [](const entry& v, remote_settings& out) { read_mapping(v, endpoint_fields, out.listen); }},
    {"tls", [](const entry& v, remote_settings& out) { read_mapping(v, tls_fields, out.tls); }},
    {"chunk", [](const entry& v, remote_settings& out) { out.chunk_bytes = read_size(v); }},
    {"window", [](const entry& v, remote_settings& out) { out.window_chunks = read_u32(v); }},
    {"cache", [](const entry& v, remote_settings& out) { out.cache_bytes = read_size(v); }},
    {"cache_hit",
     [](const entry& v, remote_settings& out) {
       out.cache_hit = read_choice(v, cache_hit_policies);
     }},
    {"checksum_retries",
     [](const entry& v, remote_settings& out) { out.checksum_retries = read_u32(v); }},
    {"stall_timeout",
     [](const entry& v, remote_settings& out) { out.stall_timeout = read_duration(v); }},
    {"redial_min",
     [](const entry& v, remote_settings& out) { out.redial_min = read_duration(v); }},
    {"redial_max",
     [](const entry& v, remote_settings& out) { out.redial_max = read_duration(v); }},
    {"peer_key_file",
     [](const entry& v, remote_settings& out) { out.peer_key_file = read_text(v); }},
    {"unauthenticated_peers",
     [](const entry& v, remote_settings& out) { out.unauthenticated_peers = read_bool(v); }},
    {"allow_dial", [](const entry& v, remote_settings& out) { out.allow_dial = read_names(v); }},
};

constexpr choice<local_transport> local_transports[] = {
    {"shm", local_transport::shm},
    {"basp", local_transport::basp},
};

constexpr choice<local_idle> local_idles[] = {
    {"auto", local_idle::automatic},
    {"park", local_idle::park},
    {"spin", local_idle::spin},
    {"yield", local_idle::yield},
};

constexpr field<local_settings> local_fields[] = {
    {"idle", [](const entry& v, local_settings& out) { out.idle = read_choice(v, local_idles); }},
    {"spin_us",
     [](const entry& v, local_settings& out) {
       out.spin_us = static_cast<uint32_t>(read_integer(v, 1'000'000));
     }},
    {"transport",
     [](const entry& v, local_settings& out) { out.transport = read_choice(v, local_transports); }},
    {"request_inbox",
     [](const entry& v, local_settings& out) { out.request_inbox_bytes = read_size(v); }},
    {"reply_inbox",
     [](const entry& v, local_settings& out) { out.reply_inbox_bytes = read_size(v); }},
    {"actor_inbox",
     [](const entry& v, local_settings& out) { out.actor_inbox_bytes = read_size(v); }},
};

constexpr field<settings> top_fields[] = {
    {"role", [](const entry& v, settings& out) { out.role = read_choice(v, roles); }},
    {"engine",
     [](const entry& v, settings& out) { read_mapping(v, engine_fields, out.engine); }},
    {"client",
     [](const entry& v, settings& out) { read_mapping(v, client_fields, out.client); }},
    {"remote",
     [](const entry& v, settings& out) { read_mapping(v, remote_fields, out.remote); }},
    {"local",
     [](const entry& v, settings& out) { read_mapping(v, local_fields, out.local); }},
};

// ---------------------------------------------------------------------------------------------
// Loader boundary: everything below returns errors as values.

config_error error_at(std::string_view file, const YAML::Mark& mark, std::string key,
                      std::string reason) {
  config_error err;
  err.file = std::string(file);
  if (!mark.is_null()) {
    err.line = mark.line + 1;
    err.column = mark.column + 1;
  }
  err.key = std::move(key);
  err.reason = std::move(reason);
  return err;
}

// Places a validate() problem at the first of its keys written in the file, else at the
// nearest enclosing key that was ("remote.peers[1].name" -> "remote.peers[1]" -> "remote").
config_error locate(std::string_view file, const mark_table& marks, problem p) {
  for (const std::string& key : {p.key, p.also}) {
    if (auto it = marks.find(key); !key.empty() && it != marks.end())
      return error_at(file, it->second, key, std::move(p.reason));
  }
  for (std::string key = p.key; !key.empty();) {
    size_t cut = key.find_last_of(".[");
    key.resize(cut == std::string::npos ? 0 : cut);
    if (auto it = marks.find(key); !key.empty() && it != marks.end())
      return error_at(file, it->second, std::move(p.key), std::move(p.reason));
  }
  return error_at(file, YAML::Mark::null_mark(), std::move(p.key), std::move(p.reason));
}

config_result read_document(const YAML::Node& root, std::string_view file) {
  settings result;
  mark_table marks;
  try {
    read_mapping(entry{root, "", root.Mark(), marks}, top_fields, result);
  } catch (const rejection& r) {
    return error_at(file, r.mark, r.key, r.reason);
  }
  if (auto p = check_settings(result)) return locate(file, marks, std::move(*p));
  return result;
}

} // namespace

std::string config_error::to_string() const {
  std::string where = file;
  if (line > 0) {
    where += (where.empty() ? "" : ":") + std::to_string(line);
    if (column > 0) where += ":" + std::to_string(column);
  }
  std::string out;
  for (const std::string& part : {where, key, reason}) {
    if (part.empty()) continue;
    if (!out.empty()) out += ": ";
    out += part;
  }
  return out;
}

namespace {

// Records where each document starts and nothing else (a YAML::EventHandler that builds no nodes).
struct document_starts : YAML::EventHandler {
  std::vector<YAML::Mark> marks;
  void OnDocumentStart(const YAML::Mark& mark) override { marks.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

} // namespace

config_result parse_config(std::string_view yaml_text, std::string_view file_name) {
  // Not YAML::LoadAll: in yaml-cpp 0.7 it loops forever, allocating, on a token its parser does
  // not consume (a file that is just ",": jbeder/yaml-cpp#1319, found by fuzz/fuzz_config.cpp).
  // At most two documents are looked at; a second one that starts where the first did is that
  // token.
  std::string text(yaml_text);
  YAML::Node root;
  try {
    std::istringstream in{text};
    YAML::Parser parser{in};
    document_starts starts;
    while (starts.marks.size() < 2 && parser.HandleNextDocument(starts)) {
    }
    if (starts.marks.empty()) // no document at all: an empty file or one with only comments
      return settings{};
    if (starts.marks.size() > 1) {
      const auto& second = starts.marks[1];
      if (second.pos == starts.marks[0].pos) {
        auto at = static_cast<size_t>(std::max(second.pos, 0));
        return error_at(file_name, second, "",
                        at < text.size() ? "YAML syntax error: unexpected '" + text.substr(at, 1)
                                             + "'"
                                         : std::string{"YAML syntax error"});
      }
      return error_at(file_name, second, "", "expected one YAML document, found more");
    }
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return error_at(file_name, e.mark, "", "YAML syntax error: " + e.msg);
  }
  return read_document(root, file_name);
}

config_result load_config(const std::filesystem::path& file) {
  std::string name = file.string();
  std::error_code ec;
  if (!std::filesystem::exists(file, ec))
    return error_at(name, YAML::Mark::null_mark(), "", "no such file: '" + name + "'");
  if (std::filesystem::is_directory(file, ec))
    return error_at(name, YAML::Mark::null_mark(), "", "'" + name + "' is a directory");
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  if (in) text << in.rdbuf();
  if (!in || in.bad())
    return error_at(name, YAML::Mark::null_mark(), "", "cannot read '" + name + "'");
  return parse_config(text.str(), name);
}

std::optional<std::string> validate(const settings& s) {
  return validate(s, system_page_bytes());
}

std::optional<std::string> validate(const settings& s, uint64_t page_bytes) {
  auto p = check_settings(s, page_bytes);
  if (!p) return std::nullopt;
  return p->key + ": " + p->reason;
}

std::optional<uint64_t> parse_size(std::string_view text) {
  return parse_quantity(text, size_units);
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  auto ms = parse_quantity(text, duration_units);
  if (!ms) return std::nullopt;
  return std::chrono::milliseconds{static_cast<int64_t>(*ms)};
}

std::optional<endpoint> parse_endpoint(std::string_view text) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0)
    return std::nullopt;
  auto host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  auto last = text.data() + text.size();
  auto [end, ec] = std::from_chars(text.data() + colon + 1, last, port);
  if (ec != std::errc{} || end != last || port == 0 || port > 65535)
    return std::nullopt;
  return endpoint{std::string{host}, static_cast<uint16_t>(port)};
}

} // namespace cafshm
