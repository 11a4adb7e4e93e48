#include "options.hpp"

#include <charconv>
#include <filesystem>
#include <optional>
#include <string_view>

#include "cafshm/config.hpp"

namespace pipeline {

const char* const usage =
  "usage: cafshm-pipeline [--transport shm|caf] [--frames N] [--width W] [--height H]\n"
  "                       [--pool K] [--config FILE] [--engine HOST:PORT] [--deadline S]\n"
  "\n"
  "Runs producer -> transformer -> sink as three processes. The producer generates RGB frames,\n"
  "the transformer converts each to grayscale, the sink verifies every gray frame against the\n"
  "checksum the producer announced. Frames travel in cafshm shared-memory blocks (shm, needs a\n"
  "running cafshmd) or as std::vector<char> in CAF messages through the middleman (caf).\n"
  "Prints: pipeline transport=T frames=N fps=X GBps=Y (GBps = input RGB bytes/s / 1e9).\n"
  "\n"
  "  --transport shm|caf  how frames travel (default shm)\n"
  "  --frames N           frames to send (default 300)\n"
  "  --width W --height H frame size in pixels (default 1920x1080)\n"
  "  --pool K             buffers per stage = frames in flight per hop (default 4)\n"
  "  --config FILE        cafshm YAML; client.engine and client.request_timeout are used\n"
  "                       (default config/pipeline.yaml if it exists, else built-in defaults)\n"
  "  --engine HOST:PORT   the cafshmd to use (overrides the config)\n"
  "  --sink-engine HOST:PORT  shm only: the sink registers with this second cafshmd; the\n"
  "                       transformer transmits each gray frame to it (see examples/two-node)\n"
  "  --deadline S         give up (and stop every stage) after S seconds (default: 60 plus\n"
  "                       the time the frames take at 50 MB/s)\n"
  "  --print-engine       print the engine endpoint the configuration names, then exit\n"
  "  --help               show this text\n"
  "\n"
  "For tests: --fault corrupt|crash makes the transformer corrupt one gray frame or kill\n"
  "itself halfway; the run must then fail.\n"
  "Set by the driver for the stages: --role producer|transformer|sink, --sink-port P,\n"
  "--transformer-port P, --timeout-ms T (requests to the engine and between stages).\n";

namespace {

template <class T>
std::optional<T> to_number(std::string_view text, T min, T max) {
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value < min || value > max)
    return std::nullopt;
  return value;
}

} // namespace

const char* to_string(role r) noexcept {
  switch (r) {
    case role::driver:
      return "driver";
    case role::producer:
      return "producer";
    case role::transformer:
      return "transformer";
    case role::sink:
      return "sink";
  }
  return "?";
}

const char* to_string(transport t) noexcept {
  return t == transport::shm ? "shm" : "caf";
}

