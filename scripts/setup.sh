#!/usr/bin/env bash
# Set-up shared by scripts/test.sh and scripts/experiment.sh: a virtual environment in .venv with era_s10, its
# dev tools and the optional ONNX packages installed. The second run finds the environment up to date and installs nothing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
stamp=.venv/.era_s10_installed
want=$(cat pyproject.toml | sha1sum | cut -c1-40)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install -q -e ".[dev,onnx,sweep]"
  echo "$want" > "$stamp"
fi
# shellcheck disable=SC1091
source .venv/bin/activate
