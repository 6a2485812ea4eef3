#!/usr/bin/env bash
# How fast is `era-s10 predict` over a folder? Unpacks the first N images of a CIFAR-10 image archive (default 1000)
# into a temporary folder, trains a 1-epoch run on 2,000 training images when no RUN_DIR is given (the speed does not
# depend on the weights), then runs `era-s10 predict RUN_DIR folder --csv out.csv` twice (the first also warms the
# file cache) and prints each run's line: images, seconds and images/s, from loading the model to the last prediction.
# Usage: bash benchmarks/predict_speed.sh ARCHIVE [N] [RUN_DIR] [more era-s10 predict options, e.g. --device cpu]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
ARCHIVE=${1:?usage: bash benchmarks/predict_speed.sh ARCHIVE [N] [RUN_DIR] [options]}; N=${2:-1000}; RUN=${3:-}
D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
python - "$ARCHIVE" "$N" "$D/images" <<'PY'
import sys, tarfile
from pathlib import Path
arc, n, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
k = 0
with tarfile.open(arc) as tf:
    for m in tf:
        if k == n: break
        if m.isfile() and Path(m.name).suffix.lower() in ('.png', '.jpg', '.jpeg'):
            f = out/Path(m.name).parent.name/Path(m.name).name; f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(tf.extractfile(m).read()); k += 1
print(f"{k} images unpacked into {len(list(out.iterdir()))} folder(s)")
PY
if [ -z "$RUN" ]; then
  RUN="$D/run"
  era-s10 train --data "$ARCHIVE" --subset 2000 --epochs 1 --bs 128 --lr-min 1e-4 --lr-max 1e-3 --no-plots \
    --out "$RUN" > /dev/null
fi
shift $(( $# < 3 ? $# : 3 ))
for i in 1 2; do era-s10 predict "$RUN" "$D/images" --csv "$D/out$i.csv" "$@"; done
head -3 "$D/out2.csv"
