// Tests of the YAML configuration loader (plugin/src/config.cpp).

#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

#include "cafshm/config.hpp"
#include "dial_policy.hpp"
#include "shm_segment.hpp"
#include "support/command.hpp"

using namespace cafshm;
using namespace std::chrono_literals;

namespace {

settings settings_of(std::string_view yaml) {
  auto result = parse_config(yaml, "t.yaml");
  if (auto* err = std::get_if<config_error>(&result)) FAIL("unexpected error: " << err->to_string());
  return std::get<settings>(result);
}

config_error error_of(std::string_view yaml) {
  auto result = parse_config(yaml, "t.yaml");
  REQUIRE_MESSAGE(std::holds_alternative<config_error>(result), "accepted: " << yaml);
  auto err = std::get<config_error>(result);
  INFO(err.to_string());
  CHECK(err.file == "t.yaml");
  CHECK(!err.reason.empty());
  return err;
}

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

// Field by field: settings has no operator==.
void check_same(const settings& a, const settings& b) {
  CHECK(a.role == b.role);
  CHECK(a.engine.name == b.engine.name);
  CHECK(a.engine.arena_bytes == b.engine.arena_bytes);
  CHECK(a.engine.max_arena_bytes == b.engine.max_arena_bytes);
  CHECK(a.engine.min_block_bytes == b.engine.min_block_bytes);
  CHECK(a.engine.max_processes == b.engine.max_processes);
  CHECK(a.engine.max_blocks == b.engine.max_blocks);
  CHECK(a.engine.max_grants == b.engine.max_grants);
  CHECK(a.engine.max_names == b.engine.max_names);
  CHECK(a.engine.max_processes_per_user == b.engine.max_processes_per_user);
  CHECK(a.engine.default_quota_bytes == b.engine.default_quota_bytes);
  CHECK(a.engine.quotas == b.engine.quotas);
  CHECK(a.engine.max_copy_ranges == b.engine.max_copy_ranges);
  CHECK(a.engine.max_copy_bytes == b.engine.max_copy_bytes);
  CHECK(a.engine.scrub == b.engine.scrub);
  CHECK(a.engine.scrub_delay == b.engine.scrub_delay);
  CHECK(a.engine.permissions == b.engine.permissions);
  CHECK(a.engine.listen == b.engine.listen);
  CHECK(a.engine.liveness_interval == b.engine.liveness_interval);
  CHECK(a.client.engine == b.client.engine);
  CHECK(a.client.mode == b.client.mode);
  CHECK(a.client.request_timeout == b.client.request_timeout);
  REQUIRE(a.remote.peers.size() == b.remote.peers.size());
  for (size_t i = 0; i < a.remote.peers.size(); ++i) {
    CHECK(a.remote.peers[i].name == b.remote.peers[i].name);
    CHECK(a.remote.peers[i].address == b.remote.peers[i].address);
  }
  CHECK(a.remote.chunk_bytes == b.remote.chunk_bytes);
  CHECK(a.remote.window_chunks == b.remote.window_chunks);
  CHECK(a.remote.cache_bytes == b.remote.cache_bytes);
  CHECK(a.remote.cache_hit == b.remote.cache_hit);
  CHECK(a.remote.checksum_retries == b.remote.checksum_retries);
  CHECK(a.remote.stall_timeout == b.remote.stall_timeout);
  CHECK(a.remote.redial_min == b.remote.redial_min);
  CHECK(a.remote.redial_max == b.remote.redial_max);
  CHECK(a.local.transport == b.local.transport);
  CHECK(a.local.request_inbox_bytes == b.local.request_inbox_bytes);
  CHECK(a.local.reply_inbox_bytes == b.local.reply_inbox_bytes);
  CHECK(a.local.idle == b.local.idle);
  CHECK(a.local.spin_us == b.local.spin_us);
  CHECK(a.local.actor_inbox_bytes == b.local.actor_inbox_bytes);
}

} // namespace

TEST_CASE("parse_size accepts binary and decimal units") {
  CHECK(parse_size("0") == 0u);
  CHECK(parse_size("512") == 512u);
  CHECK(parse_size("512B") == 512u);
  CHECK(parse_size("4KiB") == 4096u);
  CHECK(parse_size("64MiB") == 64ull << 20);
  CHECK(parse_size("1GiB") == 1ull << 30);
  CHECK(parse_size("2TiB") == 2ull << 40);
  CHECK(parse_size("2KB") == 2000u);
  CHECK(parse_size("2MB") == 2000000u);
  CHECK(parse_size("3GB") == 3000000000u);
  CHECK(parse_size("64 MiB") == 64ull << 20);
  CHECK(parse_size("9223372036854775807") == 9223372036854775807ull);
}

TEST_CASE("parse_size rejects negatives, fractions, overflow and garbage") {
  for (const char* bad : {"", " ", "-1", "-4KiB", "+4KiB", "1.5GiB", "0.5", "1e3", "0x10", "MiB",
                          "4kib", "4 K", "4KiBB", "4 MiB x", "abc", "9223372036854775808",
                          "99999999999999999999", "8388608TiB", "9223372036854776KB"}) {
    INFO(bad);
    CHECK_FALSE(parse_size(bad).has_value());
  }
}

TEST_CASE("parse_duration accepts ms, s and min, and no unit means milliseconds") {
  CHECK(parse_duration("200ms") == 200ms);
  CHECK(parse_duration("5s") == 5000ms);
  CHECK(parse_duration("1min") == 60000ms);
  CHECK(parse_duration("2500") == 2500ms);
  CHECK(parse_duration("0") == 0ms);
  for (const char* bad : {"", "-5s", "1.5s", "5 sec", "5h", "ms", "s5", "153722867280912931min"}) {
    INFO(bad);
    CHECK_FALSE(parse_duration(bad).has_value());
  }
}

TEST_CASE("config/default.yaml loads to exactly the built-in defaults") {
  auto result = load_config(CAFSHM_SOURCE_DIR "/config/default.yaml");
  if (auto* err = std::get_if<config_error>(&result)) FAIL(err->to_string());
  check_same(std::get<settings>(result), settings{});
}

TEST_CASE("config/pipeline.yaml") {
  auto result = load_config(CAFSHM_SOURCE_DIR "/config/pipeline.yaml");
  if (auto* err = std::get_if<config_error>(&result)) FAIL(err->to_string());
  settings expected;
  expected.role = role::engine;
  expected.engine.name = "cafshm-pipeline";
  expected.engine.arena_bytes = 256ull << 20;
  expected.engine.min_block_bytes = 4096;
  expected.engine.listen = {"127.0.0.1", 4242};
  expected.client.engine = {"127.0.0.1", 4242};
  expected.client.mode = connection_mode::persistent;
  check_same(std::get<settings>(result), expected);
}

