#!/usr/bin/env bash
# Installs the Debian 12 packages cafshm needs; does nothing when they are all present.
set -euo pipefail
# openssl: the TLS test makes its certificates; iproute2: the network-namespace test (ip netns, tc);
# gnuplot-nox: the plots of scripts/bench.sh
packages=(build-essential cmake libcaf-dev libboost-dev doctest-dev libyaml-cpp-dev libxxhash-dev
          libssl-dev libcli11-dev openssl iproute2 gnuplot-nox)
# --fuzz (scripts/fuzz.sh): clang and the runtime that provides -fsanitize=fuzzer (libFuzzer).
[ "${1:-}" = --fuzz ] && packages+=(clang libclang-rt-14-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
