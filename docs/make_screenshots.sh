#!/usr/bin/env bash
# Regenerate the screenshots the README shows, through the real TensorBoard server and headless
# Chromium (apt-get install -y chromium): the overlaid scalars, the HPARAMS tab as it opens, the
# PR CURVES tab at the step it opens on, and the PROFILE tab (needs the `profile` extra).
#   bash docs/make_screenshots.sh            # trains the demo into a temporary folder first
#   bash docs/make_screenshots.sh runs       # or uses demo runs you have
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
RUNS="${1:-}"
if [ -z "$RUNS" ]; then
  RUNS="$(mktemp -d)"
  "$PY" -m unitb demo --out "$RUNS"
fi
"$PY" docs/make_screenshot.py --runs "$RUNS" --out docs/tensorboard.png
"$PY" docs/make_screenshot.py --runs "$RUNS" --view hparams --size 2000,700 --out docs/tensorboard-hparams.png
"$PY" docs/make_screenshot.py --runs "$RUNS" --view pr_curves --size 1400,1000 --out docs/tensorboard-pr-curves.png
"$PY" docs/make_screenshot.py --runs "$RUNS" --view profile --out docs/tensorboard-profile.png