TEST_CASE("empty text, comments only and empty sections give the defaults") {
  for (const char* yaml : {"", "\n\n", "# nothing here\n  # still nothing\n", "---\n", "~\n",
                           "engine:\nclient:\nremote:\n", "remote:\n  peers:\n"}) {
    INFO(yaml);
    check_same(settings_of(yaml), settings{});
  }
}

TEST_CASE("every key is read") {
  auto s = settings_of(R"(
role: client
engine:
  name: my.seg_1-x
  arena: 1GiB
  min_block: 64KiB
  max_processes: 100
  max_processes_per_user: 10
  max_blocks: 5000
  max_grants: 7
  max_names: 9
  default_quota: 10MB
  scrub: on-allocate
  scrub_delay: 15ms
  permissions: 0640
  listen: {host: 0.0.0.0, port: 0}
  liveness_interval: 1s
client:
  engine: {host: example.org, port: 5000}
  mode: persistent
  request_timeout: 2min
remote:
  peers:
    - {name: b, host: 10.0.0.2, port: 4243}
    - name: c
      port: 4244
  chunk: 64KiB
  window: 64
  cache: 0
  cache_hit: hand_over
  checksum_retries: 0
  stall_timeout: 90s
  redial_min: 50ms
  redial_max: 2s
)");
  CHECK(s.role == role::client);
  CHECK(s.engine.name == "my.seg_1-x");
  CHECK(s.engine.arena_bytes == 1ull << 30);
  CHECK(s.engine.min_block_bytes == 64u << 10);
  CHECK(s.engine.max_processes == 100u);
  CHECK(s.engine.max_processes_per_user == 10u);
  CHECK(s.engine.max_blocks == 5000u);
  CHECK(s.engine.max_grants == 7u);
  CHECK(s.engine.max_names == 9u);
  CHECK(s.engine.default_quota_bytes == 10000000u);
  CHECK(s.engine.scrub == scrub_policy::on_allocate);
  CHECK(s.engine.scrub_delay == 15ms);
  CHECK(s.engine.permissions == 0640u);
  CHECK(s.engine.listen == endpoint{"0.0.0.0", 0});
  CHECK(s.engine.liveness_interval == 1000ms);
  CHECK(s.client.engine == endpoint{"example.org", 5000});
  CHECK(s.client.mode == connection_mode::persistent);
  CHECK(s.client.request_timeout == 120000ms);
  REQUIRE(s.remote.peers.size() == 2);
  CHECK(s.remote.peers[0].name == "b");
  CHECK(s.remote.peers[0].address == endpoint{"10.0.0.2", 4243});
  CHECK(s.remote.peers[1].name == "c");
  CHECK(s.remote.peers[1].address == endpoint{"127.0.0.1", 4244});
  CHECK(s.remote.chunk_bytes == 64u << 10);
  CHECK(s.remote.window_chunks == 64u);
  CHECK(s.remote.cache_bytes == 0u);
  CHECK(s.remote.cache_hit == cache_hit_policy::hand_over);
  CHECK(s.remote.checksum_retries == 0u);
  CHECK(s.remote.stall_timeout == 90000ms);
  CHECK(s.remote.redial_min == 50ms);
  CHECK(s.remote.redial_max == 2000ms);
}

TEST_CASE("absent keys keep their defaults") {
  auto s = settings_of("engine:\n  arena: 128MiB\n");
  settings expected;
  expected.engine.arena_bytes = 128ull << 20;
  check_same(s, expected);
}

TEST_CASE("integers are decimal even with leading zeros") {
  CHECK(settings_of("engine: {max_processes: 010}").engine.max_processes == 10u);
}

TEST_CASE("permissions: leading 0 or 0o is octal, otherwise decimal") {
  CHECK(settings_of("engine: {permissions: 0600}").engine.permissions == 0600u);
  CHECK(settings_of("engine: {permissions: '0644'}").engine.permissions == 0644u);
  CHECK(settings_of("engine: {permissions: 0o660}").engine.permissions == 0660u);
  CHECK(settings_of("engine: {permissions: 0700}").engine.permissions == 0700u);
  CHECK(settings_of("engine: {permissions: 420}").engine.permissions == 0644u);

  auto no_owner_rw = error_of("engine:\n  permissions: 0400\n");
  CHECK(no_owner_rw.key == "engine.permissions");
  CHECK(no_owner_rw.line == 2);
  CHECK(no_owner_rw.column == 16);
  CHECK(contains(no_owner_rw.reason, "0600"));

  CHECK(error_of("engine: {permissions: 01777}").key == "engine.permissions");
  CHECK(contains(error_of("engine: {permissions: 600}").reason, "outside 0777"));
  CHECK(error_of("engine: {permissions: 0689}").key == "engine.permissions");
  CHECK(error_of("engine: {permissions: rw}").key == "engine.permissions");
}

TEST_CASE("syntax error reports the parser's line and column") {
  auto unclosed = error_of("engine:\n  arena: [1, 2\n");
  CHECK(unclosed.line == 3);
  CHECK(unclosed.column == 1);
  CHECK(unclosed.key.empty());
  CHECK(contains(unclosed.reason, "syntax"));

  auto bad_indent = error_of("engine:\n  arena: 1\n   bad: 2\n");
  CHECK(bad_indent.line == 3);
  CHECK(bad_indent.column == 7);

  CHECK(error_of("role: engine: client\n").line == 1);
}

TEST_CASE("missing file names the path, at line 0") {
  std::string path = CAFSHM_SOURCE_DIR "/config/no-such-file.yaml";
  auto result = load_config(path);
  REQUIRE(std::holds_alternative<config_error>(result));
  auto err = std::get<config_error>(result);
  CHECK(err.file == path);
  CHECK(err.line == 0);
  CHECK(err.column == 0);
  CHECK(contains(err.reason, path));
  CHECK(err.to_string() == path + ": no such file: '" + path + "'");

  auto directory = load_config(CAFSHM_SOURCE_DIR "/config");
  REQUIRE(std::holds_alternative<config_error>(directory));
  CHECK(std::get<config_error>(directory).line == 0);
}

