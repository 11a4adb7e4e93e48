#!/usr/bin/env bash
# Configures and builds cafshm into build/ (programs in build/bin/). Extra args go to cmake.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_type=${CAFSHM_BUILD_TYPE:-RelWithDebInfo}
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE="$build_type" "$@" >/dev/null
cmake --build "$root/build" -j"$(nproc)"
