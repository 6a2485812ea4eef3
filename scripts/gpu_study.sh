#!/usr/bin/env bash
# The accuracy study (nbs/26_ablations.ipynb: its variants, rules and results) in one call on a lent GPU:
#   source .gpu/setup.sh && bash scripts/gpu_study.sh .gpu/data/cifar10-train-jpg.tgz $OUT
# 1. the ablation: each variant over seeds 0-4 (`era-s10 sweep --variant`, seed by seed), seeds 0, 1 and 2 in timed
#    parts on 1, 2 and 4 workers, which give the trials per minute of each;
# 2. the variants that beat the defaults by KEEP_Z (2) standard errors, together, over seeds 5-9 beside the defaults.
# OUT gets study.tgz (the study and each trial's small files, no weights), the summaries and workers.tsv. A call
# that reaches DEADLINE_S (520 s) stops its sweep cleanly; the next, with STUDY_TGZ=that study.tgz, finishes the rest.
set -euo pipefail
data=$1 out=$2 dir=${STUDY_DIR:-/tmp/era-s10-study}
read -ra train <<< "${TRAIN_ARGS:-}"          # options for every trial, for a rehearsal on the CPU
phases=${PHASES:-"1:8 2:8 4:8"}              # WORKERS:TRIALS of each timed part
workers=${WORKERS:-4} seeds=${SEEDS:-0,1,2,3,4} new_seeds=${NEW_SEEDS:-5,6,7,8,9}
keep_z=${KEEP_Z:-2} deadline=${DEADLINE_S:-520} # the call's 600 s, less the set-up and a clean stop
mkdir -p "$dir/logs" "$out"
if [ -n "${STUDY_TGZ:-}" ]; then tar xzf "$STUDY_TGZ" -C "$dir"; fi
{ date -u +%FT%TZ; nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || lscpu | grep 'Model name'
  python3 -c "import torch; print('torch', torch.__version__)"; } >> "$dir/machine.txt"

pack() {
  tar czf "$out/study.tgz" -C "$dir" --exclude='*.pth' --exclude='*.pkl' --exclude='*.onnx' --exclude='trials/*/*.png' .
  cp "$dir"/workers.t* "$out/" 2>/dev/null || true
  for s in ablation combined; do cp "$dir/$s/summary.md" "$out/$s.md" 2>/dev/null || true; done
}
trap pack EXIT

# a sweep under what is left of the deadline; SIGTERM stops it at a batch boundary, and a rerun resumes it
sweep() {
  local log=$1 left=$((deadline - SECONDS)); shift
  if [ "$left" -lt 30 ]; then echo "study: $log skipped, ${left} s left before the deadline"; return 1; fi
  local rc=0 # the trials' plots are left out: the study reads their summaries
  timeout -s TERM -k 30 "$left" era-s10 sweep "$@" --no-plots "${train[@]}" > "$dir/logs/$log.log" 2>&1 || rc=$?
  echo "study: $log: $(grep '^sweep:' "$dir/logs/$log.log" | tail -n 1) (exit $rc, ${SECONDS} s)"
  return $rc
}
n_complete() { # finished trials of the ablation
  python3 -c "import csv, sys; print(sum(r['state'] == 'COMPLETE' for r in csv.DictReader(open(sys.argv[1]))))" \
    "$dir/ablation/results.csv" 2>/dev/null || echo 0
}

# today's defaults, the seed's recipe as the reference row, then one change each (the notebook says why each)
variants=(--variant defaults --variant recipe=seed --variant lr_div=100 --variant lr_find_reps=3
          --variant ema_decay=0.99 --variant temperature=8 --variant bn_momentum=0.4 --variant tta=flip-shift1)
ablation=(--data "$data" --out "$dir/ablation" "${variants[@]}" --seeds "$seeds")
[ -f "$dir/workers.tsv" ] || printf 'workers\ttrials\tseconds\n' > "$dir/workers.tsv"
for p in $phases; do
  w=${p%:*} n=${p#*:}
  if grep -q "^$w"$'\t' "$dir/workers.tsv"; then continue; fi # timed in an earlier call
  before=$(n_complete) t0=$(date +%s.%N)
  sweep "ablation-w$w" "${ablation[@]}" --workers "$w" --trials "$n" || break
  secs=$(python3 -c "import time; print(f'{time.time() - $t0:.1f}')")
  printf '%s\t%s\t%s\n' "$w" "$(( $(n_complete) - before ))" "$secs" >> "$dir/workers.tsv"
done
python3 - "$dir/workers.tsv" <<'EOF' | tee "$dir/workers.txt"
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1]), delimiter='\t') if int(r['trials'])]
rate = {r['workers']: int(r['trials'])/float(r['seconds']) for r in rows}
for r in rows:
    w = r['workers']
    print(f"study: {w} workers: {r['trials']} trials in {float(r['seconds']):.0f} s, {rate[w]*60:.2f} trials/min"
          + (f", {rate[w]/rate['1']:.2f}x one worker" if '1' in rate else ''))
EOF
if ! sweep ablation "${ablation[@]}" --workers "$workers"; then
  echo "study: the ablation is unfinished: run again with STUDY_TGZ=study.tgz"; exit 0
fi

# the winners, by the rule written before the study ran (COMBINE names them instead, for a rehearsal)
combo=${COMBINE:-$(python3 -c "import sys; from era_s10.sweep_report import kept_settings as k
print(','.join(f'{n}={v}' for n, v in k(sys.argv[1], float(sys.argv[2])).items()))" "$dir/ablation" "$keep_z")}
if [ -z "$combo" ]; then
  echo "study: no variant beat the defaults by $keep_z standard errors: nothing to combine"; exit 0
fi
echo "study: combining $combo over seeds $new_seeds"
sweep combined --data "$data" --out "$dir/combined" --variant defaults --variant "$combo" --seeds "$new_seeds" \
  --workers "$workers" || true
