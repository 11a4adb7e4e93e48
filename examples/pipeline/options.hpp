// Command line of cafshm-pipeline. One program plays every part: the driver (default) starts the
// three stages as processes of their own, each the same binary with --role set.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "cafshm/settings.hpp"

namespace pipeline {

enum class role : uint8_t { driver, producer, transformer, sink };
enum class transport : uint8_t { shm, caf };

/// Faults the driver can inject into the transformer, so that tests can prove that the pipeline
/// notices them: `corrupt` flips one gray byte of one frame, `crash` kills the transformer
/// halfway.
enum class fault : uint8_t { none, corrupt, crash };

struct options {
  pipeline::role role = role::driver;
  pipeline::transport transport = transport::shm;
  uint32_t frames = 300;
  uint32_t width = 1920;
  uint32_t height = 1080;
  uint32_t pool = 4;               // buffers (shm blocks or frames in flight) per stage
  std::string config_file;         // YAML; the engine endpoint and request timeout come from it
  bool engine_given = false;       // --engine overrides the config's client.engine
  cafshm::endpoint engine;
  // Two engines: the sink registers with this one, and the transformer transmits every gray
  // frame to it (engine-to-engine, in checksummed chunks) instead of handing over its block.
  bool sink_engine_given = false;
  cafshm::endpoint sink_engine;
  std::chrono::milliseconds request_timeout{5000};
  // Driver: how long the whole run may take, set-up to the exit of every stage. Unless given,
  // one minute plus the time the frames take at 50 MB/s (far slower than either transport).
  std::chrono::seconds deadline{0};
  uint16_t sink_port = 0;          // where the sink listens (transformer, producer)
  uint16_t transformer_port = 0;   // where the transformer listens (producer)
  pipeline::fault fault = fault::none;
  bool print_engine = false;       // driver: print the engine endpoint and exit
  bool help = false;

  uint64_t pixels() const noexcept { return uint64_t{width} * height; }
  uint64_t rgb_bytes() const noexcept { return pixels() * 3; }
  uint64_t gray_bytes() const noexcept { return pixels(); }
  std::chrono::seconds run_deadline() const noexcept {
    if (deadline.count() > 0)
      return deadline;
    return std::chrono::seconds{60 + frames * rgb_bytes() / 50'000'000};
  }
};

/// Parses argv; a string is the reason it failed.
std::variant<options, std::string> parse_options(int argc, char** argv);

/// Reads the config file (if any) into the engine endpoint (unless --engine was given) and the
/// request timeout. An empty string on success, otherwise why it failed.
std::string apply_config(options& opts);

/// The arguments that start `r` with the settings of `opts` (without the program name).
std::vector<std::string> stage_arguments(const options& opts, role r);

const char* to_string(role r) noexcept;
const char* to_string(transport t) noexcept;

extern const char* const usage;

} // namespace pipeline
