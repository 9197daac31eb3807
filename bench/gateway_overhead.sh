#!/usr/bin/env bash
# gateway_overhead.sh: what does tollgate cost on the request path, compared with nginx as a plain
# reverse proxy, both in front of the same canned OpenAI upstream?
#
#   ./bench/gateway_overhead.sh                    # DURATION=10s per measured run
#   DURATION=30 ./bench/gateway_overhead.sh        # seconds (or any wrk duration: 30s, 1m)
#   PROFILE=1 ./bench/gateway_overhead.sh          # plus a perf profile of tollgate (see below)
#
# Processes (all on 127.0.0.1, ports picked free from PORT_BASE, default 18480):
#   upstream  nginx, 1 worker, port A: canned answers, no real model
#               POST /v1/chat/completions         -> fixed chat.completion JSON with usage
#               POST /stream/v1/chat/completions  -> fixed SSE body: role chunk, 2 content chunks,
#                                                    finish chunk, usage-only chunk, [DONE]
#   nginx     nginx, 1 worker, port B: proxy_pass to A over a keep-alive upstream pool
#             (proxy_http_version 1.1, Connection "", keepalive 64): the floor for any proxy
#   LEDGER=false runs tollgate without its request ledger (default true: every request recorded).
#   tollgate  port C, io_threads 1, access_log off, log_level warn, auth none; alias `bench` ->
#             http://127.0.0.1:A/v1, alias `bench-stream` -> http://127.0.0.1:A/stream/v1
#   wrk       2 threads, 64 connections, POST via a Lua script, --latency
#
# CPU layout (taskset; the machine this was written for has 2 cores):
#   core LOAD_CPU  (default 0): upstream nginx + wrk            (the load side)
#   core PROXY_CPU (default 1): the proxy under test, alone     (nginx proxy OR tollgate)
# Both proxies run for the whole script but only the one being measured gets traffic. With fewer
# than 2 cores nothing is pinned (and the figures mean less). Each measured run is preceded by an
# unmeasured warm-up (WARMUP, default 2s). The table reports, per run, the busy % of both cores
# and the proxy's own CPU time per request (utime+stime from /proc, all threads/processes), which
# stays meaningful when the load side, not the proxy, is the bottleneck.
#
# Scenarios: non-streaming and streaming, each against (a) the upstream directly, (b) the nginx
# proxy, (c) tollgate. Goals printed next to the figures:
#   tollgate throughput >= 70% of the nginx proxy's
#   tollgate's added p50 over direct <= 2x nginx's added p50 over direct
# Any non-2xx response fails the script (exit 1) after printing what it has.
#
# Output: a table on stdout; JSON at $OUT_JSON (default bench/results/gateway_overhead.json).
#
# Environment:
#   DURATION (10s)  WARMUP (2s)  CONNECTIONS (64)  THREADS (2)  LOAD_CPU (0)  PROXY_CPU (1)
#   PORT_BASE (18480)  TOLLGATE_BIN (build/tollgate)  OUT_JSON  KEEP_TMP=1 (keep the temp dir)
#   BENCH_NICE: run wrk, nginx and tollgate under `nice -n BENCH_NICE` (e.g. -10, root only) so
#     that other jobs on a shared machine (compilers) disturb the figures less. The load average
#     before and after is printed and kept in the JSON either way.
#   PROFILE=1: after the measured runs, one more tollgate non-streaming run (same length) under
#     `perf record -g` (perf pinned to the load core); prints the flat profile (top 60 lines) and
#     writes the call-graph report (first 800 lines) to $PERF_TXT (default
#     bench/results/gateway_overhead.perf.txt). The measured figures are never taken while perf is
#     attached. PERF_CALLGRAPH sets the call-graph mode (default fp; tollgate is built without
#     frame pointers, so user-space stacks are shallow: dwarf gives full ones). linux-perf is
#     installed with apt-get if missing; if perf may not run here, says so and goes on.
#   LATENCY_RUNS=1: also run every target at 1 connection (pure per-request latency, no queueing).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOLLGATE_BIN=${TOLLGATE_BIN:-$ROOT/build/tollgate}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
LOAD_CPU=${LOAD_CPU:-0}
PROXY_CPU=${PROXY_CPU:-1}
PORT_BASE=${PORT_BASE:-18480}
OUT_JSON=${OUT_JSON:-$ROOT/bench/results/gateway_overhead.json}
PERF_TXT=${PERF_TXT:-$ROOT/bench/results/gateway_overhead.perf.txt}
PROFILE=${PROFILE:-0}
PERF_CALLGRAPH=${PERF_CALLGRAPH:-fp}
LATENCY_RUNS=${LATENCY_RUNS:-0}
KEEP_TMP=${KEEP_TMP:-0}
BENCH_NICE=${BENCH_NICE:-}

