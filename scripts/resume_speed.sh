#!/usr/bin/env bash
# Does a resumed run train as fast as a fresh one? Trains the same 3-epoch CPU run twice on random images: once
# straight through, once stopped with SIGTERM after its first epoch's checkpoint and resumed. Prints each epoch's
# seconds from metrics.csv, the ratio resumed/fresh for the epochs the resumed process trained, each process's CPU and
# wall time, and whether the two runs end with identical weights. Usage: bash scripts/resume_speed.sh [N_PER_CLASS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
python -c "from era_s10.data import make_cifar_folder; make_cifar_folder('$D/data', n_per_class=${1:-100})"
ARGS=(--data "$D/data" --epochs 3 --bs 64 --lr-min 1e-4 --lr-max 2e-3 --seed 3 --device cpu --no-plots)
/usr/bin/time -f "fresh process: user+sys %U+%S s, wall %e s" era-s10 train "${ARGS[@]}" --out "$D/fresh" > "$D/fresh.log" 2> "$D/fresh.err" || { cat "$D/fresh.err"; exit 1; }
grep 'fresh process' "$D/fresh.err"
era-s10 train "${ARGS[@]}" --out "$D/res" > /dev/null 2> "$D/res1.err" & P=$!
while [ ! -f "$D/res/checkpoint.pth" ]; do sleep 0.2; kill -0 $P 2>/dev/null || { cat "$D/res1.err"; exit 1; }; done
kill -TERM $P; wait $P || true
tail -1 "$D/res1.err"
/usr/bin/time -f "resumed process: user+sys %U+%S s, wall %e s" era-s10 train --resume "$D/res" > "$D/res2.log" 2> "$D/res2.err" || { cat "$D/res2.err"; exit 1; }
grep 'resumed process' "$D/res2.err"
python - "$D" <<'PY'
import csv, sys, torch
from pathlib import Path
d = Path(sys.argv[1])
rows = lambda r: {int(o['epoch']): float(o['seconds']) for o in csv.DictReader(open(d/r/'metrics.csv'))}
f, r = rows('fresh'), rows('res')
import json; s = json.loads((d/'res'/'summary.json').read_text())
print('epoch  fresh s  resumed-run s  (the resumed process trained epochs', list(range(s['resumed_at_epoch'], 3)), ')')
for e in sorted(f): print(f'{e:5d}  {f[e]:7.1f}  {r[e]:13.1f}')
res = [e for e in range(s['resumed_at_epoch'], 3)]
print(f"resumed/fresh, epochs {res}: {sum(r[e] for e in res)/sum(f[e] for e in res):.3f}x")
a, b = torch.load(d/'fresh'/'model.pth', weights_only=True), torch.load(d/'res'/'model.pth', weights_only=True)
print('identical final weights:', all(torch.equal(a[k], b[k]) for k in a))
PY
