#!/usr/bin/env bash
# The ERA Session 10 experiment: LR range test, then 24 epochs of one cycle, into a new run folder under runs/.
# Extra arguments go to `era-s10 train`, e.g. --data PATH for a local copy of CIFAR-10.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
era-s10 train --out runs/era-s10 "$@"
