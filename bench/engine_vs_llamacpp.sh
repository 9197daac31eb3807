#!/usr/bin/env bash
# engine_vs_llamacpp.sh: the local engine (bench/engine_bench) and llama.cpp (llama-bench) side by
# side on the SAME GGUF files, same thread count, same test sizes, one after the other per model.
#
#   LLAMA_BENCH=/tmp/llamacpp/build/bin/llama-bench ./bench/engine_vs_llamacpp.sh [MODEL.gguf[:PP] ...]
#
# Without arguments the default model set is used, written into MODELS_DIR when missing:
#   - stories15M (STORIES, the llama2.c checkpoint converted to GGUF F32) and its `tollgate quantize`
#     versions in every type of TYPES, at PP=128 (its context is 256 tokens; the issue's llama-bench
#     figures are pp128 / tg128);
#   - random-weight models of real shapes (`tollgate generate-model --preset P --type T`) for every
#     preset of PRESETS and type of TYPES, at PP.
# A model argument may end in :N to use pp N for it.
#
# Per model: ours = engine_bench --threads THREADS --pp PP --tg TG --seqs SEQS --reps REPS (forward
# pass pp / tg on one sequence, plus the engine with SEQS concurrent requests); llama.cpp =
# llama-bench -t THREADS -p PP -n TG -r REPS -o json (its own warm-up, mean and stddev). Ratio =
# ours / llama.cpp (> 1: we are faster). No GPU is used by either side.
#
# Measurement hygiene (a shared 2-core machine): before each run the script waits until the 1-minute
# load average is below MAX_LOAD and the CPU busy share over 2 s is below MAX_BUSY %, for at most
# LOAD_WAIT_S seconds in all per run (then it runs anyway and the row is starred as disturbed). The
# load and busy share seen before each run are printed and kept in the JSON.
#
# Output: one table on stdout; JSON at OUT_JSON (every engine_bench report and llama-bench record).
#
# Environment: LLAMA_BENCH (required), ENGINE_BENCH (build/bench/engine_bench), TOLLGATE_BIN
#   (build/tollgate), MODELS_DIR (/tmp/tollgate-bench-models), STORIES
#   (~/.cache/tollgate/models/stories15M.F32.gguf), PRESETS ("smollm2-135m qwen2.5-0.5b"),
#   TYPES ("F32 F16 BF16 Q8_0 Q4_0 Q4_K_M Q6_K"), THREADS (2), PP (512), TG (128), SEQS (8),
#   REPS (3), MAX_LOAD (1.5), MAX_BUSY (25), LOAD_WAIT_S (1200), OUT_JSON
#   (bench/results/engine_vs_llamacpp.json), LLAMA_COMMIT (recorded in the JSON: llama-bench built
#   from a source archive reports its commit as "unknown"), KEEP_TMP=1 (keep the raw outputs).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LLAMA_BENCH=${LLAMA_BENCH:?set LLAMA_BENCH to a llama-bench binary (see bench/README.md)}
ENGINE_BENCH=${ENGINE_BENCH:-$ROOT/build/bench/engine_bench}
TOLLGATE_BIN=${TOLLGATE_BIN:-$ROOT/build/tollgate}
MODELS_DIR=${MODELS_DIR:-/tmp/tollgate-bench-models}
STORIES=${STORIES:-$HOME/.cache/tollgate/models/stories15M.F32.gguf}
PRESETS=${PRESETS:-smollm2-135m qwen2.5-0.5b}
TYPES=${TYPES:-F32 F16 BF16 Q8_0 Q4_0 Q4_K_M Q6_K}
THREADS=${THREADS:-2}
PP=${PP:-512}
TG=${TG:-128}
SEQS=${SEQS:-8}
REPS=${REPS:-3}
MAX_LOAD=${MAX_LOAD:-1.5}
MAX_BUSY=${MAX_BUSY:-25}
LOAD_WAIT_S=${LOAD_WAIT_S:-1200}
OUT_JSON=${OUT_JSON:-$ROOT/bench/results/engine_vs_llamacpp.json}

for bin in "$LLAMA_BENCH" "$ENGINE_BENCH"; do
  [[ -x $bin ]] || { echo "engine_vs_llamacpp: $bin is not an executable" >&2; exit 1; }
done
command -v python3 >/dev/null || { echo "engine_vs_llamacpp: python3 is needed" >&2; exit 1; }

