// Tests of cafshm::module (plugin/src/module.cpp): loading it into an actor system, the life of
// both segments, configuration errors, client role, and that the system always shuts down.
// Every actor system is built and destroyed on a thread of its own with a deadline, so that a
// shutdown hang fails the test instead of blocking ctest.

#include "test_names.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "cafshm/client.hpp"
#include "memory_manager.hpp"
#include "cafshm/module.hpp"

using namespace cafshm;
using namespace std::chrono_literals;
using cafshm_test::segment_guard;
using cafshm_test::unique_name;

namespace {

constexpr uint64_t mib = 1024 * 1024;

/// Runs `fn` on its own thread; if it does not finish within `limit` (a shutdown hang), removes
/// the segments of `names` and ends the test process with a failure.
void run_with_deadline(std::function<void()> fn, const std::vector<std::string>& names,
                       std::chrono::seconds limit = 20s) {
  auto task = std::make_shared<std::packaged_task<void()>>(std::move(fn));
  auto done = task->get_future();
  std::thread{[task] { (*task)(); }}.detach();
  if (done.wait_for(limit) != std::future_status::ready) {
    for (const auto& name : names) {
      shm_segment::remove(memory_manager::data_segment_name(name));
      shm_segment::remove(memory_manager::admin_segment_name(name));
    }
    std::fprintf(stderr, "FATAL: the actor system did not shut down within %lld s\n",
                 static_cast<long long>(limit.count()));
    std::fflush(stderr);
    std::_Exit(3);
  }
  done.get(); // rethrows what failed on the thread (REQUIRE failures included)
}

settings engine_settings_named(const std::string& name) {
  settings s;
  s.engine.name = name;
  s.engine.arena_bytes = 1 * mib;
  return s;
}

bool segments_exist(const std::string& name) {
  return shm_segment::exists(memory_manager::data_segment_name(name))
         && shm_segment::exists(memory_manager::admin_segment_name(name));
}

bool no_segments(const std::string& name) {
  return !shm_segment::exists(memory_manager::data_segment_name(name))
         && !shm_segment::exists(memory_manager::admin_segment_name(name));
}

/// A YAML file in the temp directory, removed at the end of the test.
struct temp_file {
  std::filesystem::path path;
  explicit temp_file(const std::string& text) {
    path = std::filesystem::temp_directory_path() / (unique_name("cafshm-test-yaml") + ".yaml");
    std::ofstream out{path};
    out << text;
  }
  ~temp_file() {
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
};

/// The error of local_engine() in a system built with `setup`, which must shut down.
caf::error engine_error_of(std::function<void(caf::actor_system_config&)> setup,
                           const std::vector<std::string>& names) {
  caf::error result;
  run_with_deadline(
    [&] {
      caf::actor_system_config cfg;
      cfg.load<cafshm::module>();
      setup(cfg);
      caf::actor_system sys{cfg};
      REQUIRE(module::of(sys) != nullptr);
      auto engine = local_engine(sys);
      REQUIRE_FALSE(engine);
      result = engine.error();
      CHECK(module::of(sys)->memory() == nullptr);
      // a client cannot connect to the missing engine either, and says why
      auto c = client::connect(sys, "nobody");
      REQUIRE_FALSE(c);
      CHECK(code_of(c.error()) == code_of(result));
    },
    names);
  return result;
}

} // namespace

TEST_CASE("the module loads, serves clients, and the system shuts down without hanging") {
  auto name = unique_name("cafshm-test-mod");
  segment_guard guard{name};
  run_with_deadline(
    [&] {
      caf::actor_system_config cfg;
      cfg.load<cafshm::module>();
      module::configure(cfg, engine_settings_named(name));
      caf::actor_system sys{cfg};
      auto* m = module::of(sys);
      REQUIRE(m != nullptr);
      CHECK(m->config().engine.name == name);
      CHECK(m->config().engine.arena_bytes == 1 * mib);
      auto engine = local_engine(sys);
      REQUIRE_MESSAGE(static_cast<bool>(engine), cafshm_test::why(engine));
      CHECK(static_cast<bool>(*engine));
      REQUIRE(m->memory() != nullptr);
      CHECK(m->memory()->header().engine_pid == ::getpid());
      // clients and views in use until just before the system goes
      auto a = client::connect(sys, "a");
      REQUIRE_OK(a);
      auto ref = a->allocate(4096);
      REQUIRE_OK(ref);
      auto view = a->map(*ref, access_mode::read_write);
      REQUIRE_OK(view);
      view->data()[0] = std::byte{1};
      auto st = a->stats();
      REQUIRE_OK(st);
      CHECK(st->processes == 1);
      CHECK(st->arena_bytes == 1 * mib);
    },
    {name});
  CHECK(no_segments(name));
}

TEST_CASE("segments exist while the system lives and are gone after it is destroyed") {
  auto name = unique_name("cafshm-test-mod");
  segment_guard guard{name};
  CHECK(no_segments(name));
  run_with_deadline(
    [&] {
      caf::actor_system_config cfg;
      cfg.load<cafshm::module>();
      module::configure(cfg, engine_settings_named(name));
      {
        caf::actor_system sys{cfg};
        REQUIRE_OK(local_engine(sys));
        CHECK(segments_exist(name));
        auto data = shm_segment::open(memory_manager::data_segment_name(name), false);
        REQUIRE_OK(data);
        CHECK(data->size() == 1 * mib);
        auto admin = shm_segment::open(memory_manager::admin_segment_name(name), false);
        REQUIRE_OK(admin);
        CHECK(admin->size() == memory_manager::admin_bytes(engine_settings_named(name).engine));
      }
      CHECK(no_segments(name));
    },
    {name});
  CHECK(no_segments(name));
}

TEST_CASE("two systems in one process cannot run engines of the same name") {
  auto name = unique_name("cafshm-test-mod");
  auto other = unique_name("cafshm-test-mod");
  segment_guard guard{name};
  segment_guard guard2{other};
  run_with_deadline(
    [&] {
      caf::actor_system_config cfg1;
      cfg1.load<cafshm::module>();
      module::configure(cfg1, engine_settings_named(name));
      caf::actor_system sys1{cfg1};
      REQUIRE_OK(local_engine(sys1));
      auto a = client::connect(sys1, "a");
      REQUIRE_OK(a);
      auto ref = a->allocate(100);
      REQUIRE_OK(ref);
      REQUIRE_OK(a->write(*ref, 0, std::span<const char>{"first", 5}));
      {
        caf::actor_system_config cfg2;
        cfg2.load<cafshm::module>();
        module::configure(cfg2, engine_settings_named(name));
        caf::actor_system sys2{cfg2};
        auto engine = local_engine(sys2);
        REQUIRE_FALSE(engine);
        CHECK(code_of(engine.error()) == errc::segment_error);
        INFO(describe(engine.error()));
        CHECK(describe(engine.error()).find(std::to_string(::getpid())) != std::string::npos);
      }
      // the first engine and its segments are unharmed by the second system's shutdown
      CHECK(segments_exist(name));
      auto back = a->read(*ref, 0, 5);
      REQUIRE_OK(back);
      CHECK(std::string(back->begin(), back->end()) == "first");
      // under another name, a second engine runs next to the first
      caf::actor_system_config cfg3;
      cfg3.load<cafshm::module>();
      module::configure(cfg3, engine_settings_named(other));
      caf::actor_system sys3{cfg3};
      REQUIRE_OK(local_engine(sys3));
      CHECK(segments_exist(other));
    },
    {name, other});
  CHECK(no_segments(name));
  CHECK(no_segments(other));
}

TEST_CASE("invalid settings through configure(): config_error naming the problem, clean shutdown") {
  auto name = unique_name("cafshm-test-mod");
  segment_guard guard{name};
  auto err = engine_error_of(
    [&](caf::actor_system_config& cfg) {
      auto s = engine_settings_named(name);
      s.engine.arena_bytes = 64 * 1024;
      s.engine.min_block_bytes = 1 * mib; // larger than the arena
      module::configure(cfg, s);
    },
    {name});
  CHECK(code_of(err) == errc::config_error);
  auto text = describe(err);
  INFO(text);
  CHECK(text.find("min_block") != std::string::npos);
  CHECK(text.find("engine.arena") != std::string::npos);
  CHECK(no_segments(name));
}

TEST_CASE("a YAML file with an error: config_error naming file and key, clean shutdown") {
  auto name = unique_name("cafshm-test-mod");
  segment_guard guard{name};
  temp_file yaml{"engine:\n  name: " + name + "\n  arena: 1MiB\n  arnea: 2MiB\n"};
  auto err = engine_error_of(
    [&](caf::actor_system_config& cfg) { module::configure(cfg, yaml.path.string()); }, {name});
  CHECK(code_of(err) == errc::config_error);
  auto text = describe(err);
  INFO(text);
  CHECK(text.find(yaml.path.string()) != std::string::npos);
  CHECK(text.find("arnea") != std::string::npos);
  CHECK(text.find(":4:") != std::string::npos); // the line of the bad key
  CHECK(no_segments(name));
}

TEST_CASE("a YAML file with a bad value or bad syntax, or a missing file: config_error") {
  auto name = unique_name("cafshm-test-mod");
  segment_guard guard{name};
  SUBCASE("min_block larger than the arena") {
    temp_file yaml{"engine:\n  name: " + name + "\n  arena: 64KiB\n  min_block: 1MiB\n"};
    auto err = engine_error_of(
      [&](caf::actor_system_config& cfg) { module::configure(cfg, yaml.path.string()); },
      {name});
    CHECK(code_of(err) == errc::config_error);
    INFO(describe(err));
    CHECK(describe(err).find("min_block") != std::string::npos);
  }
  SUBCASE("syntax error") {
    temp_file yaml{"engine:\n  name: [unclosed\n"};
    auto err = engine_error_of(
      [&](caf::actor_system_config& cfg) { module::configure(cfg, yaml.path.string()); },
      {name});
    CHECK(code_of(err) == errc::config_error);
    INFO(describe(err));
    CHECK(describe(err).find(yaml.path.string()) != std::string::npos);
  }
  SUBCASE("missing file") {
    auto missing = (std::filesystem::temp_directory_path() / (unique_name("cafshm-test-none") + ".yaml"))
                     .string();
    auto err = engine_error_of(
      [&](caf::actor_system_config& cfg) { module::configure(cfg, missing); }, {name});
    CHECK(code_of(err) == errc::config_error);
    INFO(describe(err));
    CHECK(describe(err).find(missing) != std::string::npos);
  }
  CHECK(no_segments(name));
}

TEST_CASE("a valid YAML file configures the engine") {
  auto name = unique_name("cafshm-test-mod");
  segment_guard guard{name};
  temp_file yaml{"engine:\n  name: " + name + "\n  arena: 2MiB\n  max_names: 7\n"};
  run_with_deadline(
    [&] {
      caf::actor_system_config cfg;
      cfg.load<cafshm::module>();
      module::configure(cfg, yaml.path.string());
      caf::actor_system sys{cfg};
      REQUIRE_OK(local_engine(sys));
      auto* m = module::of(sys);
      CHECK(m->config().engine.name == name);
      CHECK(m->config().engine.arena_bytes == 2 * mib);
      CHECK(m->config().engine.max_names == 7);
      CHECK(segments_exist(name));
      auto c = client::connect(sys, "c");
      REQUIRE_OK(c);
      auto st = c->stats();
      REQUIRE_OK(st);
      CHECK(st->arena_bytes == 2 * mib);
      CHECK(st->max_names == 7);
    },
    {name});
  CHECK(no_segments(name));
}

TEST_CASE("client role: no local engine, no segments, clean shutdown") {
  auto name = unique_name("cafshm-test-mod");
  segment_guard guard{name};
  auto err = engine_error_of(
    [&](caf::actor_system_config& cfg) {
      auto s = engine_settings_named(name);
      s.role = role::client;
      module::configure(cfg, s);
    },
    {name});
  CHECK(code_of(err) == errc::config_error);
  INFO(describe(err));
  CHECK(describe(err).find("client") != std::string::npos);
  CHECK(no_segments(name));
}

TEST_CASE("without the module, local_engine says it is not loaded") {
  run_with_deadline(
    [] {
      caf::actor_system_config cfg;
      caf::actor_system sys{cfg};
      CHECK(module::of(sys) == nullptr);
      auto engine = local_engine(sys);
      REQUIRE_FALSE(engine);
      CHECK(code_of(engine.error()) == errc::config_error);
    },
    {});
}

TEST_CASE("an engine's middleman has no BASP worker threads unless its configuration sets them") {
  auto name = unique_name("cafshm-test-mod");
  segment_guard guard{name};
  auto workers_of = [&](role r, std::optional<size_t> set) {
    std::optional<size_t> result;
    run_with_deadline(
      [&] {
        caf::actor_system_config cfg;
        cfg.load<cafshm::module>();
        if (set)
          cfg.set("middleman.workers", *set);
        auto s = engine_settings_named(name);
        s.role = r;
        module::configure(cfg, s);
        caf::actor_system sys{cfg};
        if (auto n = caf::get_if<size_t>(&sys.config(), "middleman.workers"))
          result = *n;
      },
      {name});
    return result;
  };
  CHECK(workers_of(role::engine, std::nullopt) == size_t{0});
  CHECK(workers_of(role::engine, size_t{2}) == size_t{2});
  CHECK(workers_of(role::client, std::nullopt) == std::nullopt); // CAF's default
}
