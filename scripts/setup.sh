#!/usr/bin/env bash
# Idempotent install of everything tollgate needs to build, test and benchmark.
# Every dependency comes from Debian's packages or the npm registry; nothing else is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache git python3
  libboost1.81-dev            # Beast/Asio; named explicitly: libboost-dev is 1.74 and conflicts
  librocksdb-dev
  nlohmann-json3-dev
  libcurl4-openssl-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libyaml-cpp-dev libspdlog-dev libcli11-dev zlib1g-dev openssl
  wrk nginx-light curl
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Node.js >= 18 for the OpenAI SDK client tests.
node_ok=0
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  [ "$major" -ge 18 ] && node_ok=1
fi
if [ "$node_ok" -ne 1 ]; then
  echo "setup: installing Debian's nodejs and npm"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi

# npm packages used by the tests (pinned majors; see tests/node/package.json).
if [ ! -d tests/node/node_modules/openai ]; then
  echo "setup: installing npm packages for tests/node"
  (cd tests/node && npm install --no-audit --no-fund --loglevel=error)
fi
echo "setup: ok"
