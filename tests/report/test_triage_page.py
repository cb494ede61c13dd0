"""The triage page: every run, worst first, a curve each, links to reports that exist; inert HTML."""
from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser

import pytest

import collapse_nb as cnb
from collapse_nb.report.triage_page import render_triage_page, sparkline, write_triage_page


def _jsonl(path, losses, val=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"step": i, "train_loss": v} for i, v in enumerate(losses)]
    rows += [{"step": i, "val_loss": v} for i, v in (val or [])]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def folder(tmp_path):
    _jsonl(tmp_path / "good" / "log.jsonl", [2.0 * math.exp(-i / 30) + 0.05 for i in range(120)],
           [(i, 2.0 * math.exp(-i / 30) + 0.1) for i in range(0, 120, 20)])
    _jsonl(tmp_path / "nan" / "log.jsonl", [1.0 - i / 200 for i in range(60)] + [float("nan")] * 5)
    _jsonl(tmp_path / "<b>odd & name</b>" / "log.jsonl", [1.0] * 80)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "train.log").write_bytes(b"\x00\x01\x02 binary \x03" * 50)
    return tmp_path


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.links, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.links += [v for k, v in attrs if k == "href"]

    def handle_data(self, data):
        self.text.append(data)


def test_the_page_lists_every_run_worst_first_with_links_to_reports(folder, tmp_path_factory):
    runs = cnb.load_runs(folder)
    out = tmp_path_factory.mktemp("out") / "triage.html"
    written = write_triage_page(runs, out, plots=False)
    page = out.read_text()
    p = _Collect()
    p.feed(page)
    assert "script" not in p.tags and "Content-Security-Policy" in page
    assert "<b>odd" not in page and "&lt;b&gt;odd &amp; name&lt;/b&gt;" in page   # a hostile name stays text
    assert len(p.links) == len(runs) == 3
    for link in p.links:
        assert (out.parent / link).is_file()                                  # each report exists
    assert len(written) == 1 + len(runs)
    names = [t for t in p.text if t in runs.names]
    assert names[-1] == "good"                                                # the healthy run comes last
    assert page.count("<svg") == 3 and page.count('class="val"') == 1        # only 'good' logs validation
    table = runs.triage()
    assert page.count("<tr>") == 1 + len(table)


def test_sparkline_log_axis_and_missing_curves(folder):
    runs = cnb.load_runs(folder)
    assert "<polyline" in sparkline(runs["good"]) and "log axis" not in sparkline(runs["good"])
    _jsonl(folder / "exploding" / "log.jsonl", [10.0 ** (i / 10) for i in range(50)])
    assert "log axis" in sparkline(cnb.load(folder / "exploding"))


def test_render_needs_no_run_objects():
    import pandas as pd
    table = pd.DataFrame([{"run": "a", "status": "broken", "top_cause": "x", "verdict": "v", "steps": 10.0}])
    html = render_triage_page(table, {}, {}, "root")
    assert "1 broken" in html and re.search(r"<td[^>]*>a</td>", html)


def test_a_path_that_is_not_html_is_refused(folder, tmp_path):
    with pytest.raises(ValueError, match="ending in .html"):
        write_triage_page(cnb.load_runs(folder), tmp_path / "triage.md")


def test_cli_triage_writes_the_page(folder, tmp_path_factory, capsys):
    from collapse_nb.cli import main
    out = tmp_path_factory.mktemp("cli") / "triage.html"
    assert main(["triage", str(folder), "-o", str(out), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out} and 3 report(s)" in printed
    assert len(list((out.parent / "triage_reports").glob("*.html"))) == 3
    assert main(["triage", str(folder), "-o", str(out.with_suffix(".md"))]) == 2
    assert "ending in .html" in capsys.readouterr().err


def test_sparkline_of_steps_that_restart_each_epoch_does_not_zigzag(tmp_path):
    from collapse_nb.report.triage_page import _axis
    import pandas as pd
    restarting = pd.DataFrame({"step": [0, 1, 2, 0, 1, 2], "epoch": [0, 0, 0, 1, 1, 1], "x": range(6),
                               "value": [3, 2, 1, 3, 2, 1]})
    global_steps = pd.DataFrame({"step": [10, 20, 30], "epoch": [0, 0, 1], "x": [10, 20, 30], "value": [1, 2, 3]})
    assert _axis([global_steps]) == "step"
    assert _axis([restarting]) == "x" and _axis([global_steps, restarting]) == "x"


def test_huge_factors_are_written_as_powers_of_ten():
    from collapse_nb.wording import factor, percent, times
    assert factor(12.34) == "12.3x" and factor(7.6e23) == "7.6e+23x"
    assert percent(0.249) == "24.9%" and percent(1.2e30) == "1.2e+30x"
    assert times(3.14) == "3.1x" and times(120) == "120x" and times(7.6e23) == "7.6e+23x"
