"""collapse_nb.report(): the report of the bundled example, the corpus, a nearly empty run; saving."""
from __future__ import annotations

import base64
import re

import pytest

import collapse_nb as cnb
from collapse_nb.diagnose import diagnose
from collapse_nb.example import default_example_dir
from collapse_nb.report import DEFAULT_STEM, Report, report, resolve_targets

from . import Tags, assert_inert_html, write_loss_csv

SECTIONS = ["run", "verdict", "findings", "suspects", "problems", "actions", "not-wrong", "healthy", "plots",
            "appendix"]
TITLES = ["What was analysed", "Verdict", "Findings", "Suspects", "Problems in detail", "What to do",
          "What's NOT wrong", "Healthy training vs this run", "Plots", "Appendix: what was read"]


@pytest.fixture(scope="module")
def example_run():
    return cnb.load(default_example_dir())


@pytest.fixture(scope="module")
def rep(example_run) -> Report:
    return report(example_run)


# ----------------------------------------------------------------------------- the bundled example

def test_every_section_is_in_both_formats(rep):
    # the figures whose key starts with metrics_ get their own section, "All metrics", after the plots
    metrics = ["metrics"] if any(f.key.startswith("metrics_") for f in rep.figures) else []
    expected = SECTIONS[:SECTIONS.index("plots") + 1] + metrics + SECTIONS[SECTIONS.index("plots") + 1:]
    assert [s.id for s in rep.document.sections] == expected
    for title in TITLES:
        assert f"## {title}" in rep.markdown
    ids = {a.get("id") for _, a in Tags(rep.html).tags}
    assert set(SECTIONS) <= ids


def test_verdict_names_gradient_accumulation_as_the_cause_of_the_gap(rep):
    v = rep.verdict
    assert v.startswith("Broken.")
    assert "gradient_accumulation_steps = 3" in v and "3.1x" in v
    gap = v[v.index("validation/training gap"):]
    assert "summed over 3 micro-batches" in gap and "bookkeeping error" in gap
    assert rep.status == "broken"


def test_verdict_names_the_collapse_and_its_numbers(rep):
    v = rep.verdict
    assert re.search(r"Prediction variance collapsed: pred/target std 0\.07\d* \(1:1[23]\)", v)
    assert re.search(r"output head projection\.weight is [\d,]+x smaller", v)
    assert "4 parameter(s) never receive gradient" in v


def test_problem_details_carry_summary_evidence_and_actions(rep):
    md = rep.markdown
    problems = md[md.index("## Problems in detail"):md.index("## What to do")]
    assert "### ❌ critical Prediction variance collapsed" in problems
    assert re.search(r"\| window \| epoch \|( rows \|)? pred_std \|( target_std \|)? ratio \| one_in \|", problems)
    assert re.search(r"\| 1:\d{3} \|", problems)               # the first epoch's window: 1:500 or so
    # dead parameters: the modules and the numbers
    assert "4 of 12 parameters (33%)" in problems and "attn.key_projection.* (2)" in problems
    assert "all rows: status = dead, source = grads*" in problems      # constant text columns go to the caption
    assert re.search(r"\| attn\.key_projection\.weight \| attn\.key_projection \| \d+ \| 1 \| 0 \|", problems)
    assert "Print the dead tensors' .grad" in problems


def test_findings_table_shows_severities_most_severe_first(rep):
    md = rep.markdown
    table = md[md.index("## Findings"):md.index("## Suspects")]
    assert "| ❌ critical | Prediction variance collapsed" in table
    assert "| ⚠️ warning | 4 parameter(s) never receive gradient" in table
    assert "| ✅ ok | Learning rate follows" in table
    assert re.search(r"\*1 critical, 3 warning, \d+ ok, \d+ info \(notes and checks that could not run\)\.\*", table)
    rows = re.findall(r"^\| \S+ (critical|warning|ok) \|", table, re.M)
    assert rows[0] == "critical" and rows == sorted(rows, key=["critical", "warning", "ok"].index)
    for word in ("broken", "suspicious", "working"):                    # a finding never has a run's status word
        assert f"| ❌ {word} |" not in table and f"| ⚠️ {word} |" not in table and f"| ✅ {word} |" not in table


def test_suspects_are_ranked_with_reasoning(rep):
    rc = rep.root_causes
    assert rc.iloc[0]["code"] == "tiny_output_head"
    md = rep.markdown
    sus = md[md.index("## Suspects"):md.index("## Problems in detail")]
    assert re.search(r"\| 1 \| Output head projection\.weight is [\d,]+x smaller", sus)
    assert "explains the collapsed predictions (rule weight 0.9)" in sus