# A bare number is seconds.
[[ $DURATION =~ ^[0-9]+$ ]] && DURATION="${DURATION}s"
[[ $WARMUP =~ ^[0-9]+$ ]] && WARMUP="${WARMUP}s"

die() { echo "gateway_overhead: ERROR: $*" >&2; exit 1; }
note() { echo "gateway_overhead: $*" >&2; }

for tool in nginx wrk curl awk ss; do
  command -v "$tool" >/dev/null || die "'$tool' not found (Debian: apt-get install nginx-light wrk curl iproute2)"
done
[[ -x $TOLLGATE_BIN ]] || die "tollgate binary not found at $TOLLGATE_BIN (build: ninja -C build tollgate)"

NCPU=$(nproc)
if (( NCPU >= 2 )) && command -v taskset >/dev/null; then
  PIN_LOAD=(taskset -c "$LOAD_CPU")
  PIN_PROXY=(taskset -c "$PROXY_CPU")
  LAYOUT="core $LOAD_CPU: upstream nginx + wrk; core $PROXY_CPU: proxy under test"
else
  PIN_LOAD=()
  PIN_PROXY=()
  LAYOUT="not pinned ($NCPU cpu(s) or no taskset)"
  note "WARNING: $LAYOUT; load generator and proxy share CPUs"
fi
if [[ -n $BENCH_NICE ]]; then   # e.g. -10 (root only): keep background jobs from skewing figures
  PIN_LOAD=(nice -n "$BENCH_NICE" "${PIN_LOAD[@]}")
  PIN_PROXY=(nice -n "$BENCH_NICE" "${PIN_PROXY[@]}")
  LAYOUT+=", nice $BENCH_NICE"
fi
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
# Background load: busy share of all CPUs over one second before anything of ours starts.
bg0=$(awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat)
sleep 1
bg1=$(awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat)
BG_BUSY=$(awk -v a="$bg0" -v b="$bg1" 'BEGIN { split(a, x, " "); split(b, y, " ");
  printf "%.0f", (y[2] > x[2]) ? 100 * (y[1] - x[1]) / (y[2] - x[2]) : 0 }')
if (( BG_BUSY > 10 )); then
  note "WARNING: CPUs were ${BG_BUSY}% busy before the benchmark started (other jobs): figures will be noisy"
fi

# ---------------------------------------------------------------- processes and cleanup
TMP=$(mktemp -d /tmp/tollgate-bench.XXXXXX)
PIDS=()           # every background process we started, killed on exit in reverse order
PERF_PID=""

cleanup() {
  local rc=$?
  set +e
  if [[ -n ${WRK_PID:-} ]] && kill -0 "$WRK_PID" 2>/dev/null; then kill -TERM "$WRK_PID"; wait "$WRK_PID"; fi
  if [[ -n $PERF_PID ]] && kill -0 "$PERF_PID" 2>/dev/null; then kill -INT "$PERF_PID"; wait "$PERF_PID"; fi
  local i pid kids=""
  for pid in "${PIDS[@]}"; do   # nginx workers, in case a master has to be killed hard
    kids+=" $(cat "/proc/$pid/task/"*/children 2>/dev/null)"
  done
  for (( i=${#PIDS[@]}-1; i>=0; i-- )); do
    pid=${PIDS[i]}
    kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  for pid in $kids; do   # a worker left behind (its pid still names an nginx process)
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == nginx ]] && kill -KILL "$pid" 2>/dev/null
  done
  if [[ $KEEP_TMP == 1 ]]; then note "temp dir kept: $TMP"; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_free() { [[ -z $(ss -Htln "sport = :$1" 2>/dev/null) ]]; }
next_port=$PORT_BASE
pick_port() {  # sets the named variable (no subshell, so next_port advances)
  while ! port_free "$next_port"; do next_port=$((next_port + 1)); done
  printf -v "$1" '%d' "$next_port"
  next_port=$((next_port + 1))
}
pick_port PORT_UP
pick_port PORT_NGX
pick_port PORT_TG

wait_listen() {  # port pid name logfile
  local _
  for _ in $(seq 1 100); do
    kill -0 "$2" 2>/dev/null || { cat "$4" >&2 2>/dev/null; die "$3 exited during start-up (log above)"; }
    [[ -n $(ss -Htln "sport = :$1" 2>/dev/null) ]] && return 0
    sleep 0.1
  done
  cat "$4" >&2 2>/dev/null
  die "$3 did not listen on 127.0.0.1:$1 within 10s"
}

# ---------------------------------------------------------------- canned upstream bodies
ID='"id":"chatcmpl-bench","created":1700000000,"model":"bench-model"'
JSON_BODY='{'$ID',"object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hello world"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}'
chunk() { printf 'data: {%s,"object":"chat.completion.chunk",%s}\\n\\n' "$ID" "$1"; }
SSE_BODY="$(chunk '"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]')"
SSE_BODY+="$(chunk '"choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]')"
SSE_BODY+="$(chunk '"choices":[{"index":0,"delta":{"content":" world"},"finish_reason":null}]')"
SSE_BODY+="$(chunk '"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]')"
SSE_BODY+="$(chunk '"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}')"
SSE_BODY+='data: [DONE]\n\n'    # \n is an escape inside an nginx quoted string

