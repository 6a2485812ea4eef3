#!/usr/bin/env bash
# The GPU measurements in one go, since each GPU machine starts bare: the loop tests (the CUDA-only ones among them),
# `era-s10 bench`, the step probe (benchmarks/fit_probe.py), then the default experiment over 3 seeds. Each step gets
# what is left of BUDGET seconds, so a slow step cannot take the others' logs with it; the benchmark writes its JSON
# after every part, so a cut-short run still leaves the finished rows.
# Usage, on the GPU machine once the project is installed:   bash benchmarks/gpu_run.sh DATA OUT_DIR [BUDGET_S]
#   BENCH_ARGS="--compile none"  extra `era-s10 bench` options (default: none, so every compile mode)
#   SEEDS=0,1,2                   the seeds of the experiment runs
#   PYTEST_ARGS="-k cuda"         extra pytest options (default: none, so every test of tests/test_loop.py)
#   BENCH=0, PROBE=0              skip the benchmark, the step probe
#   EAGER=1                       then the same seeds again with --compile none
#   ALSO="--compile auto"         then the same seeds again with these `era-s10 train` options (CUDA graphs, say)
set -uo pipefail
data=${1:?usage: gpu_run.sh DATA OUT_DIR [BUDGET_S]}; out=${2:?usage: gpu_run.sh DATA OUT_DIR [BUDGET_S]}; budget=${3:-540}
mkdir -p "$out"; runs=$(mktemp -d)
left() { local v=$(( budget - SECONDS - ${1:-0} )); echo $(( v < 30 ? 30 : v )); } # seconds left, keeping $1 in reserve
step() { local t=$1; shift; echo "== $* (at ${SECONDS} s, ${t} s allowed)"; timeout -s TERM -k 10 "$t" "$@"; echo "== rc=$? at ${SECONDS} s"; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import torch, fastai; print('torch', torch.__version__, '| fastai', fastai.__version__, '| cuda', torch.version.cuda)"
# shellcheck disable=SC2086 # PYTEST_ARGS is a list of options
step 150 python3 -m pytest -q -rs tests/test_loop.py ${PYTEST_ARGS:-} 2>&1 | tee "$out/pytest.log"
# shellcheck disable=SC2086 # BENCH_ARGS is a list of options
[ "${BENCH:-1}" = 0 ] || step "$(left 160)" era-s10 bench --data "$data" --out "$out/bench.json" ${BENCH_ARGS:-} 2>&1 | tee "$out/bench.log"
[ "${PROBE:-1}" = 0 ] || step 70 python3 benchmarks/fit_probe.py "$data" 2>&1 | tee "$out/probe.log"
step "$(left "$([ "${EAGER:-0}${ALSO:-}" = 0 ] && echo 10 || echo 130)")" era-s10 train --data "$data" --seeds "${SEEDS:-0,1,2}" --out "$runs/seeds" 2>&1 | tee "$out/train.log"
[ "${EAGER:-0}" = 0 ] || step "$(left 5)" era-s10 train --data "$data" --seeds "${SEEDS:-0,1,2}" --compile none --out "$runs/eager" 2>&1 | tee "$out/eager.log"
# shellcheck disable=SC2086 # ALSO is a list of options
[ -z "${ALSO:-}" ] || step "$(left 5)" era-s10 train --data "$data" --seeds "${SEEDS:-0,1,2}" ${ALSO} --out "$runs/also" 2>&1 | tee "$out/also.log"
tar czf "$out/runs.tgz" --exclude='*.pth' --exclude='*.pkl' -C "$runs" . # the summaries, configs and histories