TEST_CASE("load_config reports positions in the file it read") {
  std::string path = "/tmp/cafshm_test_config_" + std::to_string(::getpid()) + ".yaml";
  std::ofstream(path) << "# header\nengine:\n  window: 4\n";
  auto result = load_config(path);
  std::remove(path.c_str());
  REQUIRE(std::holds_alternative<config_error>(result));
  auto err = std::get<config_error>(result);
  CHECK(err.to_string() == path + ":3:3: engine.window: unknown key 'window' (valid keys: name, "
                                  "arena, max_arena, min_block, max_processes, "
                                  "max_processes_per_user, max_blocks, "
                                  "max_grants, max_names, default_quota, quotas, max_copy_ranges, "
                                  "max_copy_bytes, scrub, scrub_delay, permissions, group, listen, "
                                  "liveness_interval, socket, allow_users, allow_groups, "
                                  "unauthenticated_tcp)");
}

TEST_CASE("unknown keys are rejected in every section, with a suggestion when close") {
  struct example {
    const char* yaml;
    const char* key;
    const char* hint;
    int line, column;
  };
  const example examples[] = {
      {"rol: engine\n", "rol", "role", 1, 1},
      {"engine:\n  arnea: 64MiB\n", "engine.arnea", "arena", 2, 3},
      {"engine:\n  listen: {host: a, prot: 1}\n", "engine.listen.prot", "port", 2, 21},
      {"client:\n  mdoe: persistent\n", "client.mdoe", "mode", 2, 3},
      {"client:\n  engine:\n    hots: a\n", "client.engine.hots", "host", 3, 5},
      {"remote:\n  windw: 4\n", "remote.windw", "window", 2, 3},
      {"remote:\n  peers:\n    - {name: b, prot: 1}\n", "remote.peers[0].prot", "port", 3, 17},
      {"engine:\n  MaxProcesses: 4\n", "engine.MaxProcesses", "max_processes", 2, 3},
      {"engine:\n  colour: red\n", "engine.colour", nullptr, 2, 3},
  };
  for (const example& ex : examples) {
    auto err = error_of(ex.yaml);
    CHECK(err.key == ex.key);
    CHECK(err.line == ex.line);
    CHECK(err.column == ex.column);
    CHECK(contains(err.reason, "unknown key"));
    if (ex.hint)
      CHECK(contains(err.reason, std::string("did you mean '") + ex.hint + "'?"));
    else
      CHECK(contains(err.reason, "valid keys: name, arena"));
  }
  CHECK(error_of("engine:\n  arnea: 64MiB\n").to_string() ==
        "t.yaml:2:3: engine.arnea: unknown key 'arnea' (did you mean 'arena'?)");
  CHECK_FALSE(contains(error_of("xyzzy: 1\n").reason, "did you mean"));
}

TEST_CASE("wrong types are rejected at the value") {
  auto map_for_scalar = error_of("engine:\n  arena: {a: 1}\n");
  CHECK(map_for_scalar.key == "engine.arena");
  CHECK(map_for_scalar.line == 2);
  CHECK(contains(map_for_scalar.reason, "got a mapping"));

  auto list_for_map = error_of("engine: [1, 2]\n");
  CHECK(list_for_map.key == "engine");
  CHECK(list_for_map.line == 1);
  CHECK(contains(list_for_map.reason, "expected a mapping"));
  CHECK(contains(list_for_map.reason, "got a list"));

  auto scalar_for_map = error_of("client:\n  engine: localhost:4242\n");
  CHECK(scalar_for_map.key == "client.engine");
  CHECK(contains(scalar_for_map.reason, "got 'localhost:4242'"));

  auto not_a_number = error_of("engine:\n  max_processes: many\n");
  CHECK(not_a_number.key == "engine.max_processes");
  CHECK(not_a_number.line == 2);
  CHECK(not_a_number.column == 18);
  CHECK(contains(not_a_number.reason, "integer"));

  auto fraction = error_of("remote: {window: 2.5}\n");
  CHECK(fraction.key == "remote.window");

  auto bad_enum = error_of("engine:\n  scrub: sometimes\n");
  CHECK(bad_enum.key == "engine.scrub");
  CHECK(contains(bad_enum.reason, "unknown value 'sometimes'"));
  CHECK(contains(bad_enum.reason, "on-free, on-allocate, off"));
  CHECK(contains(error_of("engine: {scrub: on_free}").reason, "did you mean 'on-free'?"));
  CHECK(contains(error_of("role: server").reason, "engine, client"));
  CHECK(contains(error_of("client: {mode: per_request}").reason, "persistent"));
  auto per_request = error_of("client:\n  mode: per-request\n");
  CHECK(per_request.key == "client.mode");
  CHECK(contains(per_request.reason, "per-request is not supported"));

  auto peers_not_list = error_of("remote:\n  peers: {name: b}\n");
  CHECK(peers_not_list.key == "remote.peers");
  CHECK(contains(peers_not_list.reason, "expected a list"));

  auto peer_not_map = error_of("remote:\n  peers:\n    - b\n");
  CHECK(peer_not_map.key == "remote.peers[0]");
  CHECK(peer_not_map.line == 3);

  auto list_for_scalar = error_of("engine:\n  name: [a, b]\n");
  CHECK(list_for_scalar.key == "engine.name");
  CHECK(contains(list_for_scalar.reason, "got a list"));

  auto empty_value = error_of("engine:\n  arena:\n  min_block: 4KiB\n");
  CHECK(empty_value.key == "engine.arena");
  CHECK(empty_value.line == 2);
  CHECK(empty_value.column == 3);
  CHECK(contains(empty_value.reason, "got nothing"));

  auto complex_key = error_of("engine:\n  ? [a]\n  : 1\n");
  CHECK(complex_key.key == "engine");
  CHECK(complex_key.line == 2);
}

TEST_CASE("local: transport shm or basp, inbox sizes a power of two in 4KiB..16MiB") {
  auto s = settings_of("local:\n  transport: basp\n  request_inbox: 4KiB\n  reply_inbox: 16MiB\n"
                       "  actor_inbox: 64KiB\n");
  CHECK(s.local.transport == local_transport::basp);
  CHECK(s.local.request_inbox_bytes == 4096);
  CHECK(s.local.reply_inbox_bytes == 16ull << 20);
  CHECK(s.local.actor_inbox_bytes == 64ull << 10);
  auto transport = error_of("local:\n  transport: tcp\n");
  CHECK(transport.key == "local.transport");
  CHECK(transport.line == 2);
  CHECK(contains(transport.reason, "shm"));
  CHECK(contains(error_of("local: {request_inbox: 6KiB}").reason, "power of two"));
  CHECK(error_of("local: {request_inbox: 2KiB}").key == "local.request_inbox");
  CHECK(error_of("local: {reply_inbox: 32MiB}").key == "local.reply_inbox");
  CHECK(error_of("local: {actor_inbox: 3KiB}").key == "local.actor_inbox");
  CHECK(error_of("local: {transports: shm}").key == "local.transports");
}