USER_LINE=""
(( EUID == 0 )) && USER_LINE="user $(id -un) $(id -gn);"   # keep workers able to use $TMP (0700)

nginx_common() {  # prefix
  cat <<EOF
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
$USER_LINE
events { worker_connections 8192; }
EOF
}
nginx_http_common() {  # prefix
  cat <<EOF
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path $1/client_body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
EOF
}

mkdir -p "$TMP/upstream" "$TMP/nginx" "$TMP/tollgate/data"
# Run a private copy: on a shared checkout build/tollgate may be relinked while we measure.
TG_BUILT=$(date -u -r "$TOLLGATE_BIN" +%Y-%m-%dT%H:%M:%SZ)
cp "$TOLLGATE_BIN" "$TMP/tollgate/tollgate"
TG_SHA=$(sha256sum "$TMP/tollgate/tollgate" | cut -c1-16)
TG="$TMP/tollgate/tollgate"
{
  nginx_common "$TMP/upstream"
  echo "http {"
  nginx_http_common "$TMP/upstream"
  cat <<EOF
    server {
        listen 127.0.0.1:$PORT_UP backlog=4096;
        location = /v1/chat/completions {
            default_type application/json;
            return 200 '$JSON_BODY';
        }
        location = /stream/v1/chat/completions {
            default_type text/event-stream;
            add_header Cache-Control no-cache;
            return 200 '$SSE_BODY';
        }
    }
}
EOF
} >"$TMP/upstream/nginx.conf"

{
  nginx_common "$TMP/nginx"
  echo "http {"
  nginx_http_common "$TMP/nginx"
  cat <<EOF
    upstream canned {
        server 127.0.0.1:$PORT_UP;
        keepalive 64;
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$PORT_NGX backlog=4096;
        location / {
            proxy_pass http://canned;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /stream/ {
            proxy_pass http://canned;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;    # what an SSE-aware nginx config does
        }
    }
}
EOF
} >"$TMP/nginx/nginx.conf"

cat >"$TMP/tollgate/tollgate.yaml" <<EOF
server:
  listen: "127.0.0.1:$PORT_TG"
  io_threads: 1
  access_log: false
  log_level: warn
  data_dir: $TMP/tollgate/data
ledger:
  enabled: ${LEDGER:-true}
auth: none
targets:
  bench-json:
    base_url: http://127.0.0.1:$PORT_UP/v1
    prices: {input_per_mtok: 0.15, output_per_mtok: 0.60}
  bench-sse:
    base_url: http://127.0.0.1:$PORT_UP/stream/v1
    prices: {input_per_mtok: 0.15, output_per_mtok: 0.60}
models:
  bench: bench-json
  bench-stream: bench-sse
EOF

for p in upstream nginx; do
  nginx -t -q -p "$TMP/$p" -c "$TMP/$p/nginx.conf" -e "$TMP/$p/error.log" \
    || { cat "$TMP/$p/error.log" >&2; die "nginx rejected the $p config ($TMP/$p/nginx.conf)"; }
