"""``unitb report``: the comparison page opened in a real browser (headless Chromium driven by
Playwright), offline, over the demo's runs of both frameworks."""
import os
import shutil
import subprocess
import sys

import pytest

import unitb
from unitb.files.names import INDEX_FOLDER

from test_query import GUIDE, guide_blocks, run_blocks

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# What the project's machines need for a headless Chromium without a network (no sandbox as root).
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def page_of_the_demo(demo_root, tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (.ci/run installs Debian's chromium)")
    pytest.importorskip("playwright", reason="Playwright drives the browser (the dev extra installs it)")
    root = tmp_path_factory.mktemp("report") / "runs"
    shutil.copytree(demo_root, root, ignore=shutil.ignore_patterns(INDEX_FOLDER))
    out = root.parent / "report.html"
    done = subprocess.run([sys.executable, "-m", "unitb", "report", str(root), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "3 run(s) compared" in done.stderr
    return str(root), str(out)


def _traces(page):
    return page.evaluate("document.getElementById('curves').data.map(t => ({name: t.name, x: t.x, y: t.y}))")


def test_the_page_loads_offline_filters_and_overlays_both_frameworks_on_samples(page_of_the_demo, tmp_path):
    from playwright.sync_api import sync_playwright

    root, html = page_of_the_demo
    outside = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1400})

        def only_the_file(route):
            if route.request.url.startswith("file:"):
                route.continue_()
            else:  # anything from the network: the page must not need it
                outside.append(route.request.url)
                route.abort()

        page.route("**/*", only_the_file)
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto("file://" + html)
        page.wait_for_function("document.getElementById('curves').data !== undefined")
        assert not outside and not errors
        runs = sorted(t["name"] for t in _traces(page))
        assert len(runs) == 3 and "keras-fit" in runs and "tf-yolo-loop" in runs
        torch_run = next(name for name in runs if name.startswith(("mmpose", "mmengine")))
        assert page.locator("#runs tbody tr").count() == 3

        # Filtering the table changes the curves (and the table).
        page.fill("input[data-column='entry_point']", "TF")
        assert sorted(t["name"] for t in _traces(page)) == ["keras-fit", "tf-yolo-loop"]
        assert page.locator("#runs tbody tr").count() == 2
        page.fill("input[data-column='steps']", ">100")
        assert _traces(page) == [] and page.locator("#runs tbody tr").count() == 0
        page.fill("input[data-column='steps']", "")
        page.fill("input[data-column='entry_point']", "")
        assert len(_traces(page)) == 3

        # On the samples axis, the PyTorch and Keras runs overlay: x is each point's samples seen.
        page.select_option("#axis", "samples")
        traces = {t["name"]: t for t in _traces(page)}
        points = unitb.scalars(root, tags=["train/loss"]).to_pylist()
        for name in (torch_run, "keras-fit"):
            expected = [p["samples"] for p in points if p["run"] == name]
            assert traces[name]["x"] == expected
        assert traces[torch_run]["x"][-1] == traces["keras-fit"]["x"][-1]  # the same samples seen at the end

        # Grouped by a hyperparameter: the group's mean with its min-max band.
        page.select_option("#group", "optimizer")
        grouped = [t for t in _traces(page) if t["name"]]
        assert [t["name"] for t in grouped] == ["optimizer=Adam (3)"]
        assert page.evaluate("document.getElementById('parallel').data[0].type") == "parcoords"
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert os.path.getsize(tmp_path / "report.png") > 10_000


def test_the_report_of_an_empty_folder_says_so(tmp_path):
    done = subprocess.run([sys.executable, "-m", "unitb", "report", str(tmp_path), "--out", str(tmp_path / "r.html")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "no runs" in done.stderr
    assert not (tmp_path / "r.html").exists()


def test_the_guide_examples_write_their_pages(page_of_the_demo, tmp_path):
    root, _ = page_of_the_demo
    os.symlink(root, tmp_path / "runs")
    blocks = guide_blocks(GUIDE, "tests/test_report_page.py")
    assert len(blocks) == 1
    run_blocks(blocks, tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert '"tags":["system/memory/host_used_mb","system/memory/process_rss_mb"' in page and "val/" in page
