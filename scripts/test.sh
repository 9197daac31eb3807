#!/usr/bin/env bash
# Install what is missing, build, and run the whole test suite (unit, integration, OpenAI SDK).
#   ./scripts/test.sh                 # everything
#   ./scripts/test.sh -L unit         # extra arguments go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
./scripts/models.sh   # stories15M GGUF for the local-engine tests
cd build
# Two cores: run tests two at a time; each integration test is bounded by its own timeouts.
ctest --output-on-failure -j "${TEST_JOBS:-2}" --timeout 600 "$@"
