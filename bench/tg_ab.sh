#!/usr/bin/env bash
# tg_ab.sh: generation speed of the local engine and llama.cpp on ONE GGUF file, in alternating
# pairs (ours, llama.cpp, ours, llama.cpp, ...), for rows that engine_vs_llamacpp.sh cannot settle:
# a memory-bound model (e.g. an F32 0.5B, 1.9 GB read per token) on a shared machine whose memory
# bandwidth drifts by tens of percent from minute to minute. engine_vs_llamacpp.sh runs all of our
# repetitions and then all of llama-bench's, so a drift between the two halves shows up as a ratio;
# here each pair runs back to back and the ratio of each pair is reported, with their median.
#
#   LLAMA_BENCH=/path/to/llama-bench ./bench/tg_ab.sh MODEL.gguf [PAIRS]
#
# Per pair: `engine_bench MODEL --threads T --pp 16 --tg TG --seqs 1 --reps 2` (its forward-pass
# tgTG) and `llama-bench -m MODEL -t T -p 0 -n TG -r 2`. Environment: LLAMA_BENCH (required),
# ENGINE_BENCH (build/bench/engine_bench), THREADS (2), TG (128), PAIRS (6, or the 2nd argument),
# OUT_JSON (bench/results/tg_ab_<model>.json). Output: one line per pair, then the median ratio.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LLAMA_BENCH=${LLAMA_BENCH:?set LLAMA_BENCH to a llama-bench binary (see bench/README.md)}
ENGINE_BENCH=${ENGINE_BENCH:-$ROOT/build/bench/engine_bench}
MODEL=${1:?usage: tg_ab.sh MODEL.gguf [PAIRS]}
PAIRS=${2:-${PAIRS:-6}}
THREADS=${THREADS:-2}
TG=${TG:-128}
OUT_JSON=${OUT_JSON:-$ROOT/bench/results/tg_ab_$(basename "$MODEL" .gguf).json}
for bin in "$LLAMA_BENCH" "$ENGINE_BENCH"; do
  [[ -x $bin ]] || { echo "tg_ab: $bin is not an executable" >&2; exit 1; }
done
[[ -f $MODEL ]] || { echo "tg_ab: no such model $MODEL" >&2; exit 1; }

TMP=$(mktemp -d /tmp/tg_ab.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
for p in $(seq 1 "$PAIRS"); do
  "$ENGINE_BENCH" "$MODEL" --threads "$THREADS" --pp 16 --tg "$TG" --seqs 1 --reps 2 --json "$TMP/$p.ours.json" >/dev/null
  "$LLAMA_BENCH" -m "$MODEL" -t "$THREADS" -p 0 -n "$TG" -r 2 -o json > "$TMP/$p.llama.json" 2> "$TMP/$p.llama.err" ||
    { echo "tg_ab: llama-bench failed:" >&2; tail -5 "$TMP/$p.llama.err" >&2; exit 1; }
  echo "pair $p/$PAIRS done" >&2
done

python3 - "$TMP" "$PAIRS" "$MODEL" "$OUT_JSON" "$TG" <<'EOF'
import datetime, json, os, statistics, sys
tmp, pairs, model, out_json, tg = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
rows = []
for p in range(1, pairs + 1):
    ours = json.load(open(f"{tmp}/{p}.ours.json"))
    llama = json.load(open(f"{tmp}/{p}.llama.json"))
    o = next(t for t in ours["tests"] if t["test"] == f"tg{tg}" and t["path"] == "forward")["tokens_per_s"]
    l = next(r for r in llama if r["n_gen"] > 0)["avg_ts"]
    rows.append({"pair": p, "ours_tps": o, "llama_tps": l, "ratio": o / l})
print(f"{os.path.basename(model)} tg{tg}, {pairs} alternating pairs (ours, then llama.cpp)")
print(f"{'pair':>4} {'ours tok/s':>11} {'llama.cpp tok/s':>16} {'ratio':>6}")
for r in rows:
    print(f"{r['pair']:>4} {r['ours_tps']:>11.1f} {r['llama_tps']:>16.1f} {r['ratio']:>6.2f}")
median = statistics.median(r["ratio"] for r in rows)
wins = sum(r["ratio"] >= 1 for r in rows)
print(f"median ratio {median:.2f}; ours faster in {wins} of {pairs} pairs")
os.makedirs(os.path.dirname(out_json) or ".", exist_ok=True)
json.dump({"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "model": model, "tg": tg, "pairs": rows, "median_ratio": median, "ours_faster_pairs": wins},
          open(out_json, "w"), indent=1)
print(f"JSON: {out_json}")
EOF