TEST_CASE("remote.cache_hit: copy by default, or hand_over, and another word names both") {
  CHECK(settings{}.remote.cache_hit == cache_hit_policy::copy);
  CHECK(settings_of("remote: {cache_hit: hand_over}").remote.cache_hit
        == cache_hit_policy::hand_over);
  CHECK(settings_of("remote: {cache_hit: copy}").remote.cache_hit == cache_hit_policy::copy);
  auto wrong = error_of("remote:\n  cache: 1GiB\n  cache_hit: move\n");
  CHECK(wrong.key == "remote.cache_hit");
  CHECK(wrong.line == 3);
  CHECK(contains(wrong.reason, "copy"));
  CHECK(contains(wrong.reason, "hand_over"));
}

TEST_CASE("local: idle auto, park, spin or yield, spin_us up to one second") {
  CHECK(settings{}.local.idle == local_idle::automatic);
  auto s = settings_of("local:\n  idle: spin\n  spin_us: 50\n");
  CHECK(s.local.idle == local_idle::spin);
  CHECK(s.local.spin_us == 50);
  CHECK(settings_of("local: {idle: park}").local.idle == local_idle::park);
  CHECK(settings_of("local: {idle: auto}").local.idle == local_idle::automatic);
  CHECK(settings_of("local: {idle: yield}").local.idle == local_idle::yield);
  auto idle = error_of("local:\n  idle: busy\n");
  CHECK(idle.key == "local.idle");
  CHECK(idle.line == 2);
  CHECK(contains(idle.reason, "park"));
  CHECK(error_of("local: {spin_us: 1000001}").key == "local.spin_us");
  CHECK(error_of("local: {spin_us: -1}").key == "local.spin_us");
}

TEST_CASE("out-of-range values are rejected at the key") {
  auto port = error_of("engine:\n  listen:\n    port: 70000\n");
  CHECK(port.key == "engine.listen.port");
  CHECK(port.line == 3);
  CHECK(port.column == 11);
  CHECK(contains(port.reason, "0..65535"));

  auto processes = error_of("engine:\n  max_processes: 1\n");
  CHECK(processes.key == "engine.max_processes");
  CHECK(processes.line == 2);
  CHECK(contains(processes.reason, "2..65535"));
  CHECK(error_of("engine: {max_processes: 65536}").key == "engine.max_processes");
  CHECK(error_of("engine: {max_blocks: 16777217}").key == "engine.max_blocks");
  CHECK(error_of("engine: {max_blocks: 4294967296}").key == "engine.max_blocks");

  auto window = error_of("remote:\n  window: 0\n");
  CHECK(window.key == "remote.window");
  CHECK(window.line == 2);
  CHECK(window.column == 11);
  CHECK(error_of("remote: {window: 65}").key == "remote.window");
  auto stall = error_of("remote:\n  stall_timeout: 10ms\n");
  CHECK(stall.key == "remote.stall_timeout");
  CHECK(stall.line == 2);
  CHECK(contains(stall.reason, "100ms..60min"));
  CHECK(error_of("remote: {stall_timeout: 61min}").key == "remote.stall_timeout");
  CHECK(error_of("remote: {redial_min: 0}").key == "remote.redial_min");
  CHECK(error_of("remote: {redial_min: 5s, redial_max: 1s}").key == "remote.redial_max");

  auto negative = error_of("remote:\n  cache: -1MiB\n");
  CHECK(negative.key == "remote.cache");
  CHECK(contains(negative.reason, "negative"));
  CHECK(contains(error_of("engine: {default_quota: 8388608TiB}").reason, "too large"));

  auto not_power = error_of("engine:\n  min_block: 6KiB\n");
  CHECK(not_power.key == "engine.min_block");
  CHECK(not_power.line == 2);
  CHECK(contains(not_power.reason, "power of two"));
  CHECK(error_of("engine: {min_block: 2KiB}").key == "engine.min_block");

  CHECK(error_of("remote: {chunk: 32KiB}").key == "remote.chunk");
  CHECK(error_of("remote: {chunk: 512MiB}").key == "remote.chunk");
  CHECK(error_of("engine: {liveness_interval: 0}").key == "engine.liveness_interval");
  CHECK(error_of("engine: {scrub_delay: 2min}").key == "engine.scrub_delay");
  CHECK(error_of("engine: {scrub_delay: -1}").key == "engine.scrub_delay");
  CHECK(error_of("client: {request_timeout: -5s}").key == "client.request_timeout");
  CHECK(error_of("engine: {name: ''}").key == "engine.name");
  CHECK(error_of("engine: {name: a/b}").key == "engine.name");
  CHECK(error_of(("engine: {name: " + std::string(65, 'n') + "}").c_str()).key == "engine.name");
  CHECK(settings_of("engine: {name: " + std::string(64, 'n') + "}").engine.name.size() == 64);
}

TEST_CASE("peers: required keys, duplicates and positions by index") {
  auto port = error_of(R"(remote:
  peers:
    - {name: b, host: 127.0.0.1, port: 4243}
    - {name: c, host: 127.0.0.1, port: 99999}
)");
  CHECK(port.key == "remote.peers[1].port");
  CHECK(port.line == 4);
  CHECK(port.column == 40);

  auto missing = error_of("remote:\n  peers:\n    - {host: a, port: 1}\n");
  CHECK(missing.key == "remote.peers[0]");
  CHECK(contains(missing.reason, "missing key 'name'"));
  CHECK(contains(error_of("remote: {peers: [{name: b}]}").reason, "missing key 'port'"));

  auto zero_port = error_of("remote:\n  peers:\n    - {name: b, port: 0}\n");
  CHECK(zero_port.key == "remote.peers[0].port");
  CHECK(zero_port.line == 3);

  auto same_name = error_of("remote:\n  peers:\n    - {name: b, port: 1}\n    - {name: b, port: 2}\n");
  CHECK(same_name.key == "remote.peers[1].name");
  CHECK(same_name.line == 4);
}