done
"$TG" check-config "$TMP/tollgate/tollgate.yaml" >"$TMP/tollgate/check.log" 2>&1 \
  || { cat "$TMP/tollgate/check.log" >&2; die "tollgate rejected the generated config"; }

"${PIN_LOAD[@]}" nginx -p "$TMP/upstream" -c "$TMP/upstream/nginx.conf" -e "$TMP/upstream/error.log" \
  >"$TMP/upstream/stdout.log" 2>&1 &
UP_PID=$!; PIDS+=("$UP_PID")
"${PIN_PROXY[@]}" nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" \
  >"$TMP/nginx/stdout.log" 2>&1 &
NGX_PID=$!; PIDS+=("$NGX_PID")
"${PIN_PROXY[@]}" "$TG" serve --config "$TMP/tollgate/tollgate.yaml" \
  >"$TMP/tollgate/stdout.log" 2>"$TMP/tollgate/stderr.log" &
TG_PID=$!; PIDS+=("$TG_PID")

wait_listen "$PORT_UP" "$UP_PID" "upstream nginx" "$TMP/upstream/error.log"
wait_listen "$PORT_NGX" "$NGX_PID" "nginx proxy" "$TMP/nginx/error.log"
wait_listen "$PORT_TG" "$TG_PID" "tollgate" "$TMP/tollgate/stderr.log"

# ---------------------------------------------------------------- request bodies, sanity checks
MESSAGES='[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello world."}]'
REQ_JSON='{"model":"bench","messages":'$MESSAGES',"max_tokens":16}'
REQ_SSE='{"model":"bench-stream","stream":true,"messages":'$MESSAGES',"max_tokens":16}'

for kind in json sse; do
  body_var="REQ_${kind^^}"
  cat >"$TMP/$kind.lua" <<EOF
wrk.method = "POST"
wrk.body = '${!body_var}'
wrk.headers["Content-Type"] = "application/json"
EOF
done

URL_UP="http://127.0.0.1:$PORT_UP"
URL_NGX="http://127.0.0.1:$PORT_NGX"
URL_TG="http://127.0.0.1:$PORT_TG"

check() {  # name url body expect-substring
  local out code
  out=$(curl -sS -o "$TMP/check.body" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        --data-binary "$3" --max-time 10 "$2") || true
  code=$out
  if [[ $code != 200 ]] || ! grep -qF -- "$4" "$TMP/check.body"; then
    echo "---- response body from $1 ($2), HTTP $code:" >&2
    head -c 2000 "$TMP/check.body" >&2; echo >&2
    echo "---- tollgate stderr (last 30 lines):" >&2
    tail -n 30 "$TMP/tollgate/stderr.log" >&2
    die "sanity check failed for $1: expected HTTP 200 and '$4'"
  fi
}
check "upstream json" "$URL_UP/v1/chat/completions" "$REQ_JSON" '"total_tokens":15'
check "upstream sse" "$URL_UP/stream/v1/chat/completions" "$REQ_SSE" 'data: [DONE]'
check "nginx json" "$URL_NGX/v1/chat/completions" "$REQ_JSON" '"total_tokens":15'
check "nginx sse" "$URL_NGX/stream/v1/chat/completions" "$REQ_SSE" 'data: [DONE]'
check "tollgate json" "$URL_TG/v1/chat/completions" "$REQ_JSON" '"Hello world"'
check "tollgate sse" "$URL_TG/v1/chat/completions" "$REQ_SSE" 'data: [DONE]'
grep -q '" world"' "$TMP/check.body" || die "tollgate SSE response lacks the content chunks"

