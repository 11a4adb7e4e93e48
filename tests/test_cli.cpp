// End-to-end tests of the cafshm CLI: a real cafshmd per test, every command its own process.

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testing/child_process.hpp"
#include "testing/daemon_process.hpp"
#include "testing/unique_name.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

constexpr uint64_t MiB = 1 << 20;

// -- processes ----------------------------------------------------------------------------------

// A socket, closed on destruction.
struct fd_guard {
  int fd = -1;
  fd_guard() = default;
  explicit fd_guard(int x) : fd(x) {}
  fd_guard(fd_guard&& other) noexcept : fd(std::exchange(other.fd, -1)) {}
  fd_guard& operator=(fd_guard&& other) noexcept {
    reset();
    fd = std::exchange(other.fd, -1);
    return *this;
  }
  ~fd_guard() { reset(); }
  void reset() {
    if (fd >= 0)
      ::close(std::exchange(fd, -1));
  }
};

struct result {
  int code = -1;
  std::string out;
  std::string err;
  pid_t pid = 0;
};

// Runs the CLI with `args`, feeding `input` on stdin, and collects everything it prints.
result run(const std::vector<std::string>& args, const std::string& input = {}) {
  std::vector<std::string> argv{std::string{CAFSHM_BIN_DIR} + "/cafshm"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = cafshm::test::child_process::run(argv, input, 60s);
  REQUIRE_MESSAGE(r.exit_code.has_value(), "cafshm " << args[0] << " does not exit");
  return {*r.exit_code, std::move(r.out), std::move(r.err), r.pid};
}

bool one_line(const std::string& text) {
  return !text.empty() && text.back() == '\n' && std::count(text.begin(), text.end(), '\n') == 1;
}

bool starts_with(const std::string& text, std::string_view prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

// True if every line of `err` is a progress line of transmitting `name` (a transmit that takes
// longer than a second reports its progress on stderr, once a second).
bool only_progress(const std::string& err, const std::string& name) {
  std::istringstream lines{err};
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("transmit '" + name + "': ", 0) != 0)
      return false;
  return true;
}

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

std::vector<std::string> words(const std::string& text) {
  std::vector<std::string> r;
  std::istringstream in{text};
  for (std::string w; in >> w;)
    r.push_back(w);
  return r;
}

// -- a cafshmd for one test ---------------------------------------------------------------------

// "cafshm-test-cli-<pid>-<n>": unique per test process and daemon, so `ctest -j2` never collides.
std::string unique_name() {
  return cafshm::test::unique_name("cafshm-test-cli");
}

// A scratch directory, removed on destruction.
struct scratch {
  std::string name;
  fs::path dir;
  explicit scratch(std::string n) : name(std::move(n)), dir(fs::temp_directory_path() / name) {
    fs::create_directories(dir);
  }
  ~scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

void write_file(const fs::path& path, std::string_view bytes) {
  std::ofstream out{path, std::ios::binary};
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

std::string read_file(const fs::path& path) {
  std::ifstream in{path, std::ios::binary};
  return {std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
}

cafshm::test::daemon_options cli_daemon_options() {
  cafshm::test::daemon_options o;
  o.arena = "256MiB";
  return o;
}

// A cafshmd (256 MiB arena) and a scratch directory of the same name for the test's files.
class engine_daemon {
public:
  engine_daemon() : scratch_(unique_name()), daemon_(scratch_.name, cli_daemon_options()) {
    REQUIRE_MESSAGE(daemon_.ready(), "cafshmd did not start");
  }

  std::string endpoint() const { return daemon_.address_text(); }
  fs::path path(const std::string& file) const { return scratch_.dir / file; }

  result cli(std::vector<std::string> args, const std::string& input = {}) const {
    args.insert(args.begin(), {"--engine", endpoint()});
    return run(args, input);
  }

private:
  scratch scratch_; // destroyed last: the daemon is gone by then
  cafshm::test::daemon_process daemon_;
};

// -- JSON ---------------------------------------------------------------------------------------

struct json {
  enum kind_t { null, boolean, number, string, array, object } kind = null;
  std::string text; // a string's value or a number's literal
  std::vector<json> items;
  std::map<std::string, json> fields;

  const json& operator[](const std::string& key) const { return fields.at(key); }
  uint64_t u64() const { return std::stoull(text); }
};

// A strict parser of one JSON value (RFC 8259 grammar; \u escapes only checked, not decoded).
class json_parser {
public:
  static std::optional<json> parse(std::string_view text) {
    json_parser p{text};
    try {
      auto v = p.value();
      p.space();
      if (p.i_ != text.size())
        return std::nullopt;
      return v;
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }

private:
  explicit json_parser(std::string_view s) : s_(s) {}

  void space() {
    while (i_ < s_.size() && std::string_view{" \t\r\n"}.find(s_[i_]) != std::string_view::npos)
      ++i_;
  }
  char peek() { return i_ < s_.size() ? s_[i_] : '\0'; }
  void expect(char c) {
    if (peek() != c)
      throw std::runtime_error("expected " + std::string{c});
    ++i_;
  }
  bool digits() {
    auto start = i_;
    while (peek() >= '0' && peek() <= '9')
      ++i_;
    return i_ > start;
  }

  json value() {
    space();
    json v;
    char c = peek();
    if (c == '{') {
      v.kind = json::object;
      ++i_;
      space();
      if (peek() == '}')
        return ++i_, v;
      do {
        space();
        auto key = string_literal();
        space();
        expect(':');
        if (!v.fields.emplace(key, value()).second)
          throw std::runtime_error("duplicate key " + key);
        space();
      } while (peek() == ',' && ++i_);
      expect('}');
    } else if (c == '[') {
      v.kind = json::array;
      ++i_;
      space();
      if (peek() == ']')
        return ++i_, v;
      do {
        v.items.push_back(value());
        space();
      } while (peek() == ',' && ++i_);
      expect(']');
    } else if (c == '"') {
      v.kind = json::string;
      v.text = string_literal();
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      v.kind = json::number;
      auto start = i_;
      if (peek() == '-')
        ++i_;
      if (peek() == '0')
        ++i_;
      else if (!digits())
        throw std::runtime_error("bad number");
      if (peek() == '.' && (++i_, !digits()))
        throw std::runtime_error("bad fraction");
      if ((peek() == 'e' || peek() == 'E') && ++i_) {
        if (peek() == '+' || peek() == '-')
          ++i_;
        if (!digits())
          throw std::runtime_error("bad exponent");
      }
      v.text = s_.substr(start, i_ - start);
    } else {
      for (auto [word, kind] : {std::pair{"true", json::boolean}, std::pair{"false", json::boolean},
                                std::pair{"null", json::null}})
        if (s_.substr(i_, std::string_view{word}.size()) == word) {
          i_ += std::string_view{word}.size();
          v.kind = kind;
          v.text = word;
          return v;
        }
      throw std::runtime_error("unexpected character");
    }
    return v;
  }

  std::string string_literal() {
    expect('"');
    std::string r;
    for (;;) {
      if (i_ >= s_.size())
        throw std::runtime_error("unterminated string");
      char c = s_[i_++];
      if (c == '"')
        return r;
      if (static_cast<unsigned char>(c) < 0x20)
        throw std::runtime_error("control character in string");
      if (c != '\\') {
        r += c;
        continue;
      }
      char e = peek();
      ++i_;
      static constexpr std::string_view from = "\"\\/bfnrt", to = "\"\\/\b\f\n\r\t";
      if (auto k = from.find(e); k != std::string_view::npos) {
        r += to[k];
      } else if (e == 'u' && i_ + 4 <= s_.size()) {
        auto hex = s_.substr(i_, 4);
        if (hex.find_first_not_of("0123456789abcdefABCDEF") != std::string_view::npos)
          throw std::runtime_error("bad \\u escape");
        auto code = std::stoul(std::string{hex}, nullptr, 16);
        r += code < 0x80 ? static_cast<char>(code) : '?';
        i_ += 4;
      } else {
        throw std::runtime_error("bad escape");
      }
    }
  }

  std::string_view s_;
  size_t i_ = 0;
};

// `stat --json`, checked to be exactly one JSON object.
json stats(const engine_daemon& d, pid_t* stat_pid = nullptr) {
  auto r = d.cli({"stat", "--json"});
  REQUIRE_MESSAGE(r.code == 0, r.err);
  CHECK(r.err.empty());
  auto v = json_parser::parse(r.out);
  REQUIRE_MESSAGE(v.has_value(), "not JSON: " << r.out);
  REQUIRE(v->kind == json::object);
  if (stat_pid != nullptr)
    *stat_pid = r.pid;
  return *v;
}

// Only the engine and the stat command itself are registered: no earlier command stayed.
void check_nobody_else_registered(const json& s, pid_t stat_pid) {
  const auto& procs = s["processes"].items;
  REQUIRE(procs.size() == 2);
  CHECK(procs[0]["process"].u64() == 0); // the engine
  CHECK(procs[1]["pid"].u64() == static_cast<uint64_t>(stat_pid));
  CHECK(procs[1]["blocks"].u64() == 0);
}

std::string random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 gen{seed};
  std::string r(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    auto x = gen();
    std::memcpy(r.data() + i, &x, std::min<size_t>(8, n - i));
  }
  return r;
}

// A TCP port on 127.0.0.1 that is bound (so nobody else gets it) and, unless `listening`,
// refuses connections.
struct reserved_port {
  fd_guard sock{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  uint16_t port = 0;
  explicit reserved_port(bool listening) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    REQUIRE(::bind(sock.fd, reinterpret_cast<sockaddr*>(&addr), len) == 0);
    REQUIRE(::getsockname(sock.fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    if (listening)
      REQUIRE(::listen(sock.fd, 8) == 0);
    port = ntohs(addr.sin_port);
  }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port); }
};

} // namespace

TEST_CASE("cli: put and get of 100 MiB round-trip exactly and rm gives every byte back") {
  engine_daemon d;
  auto before = stats(d);
  auto data = random_bytes(100 * MiB, 42);
  write_file(d.path("in.bin"), data);

  auto put = d.cli({"put", "big", d.path("in.bin").string()});
  REQUIRE_MESSAGE(put.code == 0, put.err);
  CHECK(put.out.empty());
  CHECK(put.err.empty());

  pid_t stat_pid = 0;
  auto held = stats(d, &stat_pid);
  CHECK(held["free_bytes"].u64() == before["free_bytes"].u64() - 100 * MiB); // exactly its size
  CHECK(held["blocks"].u64() == 1);
  REQUIRE(held["names"].items.size() == 1);
  CHECK(held["names"].items[0]["name"].text == "big");
  CHECK(held["names"].items[0]["size"].u64() == 100 * MiB);
  CHECK(held["names"].items[0]["owner"].u64() == 0); // held by the engine
  check_nobody_else_registered(held, stat_pid);

  auto ls = d.cli({"ls"});
  CHECK(ls.code == 0);
  CHECK(one_line(ls.out));
  CHECK(starts_with(ls.out, "big "));
  CHECK(contains(ls.out, " 104857600 "));

  auto get = d.cli({"get", "big", d.path("out.bin").string()});
  REQUIRE_MESSAGE(get.code == 0, get.err);
  CHECK(get.out.empty());
  CHECK(read_file(d.path("out.bin")) == data);

  auto rm = d.cli({"rm", "big"});
  CHECK_MESSAGE(rm.code == 0, rm.err);
  auto after = stats(d, &stat_pid);
  CHECK(after["free_bytes"].u64() == before["free_bytes"].u64());
  CHECK(after["free_bytes"].u64() == after["arena_bytes"].u64());
  CHECK(after["blocks"].u64() == 0);
  CHECK(after["names"].items.empty());
  check_nobody_else_registered(after, stat_pid);
  CHECK(d.cli({"ls"}).out.empty());
}

TEST_CASE("cli: put from stdin and get to stdout are binary-safe") {
  engine_daemon d;
  std::string bytes;
  for (int i = 0; i < 5000; ++i)
    bytes += static_cast<char>(i * 7 % 256);
  bytes += std::string{"\0\n\r\xff", 4};

  auto put = d.cli({"put", "small", "-"}, bytes);
  REQUIRE_MESSAGE(put.code == 0, put.err);
  auto get = d.cli({"get", "small"});
  CHECK(get.code == 0);
  CHECK(get.out == bytes);
  auto dash = d.cli({"get", "small", "-"});
  CHECK(dash.code == 0);
  CHECK(dash.out == bytes);
  CHECK(words(d.cli({"ls"}).out) == std::vector<std::string>{"small", "5004", "0"});
}

TEST_CASE("cli: failed requests print one line, exit 1 and leak nothing") {
  engine_daemon d;
  auto before = stats(d);

  auto missing = d.cli({"get", "nope"});
  CHECK(missing.code == 1);
  CHECK(missing.out.empty());
  CHECK(missing.err == "cafshm: name_not_found: no block is named 'nope'\n");
  CHECK(!fs::exists(d.path("nope.out")));
  CHECK(d.cli({"get", "nope", d.path("nope.out").string()}).code == 1);
  CHECK(!fs::exists(d.path("nope.out"))); // no file is created for a missing block

  write_file(d.path("first"), "first");
  write_file(d.path("second"), std::string(10000, 's'));
  REQUIRE(d.cli({"put", "x", d.path("first").string()}).code == 0);
  auto mid = stats(d);
  auto taken = d.cli({"put", "x", d.path("second").string()});
  CHECK(taken.code == 1);
  CHECK(one_line(taken.err));
  CHECK(starts_with(taken.err, "cafshm: name_taken"));
  pid_t stat_pid = 0;
  auto after_taken = stats(d, &stat_pid);
  CHECK(after_taken["free_bytes"].u64() == mid["free_bytes"].u64());
  CHECK(after_taken["blocks"].u64() == mid["blocks"].u64());
  check_nobody_else_registered(after_taken, stat_pid);
  CHECK(d.cli({"get", "x"}).out == "first");

  auto rm_missing = d.cli({"rm", "nope"});
  CHECK(rm_missing.code == 1);
  CHECK(starts_with(rm_missing.err, "cafshm: name_not_found"));

  write_file(d.path("empty"), "");
  auto empty = d.cli({"put", "e", d.path("empty").string()});
  CHECK(empty.code == 1);
  CHECK(one_line(empty.err));
  CHECK(contains(empty.err, "is empty"));
  auto empty_stdin = d.cli({"put", "e", "-"});
  CHECK(empty_stdin.code == 1);
  CHECK(empty_stdin.err == "cafshm: stdin is empty (a block holds at least 1 byte)\n");
  auto no_file = d.cli({"put", "e", d.path("absent").string()});
  CHECK(no_file.code == 1);
  CHECK(one_line(no_file.err));
  CHECK(contains(no_file.err, "cannot open"));

  CHECK(d.cli({"rm", "x"}).code == 0);
  CHECK(stats(d)["free_bytes"].u64() == before["free_bytes"].u64());
}

TEST_CASE("cli: stat --json is one JSON object with every documented key") {
  engine_daemon d;
  std::string odd_name = "q\"b\\s\t\x01\xc3\xa9\xff"; // quote, backslash, controls, é, bad UTF-8
  REQUIRE(d.cli({"put", odd_name, "-"}, "payload").code == 0);
  auto s = stats(d);
  for (auto key : {"engine_id", "arena_bytes", "admin_bytes", "free_bytes", "largest_free_block",
                   "unscrubbed_bytes", "scrubbed_in_background", "scrubbed_on_allocation",
                   "scrub_skipped_for_writer",
                   "fragmentation", "free_bytes_by_order", "processes", "blocks", "grants",
                   "names", "requests", "rejected", "inbox_requests", "inbox_refused",
                   "inbox_replies_lost", "inbox_replies_too_large", "gone_notices_pending",
                   "gone_notices_late", "gone_notices_dropped"})
    CHECK_MESSAGE(s.fields.count(key) == 1, key);
  CHECK(s["arena_bytes"].u64() == 256 * MiB);
  CHECK(s["blocks"].kind == json::number);
  CHECK(s["fragmentation"].kind == json::number);
  uint64_t sum = 0;
  for (const auto& order : s["free_bytes_by_order"].items) {
    CHECK(order["block_bytes"].u64() >= 4096);
    sum += order["free_bytes"].u64();
  }
  CHECK(sum == s["free_bytes"].u64());
  REQUIRE(s["processes"].kind == json::array);
  for (const auto& p : s["processes"].items)
    for (auto key : {"process", "pid", "name", "bytes_in_use", "blocks", "quota_bytes"})
      CHECK_MESSAGE(p.fields.count(key) == 1, key);
  REQUIRE(s["names"].items.size() == 1);
  CHECK(s["names"].items[0]["name"].text == "q\"b\\s\t\x01\xc3\xa9?"); // U+FFFD decodes as '?'
  CHECK(s["names"].items[0]["size"].u64() == 7);

  // every capacity with its use, high-water mark, limit and the setting that raises it
  REQUIRE(s["capacities"].kind == json::array);
  REQUIRE(s["capacities"].items.size() == 5);
  const char* settings[] = {"engine.max_arena", "engine.max_blocks", "engine.max_grants",
                            "engine.max_names", "engine.max_processes"};
  for (size_t i = 0; i < 5; ++i) {
    const auto& c = s["capacities"].items[i];
    CHECK(c["setting"].text == settings[i]);
    CHECK(c["used"].u64() <= c["peak"].u64());
    CHECK(c["peak"].u64() <= c["capacity"].u64());
  }
  CHECK(s["capacities"].items[0]["capacity"].u64() == 256 * MiB);
  // the arena's data segments, its initial size and its ceiling (engine.max_arena: arena)
  CHECK(s["max_arena_bytes"].u64() == 256 * MiB);
  CHECK(s["initial_arena_bytes"].u64() == 256 * MiB);
  REQUIRE(s["data_segments"].items.size() == 1);
  CHECK(s["data_segments"].items[0]["bytes"].u64() == 256 * MiB);
  CHECK(s["capacities"].items[0]["used"].u64() == 4096); // the 7-byte block: one min_block
  CHECK(s["capacities"].items[1]["peak"].u64() >= 1);

  auto text = d.cli({"stat"});
  CHECK(text.code == 0);
  CHECK(contains(text.out, "256 MiB"));
  CHECK(contains(text.out, "fragmentation"));
  CHECK(contains(text.out, "ceiling 256 MiB"));
  CHECK(contains(text.out, "cafshm-cli"));
  CHECK(contains(text.out, "high-water mark"));
  for (auto setting : settings)
    CHECK_MESSAGE(contains(text.out, setting), setting);
}

TEST_CASE("cli: --config supplies the engine endpoint and --engine overrides it") {
  engine_daemon d;
  auto port = d.endpoint().substr(d.endpoint().find(':') + 1);
  write_file(d.path("client.yaml"),
             "client:\n  engine: {host: 127.0.0.1, port: " + port + "}\n  request_timeout: 3s\n");
  write_file(d.path("wrong.yaml"), "client:\n  engine: {host: 127.0.0.1, port: 1}\n");
  write_file(d.path("bad.yaml"), "client:\n  engnie: {}\n");
  auto via_config = run({"--config", d.path("client.yaml").string(), "ls"});
  CHECK_MESSAGE(via_config.code == 0, via_config.err);
  auto overridden = run({"--config", d.path("wrong.yaml").string(), "ls", "--engine",
                         d.endpoint()});
  CHECK_MESSAGE(overridden.code == 0, overridden.err);
  auto bad = run({"--config", d.path("bad.yaml").string(), "ls"});
  CHECK(bad.code == 2);
  CHECK(one_line(bad.err));
  CHECK(contains(bad.err, "engnie"));
}

TEST_CASE("cli: --help and --version exit 0 and bad usage exits 2 with one line") {
  auto help = run({"--help"});
  CHECK(help.code == 0);
  CHECK(contains(help.out, "Usage"));
  for (auto command : {"stat", "put", "get", "ls", "rm"})
    CHECK(contains(help.out, command));
  CHECK(run({"put", "--help"}).code == 0);
  auto version = run({"--version"});
  CHECK(version.code == 0);
  CHECK(one_line(version.out));
  CHECK(starts_with(version.out, "cafshm "));

  for (auto args : std::vector<std::vector<std::string>>{
         {},
         {"frobnicate"},
         {"get"},
         {"put", "x"},
         {"stat", "--bogus"},
         {"rm", "a", "b"},
         {"--engine", "nohost", "ls"},
         {"--engine", "127.0.0.1:0", "ls"},
         {"--engine", "127.0.0.1:99999", "ls"},
         {"--timeout", "soon", "ls"},
         {"--config", "/nonexistent/cafshm.yaml", "ls"}}) {
    auto r = run(args);
    CAPTURE(r.err);
    CHECK(r.code == 2);
    CHECK(one_line(r.err));
    CHECK(starts_with(r.err, "cafshm: "));
  }
}

TEST_CASE("cli: an unreachable engine fails fast with engine_unreachable") {
  reserved_port refusing{false};
  auto start = steady::now();
  auto r = run({"--engine", refusing.endpoint(), "stat"});
  CHECK(steady::now() - start < 3s);
  CHECK(r.code == 1);
  CHECK(one_line(r.err));
  CHECK(starts_with(r.err, "cafshm: engine_unreachable"));
  CHECK(contains(r.err, refusing.endpoint()));

  // Accepts connections but never answers the handshake: the request timeout ends the wait.
  reserved_port silent{true};
  start = steady::now();
  r = run({"--engine", silent.endpoint(), "--timeout", "500ms", "ls"});
  CHECK(steady::now() - start < 5s);
  CHECK(r.code == 1);
  CHECK(one_line(r.err));
  CHECK(starts_with(r.err, "cafshm: engine_unreachable"));
  CHECK(contains(r.err, silent.endpoint()));
}

TEST_CASE("cli: --timeout 1ms ends every run, even when the connection is still being made") {
  // A request that times out while CAF's middleman is still connecting leaves a reference to
  // the middleman's actor in the unfinished connection; were that actor on a thread of its own,
  // ~actor_system would wait for that thread forever (about 1 run in 40; see with_client).
  engine_daemon d;
  int failed = 0;
  for (int i = 0; i < 120; ++i) {
    auto r = run({"--engine", d.endpoint(), "--timeout", "1ms", "stat"}); // fails if it hangs
    CHECK((r.code == 0 || r.code == 1));
    failed += r.code == 1;
  }
  MESSAGE(failed << " of 120 runs timed out (the rest were answered within 1 ms)");
}

// -- transmit between two engines ---------------------------------------------------------------

namespace {

json stats_at(const std::string& endpoint) {
  auto r = run({"--engine", endpoint, "stat", "--json"});
  REQUIRE_MESSAGE(r.code == 0, r.err);
  auto v = json_parser::parse(r.out);
  REQUIRE_MESSAGE(v.has_value(), "not JSON: " << r.out);
  return *v;
}

} // namespace

TEST_CASE("cli: transmit stores a named block at another engine, a second time from its cache") {
  using cafshm::test::daemon_process;
  daemon_process a{cafshm::test::unique_name("cafshm-test-cli-ta"), "64MiB"};
  daemon_process b{cafshm::test::unique_name("cafshm-test-cli-tb"), "64MiB", 0,
                   "remote:\n  cache: 64MiB\n"};
  REQUIRE(a.ready());
  REQUIRE(b.ready());
  auto at_a = a.address_text();
  auto at_b = b.address_text();
  scratch dir{unique_name()};
  auto data = random_bytes(3 * MiB + 5, 77);
  write_file(dir.dir / "in.bin", data);
  auto put = run({"--engine", at_a, "put", "blk", (dir.dir / "in.bin").string()});
  REQUIRE_MESSAGE(put.code == 0, put.err);
  auto size = std::to_string(data.size());

  auto first = run({"--engine", at_a, "transmit", "blk", "--to", at_b, "--as", "other"});
  REQUIRE_MESSAGE(first.code == 0, first.err);
  CHECK_MESSAGE(only_progress(first.err, "blk"), first.err);
  CHECK(first.out == "transmitted 'blk' to " + at_b + " as 'other': " + size + " bytes, " + size
                       + " payload bytes sent, cache miss\n");
  auto got = run({"--engine", at_b, "get", "other"});
  CHECK(got.code == 0);
  CHECK(got.out == data);

  // The same content again: B's cache has it, no payload moves.
  auto second = run({"transmit", "blk", "--to", at_b, "--as", "again", "--engine", at_a});
  REQUIRE_MESSAGE(second.code == 0, second.err);
  CHECK(one_line(second.out));
  CHECK(contains(second.out, " " + size + " bytes, 0 payload bytes sent, cache hit"));
  CHECK(run({"--engine", at_b, "get", "again"}).out == data);

  // --json: the same facts as one object.
  auto as_json = run({"--engine", at_a, "transmit", "blk", "--to", at_b, "--as", "third", "--json"});
  REQUIRE_MESSAGE(as_json.code == 0, as_json.err);
  auto object = json_parser::parse(as_json.out);
  REQUIRE_MESSAGE(object.has_value(), "not JSON: " << as_json.out);
  CHECK((*object)["bytes"].u64() == data.size());
  CHECK((*object)["payload_bytes"].u64() == 0); // B's cache has it
  CHECK((*object)["as"].text == "third");
  REQUIRE(run({"--engine", at_b, "rm", "third"}).code == 0);

  // Without --as the copy keeps its name.
  auto same = run({"--engine", at_a, "transmit", "blk", "--to", at_b});
  REQUIRE_MESSAGE(same.code == 0, same.err);
  CHECK(contains(same.out, " as 'blk': "));
  CHECK(run({"--engine", at_b, "get", "blk"}).out == data);
  auto held = stats_at(at_b);
  CHECK(held["cache"]["hits"].u64() == 3);
  CHECK(held["cache"]["misses"].u64() == 1);
  REQUIRE(held["names"].items.size() == 3);
  for (const auto& n : held["names"].items) {
    CHECK(n["owner"].u64() == 0); // engine-held at B
    CHECK(n["size"].u64() == data.size());
  }

  // Failures: one line, exit 1 for failed requests and 2 for bad usage; nothing leaks.
  auto missing = run({"--engine", at_a, "transmit", "nope", "--to", at_b});
  CHECK(missing.code == 1);
  CHECK(missing.out.empty());
  CHECK(missing.err == "cafshm: name_not_found: no block is named 'nope'\n");
  auto taken = run({"--engine", at_a, "transmit", "blk", "--to", at_b, "--as", "other"});
  CHECK(taken.code == 1);
  CHECK(one_line(taken.err));
  CHECK(starts_with(taken.err, "cafshm: name_taken"));
  reserved_port refusing{false};
  auto unreachable = run({"--engine", at_a, "transmit", "blk", "--to", refusing.endpoint()});
  CHECK(unreachable.code == 1);
  CHECK(one_line(unreachable.err));
  CHECK(starts_with(unreachable.err, "cafshm: peer_failure"));
  CHECK(contains(unreachable.err, refusing.endpoint()));
  for (auto args : std::vector<std::vector<std::string>>{
         {"transmit", "blk"},
         {"transmit", "blk", "--to", "127.0.0.1:0"},
         {"transmit", "blk", "--to", "127.0.0.1:x"},
         {"transmit", "--to", at_b}}) {
    args.insert(args.begin(), {"--engine", at_a});
    auto r = run(args);
    CAPTURE(r.err);
    CHECK(r.code == 2);
    CHECK(one_line(r.err));
  }
  auto after_b = stats_at(at_b);
  CHECK(after_b["transmits_in"].u64() == 0);
  CHECK(after_b["blocks"].u64() == held["blocks"].u64());
  CHECK(after_b["free_bytes"].u64() == held["free_bytes"].u64());
  auto after_a = stats_at(at_a);
  CHECK(after_a["transmits_out"].u64() == 0);
  CHECK(after_a["blocks"].u64() == 1); // the block is still A's
  REQUIRE(after_a["names"].items.size() == 1);
  CHECK(after_a["names"].items[0]["name"].text == "blk");
}

// -- transfers in progress -------------------------------------------------------------------

#include <caf/scoped_actor.hpp>
#include <xxhash.h>

#include "support/client_system.hpp"
#include "support/fake_peer.hpp"

TEST_CASE("cli: stat shows transfers in progress per peer, as text and as JSON") {
  using namespace cafshm;
  test::daemon_process b{test::unique_name("cafshm-test-cli-tb"), "64MiB"};
  REQUIRE(b.ready());
  auto at_b = b.address_text();
  test::client_system cs;
  auto engine = cs.sys.middleman().remote_actor<engine_actor>("127.0.0.1", b.port());
  REQUIRE(engine);
  caf::scoped_actor self{cs.sys, true};
  caf::error link_error;
  auto link = test::link_fake_peer(self, *engine, 0x4270, link_error);
  REQUIRE_MESSAGE(link.token != 0, describe(link_error));
  // A peer that offered a block of 3 chunks and sent the first: the transfer is in progress.
  std::vector<char> data(3 * 4096, 'p');
  std::vector<char> first(data.begin(), data.begin() + 4096);
  caf::error err;
  transmit_offer offer{0x4270, 1, data.size(), 0, 4096, {}, {}, 0, false};
  self->request(link.gateway, 10s, offer_atom::value, link.seal(offer_atom::value, offer), offer)
    .receive([](transmit_receipt&, peer_seal&) {}, [&](caf::error& e) { err = std::move(e); });
  REQUIRE_MESSAGE(!err, describe(err));
  transmit_chunk chunk{0x4270, 1, 0, XXH3_64bits(first.data(), first.size()), first};
  self->request(link.gateway, 10s, chunk_atom::value, link.seal(chunk_atom::value, chunk), chunk)
    .receive([](done_atom, peer_seal&) {}, [&](caf::error& e) { err = std::move(e); });
  REQUIRE_MESSAGE(!err, describe(err));

  auto st = stats_at(at_b);
  CHECK(st["transmits_in"].u64() == 1);
  REQUIRE(st["incoming"].items.size() == 1);
  const auto& in = st["incoming"].items[0];
  auto peer = in["peer"].text;
  CHECK_MESSAGE(peer.rfind("engine 4270 ", 0) == 0, peer);
  CHECK(in["bytes"].u64() == data.size());
  CHECK(in["received"].u64() == 4096);
  CHECK(in["cache_fill"].text == "false");
  REQUIRE(st["transfers_by_peer"].items.size() == 1);
  const auto& by_peer = st["transfers_by_peer"].items[0];
  CHECK(by_peer["peer"].text == peer);
  CHECK(by_peer["in"].u64() == 1);
  CHECK(by_peer["in_done_bytes"].u64() == 4096);
  CHECK(by_peer["in_bytes"].u64() == data.size());
  CHECK(by_peer["out"].u64() == 0);

  auto text = run({"--engine", at_b, "stat"});
  REQUIRE_MESSAGE(text.code == 0, text.err);
  CHECK_MESSAGE(contains(text.out, "transmits 0 out / 1 in\n"), text.out);
  CHECK_MESSAGE(contains(text.out, "from " + peer + ": 4 KiB of 12 KiB received (33%)\n"),
                text.out);
  CHECK_MESSAGE(contains(text.out, peer + ": 0 out (0 B of 0 B), 1 in (4 KiB of 12 KiB)\n"),
                text.out);

  // The peer stops: its abort ends the transfer and frees the partial block.
  self->send(link.gateway, abort_atom::value, link.seal(abort_atom::value, uint64_t{1}),
             uint64_t{1});
  auto deadline = steady::now() + 10s;
  for (st = stats_at(at_b); st["transmits_in"].u64() != 0 && steady::now() < deadline;)
    st = stats_at(at_b);
  CHECK(st["transmits_in"].u64() == 0);
  CHECK(st["incoming"].items.empty());
  CHECK(st["transfers_by_peer"].items.empty());
  CHECK(st["blocks"].u64() == 0);
}

TEST_CASE("cli: put of an endless input (/dev/zero) stops at --max-size with a clear error") {
  // Refused while reading, before any engine is contacted: port 1 has none.
  auto r = run({"--engine", "127.0.0.1:1", "put", "zeros", "/dev/zero", "--max-size", "4MiB"});
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.err.find("'/dev/zero' holds more than 4194304 bytes") != std::string::npos,
                r.err);
  CHECK(r.err.find("--max-size") != std::string::npos);
  auto bad = run({"put", "x", "/dev/zero", "--max-size", "0"});
  CHECK(bad.code == 2);
  CHECK(bad.err.find("--max-size") != std::string::npos);
}
