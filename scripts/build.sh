#!/usr/bin/env bash
# Configures and builds Prelude (Release) in ./build, or in $PRELUDE_BUILD_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${PRELUDE_BUILD_DIR:-build}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build "$build" -j "$(nproc)"
