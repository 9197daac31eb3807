#!/usr/bin/env bash
# Configure (once) and build tollgate into build/. Used by run.sh and test.sh.
#   BUILD_DIR (default build), BUILD_TYPE (default RelWithDebInfo), JOBS (default: cores)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}
JOBS=${JOBS:-$(nproc)}
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/tollgate-ccache}
# Paths relative to the checkout, so a fresh clone elsewhere (CI) reuses the same cache entries.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" "$@"
fi
cmake --build "$BUILD_DIR" -j "$JOBS"
