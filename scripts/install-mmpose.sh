#!/usr/bin/env bash
# Install mmpose 1.3.2 into a venv that already has unitb[torch] (torch 2.13 CPU, mmengine):
#   bash scripts/install-mmpose.sh .venv
# Why each step (checked on this project's machines, ~1 min):
# - mmcv-lite 2.1.0: the pure-Python mmcv (no compiled ops); mmdet 3.3.0 requires mmcv < 2.2.0.
# - mmpose and mmdet with --no-deps: their requirements pull torchvision, which does not import
#   beside torch 2.13.0 CPU; examples/mmpose/mmpose_compat.py stands in for the two imports that need it.
# - json_tricks, munkres, scipy, six: runtime imports (six is imported but not declared by mmpose).
# - xtcocotools from source: its wheel is built for numpy 1.x; --no-build-isolation builds it
#   against the numpy in the venv.
# mmpose and mmdet go in last, and every pip run here (and in the README's commands) passes
# --no-warn-conflicts: pip would otherwise print "ERROR: pip's dependency resolver ... mmpose
# requires torchvision / chumpy" on a second run, which is expected here (torchvision is left
# out on purpose, chumpy is never imported) and no failure. A second run installs nothing.
set -euo pipefail
venv="${1:-.venv}"
here="$(cd "$(dirname "$0")/.." && pwd)"
if "$venv/bin/python" -c "import mmpose, xtcocotools; assert mmpose.__version__ == '1.3.2'" 2>/dev/null; then
  echo "mmpose 1.3.2 already installed"
  exit 0
fi
pip=("$venv/bin/pip" install -q --no-warn-conflicts -c "$here/constraints.txt")
"${pip[@]}" mmcv-lite==2.1.0
"${pip[@]}" json_tricks munkres scipy six cython wheel
"${pip[@]}" --no-build-isolation --no-binary xtcocotools xtcocotools==1.14.3
"$venv/bin/pip" install -q --no-warn-conflicts --no-deps mmpose==1.3.2 mmdet==3.3.0
"$venv/bin/python" -c "import mmpose, xtcocotools; print('mmpose', mmpose.__version__, 'installed')"
