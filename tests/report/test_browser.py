"""The HTML report in a real headless Chromium: the sections are in the DOM, nothing goes to the console.

Skipped when no Chromium is installed (``apt-get install chromium``).
"""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from collapse_nb.example import default_example_dir
from collapse_nb.report import report

from .test_report import SECTIONS

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(f"no headless browser found (looked for {', '.join(BROWSERS)} on PATH); "
                f"install one with `apt-get install chromium` to run this test")


def _chromium(browser: str, tmp_path, *args: str) -> subprocess.CompletedProcess:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
           "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "HOME": str(tmp_path)})


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    out = tmp_path_factory.mktemp("browser") / "report.html"
    rep = report(default_example_dir(), out)
    return out, len(rep.figures)


def test_sections_render_without_console_errors(page, tmp_path):
    browser = _browser()
    page, n_figures = page
    res = _chromium(browser, tmp_path, "--dump-dom", page.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in dom
    assert dom.count('<img src="data:image/png;base64,') == n_figures == 8      # 7 plots and 1 of all metrics
    console = [line for line in res.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console              # no script errors, no CSP violations, nothing blocked


def test_screenshot(page, tmp_path):
    browser = _browser()
    shot = tmp_path / "report.png"
    res = _chromium(browser, tmp_path, "--window-size=1280,2400", f"--screenshot={shot}", page[0].as_uri())
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