# ---------------------------------------------------------------- measurement helpers
# Busy jiffies and total jiffies of one CPU from /proc/stat.
cpu_sample() {
  awk -v c="cpu$1" '$1 == c { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}
# CPU time (clock ticks) of a process and its children (nginx master + worker; all threads).
proc_ticks() {
  local pid=$1 total=0 p kids
  kids=$(cat "/proc/$pid/task/"*/children 2>/dev/null || true)
  for p in "$pid" $kids; do
    [[ -r /proc/$p/stat ]] || continue
    total=$(( total + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat") ))
  done
  echo "$total"
}
CLK_TCK=$(getconf CLK_TCK)
# CPU ticks of the children this shell has waited for (wrk, curl): cutime + cstime
reaped_ticks() { awk '{ sub(/^.*\) /, ""); print $14 + $15 }' "/proc/$$/stat"; }

to_ms() {  # wrk duration such as 812.00us, 1.23ms, 2.01s, 1.00m -> ms
  awk -v v="$1" 'BEGIN {
    if (match(v, /^[0-9.]+/)) { n = substr(v, 1, RLENGTH); u = substr(v, RLENGTH + 1) } else { print "nan"; exit }
    f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : (u == "h") ? 3600000 : -1
    if (f < 0) print "nan"; else printf "%.3f", n * f }'
}

# wrk in the background + wait: a signal to this script interrupts the wait (and cleanup kills wrk)
WRK_PID=""
run_wrk() {
  "${PIN_LOAD[@]}" wrk "$@" &
  WRK_PID=$!
  local rc=0
  wait "$WRK_PID" || rc=$?
  WRK_PID=""
  return "$rc"
}

declare -A R_RPS R_P50 R_P99 R_N R_NON2XX R_SOCKERR R_CPU_LOAD R_CPU_PROXY R_US_PER_REQ R_OTHER
ROWS=()
FAILED_2XX=()
DISTURBED=0

# run_case scenario target url lua proxy_pid(or "") connections
run_case() {
  local scen=$1 tgt=$2 url=$3 lua=$4 ppid=$5 conns=$6 key="$1|$2" out
  local t=$THREADS; (( conns < t )) && t=$conns
  note "run: $scen / $tgt ($conns connections, warm-up $WARMUP, measure $DURATION)"
  run_wrk -t"$t" -c"$conns" -d"$WARMUP" -s "$lua" "$url" >"$TMP/warmup.out" 2>&1 \
    || { cat "$TMP/warmup.out" >&2; die "wrk warm-up failed for $key"; }
  local l0 p0 g0 h0 pt0=0 l1 p1 g1 h1 pt1=0 up0 up1 w0 w1
  read -r l0 g0 < <(cpu_sample "$LOAD_CPU")
  read -r p0 h0 < <(cpu_sample "$PROXY_CPU")
  [[ -n $ppid ]] && pt0=$(proc_ticks "$ppid")
  up0=$(proc_ticks "$UP_PID"); w0=$(reaped_ticks)
  out="$TMP/wrk.$scen.$tgt.out"
  run_wrk -t"$t" -c"$conns" -d"$DURATION" --latency -s "$lua" "$url" >"$out" 2>&1 \
    || { cat "$out" >&2; die "wrk failed for $key"; }
  read -r l1 g1 < <(cpu_sample "$LOAD_CPU")
  read -r p1 h1 < <(cpu_sample "$PROXY_CPU")
  [[ -n $ppid ]] && pt1=$(proc_ticks "$ppid")
  up1=$(proc_ticks "$UP_PID"); w1=$(reaped_ticks)

  local rps p50 p99 n non2xx sockerr
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
  p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
  p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
  n=$(awk '/ requests in / { print $1 }' "$out")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out"); non2xx=${non2xx:-0}
  sockerr=$(awk '/Socket errors:/ { gsub(/,/, ""); print "connect " $4 ", read " $6 ", write " $8 ", timeout " $10 }' "$out")
  [[ -n $rps && -n $n ]] || { cat "$out" >&2; die "could not parse wrk output for $key"; }
  R_RPS[$key]=$rps; R_P50[$key]=$p50; R_P99[$key]=$p99; R_N[$key]=$n
  R_NON2XX[$key]=$non2xx; R_SOCKERR[$key]=${sockerr:-none}
  R_CPU_LOAD[$key]=$(awk -v b=$((l1 - l0)) -v g=$((g1 - g0)) 'BEGIN { printf "%.0f", g ? 100 * b / g : 0 }')
  R_CPU_PROXY[$key]=$(awk -v b=$((p1 - p0)) -v g=$((h1 - h0)) 'BEGIN { printf "%.0f", g ? 100 * b / g : 0 }')
  # everything else that ran on the two cores, in % of one core (proc ticks and /proc/stat jiffies
  # are both USER_HZ)
  R_OTHER[$key]=$(awk -v b=$(( (l1 - l0) + (p1 - p0) - (up1 - up0) - (w1 - w0) - (pt1 - pt0) )) \
    -v g=$((g1 - g0)) 'BEGIN { v = g ? 100 * b / g : 0; printf "%.0f", v < 0 ? 0 : v }')
  if [[ -n $ppid ]]; then
    R_US_PER_REQ[$key]=$(awk -v t=$((pt1 - pt0)) -v hz="$CLK_TCK" -v n="$n" 'BEGIN { printf "%.1f", n ? t / hz * 1e6 / n : 0 }')
  else
    R_US_PER_REQ[$key]=""
  fi
  ROWS+=("$key")
  if [[ $non2xx != 0 ]]; then
    FAILED_2XX+=("$key: $non2xx non-2xx responses of $n")
    note "ERROR: $key: $non2xx non-2xx responses of $n"
  fi
  [[ -n $sockerr ]] && note "WARNING: $key: socket errors: $sockerr"
  kill -0 "$TG_PID" 2>/dev/null || { tail -n 30 "$TMP/tollgate/stderr.log" >&2; die "tollgate died (stderr above)"; }
  return 0
}

# ---------------------------------------------------------------- the runs
note "layout: $LAYOUT; ports: upstream $PORT_UP, nginx $PORT_NGX, tollgate $PORT_TG"
run_case non-streaming direct   "$URL_UP/v1/chat/completions"         "$TMP/json.lua" ""        "$CONNECTIONS"
run_case non-streaming nginx    "$URL_NGX/v1/chat/completions"        "$TMP/json.lua" "$NGX_PID" "$CONNECTIONS"
run_case non-streaming tollgate "$URL_TG/v1/chat/completions"         "$TMP/json.lua" "$TG_PID"  "$CONNECTIONS"
run_case streaming     direct   "$URL_UP/stream/v1/chat/completions"  "$TMP/sse.lua"  ""        "$CONNECTIONS"
run_case streaming     nginx    "$URL_NGX/stream/v1/chat/completions" "$TMP/sse.lua"  "$NGX_PID" "$CONNECTIONS"
run_case streaming     tollgate "$URL_TG/v1/chat/completions"         "$TMP/sse.lua"  "$TG_PID"  "$CONNECTIONS"
SCENARIOS=(non-streaming streaming)
if [[ $LATENCY_RUNS == 1 ]]; then
  run_case non-streaming-c1 direct   "$URL_UP/v1/chat/completions"         "$TMP/json.lua" ""        1
  run_case non-streaming-c1 nginx    "$URL_NGX/v1/chat/completions"        "$TMP/json.lua" "$NGX_PID" 1
  run_case non-streaming-c1 tollgate "$URL_TG/v1/chat/completions"         "$TMP/json.lua" "$TG_PID"  1
  run_case streaming-c1     direct   "$URL_UP/stream/v1/chat/completions"  "$TMP/sse.lua"  ""        1
  run_case streaming-c1     nginx    "$URL_NGX/stream/v1/chat/completions" "$TMP/sse.lua"  "$NGX_PID" 1
  run_case streaming-c1     tollgate "$URL_TG/v1/chat/completions"         "$TMP/sse.lua"  "$TG_PID"  1
  SCENARIOS+=(non-streaming-c1 streaming-c1)
fi

# ---------------------------------------------------------------- table
# derived per scenario: throughput %, added p50 of each proxy over direct, ratio, verdicts
declare -A D_TPUT D_ADD_TG D_ADD_NGX D_RATIO D_TPUT_OK D_LAT_OK
for s in "${SCENARIOS[@]}"; do
  read -r D_TPUT[$s] D_ADD_TG[$s] D_ADD_NGX[$s] D_RATIO[$s] D_TPUT_OK[$s] D_LAT_OK[$s] < <(awk \
    -v tg="${R_RPS[$s|tollgate]}" -v ng="${R_RPS[$s|nginx]}" \
    -v pd="${R_P50[$s|direct]}" -v pn="${R_P50[$s|nginx]}" -v pt="${R_P50[$s|tollgate]}" 'BEGIN {
      tput = 100 * tg / ng; at = pt - pd; an = pn - pd
      # nginx adding nothing measurable (<= 1us) leaves the ratio undefined
      if (an > 0.001) { r = sprintf("%.2f", at / an); lok = (at / an <= 2) ? "PASS" : "FAIL" }
      else { r = "n/a"; lok = (at <= 0.001) ? "PASS" : "n/a" }
      printf "%.1f %.3f %.3f %s %s %s\n", tput, at, an, r, (tput >= 70 ? "PASS" : "FAIL"), lok }')
  # at 1 connection throughput is 1 / latency: the throughput goal applies to the loaded runs only
  [[ $s == *-c1 ]] && D_TPUT_OK[$s]="(info)"
done

# ---------------------------------------------------------------- JSON (before the table: a closed
# stdout must not cost the results)
LOADAVG_END=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p "$(dirname "$OUT_JSON")"
{
  printf '{\n  "bench": "gateway_overhead",\n'
  printf '  "timestamp": "%s",\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  printf '  "git_commit": "%s",\n' "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  printf '  "host": {"cpus": %d, "cpu_model": "%s", "kernel": "%s", "background_busy_pct_before": %d, "loadavg_before": "%s", "loadavg_after": "%s"},\n' "$(nproc)" \
    "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" "$(uname -r)" "$BG_BUSY" "$LOADAVG_START" "$LOADAVG_END"
  printf '  "tollgate_binary": {"path": "%s", "mtime": "%s", "sha256_prefix": "%s"},\n' "$TOLLGATE_BIN" "$TG_BUILT" "$TG_SHA"
  printf '  "settings": {"duration": "%s", "warmup": "%s", "connections": %d, "wrk_threads": %d, "layout": "%s", "tollgate_io_threads": 1, "nginx_workers": 1},\n' \
    "$DURATION" "$WARMUP" "$CONNECTIONS" "$THREADS" "$LAYOUT"
  printf '  "goals": {"tollgate_throughput_pct_of_nginx_min": 70, "tollgate_added_p50_ratio_to_nginx_max": 2.0},\n'
  printf '  "runs": [\n'
  sep=""
  for key in "${ROWS[@]}"; do
    printf '%s    {"scenario": "%s", "target": "%s", "requests": %s, "rps": %s, "p50_ms": %s, "p99_ms": %s, "non_2xx": %s, "socket_errors": "%s", "load_cpu_pct": %s, "proxy_cpu_pct": %s, "other_cpu_pct": %s, "proxy_cpu_us_per_req": %s}' \
      "$sep" "${key%%|*}" "${key##*|}" "${R_N[$key]}" "${R_RPS[$key]}" "${R_P50[$key]}" "${R_P99[$key]}" \
      "${R_NON2XX[$key]}" "${R_SOCKERR[$key]}" "${R_CPU_LOAD[$key]}" "${R_CPU_PROXY[$key]}" "${R_OTHER[$key]}" "${R_US_PER_REQ[$key]:-null}"
    sep=$',\n'
  done
  printf '\n  ],\n  "derived": {\n'
  sep=""
  for s in "${SCENARIOS[@]}"; do
    ratio=${D_RATIO[$s]}; [[ $ratio == n/a ]] && ratio=null
    printf '%s    "%s": {"tollgate_throughput_pct_of_nginx": %s, "throughput_goal": "%s", "tollgate_added_p50_ms": %s, "nginx_added_p50_ms": %s, "added_p50_ratio": %s, "latency_goal": "%s"}' \
      "$sep" "$s" "${D_TPUT[$s]}" "${D_TPUT_OK[$s]}" "${D_ADD_TG[$s]}" "${D_ADD_NGX[$s]}" "$ratio" "${D_LAT_OK[$s]}"
    sep=$',\n'
  done
  printf '\n  },\n  "non_2xx_failures": %d\n}\n' "${#FAILED_2XX[@]}"
} >"$OUT_JSON"
echo
echo "gateway_overhead: wrk -t$THREADS -c$CONNECTIONS -d$DURATION (c1 rows: 1 connection), warm-up $WARMUP; $LAYOUT"
echo "background CPU busy before start: ${BG_BUSY}%; load average before: $LOADAVG_START, after: $LOADAVG_END; tollgate binary built $TG_BUILT, sha256 $TG_SHA..."
echo "tollgate: $("$TG" --version 2>/dev/null | head -n1), io_threads 1; nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //'), 1 worker; $(nproc) cpus: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
echo
printf '%-17s %-9s %10s %9s %9s %6s %6s %6s %12s\n' scenario target req/s "p50 ms" "p99 ms" load% proxy% other% "proxy us/req"
printf '%-17s %-9s %10s %9s %9s %6s %6s %6s %12s\n' ----------------- --------- ---------- --------- --------- ------ ------ ------ ------------
for key in "${ROWS[@]}"; do
  flag=""; (( R_OTHER[$key] > 10 )) && { flag=" *"; DISTURBED=1; }
  printf '%-17s %-9s %10.0f %9.3f %9.3f %6s %6s %6s %12s%s\n' "${key%%|*}" "${key##*|}" "${R_RPS[$key]}" \
    "${R_P50[$key]}" "${R_P99[$key]}" "${R_CPU_LOAD[$key]}" "${R_CPU_PROXY[$key]}" "${R_OTHER[$key]}" \
    "${R_US_PER_REQ[$key]:--}" "$flag"
done
(( DISTURBED )) && echo "* other jobs used more than 10% of a core during this run: rerun it on a quiet machine"
echo
echo "load% / proxy%: busy share of core $LOAD_CPU (upstream+wrk) / core $PROXY_CPU (proxy) during the run; other%: CPU"
echo "used by anything but the benchmark's own processes (other jobs, kernel threads), in % of one core:"
echo "well above a few % means the figures are disturbed; proxy us/req: the proxy's CPU time per request."
echo
for s in "${SCENARIOS[@]}"; do
  printf '%-17s tollgate throughput = %5.1f%% of nginx proxy        (goal >= 70%%)   %s\n' "$s" "${D_TPUT[$s]}" "${D_TPUT_OK[$s]}"
  printf '%-17s added p50 over direct: tollgate %+.3f ms, nginx %+.3f ms, ratio %s (goal <= 2.00) %s\n' "$s" \
    "${D_ADD_TG[$s]}" "${D_ADD_NGX[$s]}" "${D_RATIO[$s]}" "${D_LAT_OK[$s]}"
done

echo
echo "JSON: $OUT_JSON"

if (( ${#FAILED_2XX[@]} > 0 )); then
  echo "---- tollgate stderr (last 30 lines):" >&2
  tail -n 30 "$TMP/tollgate/stderr.log" >&2
  die "non-2xx responses: ${FAILED_2XX[*]}"
fi

# ---------------------------------------------------------------- optional profile
if [[ $PROFILE == 1 ]]; then
  echo
  if ! command -v perf >/dev/null; then
    note "perf missing: apt-get install -y linux-perf"
    { apt-get install -y -q linux-perf >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q linux-perf >/dev/null 2>&1; }; } || true
  fi
  if ! command -v perf >/dev/null; then
    echo "PROFILE: perf is not available and could not be installed; skipping the profile"
  elif ! perf record -q -o "$TMP/probe.data" -- true >"$TMP/perf-probe.log" 2>&1; then
    echo "PROFILE: perf is not permitted here ($(head -n1 "$TMP/perf-probe.log")); skipping the profile"
  else
    note "profile: perf record --call-graph $PERF_CALLGRAPH on tollgate during a non-streaming run"
    run_wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" -s "$TMP/json.lua" "$URL_TG/v1/chat/completions" >/dev/null 2>&1 || true
    "${PIN_LOAD[@]}" perf record -q --call-graph "$PERF_CALLGRAPH" -F 999 -p "$TG_PID" -o "$TMP/perf.data" \
      >"$TMP/perf-record.log" 2>&1 &
    PERF_PID=$!
    sleep 0.5
    run_wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$TMP/json.lua" \
      "$URL_TG/v1/chat/completions" >"$TMP/wrk.profile.out" 2>&1 || true
    kill -INT "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
    PERF_PID=""
    if [[ -s $TMP/perf.data ]]; then
      echo "PROFILE (tollgate, non-streaming, under perf: $(awk '/^Requests\/sec:/ { print $2 }' "$TMP/wrk.profile.out") req/s):"
      echo "flat profile, self time (perf report --stdio --no-children -g none, >= 0.3%, top 60):"
      # C++ template names run to thousands of characters: cut lines to 200
      perf report -i "$TMP/perf.data" --stdio --no-children -g none --percent-limit 0.3 2>/dev/null \
        | grep -v -e '^$' -e '^#' | cut -c1-200 | head -60
      mkdir -p "$(dirname "$PERF_TXT")"
      perf report -i "$TMP/perf.data" --stdio --children --percent-limit 3 -g graph,5 2>/dev/null \
        | cut -c1-300 | head -n 800 >"$PERF_TXT" || true
      echo "call-graph report (children >= 3%, chains >= 5%): $PERF_TXT"
    else
      echo "PROFILE: perf record produced no data: $(tail -n 3 "$TMP/perf-record.log")"
    fi
  fi
fi
