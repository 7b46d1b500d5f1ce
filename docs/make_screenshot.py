"""Regenerate docs/tensorboard.png: the three demo runs overlaid in the real TensorBoard UI.

    python docs/make_screenshot.py            # runs `unitb demo` into a temp dir first
    python docs/make_screenshot.py --runs runs

Needs Debian's chromium (`apt-get install -y chromium`). Starts TensorBoard on a free
loopback port, renders the Time Series dashboard headless, and stops the server by its pid.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from tb_server import tensorboard  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", help="a log root with the demo runs (default: make one)")
    parser.add_argument("--out", default=os.path.join(HERE, "tensorboard.png"))
    shared_charts = "train%2F(loss%7Clearning_rate%2F0%7Cgradient_norm%2Fglobal)%24"
    parser.add_argument("--view", default="scalars&tagFilter=" + shared_charts,
                        help="the dashboard fragment to open (default: the shared charts, all runs overlaid)")
    parser.add_argument("--size", default="1400,900", help="the browser window, WIDTH,HEIGHT (default: 1400,900)")
    parser.add_argument("--runs-expected", type=int, default=3, help="runs TensorBoard must have loaded (default: 3)")
    args = parser.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        print("chromium not found: apt-get install -y chromium", file=sys.stderr)
        return 2
    root = args.runs
    if root is None:
        root = tempfile.mkdtemp(prefix="unitb-demo-")
        subprocess.run([sys.executable, "-m", "unitb", "demo", "--out", root, "--steps", "64"], check=True)
    with tensorboard(root, expect_runs=args.runs_expected) as tb:
        url = f"{tb.base}/?darkMode=false#{args.view}"
        profile = tempfile.mkdtemp(prefix="unitb-chromium-")
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                        f"--user-data-dir={profile}", f"--window-size={args.size}", "--virtual-time-budget=20000",
                        f"--screenshot={args.out}", url], check=True, capture_output=True, timeout=180)
        shutil.rmtree(profile, ignore_errors=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
