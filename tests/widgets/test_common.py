"""Shared pieces: figures shown in Output widgets, runs restricted to some parameters, the missing-ipywidgets error."""
from __future__ import annotations

import base64
import builtins

import pytest

from collapse_nb import plots
from collapse_nb.widgets import _common


def test_draw_shows_a_png_and_draws_missing_data_as_text(small_run, tmp_path):
    fig = _common.draw(plots.loss_curves, small_run)
    out = _common.figure_output(fig)
    assert base64.b64decode(out["data"]["image/png"])[:4] == b"\x89PNG"
    assert out["data"]["text/plain"] == "<figure: Loss over training (steps)>"
    (tmp_path / "m.csv").write_text("epoch,loss\n1,1.0\n2,0.8\n")
    import collapse_nb as cnb

    fig = _common.draw(plots.gradient_flow, cnb.load(tmp_path))
    assert "run.grads is empty" in fig.axes[0].texts[0].get_text().replace("\n", " ")


def test_show_replaces_outputs(small_run):
    import ipywidgets as w

    out = w.Output()
    _common.show(out, _common.draw(plots.loss_curves, small_run), _common.html_output("<b>x</b>"))
    assert [list(o["data"]) for o in out.outputs] == [["image/png", "text/plain"], ["text/html", "text/plain"]]
    _common.show(out)
    assert out.outputs == ()


def test_with_params_keeps_other_rows(small_run):
    view = _common.with_params(small_run, ["head.weight"])
    assert set(view.grads["param"].astype(str)) == {"head.weight"}
    assert len(view.epochs) == len(small_run.epochs) and len(view.outputs) == len(small_run.outputs)
    assert _common.with_params(small_run, None) is small_run
    assert _common.grad_params(view) == ["head.weight"]


def test_as_run_defaults_to_the_example(monkeypatch, small_run_dir):
    import collapse_nb.example as ex

    monkeypatch.setattr(ex, "default_example_dir", lambda: small_run_dir)
    assert _common.as_run(None).sources[0].endswith("metrics.jsonl")
    assert _common.run_label(_common.as_run(None)) == "small"


def test_missing_ipywidgets_says_what_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_ipywidgets(name, *args, **kwargs):
        if name == "ipywidgets":
            raise ImportError("No module named 'ipywidgets'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ipywidgets)
    with pytest.raises(ImportError, match="pip install ipywidgets"):
        _common.require_ipywidgets()
