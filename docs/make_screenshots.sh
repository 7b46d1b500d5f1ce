#!/usr/bin/env bash
# Regenerate the screenshots the README and the docs site show, through the real TensorBoard server and headless
# Chromium (apt-get install -y chromium): the overlaid scalars, the HPARAMS tab as it opens, the
# PR CURVES tab at the step it opens on, the PROFILE tab (needs the `profile` extra), and the
# `unitb report` page.
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
"$PY" docs/make_screenshot.py --runs "$RUNS" --view timeseries --size 1400,1000 --out docs/tensorboard-time-series.png
"$PY" docs/make_screenshot.py --runs "$RUNS" --view hparams --size 2000,700 --out docs/tensorboard-hparams.png
"$PY" docs/make_screenshot.py --runs "$RUNS" --view pr_curves --size 1400,1000 --out docs/tensorboard-pr-curves.png
"$PY" docs/make_screenshot.py --runs "$RUNS" --view profile --out docs/tensorboard-profile.png
# unitb report over the demo's runs, opened on the samples axis (the page reads its view from the URL's #).
PAGE="$(mktemp -d)"
cp -r "$RUNS" "$PAGE/runs"
"$(dirname "$PY")/unitb" report "$PAGE/runs" --out "$PAGE/report.html" 2>/dev/null
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$PAGE/.chromium" \
  --window-size=1300,1250 --virtual-time-budget=5000 --screenshot=docs/report.png \
  "file://$PAGE/report.html#axis=samples" >/dev/null 2>&1
rm -rf "$PAGE"
# A sweep's HPARAMS table (the example sweep, bayes + Hyperband: some trials pruned, a column says where).
SWEEPS="$(mktemp -d)"
"$(dirname "$PY")/unitb" sweep run examples/sweeps/keras_fit.yaml --agents 2 --logdir "$SWEEPS" --name shots >/dev/null
"$PY" docs/make_screenshot.py --runs "$SWEEPS/shots" --runs-expected 8 --view hparams --size 2000,800 \
  --out docs/tensorboard-sweep-hparams.png
rm -rf "$SWEEPS"
# The documentation site as a reader sees it: its home page and one guide.
SITE="$(mktemp -d)"
NO_MKDOCS_2_WARNING=1 "$(dirname "$PY")/mkdocs" build --strict -q -d "$SITE"
"$PY" -m http.server 8765 --bind 127.0.0.1 --directory "$SITE" >/dev/null 2>&1 &
SERVER=$!
sleep 1
for page in home:'' guide-keras:guide-keras/; do
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$SITE/.chromium" \
    --window-size=1300,900 --virtual-time-budget=5000 --screenshot="docs/site-${page%%:*}.png" \
    "http://127.0.0.1:8765/${page#*:}" >/dev/null 2>&1
done
kill "$SERVER"
rm -rf "$SITE"
