#!/usr/bin/env bash
# Scores ../shared/data/routing_dev.jsonl with the complexity scorer and prints route_eval.py's
# table (scorer beside the random, prompt-length and oracle routers), then the scorer's cost.
#   scripts/route_eval.sh [COMPLEXITY_SCORE_BINARY] [MODEL.json]
# Held-out (grouped-by-subject) numbers come from the trainer instead:
#   python3 scripts/train_complexity.py build/bench/complexity_features --cv
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$here/build/bench/complexity_score}
model=${2:-$here/policies/complexity_model.json}
shared=${TOLLGATE_SHARED_DIR:-$here/../shared}
if [ ! -f "$shared/data/routing_dev.jsonl" ] || [ ! -f "$shared/tools/route_eval.py" ]; then
  echo "route_eval: shared data not found at $shared (set TOLLGATE_SHARED_DIR)" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" "$model" <"$shared/data/routing_dev.jsonl" >"$tmp/scores.jsonl"
python3 "$shared/tools/route_eval.py" "$shared/data/routing_dev.jsonl" "$tmp/scores.jsonl"
"$bin" "$model" --bench
