"""The HTML report of `driftscope run` opens in headless Chromium: every plot
is a non-empty inline SVG, nothing is fetched from the network, and the page
logs no console errors."""
import json
import os
import re
import shutil
import subprocess

import pytest

BIN = os.environ.get("DRIFTSCOPE_BIN", "build")
DRIFTSCOPE = os.path.join(BIN, "client", "driftscope")

SPEC = {
    "seed": 11,
    "model": {"input": {"timesteps": 8, "features": 1},
              "layers": [{"lstm": {"units": 8, "return_sequences": True}},
                         {"lstm": {"units": 4, "return_sequences": True}}]},
    "optimizer": {"adam": {"learning_rate": 0.01}, "clipnorm": 1.0},
    "loss": "MSE",
    "data": {"synthetic": {"generator": "SINE", "samples": 64,
                           "eval_samples": 16}},
    "training": {"epochs": 3, "batch_size": 16, "shuffle": True},
}


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("Chromium is not installed; scripts/install-deps.sh installs "
                "Debian's chromium package")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = tmp_path_factory.mktemp("html")
    spec = d / "spec.json"
    spec.write_text(json.dumps(SPEC))
    html = d / "report.html"
    r = subprocess.run([DRIFTSCOPE, "run", str(spec), "--profiles",
                        "ref64,fp32,tf32,bf16", "--repeats", "2", "--html",
                        str(html)], capture_output=True, text=True)
    assert r.returncode in (0, 1), r.stderr
    return html


def test_every_plot_is_a_non_empty_inline_svg(report):
    text = report.read_text()
    svgs = re.findall(r"<svg class=\"plot\".*?</svg>", text, re.S)
    titles = [re.search(r"aria-label=\"([^\"]*)\"", s).group(1) for s in svgs]
    for wanted in ("Drift per timestep", "Drift per epoch",
                   "Training loss per step", "Relative L2 between",
                   "ULP distance histogram"):
        assert any(t.startswith(wanted) for t in titles), (wanted, titles)
    for title, svg in zip(titles, svgs):
        assert "no data" not in svg, title
        marks = len(re.findall(r"<(polyline|rect|circle)\b", svg))
        assert marks >= 3, (title, marks)
    # Self-contained: no scripts, no external resources.
    assert "<script" not in text
    assert not re.search(r"(src|href)=\"(https?:)?//", text)


def test_opens_in_headless_chromium_without_console_errors(report, tmp_path):
    png = tmp_path / "shot.png"
    args = [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
            "--enable-logging=stderr", "--v=0", "--window-size=1200,2600"]
    dom = subprocess.run(args + ["--dump-dom", report.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = re.findall(r"<svg class=\"plot\"", dom.stdout)
    assert len(rendered) >= 6, dom.stdout[:500]
    console = [l for l in dom.stderr.splitlines()
               if "CONSOLE" in l or "Uncaught" in l]
    assert console == [], console
    shot = subprocess.run(args + [f"--screenshot={png}", report.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert shot.returncode == 0, shot.stderr[-2000:]
    # A blank page of this size compresses to a few KB; plots do not.
    assert png.stat().st_size > 30_000
