"""Shared plot helpers: readable parameter names, PNG export, placeholders, import without matplotlib."""
from __future__ import annotations

import base64
import os
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from collapse_nb import CollapseNBError, plots  # noqa: E402
from collapse_nb.plots._common import fmt_num, new_axes, tall  # noqa: E402

from . import REPO  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


# ---------------------------------------------------------------- names

def test_shorten_name_leaves_out_middle_parts_keeping_head_layer_numbers_and_tail():
    name = "encoder.layers.5.self_attn.q_proj.weight"
    assert plots.shorten_name(name, 36) == "encoder…5.self_attn.q_proj.weight"
    assert plots.shorten_name(name, 30) == "encoder…5…q_proj.weight"
    assert plots.shorten_name(name, 39) == "encoder…5.self_attn.q_proj.weight"
    for w in (12, 20, 30, 36, 39):
        assert len(plots.shorten_name(name, w)) <= w


def test_shorten_name_cuts_characters_when_leaving_out_parts_is_not_enough():
    name = "encoder.layers.5.self_attn.q_proj.weight"
    assert plots.shorten_name(name, 20) == "encoder…5…weight"
    assert plots.shorten_name(name, 12) == "encod…weight"
    long_tail = "block.attention_output_projection_weight_matrix"
    out = plots.shorten_name(long_tail, 30)
    assert len(out) == 30 and out.startswith("block") and "…" in out


def test_shorten_name_short_names_unchanged():
    assert plots.shorten_name("fc.weight", 40) == "fc.weight"
    assert plots.shorten_name("x" * 40, 40) == "x" * 40


def test_shorten_name_cuts_a_long_last_part_in_the_middle():
    name = "a." + "very_long_parameter_name_without_dots_" * 2
    out = plots.shorten_name(name, 20)
    assert len(out) == 20 and "…" in out
    assert out.startswith("a.") and out.endswith(name[-(20 - 1 - out.index("…")):])


def test_shorten_name_rejects_a_tiny_width():
    with pytest.raises(ValueError, match="width must be at least"):
        plots.shorten_name("encoder.weight", 3)


def test_common_prefix():
    assert plots.common_prefix(["model.enc.a.weight", "model.enc.b.weight"]) == "model.enc."
    assert plots.common_prefix(["model.a", "other.a"]) == ""
    assert plots.common_prefix(["model.a"]) == ""
    assert plots.common_prefix(["m.a", "m.a"]) == "m."        # never the whole name


def test_shorten_names_leaves_short_lists_alone():
    names = ["encoder.0.weight", "encoder.0.bias"]
    assert plots.shorten_names(names) == names


def test_shorten_names_abbreviates_the_common_prefix_and_stays_distinct():
    names = [f"model.transformer.encoder.layers.{i}.self_attention.{p}_projection.weight"
             for i in range(12) for p in ("query", "key", "value")]
    out = plots.shorten_names(names, 40)
    assert len(set(out)) == len(names)
    assert all(len(s) <= 40 for s in out)
    assert out[0].startswith("m.t.e.l.")            # initials of model.transformer.encoder.layers.
    assert out[0].endswith("query_projection.weight")


def test_shorten_names_widens_labels_that_would_collide():
    names = ["a.first_very_long_block.same_tail.weight", "a.second_very_long_block.same_tail.weight",
             "b.short"]
    out = plots.shorten_names(names, 22)
    assert len(set(out)) == 3
    assert out[2] == "b.short"


def test_fmt_num():
    assert fmt_num(3.0) == "3"
    assert fmt_num(0.00012345) == "0.0001234" or fmt_num(0.00012345) == "0.0001235"
    assert fmt_num(float("nan")) == "nan"


def test_tall_is_bounded():
    assert tall(0) == 3.5
    assert tall(10_000) == 24.0
    assert 3.5 < tall(20) < 24.0


# ---------------------------------------------------------------- axes, export, placeholders

def test_new_axes_uses_the_given_axes():
    fig, ax = plt.subplots()
    assert new_axes(ax, (3, 3)) is ax
    made = new_axes(None, (4, 3))
    assert made is not ax and tuple(made.figure.get_size_inches()) == (4, 3)


def test_figure_to_base64_png_and_save_png(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    text = plots.figure_to_base64_png(fig)
    assert base64.b64decode(text).startswith(PNG)
    assert plots.figure_to_base64_png(ax) == text                   # an axes means its figure
    path = plots.save_png(ax, tmp_path / "sub" / "plot.png")
    assert path.read_bytes().startswith(PNG)
    assert plt.fignum_exists(fig.number)
    plots.save_png(fig, tmp_path / "again.png", close=True)
    assert not plt.fignum_exists(fig.number)


def test_export_rejects_other_objects():
    with pytest.raises(TypeError, match="Figure or Axes"):
        plots.figure_to_base64_png("not a figure")


def test_draw_unavailable_writes_the_message():
    err = plots.MissingDataError("loss_curves needs a loss")
    ax = plots.draw_unavailable(err, title="Loss")
    assert [t.get_text() for t in ax.texts] == ["loss_curves needs a loss"]
    assert ax.get_title() == "Loss" and not ax.axison


def test_missing_data_error_is_a_value_error_and_a_collapse_nb_error():
    assert issubclass(plots.MissingDataError, ValueError)
    assert issubclass(plots.MissingDataError, CollapseNBError)


def _python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO)


def test_importing_the_package_imports_no_matplotlib():
    r = _python("import sys, collapse_nb, collapse_nb.plots as p\n"
                "assert 'matplotlib' not in sys.modules, 'matplotlib imported'\n"
                "run = collapse_nb.load('data/example_run'); p.grad_flow_table(p.grads_over_time(run))\n"
                "assert 'matplotlib' not in sys.modules")
    assert r.returncode == 0, r.stderr


def test_importing_plots_does_not_choose_a_backend():
    r = _python("import matplotlib, collapse_nb.plots\n"
                "print(matplotlib.rcParams._get_backend_or_none())")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() in ("None", os.environ.get("MPLBACKEND", "None"))


def test_without_matplotlib_the_tables_work_and_drawing_says_what_to_install():
    r = _python("import sys; sys.modules['matplotlib'] = None\n"
                "import collapse_nb, collapse_nb.plots as p\n"
                "run = collapse_nb.load('data/example_run')\n"
                "assert p.grad_flow_table(p.grads_over_time(run))['dead'].sum() == 4\n"
                "p.loss_curves(run)")
    assert r.returncode != 0
    assert "ImportError" in r.stderr and "pip install matplotlib" in r.stderr


def test_every_plot_of_the_example_renders_to_png():
    from . import example_run
    run = example_run()
    drawn = [plots.loss_curves(run), plots.loss_curves(run, x="epoch"), plots.lr_curve(run), plots.output_std(run),
             plots.gradient_flow(run), plots.gradient_flow(run, step="last"), plots.gradient_heatmap(run),
             plots.update_ratio_heatmap(run), plots.val_train_ratio(run)]
    for ax in drawn:
        assert base64.b64decode(plots.figure_to_base64_png(ax, close=True)).startswith(PNG)
    assert plt.get_fignums() == []