def test_actions_are_deduplicated_and_top_suspect_first(rep):
    md = rep.markdown
    acts = md[md.index("## What to do"):md.index("## What's NOT wrong")]
    assert "**Start here:**" in acts
    first = re.search(r"^1\. (.*)$", acts, re.M).group(1)
    assert first.endswith("(tiny_output_head)")
    items = re.findall(r"^\d+\. (.*) \(\w+\)$", acts, re.M)
    assert len(items) == len(set(items)) and len(items) >= 8


def test_what_is_not_wrong_lists_the_ok_findings(rep):
    md = rep.markdown
    ok = md[md.index("## What's NOT wrong"):md.index("## Healthy")]
    assert "**Learning rate follows warmup" in ok and "**Gradients are present and not vanishing.**" in ok


def test_healthy_bands_come_from_the_thresholds(rep, example_run):
    md = rep.markdown
    assert re.search(r"\| Prediction std / target std \| ≥ 0\.3 \(collapsed below 0\.1\) \| 0\.07\d* \(1:1[23]\)", md)
    assert "| Parameters with zero gradient at every step | 0 (a norm ≤ 1e-12 counts as zero) | 4 of 12 |" in md
    assert re.search(r"\| Train loss / validation loss \| ≤ 1\.3 \(dropout-style gap\); flagged above 1\.5 "
                     r"\| 3\.\d+x", md)
    other = report(example_run, plots=False, variance_collapse__critical_ratio=0.05, val_below_train__ratio=2.0)
    assert "≥ 0.3 (collapsed below 0.05)" in other.markdown and "flagged above 2" in other.markdown


def test_plots_are_embedded_in_html_only_as_data_uris(rep):
    t = assert_inert_html(rep.html)
    imgs = t.attrs("img")
    assert len(imgs) == len(rep.figures)
    for img in imgs:
        data = base64.b64decode(img["src"].split(",", 1)[1])
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
    keys = [f.key for f in rep.figures]
    assert keys == ["loss_curves", "lr_curve", "output_std", "gradient_flow", "grad_norm_distribution",
                    "val_train_ratio", "param_norm_changes",      # the example has checkpoints: all seven plots
                    "metrics_no_prefix"]                          # and its other metrics, in "All metrics"
    assert all(f.missing is None for f in rep.figures)


def test_html_is_self_contained(rep):
    h = rep.html
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", h, re.I)
    assert "@import" not in h and "url(" not in h and "<link" not in h and "<script" not in h.lower()
    assert 'http-equiv="Content-Security-Policy"' in h and "default-src &#x27;none&#x27;" in h


def test_appendix_lists_files_and_lines_not_understood(rep):
    md = rep.markdown
    app = md[md.index("## Appendix"):]
    assert re.search(r"\| training_diagnostic\.log \| text-log \| [\d,]+ \|", app)
    assert "| training_diagnostic.log | 3 | non-numeric value | Config: config.yaml |" in app
    assert "optimizer_step_executed: True" in app and "more lines not understood" in app
    assert "| gradient_accumulation_steps | 3 | config.yaml |" in app


