#!/usr/bin/env bash
# Every test: the notebooks (nbdev-test), the pytest suite, and a check that the library matches the notebooks.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
export MPLBACKEND=Agg
echo "== nbdev-test"; nbdev-test --n-workers 1
echo "== pytest"; python -m pytest tests -q -p no:cacheprovider
echo "== nbdev-export leaves era_s10/ unchanged"
snap=$(mktemp -d); cp -r era_s10 "$snap/"
nbdev-export
if ! diff -r -x __pycache__ "$snap/era_s10" era_s10; then
  echo "era_s10/ differs from the notebooks: run nbdev-export and commit the result"; rm -rf "$snap"; exit 1
fi
rm -rf "$snap"; echo "library and notebooks agree"
