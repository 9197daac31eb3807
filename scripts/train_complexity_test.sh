#!/usr/bin/env bash
# Test of scripts/train_complexity.py on labelled traffic of the user's own shape (judge scores,
# groups named by another field): it must learn a cue that the labels carry, write a model that the
# scorer loads, and reject a record without labels naming the file and line.
#   scripts/train_complexity_test.sh COMPLEXITY_FEATURES_BIN COMPLEXITY_SCORE_BIN
set -euo pipefail
features=${1:?usage: train_complexity_test.sh COMPLEXITY_FEATURES_BIN COMPLEXITY_SCORE_BIN}
score=${2:?usage: train_complexity_test.sh COMPLEXITY_FEATURES_BIN COMPLEXITY_SCORE_BIN}
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 4 apps x 60 requests of one length; the strong target's judge score is higher exactly when the
# request asks for a proof (the weak one scores 0.9 on every other request, 0.2 on proofs).
python3 - "$tmp/traffic.jsonl" <<'PY'
import json, random, sys
rng = random.Random(5)
topics = ['primes', 'graphs', 'groups', 'series', 'tables', 'queues']
with open(sys.argv[1], 'w') as f:
    for app in ('search', 'billing', 'support', 'docs'):
        for i in range(60):
            proof = rng.random() < 0.4
            verb = 'prove' if proof else 'state'
            text = f'Please {verb} the claim {i:03d} about {rng.choice(topics)} for the {app} team.'
            f.write(json.dumps({'id': f'{app}-{i}', 'app': app,
                                'messages': [{'role': 'user', 'content': text}],
                                'weak_score': 0.2 if proof else 0.9,
                                'strong_score': 0.95 if proof else 0.9}) + '\n')
PY
python3 "$here/scripts/train_complexity.py" "$features" --data "$tmp/traffic.jsonl" --group-key app \
  --length-prior 0 --out "$tmp/model.json"
python3 "$here/scripts/train_complexity.py" "$features" --data "$tmp/traffic.jsonl" --group-key app \
  --length-prior 0 --halves 2 | tee "$tmp/halves.txt"
grep -q 'mean held-out APGR' "$tmp/halves.txt"
"$score" "$tmp/model.json" <"$tmp/traffic.jsonl" >"$tmp/scores.jsonl"
python3 - "$tmp/traffic.jsonl" "$tmp/scores.jsonl" "$tmp/model.json" <<'PY'
import json, sys
recs = {}
for l in open(sys.argv[1]):
    r = json.loads(l)
    recs[r['id']] = r
scores = {}
for l in open(sys.argv[2]):
    o = json.loads(l)
    scores[o['id']] = o['complexity']
assert set(scores) == set(recs), 'every request scored'
proofs = [scores[i] for i, r in recs.items() if 'prove' in r['messages'][0]['content']]
others = [scores[i] for i, r in recs.items() if 'prove' not in r['messages'][0]['content']]
# Every proof request must rank above every other request: the cue carries the whole label.
assert min(proofs) > max(others), f'proofs {min(proofs):.4f}.. vs others ..{max(others):.4f}'
model = json.load(open(sys.argv[3]))
assert model['trained_on'].startswith('traffic.jsonl'), model['trained_on']
assert model['config']['length_prior'] == 0
print(f'ok: {len(proofs)} proof requests all above {len(others)} others')
PY

# A record without labels: a clear error naming the file and line, non-zero exit.
head -3 "$tmp/traffic.jsonl" >"$tmp/bad.jsonl"
echo '{"id":"x","messages":[{"role":"user","content":"hi"}]}' >>"$tmp/bad.jsonl"
if python3 "$here/scripts/train_complexity.py" "$features" --data "$tmp/bad.jsonl" --out "$tmp/bad_model.json" 2>"$tmp/err.txt"; then
  echo "FAIL: unlabelled record accepted" >&2; exit 1
fi
grep -q "bad.jsonl:4: a labelled record needs" "$tmp/err.txt" || { cat "$tmp/err.txt" >&2; exit 1; }
[ ! -e "$tmp/bad_model.json" ] || { echo "FAIL: a model was written from bad data" >&2; exit 1; }
echo "train_complexity: all checks passed"