def test_markdown_has_no_images_until_saved(rep, tmp_path):
    assert "![" not in rep.markdown and "(the image is in the HTML report)" in rep.markdown
    written = rep.save(tmp_path / "r.md")
    md = (tmp_path / "r.md").read_text()
    assert "![Loss curves](r_figures/loss_curves.png)" in md
    pngs = sorted(p.name for p in written if p.suffix == ".png")
    assert pngs == sorted(f"{f.key}.png" for f in rep.figures) and len(pngs) == 8
    assert (tmp_path / "r_figures" / "loss_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_report_never_touches_pyplot_state(example_run):
    import matplotlib.pyplot as plt
    before = plt.get_fignums()
    report(example_run)
    assert plt.get_fignums() == before


def test_repr_and_notebook_view(rep):
    assert "broken" in repr(rep) and "8 plot(s)" in repr(rep) and len(rep.figures) == 8
    frame = rep._repr_html_()
    assert frame.startswith("<iframe sandbox=") and "<script" not in frame and "&lt;section" in frame


# ----------------------------------------------------------------------------- arguments and saving

def test_report_loads_a_path_and_writes_by_suffix(tmp_path):
    out = tmp_path / "sub" / "report.html"
    rep = report(default_example_dir(), out, plots=False)
    assert out.read_text() == rep.html and "load" in rep.timings
    assert not (tmp_path / "sub" / "report.md").exists()


@pytest.mark.parametrize("path, fmt, expect", [
    ("r.md", None, ["r.md"]),
    ("r.html", None, ["r.html"]),
    ("r.html", "both", ["r.html", "r.md"]),
    ("r", None, ["r.html", "r.md"]),
    ("r", "md", ["r.md"]),
    ("r.v2", "html", ["r.v2.html"]),
])
def test_resolve_targets(tmp_path, path, fmt, expect):
    got = resolve_targets(tmp_path / path, fmt)
    assert [p.name for p, _ in got] == expect


def test_a_directory_gets_both_files(tmp_path):
    got = resolve_targets(tmp_path)
    assert [p for p, _ in got] == [tmp_path / f"{DEFAULT_STEM}.html", tmp_path / f"{DEFAULT_STEM}.md"]


def test_bad_paths_and_formats_fail_before_the_work(tmp_path, example_run):
    with pytest.raises(ValueError, match=r"cannot tell the report format from .*x\.txt"):
        report(example_run, tmp_path / "x.txt")
    with pytest.raises(ValueError, match=r"format='md' contradicts the path's suffix '\.html'"):
        report(example_run, tmp_path / "x.html", format="md")
    with pytest.raises(ValueError, match=r"format must be one of md, html, both .*got 'pdf'"):
        report(example_run, tmp_path / "x", format="pdf")
    with pytest.raises(ValueError, match=r"format= needs a path"):
        report(example_run, format="md")
    with pytest.raises(TypeError, match=r"needs a collapse_nb Run or a path to load; got int"):
        report(3)
    assert list(tmp_path.iterdir()) == []


def test_findings_and_thresholds_are_exclusive(example_run):
    fs = diagnose(example_run)
    with pytest.raises(ValueError, match="give findings= or thresholds, not both"):
        report(example_run, findings=fs, variance_collapse__critical_ratio=0.05)
    rep = report(example_run, findings=fs[:2], plots=False)
    assert rep.findings == fs[:2]


def test_unknown_threshold_is_reported(example_run):
    with pytest.raises(ValueError, match="unknown threshold"):
        report(example_run, variance_collapse__nope=1)


# ----------------------------------------------------------------------------- little data

def test_a_run_with_only_a_loss_column_still_gets_a_report(tmp_path):
    path = write_loss_csv(tmp_path / "metrics.csv")
    rep = report(path, tmp_path / "out")
    assert rep.status == "inconclusive"
    assert "could not run for lack of data" in rep.verdict and "variance_collapse" in rep.verdict
    md = (tmp_path / "out.md").read_text()
    assert "| ➖ not checked | variance_collapse | Not run: no prediction/target std statistics" in md
    assert "not measured:" in md                           # healthy-vs-this-run says what was not measured
    assert "Prediction vs target spread: not drawn (output_std needs pred_std and target_std" in md
    assert "No suspects" in md and "To let the" in md
    t = assert_inert_html((tmp_path / "out.html").read_text())
    assert len(t.attrs("img")) == 1                        # the loss curve only
    assert set(SECTIONS) <= {a.get("id") for _, a in t.tags}


# ----------------------------------------------------------------------------- the corpus

def test_corpus_collapse_report(corpus):
    rep = report(corpus("tsl-diag-f7a0244", "training_diagnostic.log"))
    assert rep.status == "broken"
    assert re.search(r"Prediction variance collapsed: pred/target std 0\.04\d* \(1:2\d\)", rep.verdict)
    md = rep.markdown
    assert "8 of 56 parameters" in md and "dynamic_spatiotemporal_encoder.node_feature_projection.* (2)" in md
    assert "| ❌ critical | Prediction variance collapsed" in md
    assert "| ⚠️ warning | 8 parameter(s) never receive gradient" in md
    assert "section blocks come before the header" in md     # the reader's layout note, in the appendix
    assert_inert_html(rep.html)


def test_the_appendix_says_what_each_check_read(tmp_path):
    import json as _json

    import collapse_nb as _cnb
    from collapse_nb.report.document import checks_read
    rows = [{"epoch": e, "train/box_loss": 1.0 / (e + 1), "train/cls_loss": 0.5, "val/box_loss": 1.1 / (e + 1),
             "val/cls_loss": 0.6} for e in range(8)]
    (tmp_path / "log.jsonl").write_text("\n".join(_json.dumps(r) for r in rows) + "\n")
    fs = _cnb.diagnose(_cnb.load(tmp_path / "log.jsonl"))
    table = {r[0]: r for r in checks_read(fs)}
    assert table["loss_plateau"][1:] == ["yes", "the sum of the train loss components box_loss, cls_loss (no total "
                                                "is logged)", "epoch", "8"]
    assert table["variance_collapse"][1] == "no" and table["variance_collapse"][2].startswith("not run: ")


def test_a_check_that_does_not_apply_is_not_counted_as_lacking_data():
    import collapse_nb as _cnb
    from collapse_nb.example import default_example_dir
    from collapse_nb.report.document import make_verdict
    fs = _cnb.diagnose(_cnb.load(default_example_dir()))
    gan = next(f for f in fs if f.check == "gan_balance")
    assert gan.details["not_applicable"] and "does not apply" in gan.title
    _, verdict = make_verdict(fs, _cnb.root_causes(fs))
    assert "gan_balance" not in verdict and "could not run" not in verdict