std::variant<options, std::string> parse_options(int argc, char** argv) {
  options opts;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string_view value;
    bool has_value = false;
    if (auto eq = arg.find('='); eq != std::string_view::npos && arg.starts_with("--")) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    auto next = [&]() -> std::optional<std::string_view> {
      if (has_value)
        return value;
      if (i + 1 < argc)
        return std::string_view{argv[++i]};
      return std::nullopt;
    };
    auto bad = [&](std::string_view what) {
      return "option " + std::string{arg} + " needs " + std::string{what};
    };
    if (arg == "--help" || arg == "-h") {
      opts.help = true;
    } else if (arg == "--print-engine") {
      opts.print_engine = true;
    } else if (arg == "--role") {
      auto v = next();
      if (v == "driver")
        opts.role = role::driver;
      else if (v == "producer")
        opts.role = role::producer;
      else if (v == "transformer")
        opts.role = role::transformer;
      else if (v == "sink")
        opts.role = role::sink;
      else
        return bad("driver, producer, transformer or sink");
    } else if (arg == "--transport") {
      auto v = next();
      if (v == "shm")
        opts.transport = transport::shm;
      else if (v == "caf")
        opts.transport = transport::caf;
      else
        return bad("shm or caf");
    } else if (arg == "--frames") {
      auto v = next();
      auto n = v ? to_number<uint32_t>(*v, 1, 100'000'000) : std::nullopt;
      if (!n)
        return bad("a number from 1 to 100000000");
      opts.frames = *n;
    } else if (arg == "--width" || arg == "--height") {
      auto v = next();
      auto n = v ? to_number<uint32_t>(*v, 1, 16384) : std::nullopt;
      if (!n)
        return bad("a number from 1 to 16384");
      (arg == "--width" ? opts.width : opts.height) = *n;
    } else if (arg == "--pool") {
      auto v = next();
      auto n = v ? to_number<uint32_t>(*v, 1, 64) : std::nullopt;
      if (!n)
        return bad("a number from 1 to 64");
      opts.pool = *n;
    } else if (arg == "--config") {
      auto v = next();
      if (!v || v->empty())
        return bad("a file");
      opts.config_file = std::string{*v};
    } else if (arg == "--engine") {
      auto v = next();
      auto ep = v ? cafshm::parse_endpoint(*v) : std::nullopt;
      if (!ep)
        return bad("HOST:PORT");
      opts.engine = *ep;
      opts.engine_given = true;
    } else if (arg == "--sink-engine") {
      auto v = next();
      auto ep = v ? cafshm::parse_endpoint(*v) : std::nullopt;
      if (!ep)
        return bad("HOST:PORT");
      opts.sink_engine = *ep;
      opts.sink_engine_given = true;
    } else if (arg == "--deadline") {
      auto v = next();
      auto n = v ? to_number<uint32_t>(*v, 1, 86400) : std::nullopt;
      if (!n)
        return bad("seconds from 1 to 86400");
      opts.deadline = std::chrono::seconds{*n};
    } else if (arg == "--timeout-ms") { // stages: the request timeout the driver resolved
      auto v = next();
      auto n = v ? to_number<uint32_t>(*v, 1, 3'600'000) : std::nullopt;
      if (!n)
        return bad("milliseconds");
      opts.request_timeout = std::chrono::milliseconds{*n};
    } else if (arg == "--sink-port" || arg == "--transformer-port") {
      auto v = next();
      auto n = v ? to_number<uint16_t>(*v, 1, 65535) : std::nullopt;
      if (!n)
        return bad("a port");
      (arg == "--sink-port" ? opts.sink_port : opts.transformer_port) = *n;
    } else if (arg == "--fault") {
      auto v = next();
      if (v == "none")
        opts.fault = fault::none;
      else if (v == "corrupt")
        opts.fault = fault::corrupt;
      else if (v == "crash")
        opts.fault = fault::crash;
      else
        return bad("none, corrupt or crash");
    } else {
      return "unknown argument '" + std::string{argv[i]} + "' (see --help)";
    }
  }
  // Every frame crosses the middleman in one message in caf mode; BASP lengths are 32-bit.
  if (opts.rgb_bytes() > (uint64_t{1} << 30))
    return std::string{"a frame may have at most 1 GiB (width * height * 3)"};
  if (opts.role == role::transformer && opts.sink_port == 0)
    return std::string{"the transformer needs --sink-port"};
  if (opts.role == role::producer && (opts.sink_port == 0 || opts.transformer_port == 0))
    return std::string{"the producer needs --sink-port and --transformer-port"};
  if (opts.sink_engine_given && opts.transport != transport::shm)
    return std::string{"--sink-engine needs the shm transport"};
  if (opts.role != role::driver && opts.transport == transport::shm && !opts.engine_given)
    return std::string{"a stage of the shm transport needs --engine"};
  return opts;
}

std::string apply_config(options& opts) {
  std::string file = opts.config_file;
  if (file.empty()) {
    file = "config/pipeline.yaml";
    std::error_code ec;
    if (!std::filesystem::exists(file, ec))
      return {}; // no config: built-in defaults
  }
  auto loaded = cafshm::load_config(file);
  if (auto* err = std::get_if<cafshm::config_error>(&loaded))
    return err->to_string();
  const auto& s = std::get<cafshm::settings>(loaded);
  if (!opts.engine_given)
    opts.engine = s.client.engine;
  opts.request_timeout = s.client.request_timeout;
  return {};
}

std::vector<std::string> stage_arguments(const options& opts, role r) {
  std::vector<std::string> args{
    "--role",   to_string(r),
    "--transport", to_string(opts.transport),
    "--frames", std::to_string(opts.frames),
    "--width",  std::to_string(opts.width),
    "--height", std::to_string(opts.height),
    "--pool",   std::to_string(opts.pool),
    "--timeout-ms", std::to_string(opts.request_timeout.count()),
  };
  if (opts.transport == transport::shm) {
    args.emplace_back("--engine");
    args.emplace_back(opts.engine.host + ":" + std::to_string(opts.engine.port));
  }
  if (opts.sink_engine_given && r != role::producer) {
    args.emplace_back("--sink-engine");
    args.emplace_back(opts.sink_engine.host + ":" + std::to_string(opts.sink_engine.port));
  }
  if (r != role::sink) {
    args.emplace_back("--sink-port");
    args.emplace_back(std::to_string(opts.sink_port));
  }
  if (r == role::producer) {
    args.emplace_back("--transformer-port");
    args.emplace_back(std::to_string(opts.transformer_port));
  }
  if (r == role::transformer && opts.fault != fault::none) {
    args.emplace_back("--fault");
    args.emplace_back(opts.fault == fault::corrupt ? "corrupt" : "crash");
  }
  return args;
}

} // namespace pipeline
