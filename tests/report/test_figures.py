"""The report's plots: drawn off-screen (no pyplot), PNG base64, missing data as a reason."""
from __future__ import annotations

import base64

import pytest

import collapse_nb as cnb
from collapse_nb.diagnose import diagnose
from collapse_nb.example import default_example_dir
from collapse_nb.report.figures import PLOTS, PlotSpec, render_figure, render_figures

from . import write_loss_csv


@pytest.fixture(scope="module")
def example():
    run = cnb.load(default_example_dir())
    return run, diagnose(run)


def test_the_example_gets_every_plot(example):
    run, fs = example
    figs = render_figures(run, fs)
    keys = [f.key for f in figs]
    assert run.params["checkpoint"].nunique() == 6                      # the example has per-epoch checkpoints
    assert keys == ["loss_curves", "lr_curve", "output_std", "gradient_flow", "grad_norm_distribution",
                    "val_train_ratio", "param_norm_changes", "metrics_no_prefix"]
    for f in figs:
        assert f.missing is None and base64.b64decode(f.png_base64)[:8] == b"\x89PNG\r\n\x1a\n", f.key
        assert f.caption and f.seconds > 0
    out = next(f for f in figs if f.key == "output_std")
    assert "collapse threshold 0.1" in out.caption and "Prediction variance collapsed" in out.caption


def test_pyplot_is_never_used(example):
    import sys
    run, fs = example
    had_pyplot = "matplotlib.pyplot" in sys.modules
    render_figures(run, fs)
    if not had_pyplot:
        assert "matplotlib.pyplot" not in sys.modules
    else:
        import matplotlib.pyplot as plt
        assert plt.get_fignums() == []


def test_missing_data_is_a_reason_not_an_image(tmp_path):
    run = cnb.load(write_loss_csv(tmp_path / "m.csv"))
    figs = {f.key: f for f in render_figures(run, diagnose(run))}
    assert figs["loss_curves"].png_base64 and figs["loss_curves"].missing is None
    assert figs["output_std"].png_base64 is None and "pred_std and target_std" in figs["output_std"].missing
    assert "param_norm_changes" not in figs              # only for runs with checkpoints


def test_a_failing_plot_does_not_stop_the_report(example):
    run, fs = example

    def boom(run, ax, findings):
        raise RuntimeError("drawing broke")

    spec = PlotSpec("boom", "Boom", boom, lambda run: (4, 3), lambda run, fs: "c")
    fig = render_figure(spec, run, fs)
    assert fig.png_base64 is None and fig.missing == "the plot failed: RuntimeError: drawing broke"


def test_the_collapse_threshold_follows_the_check(example):
    run, _ = example
    fs = diagnose(run, variance_collapse__critical_ratio=0.05)
    spec = next(p for p in PLOTS if p.key == "output_std")
    assert "collapse threshold 0.05" in spec.caption(run, fs)


def test_each_time_axis_is_worked_out_once_per_run(example, monkeypatch):
    from collapse_nb.timeaxis import placement as _data

    run = cnb.load(default_example_dir())                # a fresh run: nothing memoised for it yet
    made = []
    real = _data._build_timeline

    def counting(scalars, sources=None):
        made.append(tuple(sorted(sources)) if sources is not None else None)
        return real(scalars, sources)

    monkeypatch.setattr(_data, "_build_timeline", counting)
    figs = render_figures(run, example[1], metrics=False)
    assert all(f.missing is None for f in figs)
    assert made and len(made) == len(set(made))          # one per distinct axis (loss, lr, outputs, grads)
    assert len(made) <= 4
    figs = render_figures(run, example[1])               # the all-metrics panels: each series' own files' axis
    assert all(f.missing is None for f in figs)
    assert len(made) == len(set(made))                   # drawing again recomputes nothing
    assert _data.metric_timeline(run, "loss") is _data.metric_timeline(run, "loss")
    other = cnb.load(default_example_dir() / "training_diagnostic.log")
    assert _data.metric_timeline(other, "loss").kind == "batch" != _data.metric_timeline(run, "loss").kind


def test_the_spread_caption_names_both_bands(example):
    run, _ = example
    fs = diagnose(run, variance_collapse__critical_ratio=0.05, variance_collapse__warning_ratio=0.2)
    spec = next(p for p in PLOTS if p.key == "output_std")
    cap = spec.caption(run, fs)
    assert "collapse threshold 0.05" in cap and "up to 0.2 (warning)" in cap


def yolo_csv(path, epochs=5):
    cols = ["epoch", "train/box_loss", "metrics/precision(B)", "metrics/mAP50(B)", "val/box_loss", "lr/pg0"]
    rows = [",".join(f"{c:>20}" for c in cols)]
    rows += [",".join(f"{v:>20}" for v in (e, 1.5 - 0.1 * e, 0.1 * e, 0.2 * e, 2 - 0.1 * e, 0.01))
             for e in range(epochs)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_all_metrics_figures_one_per_prefix(tmp_path):
    run = cnb.load(yolo_csv(tmp_path / "results.csv"))
    figs = {f.key: f for f in render_figures(run, diagnose(run))}
    metric_keys = [k for k in figs if k.startswith("metrics_")]
    assert metric_keys == ["metrics_metrics", "metrics_no_prefix"]      # metrics/ ; train/ + lr/ alone: other names
    m = figs["metrics_metrics"]
    assert m.title == "All metrics: metrics/" and m.png_base64 and m.missing is None
    assert "starts with 'metrics/'" in m.caption and "2 drawn" in m.caption
    assert base64.b64decode(m.png_base64)[:8] == b"\x89PNG\r\n\x1a\n"
    assert not any(k.startswith("metrics_") for k in (f.key for f in render_figures(run, [], metrics=False)))


def test_too_many_groups_are_named_not_drawn(tmp_path):
    from collapse_nb.report.figures import MAX_METRIC_FIGURES
    import json
    n_groups = MAX_METRIC_FIGURES + 3
    rows = [{"step": s, **{f"grp{g}/m{k}": float(s + k) for g in range(n_groups) for k in range(2)}} for s in range(3)]
    p = tmp_path / "m.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    run = cnb.load(p)
    figs = render_figures(run, [])
    drawn = [f for f in figs if f.key.startswith("metrics_") and f.png_base64]
    assert len(drawn) == MAX_METRIC_FIGURES
    more = figs[-1]
    assert more.key == "metrics_more" and more.png_base64 is None
    assert more.missing.startswith("3 more name group(s) with 6 series are not drawn")
