#!/usr/bin/env bash
# Install what is missing, build, and run the gateway on its default config.
#   ./scripts/run.sh                      # serves configs/tollgate.yaml on 127.0.0.1:8080
#   ./scripts/run.sh --config configs/passthrough.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
./scripts/models.sh   # the local engine's default model (stories15M, converted to GGUF once)
config=configs/tollgate.yaml
if [ "${1:-}" = "--config" ] && [ -n "${2:-}" ]; then config=$2; fi
exec ./build/tollgate serve --config "$config"
