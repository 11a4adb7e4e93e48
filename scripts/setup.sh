#!/usr/bin/env bash
# Installs the Debian 12 packages cafshm needs; does nothing when they are all present.
# Every package is listed (installed with --no-install-recommends): scripts/fresh-check.sh runs
# the README's commands on a minimal Debian 12 to make sure nothing is only there by chance.
#   scripts/setup.sh          the build, the tests, the demo, the benchmarks, the scripts
#   scripts/setup.sh --fuzz   also what scripts/fuzz.sh needs
set -euo pipefail
packages=(
  build-essential   # the compiler (g++ 12), make, libc headers; ASan/UBSan/TSan runtimes
  cmake             # the build, and the install_and_find_package test
  pkg-config        # CMake's FindPkgConfig, which finds libxxhash
  libcaf-dev        # CAF 0.17 (core, io, openssl)
  libboost-dev      # Boost.Interprocess: the shared-memory segments (headers only)
  doctest-dev       # the test framework
  libyaml-cpp-dev   # the configuration files
  libxxhash-dev     # checksums of transfers, of the content cache, of the soak's hand-offs
  libssl-dev        # TLS between engines (CAF's openssl module links it)
  libcli11-dev      # the cafshm command line
  openssl           # the TLS test makes its certificates with the openssl command
  iproute2          # the network-namespace test (ip netns, ip link, tc)
  gnuplot-nox       # the plots of scripts/bench.sh
  iceoryx           # iox-roudi, for the iceoryx baseline of the bench's hand-off row
  libiceoryx-posh-dev # its library (the bench is built without the baseline if it is missing)
  procps            # pgrep, which scripts/run.sh suggests when cafshmd is already running
)
# --fuzz (scripts/fuzz.sh): clang and the runtime that provides -fsanitize=fuzzer (libFuzzer).
[ "${1:-}" = --fuzz ] && packages+=(clang libclang-rt-14-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || {
      echo "setup: these packages are missing: ${missing[*]}; install them as root" \
           "(apt-get install --no-install-recommends ...) or install sudo" >&2
      exit 1
    }
    sudo_cmd=(sudo)
  fi
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