TMP=$(mktemp -d /tmp/engine_vs_llamacpp.XXXXXX)
cleanup() { [[ ${KEEP_TMP:-0} == 1 ]] && echo "raw outputs kept in $TMP" >&2 || rm -rf "$TMP"; }
trap cleanup EXIT

# ---- models ----
models=()
if (($# > 0)); then
  models=("$@")
else
  [[ -x $TOLLGATE_BIN ]] || { echo "engine_vs_llamacpp: $TOLLGATE_BIN is not an executable" >&2; exit 1; }
  mkdir -p "$MODELS_DIR"
  for t in $TYPES; do
    f=$MODELS_DIR/stories15M.$t.gguf
    if [[ $t == F32 ]]; then
      f=$STORIES
    elif [[ ! -f $f ]]; then
      "$TOLLGATE_BIN" quantize "$STORIES" "$f" "$t" >&2
    fi
    models+=("$f:128")
  done
  for p in $PRESETS; do
    for t in $TYPES; do
      f=$MODELS_DIR/$p.$t.gguf
      [[ -f $f ]] || "$TOLLGATE_BIN" generate-model --preset "$p" --type "$t" --out "$f" >&2
      models+=("$f")
    done
  done
fi

# ---- quiet-machine gate ----
# CPU busy % over 2 s (all cores, from /proc/stat).
busy_pct() {
  local a b
  read -r -a a < <(head -1 /proc/stat)
  sleep 2
  read -r -a b < <(head -1 /proc/stat)
  local idle=$(((b[4] + b[5]) - (a[4] + a[5]))) total=0 i
  for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
  echo $((total > 0 ? 100 * (total - idle) / total : 0))
}
# Waits for a quiet machine; prints "load busy quiet" (quiet: true/false).
wait_quiet() {
  local start=$SECONDS load busy
  while :; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    busy=$(busy_pct)
    if python3 -c "import sys; sys.exit(0 if $load < $MAX_LOAD and $busy < $MAX_BUSY else 1)"; then
      echo "$load $busy true"
      return
    fi
    if ((SECONDS - start >= LOAD_WAIT_S)); then
      echo "$load $busy false"
      return
    fi
    sleep 10
  done
}

# ---- runs ----
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; simd flags:" \
  "$(grep -o -w 'avx2\|avx512f\|avx512bw\|avx512_vnni\|avx512_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')" >&2
echo "threads $THREADS, tg $TG, seqs $SEQS, reps $REPS; no GPU" >&2
i=0
for spec in "${models[@]}"; do
  model=$spec pp=$PP
  if [[ $spec =~ ^(.*):([0-9]+)$ ]]; then model=${BASH_REMATCH[1]} pp=${BASH_REMATCH[2]}; fi
  [[ -f $model ]] || { echo "engine_vs_llamacpp: no such model $model" >&2; exit 1; }
  i=$((i + 1))
  echo "[$i/${#models[@]}] $(basename "$model") pp$pp" >&2
  read -r load busy quiet < <(wait_quiet)
  echo "  ours:      load $load, busy $busy%" >&2
  echo "$load $busy $quiet" > "$TMP/$i.ours.load"
  "$ENGINE_BENCH" "$model" --threads "$THREADS" --pp "$pp" --tg "$TG" --seqs "$SEQS" --reps "$REPS" \
    --json "$TMP/$i.ours.json" > "$TMP/$i.ours.txt"
  read -r load busy quiet < <(wait_quiet)
  echo "  llama.cpp: load $load, busy $busy%" >&2
  echo "$load $busy $quiet" > "$TMP/$i.llama.load"
  "$LLAMA_BENCH" -m "$model" -t "$THREADS" -p "$pp" -n "$TG" -r "$REPS" -o json \
    > "$TMP/$i.llama.json" 2> "$TMP/$i.llama.err" ||
    { echo "llama-bench failed on $model:" >&2; tail -5 "$TMP/$i.llama.err" >&2; exit 1; }
  echo "$model" > "$TMP/$i.model"
done

# ---- table and JSON ----
python3 - "$TMP" "$i" "$OUT_JSON" "$LLAMA_BENCH" "$THREADS" "${LLAMA_COMMIT:-}" <<'EOF'
import datetime, json, os, subprocess, sys

tmp, n, out_json, llama_bench, threads, llama_commit = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]

def load_file(path):
    load, busy, quiet = open(path).read().split()
    return {"load_1m": float(load), "busy_pct": int(busy), "quiet": quiet == "true"}

rows, records = [], []
for k in range(1, n + 1):
    model = open(f"{tmp}/{k}.model").read().strip()
    ours = json.load(open(f"{tmp}/{k}.ours.json"))
    llama = json.load(open(f"{tmp}/{k}.llama.json"))
    lo, ll = load_file(f"{tmp}/{k}.ours.load"), load_file(f"{tmp}/{k}.llama.load")
    pp = next(x for x in ours["tests"] if x["test"].startswith("pp") and x["sequences"] == 1)
    tg = next(x for x in ours["tests"] if x["test"].startswith("tg") and x["path"] == "forward")
    tg_engine = next(x for x in ours["tests"] if x["test"].startswith("tg") and x["path"] == "engine" and x["sequences"] == 1)
    batched = {x["test"][:2]: x for x in ours["tests"] if x["sequences"] > 1}
    lpp = next(x for x in llama if x["n_prompt"] > 0 and x["n_gen"] == 0)
    ltg = next(x for x in llama if x["n_gen"] > 0 and x["n_prompt"] == 0)
    rows.append({
        "model": os.path.basename(model), "type": ours["file_type"], "params_m": ours["n_params"] / 1e6,
        "pp": pp["test"], "tg": tg["test"],
        "ours_pp": pp["tokens_per_s"], "ours_pp_sd": pp["stddev"],
        "llama_pp": lpp["avg_ts"], "llama_pp_sd": lpp["stddev_ts"],
        "ours_tg": tg["tokens_per_s"], "ours_tg_sd": tg["stddev"],
        "llama_tg": ltg["avg_ts"], "llama_tg_sd": ltg["stddev_ts"],
        "engine_tg1": tg_engine["tokens_per_s"],
        "engine_ppN": batched["pp"]["tokens_per_s"] if "pp" in batched else None,
        "engine_tgN": batched["tg"]["tokens_per_s"] if "tg" in batched else None,
        "seqs": batched["tg"]["sequences"] if "tg" in batched else 0,
        "rss_mib": max(ours["peak_rss_bytes"].values()) / 2**20,
        "weights_mib": ours["weight_bytes"] / 2**20,
        "load_ours": lo, "load_llama": ll,
    })
    records.append({"model": model, "engine_bench": ours, "llama_bench": llama,
                    "before_ours": lo, "before_llama": ll})

def f(v):
    return "-" if v is None else f"{v:,.1f}"

print(f"{'model':<30} {'test':<7} {'ours tok/s':>16} {'llama.cpp tok/s':>16} {'ratio':>6}  {'load ours/llama':<16}")
for r in rows:
    star = "" if r["load_ours"]["quiet"] and r["load_llama"]["quiet"] else " *"
    loads = f"{r['load_ours']['load_1m']:.2f}/{r['load_llama']['load_1m']:.2f}{star}"
    for kind in ("pp", "tg"):
        o, osd, l, lsd = r[f"ours_{kind}"], r[f"ours_{kind}_sd"], r[f"llama_{kind}"], r[f"llama_{kind}_sd"]
        print(f"{r['model']:<30} {r[kind]:<7} {o:>9,.1f} ±{osd:>5.1f} {l:>9,.1f} ±{lsd:>5.1f} {o / l:>6.2f}  {loads}")
print()
print(f"{'model':<30} {'engine tg x1':>12} {'engine pp xN':>12} {'engine tg xN':>12} {'weights MiB':>11} {'peak RSS MiB':>12}")
for r in rows:
    print(f"{r['model']:<30} {f(r['engine_tg1']):>12} {f(r['engine_ppN']):>12} {f(r['engine_tgN']):>12} "
          f"{r['weights_mib']:>11.1f} {r['rss_mib']:>12.1f}")
print("(* : the machine was not quiet before a run; N =", rows[0]["seqs"] if rows else 0, "concurrent requests)")

llama_info = records[0]["llama_bench"][0] if records else {}
doc = {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "cpu": subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True, text=True).stdout.strip(),
    "threads": threads, "gpu": False,
    "llama_bench": {"binary": llama_bench, "build_commit": llama_commit or llama_info.get("build_commit"),
                    "cpu_info": llama_info.get("cpu_info"), "backends": llama_info.get("backends")},
    "summary": rows, "models": records,
}
os.makedirs(os.path.dirname(out_json) or ".", exist_ok=True)
with open(out_json, "w") as fh:
    json.dump(doc, fh, indent=2)
    fh.write("\n")
print("JSON:", out_json, file=sys.stderr)
EOF
