#!/usr/bin/env bash
# Measures the privacy detectors on ../shared/data/pii_dev.json with ../shared/tools/pii_eval.py and
# fails unless the issue's goals hold: precision and recall >= 0.95 overall (ALL) and at request
# level, and >= 0.90 for every type with at least 20 entities.
#   scripts/pii_eval.sh PRIVACY_SCAN_BINARY
set -euo pipefail
scan=${1:?usage: pii_eval.sh PRIVACY_SCAN_BINARY}
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${TOLLGATE_SHARED_DIR:-$here/../shared}
if [ ! -f "$shared/data/pii_dev.json" ] || [ ! -f "$shared/tools/pii_eval.py" ]; then
  echo "pii_eval: shared data not found at $shared (set TOLLGATE_SHARED_DIR)" >&2
  exit 1  # never a silent skip: the quality goal is part of the suite
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 "$shared/tools/pii_eval.py" --to-requests "$shared/data/pii_dev.json" >"$tmp/requests.jsonl"
"$scan" <"$tmp/requests.jsonl" >"$tmp/detections.jsonl"
python3 "$shared/tools/pii_eval.py" "$shared/data/pii_dev.json" "$tmp/detections.jsonl"
python3 "$shared/tools/pii_eval.py" "$shared/data/pii_dev.json" "$tmp/detections.jsonl" --json >"$tmp/out.json"
python3 - "$tmp/out.json" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))
bad = []
for k in ('ALL', 'requests'):
    for m in ('precision', 'recall'):
        if (o[k][m] or 0) < 0.95: bad.append(f'{k} {m} {o[k][m]}')
for t, v in o.items():
    if t in ('ALL', 'requests'): continue
    if v['tp'] + v['fn'] >= 20:
        for m in ('precision', 'recall'):
            if (v[m] or 0) < 0.90: bad.append(f'{t} {m} {v[m]}')
if bad:
    print('pii_eval: below goal:', '; '.join(bad)); sys.exit(1)
print('pii_eval: goals met')
PY
