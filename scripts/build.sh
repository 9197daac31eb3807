#!/usr/bin/env bash
# Configure (once) and build tollgate into build/. Used by run.sh and test.sh.
#   BUILD_DIR (default build), BUILD_TYPE (default RelWithDebInfo), JOBS (default: cores)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}
JOBS=${JOBS:-$(nproc)}
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/tollgate-ccache}
# No CCACHE_BASEDIR: it would turn __FILE__ into a relative path, and tests find their data by it.
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" "$@"
fi
cmake --build "$BUILD_DIR" -j "$JOBS"
