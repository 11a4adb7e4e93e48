#include "testing/daemon_process.hpp"

#include <csignal>
#include <fstream>
#include <system_error>
#include <vector>

#include <unistd.h>

#include "memory_manager.hpp"
#include "shm_segment.hpp"
#include "testing/daemon_announcement.hpp"

namespace cafshm::test {

std::string with_test_peers(const std::string& extra_yaml) {
  auto has = [&](const char* key) { return extra_yaml.find(key) != std::string::npos; };
  std::vector<std::string> keys;
  if (!has("unauthenticated_peers") && !has("peer_key_file") && !has("tls:") && !has("tls: "))
    keys.push_back("unauthenticated_peers: true");
  if (!has("allow_dial"))
    keys.push_back("allow_dial: [127.0.0.1]");
  if (keys.empty())
    return extra_yaml;
  std::string yaml = extra_yaml;
  if (auto at = yaml.find("remote: {"); at != std::string::npos) {
    std::string add;
    for (const auto& k : keys)
      add += k + ", ";
    yaml.insert(at + 9, add);
  } else if (auto block = yaml.find("remote:\n"); block != std::string::npos) {
    std::string add;
    for (const auto& k : keys)
      add += "  " + k + "\n";
    yaml.insert(block + 8, add);
  } else {
    yaml += "remote:\n";
    for (const auto& k : keys)
      yaml += "  " + k + "\n";
  }
  return yaml;
}

namespace {

daemon_options test_options(const std::string& arena, uint16_t port,
                            const std::string& extra_yaml, const std::string& liveness_interval) {
  daemon_options o;
  o.arena = arena;
  o.port = port;
  o.liveness_interval = liveness_interval;
  o.extra_yaml = with_test_peers(extra_yaml);
  return o;
}

} // namespace

daemon_process::daemon_process(const std::string& name, const std::string& arena, uint16_t port,
                               const std::string& extra_yaml,
                               const std::string& liveness_interval)
  : daemon_process(name, test_options(arena, port, extra_yaml, liveness_interval)) {
}

daemon_process::daemon_process(const std::string& name, daemon_options opts)
  : name_(name), config_(std::filesystem::temp_directory_path() / (name + ".yaml")),
    bin_dir_(std::move(opts.bin_dir)) {
  std::ofstream out{config_};
  out << "engine:\n  name: " << name << "\n  arena: " << opts.arena
      << "\n  liveness_interval: " << opts.liveness_interval
      << "\n  listen: {host: 127.0.0.1, port: " << opts.port << "}\n"
      << opts.engine_yaml << opts.extra_yaml;
  out.close();
  start(opts.port);
}

daemon_process::~daemon_process() {
  stop();
  std::error_code ec;
  std::filesystem::remove(config_, ec);
  memory_manager::remove_segments(name_); // added data segments of a grown arena too
  ::unlink(("/dev/shm/" + name_ + ".sock").c_str()); // the door of a daemon that was killed
  ::unlink(("/dev/shm/" + name_ + ".inbox-0").c_str()); // its request inbox
}

bool daemon_process::start(uint16_t port) {
  process_ = std::make_unique<child_process>(std::vector<std::string>{
    bin_dir_ + "/cafshmd", "--config", config_.string(), "--port", std::to_string(port)});
  // Lines before the listening line: what the engine found at start ("cafshmd: adopted ..." or
  // "cafshmd: not adopting ...").
  start_report_.clear();
  std::optional<std::string> rest;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!rest && std::chrono::steady_clock::now() < deadline) {
    auto line = process_->read_line(std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now()));
    if (!line)
      break;
    const std::string listening = "cafshmd listening on ";
    if (line->rfind(listening, 0) == 0)
      rest = line->substr(listening.size());
    else if (line->rfind("cafshmd: ", 0) == 0)
      start_report_ = line->substr(9);
  }
  auto announced = rest ? parse_announcement(*rest) : std::nullopt;
  if (!announced)
    return false;
  port_ = announced->listen.port;
  return true;
}

std::optional<int> daemon_process::stop() {
  if (!process_)
    return std::nullopt;
  process_->kill(SIGTERM);
  auto st = process_->wait(std::chrono::seconds(30));
  process_.reset(); // SIGKILL if SIGTERM was not enough
  return st;
}

void daemon_process::kill_hard() {
  if (!process_)
    return;
  process_->kill(SIGKILL);
  process_->wait(std::chrono::seconds(20));
}

} // namespace cafshm::test