TEST_CASE("impossible combinations are reported at the responsible key") {
  auto bigger_block = error_of("engine:\n  arena: 64KiB\n  min_block: 128KiB\n");
  CHECK(bigger_block.key == "engine.arena");
  CHECK(bigger_block.line == 2);
  CHECK(contains(bigger_block.reason, "smaller than min_block"));

  // arena is not in the file: the problem is placed at min_block, which is.
  auto only_block = error_of("engine:\n  min_block: 128MiB\n");
  CHECK(only_block.key == "engine.min_block");
  CHECK(only_block.line == 2);

  auto not_multiple = error_of("engine:\n  name: x\n  arena: 100001KiB\n");
  CHECK(not_multiple.key == "engine.arena");
  CHECK(not_multiple.line == 3);
  CHECK(not_multiple.column == 10);
  CHECK(contains(not_multiple.reason, "multiple of min_block"));
  CHECK(contains(not_multiple.reason, "100000KiB"));
  CHECK(settings_of("engine: {arena: 96MiB}").engine.arena_bytes == 96ull << 20);
  CHECK(error_of("engine: {arena: 3GB}").key == "engine.arena");

  auto zero_grants = error_of("engine:\n  max_grants: 0\n");
  CHECK(zero_grants.key == "engine.max_grants");
  CHECK(zero_grants.line == 2);
  CHECK(error_of("engine: {max_names: 0}").key == "engine.max_names");
  CHECK(error_of("engine: {max_blocks: 0}").key == "engine.max_blocks");
  CHECK(error_of("engine: {arena: 0}").key == "engine.arena");

  auto huge = error_of("engine:\n  arena: 2TiB\n");
  CHECK(huge.key == "engine.arena");
  CHECK(contains(huge.reason, "1TiB"));
  CHECK(settings_of("engine: {arena: 1TiB}").engine.arena_bytes == 1ull << 40);

  // the ceiling of an arena that grows: at least arena, a multiple of min_block, at most 1TiB
  auto grows = settings_of("engine: {arena: 64MiB, max_arena: 4GiB}").engine;
  CHECK(grows.max_arena_bytes == 4ull << 30);
  CHECK(grows.arena_ceiling() == 4ull << 30);
  CHECK(settings_of("engine: {arena: 64MiB}").engine.arena_ceiling() == 64ull << 20);
  auto below = error_of("engine:\n  arena: 64MiB\n  max_arena: 32MiB\n");
  CHECK(below.key == "engine.max_arena");
  CHECK(below.line == 3);
  CHECK(below.column == 14);
  CHECK(contains(below.reason, "at least arena (64MiB)"));
  auto odd = error_of("engine:\n  max_arena: 100001KiB\n");
  CHECK(odd.key == "engine.max_arena");
  CHECK(contains(odd.reason, "multiple of min_block"));
  CHECK(error_of("engine: {max_arena: 2TiB}").key == "engine.max_arena");
  CHECK(error_of("engine: {max_arena: lots}").key == "engine.max_arena");
}

TEST_CASE("validate works on settings filled in code") {
  CHECK_FALSE(validate(settings{}).has_value());

  settings s;
  s.engine.min_block_bytes = 1 << 20;
  s.engine.arena_bytes = 512 << 10;
  REQUIRE(validate(s).has_value());
  CHECK(contains(*validate(s), "engine.arena"));

  s = settings{};
  s.engine.arena_bytes = (64ull << 20) + 4096; // a multiple of min_block: fine
  CHECK_FALSE(validate(s).has_value());
  s.engine.arena_bytes = (64ull << 20) + 100;
  CHECK(validate(s).has_value());

  s = settings{};
  s.engine.arena_bytes = 2ull << 40;
  CHECK(validate(s).has_value());

  s = settings{};
  s.engine.max_processes = 1;
  CHECK(contains(validate(s).value_or(""), "engine.max_processes"));

  s = settings{};
  s.engine.max_names = 0;
  CHECK(validate(s).has_value());

  s = settings{};
  s.engine.permissions = 0644;
  CHECK_FALSE(validate(s).has_value());
  s.engine.permissions = 0200;
  CHECK(validate(s).has_value());

  s = settings{};
  s.client.request_timeout = 0ms;
  CHECK(contains(validate(s).value_or(""), "client.request_timeout"));

  s = settings{};
  s.remote.window_chunks = 0;
  CHECK(validate(s).has_value());

  s = settings{};
  s.remote.peers.push_back({"b", {"127.0.0.1", 4243}});
  CHECK_FALSE(validate(s).has_value());
  s.remote.peers.push_back({"", {"127.0.0.1", 4244}});
  CHECK(contains(validate(s).value_or(""), "remote.peers[1].name"));
}

TEST_CASE("duplicate keys are rejected at the second occurrence") {
  auto top = error_of("role: engine\nrole: client\n");
  CHECK(top.key == "role");
  CHECK(top.line == 2);
  CHECK(top.column == 1);
  CHECK(contains(top.reason, "duplicate key 'role'"));

  auto nested = error_of("engine:\n  arena: 64MiB\n  min_block: 4KiB\n  arena: 128MiB\n");
  CHECK(nested.key == "engine.arena");
  CHECK(nested.line == 4);
  CHECK(nested.column == 3);
  CHECK(contains(nested.reason, "first at line 2"));

  auto section = error_of("engine: {}\nclient: {}\nengine: {}\n");
  CHECK(section.key == "engine");
  CHECK(section.line == 3);

  CHECK(error_of("remote: {peers: [{name: b, port: 1, name: c}]}").key == "remote.peers[0].name");
}

TEST_CASE("top level must be one mapping") {
  auto list = error_of("- engine\n- client\n");
  CHECK(list.key.empty());
  CHECK(list.line == 1);
  CHECK(contains(list.reason, "expected a mapping"));

  auto scalar = error_of("engine\n");
  CHECK(scalar.line == 1);
  CHECK(contains(scalar.reason, "got 'engine'"));

  auto two = error_of("role: engine\n---\nrole: client\n");
  CHECK(contains(two.reason, "one YAML document"));
  CHECK(two.line == 2);
}

TEST_CASE("a token yaml-cpp does not consume is a syntax error, not an endless loop") {
  // YAML::LoadAll of yaml-cpp 0.7 never returns on these (found by fuzz/fuzz_config.cpp).
  auto comma = error_of(",\n");
  CHECK(comma.line == 1);
  CHECK(comma.column == 1);
  CHECK(contains(comma.reason, "unexpected ','"));
  auto later = error_of("engine:\n  arena: 1MiB\n---\n,\n");
  CHECK(later.line >= 3);
  CHECK(contains(later.reason, "YAML"));
}

