#!/usr/bin/env bash
# The tests in two tiers. `bash scripts/test.sh`: the notebooks (nbdev-test, without the cells flagged `#| slow`), the
# quick pytest tests (`-m 'not slow'`) and a check that the library matches the notebooks.
# `bash scripts/test.sh --slow`: the notebooks' slow cells, the notebooks that read ERA_S10_DATA when it is set, and the
# slow pytest tests (the real-data runs, long fuzzing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tier=quick
case "${1:-}" in
  '') ;;
  --slow) tier=slow ;;
  *) echo "usage: bash scripts/test.sh [--slow]" >&2; exit 2 ;;
esac
source scripts/setup.sh
export MPLBACKEND=Agg
t0=$SECONDS
if [ "$tier" = quick ]; then
  # one notebook per core: they are independent, each in its own kernel and temporary folders; the notebooks that read
  # ERA_S10_DATA get synthetic data here, and the real data in the slow tier
  echo "== nbdev-test"; env -u ERA_S10_DATA nbdev-test --n-workers 2
  # two pytest workers: most of these tests wait on one single-threaded subprocess at a time
  echo "== pytest -m 'not slow'"; python -m pytest tests -q -p no:cacheprovider -m 'not slow' -n 2 --durations=10
  echo "== nbdev-export leaves era_s10/ unchanged"
  snap=$(mktemp -d); cp -r era_s10 "$snap/"
  nbdev-export
  if ! diff -r -x __pycache__ "$snap/era_s10" era_s10; then
    echo "era_s10/ differs from the notebooks: run nbdev-export and commit the result"; rm -rf "$snap"; exit 1
  fi
  rm -rf "$snap"; echo "library and notebooks agree"
else
  # only the notebooks that have slow cells, and with ERA_S10_DATA set those that read it: the others ran whole in the
  # quick tier
  slow_nbs=$(grep -l '"#| *slow' nbs/*.ipynb || true)
  if [ -n "${ERA_S10_DATA:-}" ]; then slow_nbs="$slow_nbs $(grep -l "environ.get('ERA_S10_DATA')" nbs/*.ipynb || true)"; fi
  for nb in $(printf '%s\n' $slow_nbs | sort -u); do
    echo "== nbdev-test --flags slow $nb"; nbdev-test --n-workers 1 --flags slow "$nb"
  done
  echo "== pytest -m slow"
  # two workers, a file each at a time: the startup-bound sweep and resume tests use the core that a one-thread
  # training leaves idle, and the tests of tests/test_cli_real.py share one training run on one worker; exit status
  # 5 means no test was collected, which is not a failure of this tier
  python -m pytest tests -q -p no:cacheprovider -m slow -n 2 --dist loadfile --durations=10 || [ $? -eq 5 ]
fi
echo "== $tier tier passed in $((SECONDS - t0)) s"
