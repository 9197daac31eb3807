#!/usr/bin/env bash
# Converts the cached stories15M (llama2.c checkpoint + tokenizer, fetched by scripts/setup.sh) into
# $TOLLGATE_CACHE_DIR/models/stories15M.F32.gguf with the freshly built binary. Run after the build;
# does nothing when the GGUF is newer than the data.
#   BUILD_DIR (default build), TOLLGATE_CACHE_DIR (default ~/.cache/tollgate)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
TOLLGATE_CACHE_DIR="${TOLLGATE_CACHE_DIR:-$HOME/.cache/tollgate}"
models="$TOLLGATE_CACHE_DIR/models"
data="$models/llama2.data"
gguf="$models/stories15M.F32.gguf"
bin="$BUILD_DIR/tollgate"

if [ ! -f "$data" ]; then
  echo "models: ERROR: $data is missing; run scripts/setup.sh first" >&2
  exit 1
fi
if [ -f "$gguf" ] && [ "$gguf" -nt "$data" ]; then
  echo "models: $gguf is up to date"
  exit 0
fi
if [ ! -x "$bin" ]; then
  echo "models: ERROR: $bin not found; build first (scripts/build.sh)" >&2
  exit 1
fi
echo "models: converting $data -> $gguf"
"$bin" convert llama2c --data "$data" --out "$gguf"
echo "models: ok"