TEST_CASE("config_error::to_string leaves out empty parts") {
  CHECK(config_error{"f.yaml", 3, 7, "engine.arena", "bad"}.to_string() ==
        "f.yaml:3:7: engine.arena: bad");
  CHECK(config_error{"f.yaml", 3, 7, "", "syntax"}.to_string() == "f.yaml:3:7: syntax");
  CHECK(config_error{"f.yaml", 0, 0, "", "missing"}.to_string() == "f.yaml: missing");
  CHECK(config_error{"", 0, 0, "role", "bad"}.to_string() == "role: bad");
}

// -- remote.listen and remote.tls ---------------------------------------------------------------

namespace {

// Three small files that exist for the TLS checks (contents do not matter to the loader).
struct tls_files {
  std::string dir = "/tmp/cafshm-test-config-tls-" + std::to_string(::getpid());
  std::string cert = dir + "/cert.pem", key = dir + "/key.pem", ca = dir + "/ca.pem";
  tls_files() {
    std::filesystem::create_directories(dir);
    for (const auto& f : {cert, key, ca})
      std::ofstream{f} << "-----BEGIN NOTHING-----\n";
  }
  ~tls_files() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

} // namespace

TEST_CASE("remote.allow_dial, peer_key_file, unauthenticated_peers: defaults, reading, patterns") {
  auto defaults = load_config(CAFSHM_SOURCE_DIR "/config/default.yaml");
  REQUIRE(std::holds_alternative<settings>(defaults));
  const auto& d = std::get<settings>(defaults).remote;
  CHECK(d.allow_dial.empty());
  CHECK(d.peer_key_file.empty());
  CHECK_FALSE(d.unauthenticated_peers);
  auto s = settings_of("remote:\n  allow_dial: [db1, '*.cluster.invalid', 10.0.0.0/8, 'fd00::/8']\n"
                       "  unauthenticated_peers: true\n");
  CHECK(s.remote.allow_dial.size() == 4);
  CHECK(s.remote.unauthenticated_peers);
  auto bad = error_of("remote:\n  allow_dial: [10.0.0.0/33]\n");
  CHECK(bad.key == "remote.allow_dial[0]");
  CHECK(error_of("remote:\n  allow_dial: ['a b']\n").key == "remote.allow_dial[0]");
  CHECK(error_of("remote:\n  allow_dial: [nothing/8]\n").key == "remote.allow_dial[0]");
  CHECK(error_of("remote: {unauthenticated_peers: maybe}\n").key == "remote.unauthenticated_peers");
  CHECK(error_of("remote: {peer_key_file: /nonexistent/key}\n").key == "remote.peer_key_file");
  struct example {
    const char* pattern;
    const char* host;
    bool matches;
  };
  const example examples[] = {
    {"10.0.0.0/8", "10.1.2.3", true},     {"10.0.0.0/8", "11.0.0.1", false},
    {"10.0.0.0/8", "db1", false},         {"192.168.1.0/25", "192.168.1.127", true},
    {"192.168.1.0/25", "192.168.1.128", false}, {"0.0.0.0/0", "8.8.8.8", true},
    {"fd00::/8", "fd12::1", true},        {"fd00::/8", "fe80::1", false},
    {"fd00::/8", "10.0.0.1", false},      {"::1", "0:0::1", true},
    {"127.0.0.1", "127.0.0.1", true},     {"127.0.0.1", "127.0.0.2", false},
    {"*.cluster.invalid", "a.cluster.invalid", true}, {"*.cluster.invalid", "cluster.invalid", false},
    {"DB?", "db1", true},                 {"db1", "db12", false},
  };
  for (const auto& ex : examples) {
    CAPTURE(ex.pattern);
    CAPTURE(ex.host);
    CHECK(dial_pattern_matches(ex.pattern, ex.host) == ex.matches);
  }
  remote_settings r;
  r.peers.push_back({"b", {"10.0.0.2", 4242}});
  CHECK(dial_allowed(r, "10.0.0.2", 4242));
  CHECK_FALSE(dial_allowed(r, "10.0.0.2", 4243)); // a peer is its address, port included
  CHECK_FALSE(dial_allowed(r, "127.0.0.1", 4242));
  r.allow_dial = {"127.0.0.0/8"};
  CHECK(dial_allowed(r, "127.0.0.1", 9));
}

TEST_CASE("remote.listen and remote.tls: defaults, every key read") {
  auto defaults = load_config(CAFSHM_SOURCE_DIR "/config/default.yaml");
  REQUIRE(std::holds_alternative<settings>(defaults));
  const auto& d = std::get<settings>(defaults);
  CHECK(d.remote.listen == endpoint{"127.0.0.1", 0});
  CHECK_FALSE(d.remote.tls.enabled());
  CHECK(settings{}.remote.listen == endpoint{"127.0.0.1", 0});

  tls_files f;
  auto s = settings_of("remote:\n  listen: {host: 0.0.0.0, port: 4243}\n  tls:\n"
                       "    certificate: " + f.cert + "\n    key: " + f.key + "\n    cafile: "
                       + f.ca + "\n    passphrase: pw\n    capath: " + f.dir + "\n");
  CHECK(s.remote.listen == endpoint{"0.0.0.0", 4243});
  CHECK(s.remote.tls.certificate == f.cert);
  CHECK(s.remote.tls.key == f.key);
  CHECK(s.remote.tls.cafile == f.ca);
  CHECK(s.remote.tls.passphrase == "pw");
  CHECK(s.remote.tls.capath == f.dir);
  CHECK(s.remote.tls.enabled());
  // A plain peer listener needs no TLS.
  CHECK(settings_of("remote:\n  listen: {port: 4243}\n").remote.listen ==
        endpoint{"127.0.0.1", 4243});
}

TEST_CASE("remote.tls: misconfigurations are errors at the responsible key") {
  tls_files f;
  auto tls = [&](const std::string& fields, const std::string& listen = "  listen: {port: 4243}\n") {
    return "remote:\n" + listen + "  tls: {" + fields + "}\n";
  };
  struct example {
    std::string yaml;
    const char* key;
    const char* reason;
    int line;
  };
  const example examples[] = {
      {tls("cafile: " + f.ca), "remote.tls.cafile", "cafile without certificate", 3},
      {tls("capath: " + f.dir), "remote.tls.capath", "capath without certificate", 3},
      {tls("certificate: " + f.cert + ", cafile: " + f.ca), "remote.tls.certificate",
       "certificate without key", 3},
      {tls("key: " + f.key + ", cafile: " + f.ca), "remote.tls.key", "key without certificate",
       3},
      {tls("passphrase: x"), "remote.tls.passphrase", "passphrase without key", 3},
      {tls("certificate: " + f.cert + ", key: " + f.key), "remote.tls.cafile",
       "missing: mutual TLS needs the CA certificates", 3},
      {tls("certificate: " + f.cert + ", key: " + f.key + ", cafile: " + f.ca, ""),
       "remote.listen.port", "must be 1..65535 when remote.tls is configured", 1},
      {tls("certificate: " + f.cert + ", key: " + f.key + ", cafile: " + f.ca,
           "  listen: {port: 0}\n"),
       "remote.listen.port", "must be 1..65535 when remote.tls is configured", 2},
      {tls("certificate: " + f.dir + "/absent.pem, key: " + f.key + ", cafile: " + f.ca),
       "remote.tls.certificate", "no such file", 3},
      {tls("certificate: " + f.cert + ", key: " + f.dir + "/absent.pem, cafile: " + f.ca),
       "remote.tls.key", "no such file", 3},
      {tls("certificate: " + f.cert + ", key: " + f.key + ", cafile: " + f.dir),
       "remote.tls.cafile", "is a directory", 3},
      {tls("certificate: " + f.cert + ", key: " + f.key + ", capath: " + f.ca),
       "remote.tls.capath", "is not a directory", 3},
      {"engine:\n  listen: {port: 4243}\nremote:\n  listen: {port: 4243}\n",
       "remote.listen.port", "is engine.listen", 4},
      {"remote:\n  listen: {host: ''}\n", "remote.listen.host", "must not be empty", 2},
      {"remote:\n  tls: {certifcate: x}\n", "remote.tls.certifcate", "did you mean 'certificate'",
       2},
  };
  for (const auto& ex : examples) {
    INFO(ex.yaml);
    auto err = error_of(ex.yaml);
    CHECK(err.key == ex.key);
    CHECK(err.line == ex.line);
    CHECK_MESSAGE(contains(err.reason, ex.reason), err.reason);
  }
  // The missing file is named.
  auto absent = error_of(tls("certificate: " + f.cert + ", key: " + f.key + ", cafile: " + f.dir
                             + "/absent-ca.pem"));
  CHECK(contains(absent.reason, "'" + f.dir + "/absent-ca.pem'"));
  // validate() applies the same rules to settings filled in code.
  settings s;
  s.remote.tls.cafile = f.ca;
  auto why = validate(s);
  REQUIRE(why);
  CHECK(contains(*why, "remote.tls.cafile: cafile without certificate"));
  s.remote.tls = {f.cert, f.key, f.ca, "", ""};
  why = validate(s);
  REQUIRE(why);
  CHECK(contains(*why, "remote.listen.port"));
  s.remote.listen.port = 4243;
  CHECK_FALSE(validate(s));
}

TEST_CASE("parse_endpoint reads HOST:PORT and [IPv6]:PORT") {
  CHECK(parse_endpoint("127.0.0.1:4242") == endpoint{"127.0.0.1", 4242});
  CHECK(parse_endpoint("[::1]:80") == endpoint{"::1", 80});
  CHECK(parse_endpoint("node-b:65535") == endpoint{"node-b", 65535});
  for (const char* bad : {"", "host", ":80", "host:", "host:0", "host:65536", "host:8x", "host:-1"})
    CHECK_FALSE(parse_endpoint(bad));
}

TEST_CASE("engine.socket, allow_users, allow_groups, unauthenticated_tcp: read and checked") {
  auto s = settings_of("engine:\n  socket: /tmp/x.sock\n  allow_users: [root]\n"
                       "  allow_groups: [root]\n  unauthenticated_tcp: true\n");
  CHECK(s.engine.socket == "/tmp/x.sock");
  CHECK(s.engine.allow_users == std::vector<std::string>{"root"});
  CHECK(s.engine.allow_groups == std::vector<std::string>{"root"});
  CHECK(s.engine.unauthenticated_tcp);
  CHECK_FALSE(settings_of("").engine.unauthenticated_tcp);
  auto user = error_of("engine:\n  allow_users:\n    - root\n    - no-such-user-xq\n");
  CHECK(user.key == "engine.allow_users[1]");
  CHECK(user.line == 4);
  CHECK(user.column == 7);
  auto group = error_of("engine:\n  allow_groups: [no-such-group-xq]\n");
  CHECK(group.key == "engine.allow_groups[0]");
  CHECK(group.line == 2);
  auto flag = error_of("engine:\n  unauthenticated_tcp: yes please\n");
  CHECK(flag.key == "engine.unauthenticated_tcp");
  CHECK(flag.line == 2);
  CHECK(flag.column == 24);
  CHECK(error_of("engine:\n  socket: relative.sock\n").key == "engine.socket");
  CHECK(error_of("engine:\n  allow_users: root\n").key == "engine.allow_users");
}

TEST_CASE("engine.name: '.' and '..' (and other names of only dots) are refused") {
  for (const char* name : {".", "..", "..."}) {
    auto err = error_of("engine:\n  name: '" + std::string(name) + "'\n");
    CHECK(err.key == "engine.name");
    CHECK(err.line == 2);
    CHECK(contains(err.reason, "directory name"));
  }
  CHECK(settings_of("engine: {name: .hidden}").engine.name == ".hidden");
  CHECK(settings_of("engine: {name: a..b}").engine.name == "a..b");
}

TEST_CASE("engine.min_block: at least the page size of the system (sysconf), not a fixed 4KiB") {
  auto page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  auto err = error_of("engine:\n  arena: 64MiB\n  min_block: " + std::to_string(page / 2) + "\n");
  CHECK(err.key == "engine.min_block");
  CHECK(err.line == 3);
  CHECK(err.column == 14);
  CHECK(contains(err.reason, "page size"));
  // on a kernel with 64KiB pages, the default 4KiB min_block is refused
  settings s;
  auto big_pages = validate(s, 64 * 1024);
  REQUIRE(big_pages);
  CHECK(contains(*big_pages, "engine.min_block"));
  CHECK(contains(*big_pages, "64KiB"));
  s.engine.min_block_bytes = 64 * 1024;
  CHECK_FALSE(validate(s, 64 * 1024));
  CHECK_FALSE(validate(settings{}, 4096));
}

TEST_CASE("engine.quotas: per-user and per-group entries, errors at file:line:column") {
  auto uid = std::to_string(::geteuid());
  auto gid = std::to_string(::getegid());
  auto s = settings_of("engine:\n  quotas:\n    - {user: " + uid + ", bytes: 1MiB}\n"
                       "    - {group: " + gid + ", bytes: 0}\n");
  REQUIRE(s.engine.quotas.size() == 2);
  CHECK(s.engine.quotas[0] == quota_rule{uid, "", 1 << 20});
  CHECK(s.engine.quotas[1] == quota_rule{"", gid, 0});
  CHECK(settings_of("engine: {quotas: [{user: root, bytes: 4KiB}]}").engine.quotas.size() == 1);

  auto unknown = error_of("engine:\n  quotas:\n    - {user: no-such-user-cafshm, bytes: 1MiB}\n");
  CHECK(unknown.key == "engine.quotas[0].user");
  CHECK(unknown.line == 3);
  CHECK(unknown.column == 14);
  CHECK(contains(unknown.reason, "no such Unix user"));
  auto both = error_of("engine:\n  quotas:\n    - {user: root, group: root, bytes: 1MiB}\n");
  CHECK(both.key == "engine.quotas[0]");
  CHECK(both.line == 3);
  CHECK(contains(both.reason, "exactly one of user and group"));
  auto no_bytes = error_of("engine:\n  quotas:\n    - {user: root}\n");
  CHECK(contains(no_bytes.reason, "missing key 'bytes'"));
  CHECK(no_bytes.line == 3);
  auto typo = error_of("engine:\n  quotas:\n    - {usr: root, bytes: 1}\n");
  CHECK(typo.key == "engine.quotas[0].usr");
  CHECK(contains(error_of("engine: {quotas: 5}").reason, "expected a list of quotas"));
}

TEST_CASE("engine.max_processes_per_user: 0 or below max_processes, errors at file:line:column") {
  CHECK(settings{}.engine.max_processes_per_user == 0u); // unlimited unless configured
  CHECK(settings_of("engine: {max_processes_per_user: 0}").engine.max_processes_per_user == 0u);
  CHECK(settings_of("engine: {max_processes_per_user: 63}").engine.max_processes_per_user == 63u);
  CHECK(settings_of("engine: {max_processes: 8, max_processes_per_user: 7}")
          .engine.max_processes_per_user == 7u);
  // slot 0 is the engine's: a cap of max_processes would allow every slot, so it is refused
  auto at_total = error_of("engine:\n  max_processes: 8\n  max_processes_per_user: 8\n");
  CHECK(at_total.key == "engine.max_processes_per_user");
  CHECK(at_total.line == 3);
  CHECK(at_total.column == 27);
  CHECK(contains(at_total.reason, "below engine.max_processes (8)"));
  CHECK(error_of("engine: {max_processes_per_user: 64}").key == "engine.max_processes_per_user");
  auto negative = error_of("engine:\n  max_processes_per_user: -1\n");
  CHECK(negative.key == "engine.max_processes_per_user");
  CHECK(negative.line == 2);
  auto text = error_of("engine:\n  max_processes_per_user: many\n");
  CHECK(text.key == "engine.max_processes_per_user");
  CHECK(text.line == 2);
  CHECK(text.column == 27);
  // settings filled in code are checked the same way
  settings s;
  s.engine.max_processes = 4;
  s.engine.max_processes_per_user = 9;
  auto problem = validate(s, 4096);
  REQUIRE(problem);
  CHECK(contains(*problem, "engine.max_processes_per_user"));
  // through a file: file:line:column
  std::string path = "/tmp/cafshm_test_per_user_" + std::to_string(::getpid()) + ".yaml";
  std::ofstream(path) << "engine:\n  max_processes: 16\n  max_processes_per_user: 20\n";
  auto loaded = load_config(path);
  std::remove(path.c_str());
  REQUIRE(std::holds_alternative<config_error>(loaded));
  auto text_of_error = std::get<config_error>(loaded).to_string();
  CHECK(text_of_error.rfind(path + ":3:27: engine.max_processes_per_user:", 0) == 0);
}

TEST_CASE("engine.max_copy_ranges and engine.max_copy_bytes: read, and zero refused") {
  auto s = settings_of("engine: {max_copy_ranges: 8000, max_copy_bytes: 1GiB}");
  CHECK(s.engine.max_copy_ranges == 8000);
  CHECK(s.engine.max_copy_bytes == uint64_t{1} << 30);
  auto zero = error_of("engine:\n  max_copy_ranges: 0\n");
  CHECK(zero.key == "engine.max_copy_ranges");
  CHECK(zero.line == 2);
  CHECK(error_of("engine: {max_copy_bytes: 0}").key == "engine.max_copy_bytes");
}

TEST_CASE("peers: duplicate names are found by one pass over the list (10000 peers)") {
  std::string yaml = "remote:\n  peers:\n";
  for (int i = 0; i < 10000; ++i)
    yaml += "    - {name: p" + std::to_string(i) + ", port: 1}\n";
  CHECK(settings_of(yaml).remote.peers.size() == 10000);
  auto dup = error_of(yaml + "    - {name: p17, port: 1}\n");
  CHECK(dup.key == "remote.peers[10000].name");
  CHECK(contains(dup.reason, "also remote.peers[17]"));
}

TEST_CASE("cafshmd --check-config: exit 0 for a valid file, 1 with file:line:column for an error") {
  auto dir = std::filesystem::temp_directory_path();
  auto good = dir / ("cafshm-test-check-good-" + std::to_string(::getpid()) + ".yaml");
  auto bad = dir / ("cafshm-test-check-bad-" + std::to_string(::getpid()) + ".yaml");
  struct remove_files {
    std::vector<std::filesystem::path> paths;
    ~remove_files() {
      for (const auto& p : paths)
        std::filesystem::remove(p);
    }
  } cleanup{{good, bad}};
  std::ofstream{good} << "engine:\n  name: checked\n  arena: 64MiB\n";
  std::ofstream{bad} << "engine:\n  name: checked\n  arena: lots\n";
  auto daemon = std::string{CAFSHM_BIN_DIR} + "/cafshmd";
  auto ok = cafshm::test::run_command({daemon, "--check-config", good.string()});
  REQUIRE(ok.code);
  CHECK(*ok.code == 0);
  CHECK(ok.out == good.string() + ": valid\n");
  auto wrong = cafshm::test::run_command({daemon, "--check-config", bad.string()});
  REQUIRE(wrong.code);
  CHECK(*wrong.code == 1);
  CHECK_MESSAGE(wrong.err.find(bad.string() + ":3:") != std::string::npos, wrong.err);
  CHECK_FALSE(cafshm::shm_segment::exists("checked.admin")); // nothing started
  auto missing = cafshm::test::run_command({daemon, "--check-config", (dir / "no-such.yaml").string()});
  REQUIRE(missing.code);
  CHECK(*missing.code == 1);
}
