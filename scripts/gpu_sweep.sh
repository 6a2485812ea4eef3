#!/usr/bin/env bash
# An accuracy sweep in one GPU call (each GPU machine starts bare, ../shared/gpu/README.md): the default experiment
# over 3 seeds once per set of `era-s10 train` options, each set given as one argument, printing each set's LRs and
# validation accuracies (plain and with flip TTA) as it ends. Each set gets at most PER_S seconds (default 100),
# so a slow one cannot take the others' results with it.
# Usage, on the GPU machine after `source .gpu/setup.sh`:
#   bash scripts/gpu_sweep.sh DATA OUT_DIR "--wd 1.0" "--label-smoothing 0.1" ...
#   SEEDS=0,1,2   the seeds of each set
set -uo pipefail
data=${1:?usage: gpu_sweep.sh DATA OUT_DIR OPTIONS...}; out=${2:?usage: gpu_sweep.sh DATA OUT_DIR OPTIONS...}; shift 2
mkdir -p "$out"; runs=$(mktemp -d); i=0
for opts in "$@"; do
  i=$((i + 1)); echo "== set $i: era-s10 train --seeds ${SEEDS:-0,1,2} $opts (at ${SECONDS} s)"
  # shellcheck disable=SC2086 # opts is a list of options
  timeout -s TERM -k 10 "${PER_S:-100}" era-s10 train --data "$data" --seeds "${SEEDS:-0,1,2}" $opts --no-plots \
    --out "$runs/set-$i" > "$out/set-$i.log" 2>&1
  echo "== rc=$? at ${SECONDS} s"
  python3 - "$runs/set-$i/seeds.json" "$opts" <<'PY' || echo "   (no seeds.json)"
import json, sys
d = json.load(open(sys.argv[1])); pct = lambda v: ', '.join(f'{x:.2%}' for x in v['values']) + f" (mean {v['mean']:.2%})"
print(f'   options {sys.argv[2]!r}; LRMIN/LRMAX per seed:', ', '.join(f'{a:.2e}/{b:.2e}' for a, b in d['lrs']))
print('   valid accuracy:', pct(d['valid_accuracy']), '| with flip TTA:', pct(d['valid_accuracy_tta']))
PY
done
tar czf "$out/runs.tgz" --exclude='*.pth' --exclude='*.pkl' -C "$runs" . # the summaries, configs and histories
