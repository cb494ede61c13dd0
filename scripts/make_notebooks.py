"""Write the notebooks in notebooks/ (outputs empty) from the cell sources below.

    python scripts/make_notebooks.py            # rewrite every notebook
    python scripts/make_notebooks.py --check    # exit 1 if a notebook differs from what this writes

The .ipynb files are the product (committed, outputs stripped); this script is a convenient way
to keep their cells reviewable. A cell source starting with ``# md`` is Markdown. The first code
cell is tagged ``parameters``; a cell tagged ``key-figure`` draws the figure that
``scripts/make_doc_images.py`` saves for docs/notebooks.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
KERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}

PARAMS = '''# Parameters: point this notebook at your own run.
RUN_PATH = None        # a log file, a run folder, or a list of them; None: the bundled example (data/example_run)
ZOO_SCENARIO = None    # or a zoo scenario to train here first, e.g. "vanishing_gradients" (needs torch)'''

SETUP = '''%matplotlib inline
import tempfile
from pathlib import Path

import pandas as pd

import collapse_nb as cnb
from collapse_nb import plots, widgets
from collapse_nb.example import default_example_dir

if ZOO_SCENARIO:
    import collapse_nb.zoo as zoo
    RUN_PATH = zoo.generate(ZOO_SCENARIO, Path(tempfile.mkdtemp()) / ZOO_SCENARIO)
USING_EXAMPLE = RUN_PATH is None       # the asserts about the example's injected faults only run on it
run = cnb.load(default_example_dir() if USING_EXAMPLE else RUN_PATH)
print(run.summary())
assert len(run.scalars) > 0


def draw(plot, *args, **kwargs):
    """``plot(*args, **kwargs)``, or, when the run lacks what the plot needs, say so and return None."""
    try:
        return plot(*args, **kwargs)
    except plots.MissingDataError as exc:
        print(f"{plot.__name__}: not drawn: {exc}")
        if USING_EXAMPLE:
            raise'''

QUICKSTART = [
    '''# md
# Quickstart: what went wrong with this run?

Load a run's files into tidy tables, run every check, look at the findings and a couple of plots,
and write the report. Set `RUN_PATH` below to your own run (a log file or a run folder) and run all
cells; with `RUN_PATH = None` the notebook reads the bundled example, a small model really trained
with three faults injected (see `data/README.md`).''',
    PARAMS, SETUP,
    '''# md
## The tables
`run.epochs` has one row per epoch; `run.scalars` every logged number (long format);
`run.outputs` prediction vs target statistics; `run.grads` per-parameter norms.''',
    '''run.epochs.head(10)''',
    '''# md
## Diagnose
`cnb.diagnose(run)` runs every check; problems come first. `cnb.root_causes` ranks the problems by
how much of the failure each explains.''',
    '''findings = cnb.diagnose(run)
codes = [f.code for f in findings]
assert findings and all(isinstance(f, cnb.Finding) for f in findings)
ranks = [f.rank for f in findings]
problem = [f.severity in ("critical", "warning") for f in findings]
assert problem == sorted(problem, reverse=True), "problems come first"
if USING_EXAMPLE:       # the three injected faults
    assert {"variance_collapse", "dead_parameters", "val_below_train"} <= set(codes), codes
cnb.root_causes(findings)''',
    '''panel = widgets.findings_panel(findings)
assert panel.shown == codes
panel.severity_buttons["ok"].value = False      # list the problems only (click "ok" to see the rest)
assert panel.shown == [f.code for f in findings if f.severity != "ok"]
panel.widget''',
    '''# md
## Two plots
The loss curves (train and validation), and the spread of the predictions against the targets.''',
    '''ax = draw(plots.loss_curves, run, logy=True)
assert ax is None or ax.get_lines(), "the loss was drawn"''',
    '''ax = draw(plots.output_std, run)
if USING_EXAMPLE:
    ratio = [ln for ln in ax.right_ax.get_lines() if ln.get_label().startswith("pred std")][0].get_ydata()
    assert max(ratio) < 0.3, "the example's predictions never spread like the targets"''',
    '''# md
## Explore interactively
Tabs for the curves (with an epoch range slider), outputs, gradients (layer filter, step slider),
findings and thresholds.''',
    '''explorer = widgets.explore(run)
explorer.gradients.layer_filter.value = "proj"
assert all("proj" in p for p in explorer.gradients.layer_select.options)
explorer.widget''',
    '''# md
## The report
`collapse_nb.report.report(run, path)` writes a self-contained HTML page and a Markdown file.''',
    '''from collapse_nb.report import report

out_dir = Path(tempfile.mkdtemp())
rep = report(run, out_dir, findings=findings)
written = sorted(p.name for p in out_dir.iterdir())
print(rep.verdict)
print(written)
assert "collapse_nb_report.html" in written and "collapse_nb_report.md" in written
assert (out_dir / "collapse_nb_report.html").stat().st_size > 1000''',
]

VARIANCE = [
    '''# md
# Variance collapse: is the model predicting a constant?

Three questions: is the spread of the predictions far below the targets'? When did it start?
Which layer shrank: the output head, or something before it?''',
    PARAMS, SETUP,
    '''# md
## 1. Is the model predicting (nearly) a constant?
The `variance_collapse` check compares the prediction std with the target std over the last
logged batches (`run.outputs`, column `std_ratio`).''',
    '''vc = cnb.diagnose(run, checks=["variance_collapse"])[0]
print(vc.severity, vc.code, "|", vc.title)
print(vc.summary)
if vc.code in ("variance_collapse", "outputs_spread_ok"):
    assert vc.details["ratio_last"] > 0
if USING_EXAMPLE:
    assert vc.code == "variance_collapse" and vc.details["ratio_last"] < 0.1
vc.evidence''',
    '''ax = draw(plots.output_std, run, threshold=vc.details.get("thresholds", {}).get("critical_ratio", 0.1))''',
    '''# md
## 2. When did it start?
`details["onset"]` is the first batch after which the ratio stays under the warning threshold;
`trend` says whether it fell during training or was low from the start.''',
    '''onset, trend = vc.details.get("onset"), vc.details.get("trend")
print("onset:", onset and onset["where"], "| trend:", trend)
o = run.outputs
o = o[o["phase"] == "train"] if (o["phase"] == "train").any() else o
per_epoch = o.groupby("epoch")["std_ratio"].median().rename("median pred/target std (train)")
print(per_epoch.to_string())
if USING_EXAMPLE:       # a tiny-initialised head: collapsed from the first batch, recovering slowly
    assert onset is not None and onset["from_start"] and trend == "rising"
    assert per_epoch.is_monotonic_increasing''',
    '''# md
## 3. Which layer shrank?
The weight norm of each parameter over training (`run.grads.weight_norm`): an output head orders
of magnitude smaller than the other layers maps every input to nearly the same output. The
`output_head` check makes the comparison.''',
    '''g = run.grads.dropna(subset=["weight_norm"])
norms = (g.assign(param=g["param"].astype(str)).groupby("param", sort=False)["weight_norm"]
         .agg(first="first", last="last"))
print(norms.to_string())
oh = cnb.diagnose(run, checks=["output_head"])[0]
print(oh.severity, oh.code, "|", oh.title)
if USING_EXAMPLE:
    head = oh.details["head"]
    weights = norms[norms.index.str.endswith("weight")]
    assert oh.code == "tiny_output_head" and weights["first"].idxmin() == head
    assert weights.loc[head, "first"] < 1e-3 * weights["first"].median()''',
    '''ax = draw(plots.gradient_heatmap, run, value="weight_norm")''',
    '''# md
### Across checkpoints
When the run saved checkpoints, `run.params` has each tensor's norm per checkpoint, and
`plots.param_norm_changes` shows how much each one moved between checkpoints.''',
    '''if run.params.empty:
    print("No checkpoints were read: run.params is empty.")
else:
    changes = plots.param_norm_change_table(run.params)
    head = oh.details.get("head")
    changes = changes.assign(**{c: changes[c].map(lambda p: Path(p).name) for c in ("from_checkpoint", "to_checkpoint")})
    cols = ["param", "from_checkpoint", "to_checkpoint", "norm_before", "norm_after", "rel_change"]
    print(changes.loc[changes["param"] == head, cols].to_string(index=False) if head else changes[cols].head(12))
    if USING_EXAMPLE:   # the head grows from its tiny init at every checkpoint: it was small, not dead
        assert (changes.loc[changes["param"] == head, "rel_change"] > 0).all()
    ax = draw(plots.param_norm_changes, run)
    assert ax is None or len(ax.images) >= 1''',
    '''# md
## How sure is the verdict? Move the threshold
The threshold explorer re-runs the check with the slider's value (`diagnose(run,
checks=["variance_collapse"], variance_collapse__critical_ratio=value)`).''',
    '''te = widgets.threshold_explorer(run, "variance_collapse", "critical_ratio")
if USING_EXAMPLE:
    assert te.findings[0].severity == "critical"
    te.slider.value = te.findings[0].details["ratio_last"] / 2     # a stricter definition of "collapsed"
    assert te.findings[0].severity == "warning"
te.widget''',
]

GRADIENTS = [
    '''# md
# Gradient flow: where do gradients die or explode?

Dead parameters (gradient exactly 0 at every step) grouped by module, vanishing and exploding
gradients, and the charts that show them.''',
    PARAMS, SETUP,
    '''# md
## Dead parameters, by module''',
    '''dp = cnb.diagnose(run, checks=["dead_parameters"])[0]
print(dp.severity, dp.code, "|", dp.title)
print(dp.summary)
dead_modules = dp.details.get("modules", {})
for module, params in dead_modules.items():
    print(f"{module}: {', '.join(params)}")
if USING_EXAMPLE:
    assert "attn.key_projection" in dead_modules
dp.evidence''',
    '''flow = plots.grad_flow_table(plots.grads_over_time(run))
from_grads = set(dp.evidence.loc[dp.evidence["source"] == "grads", "param"]) if not dp.evidence.empty else set()
assert set(flow.loc[flow["dead"], "param"]) == {p for p in from_grads
                                               if p in set(dp.details.get("dead", []))}
flow''',
    '''try:
    ax = plots.gradient_flow(run)
except plots.MissingDataError as exc:
    print(f"not drawn: {exc}")''',
    '''# md
## Vanishing or exploding?
`vanishing_gradients` looks for layers whose gradients are orders of magnitude below the others
(and the first layer far below the last); `exploding_gradients` for huge, spiking or NaN norms.''',
    '''for f in cnb.diagnose(run, checks=["vanishing_gradients", "exploding_gradients", "update_ratio"]):
    print(f.severity, f.code, "|", f.title)
live = flow[~flow["dead"]]
print(f"live parameters' mean gradient norm: {live['mean'].min():.3g} .. {live['mean'].max():.3g}")''',
    '''ax = draw(plots.gradient_heatmap, run)''',
    '''ax = draw(plots.update_ratio_heatmap, run)''',
    '''# md
## Explore: filter the layers, move through the steps
Type a regex in the filter (e.g. `attn|projection`), pick layers, move the step slider.''',
    '''ge = widgets.gradient_explorer(run)
ge.layer_filter.value = "attn"           # a regex: only the parameters whose name matches
assert all("attn" in p for p in ge.layer_select.options)
if USING_EXAMPLE:
    assert ge.layer_select.options
    assert ge.flow_table.set_index("param").loc["attn.key_projection.weight", "dead"]
if ge.steps:
    ge.step_slider.value = ge.steps[-1]
    assert ge.flow_table["n_logged"].max() == 1
ge.widget''',
]

GAP = [
    '''# md
# Train / validation gap: why is validation loss below (or far above) training loss?

A validation loss a little below the training loss is normal with dropout; several times below is
a reporting bug or a data problem. The `val_below_train` check ranks the candidate causes with
the evidence for each; this notebook walks through them with the tables.''',
    PARAMS, SETUP,
    '''ax = draw(plots.val_train_ratio, run)''',
    '''vb = cnb.diagnose(run, checks=["val_below_train"])[0]
print(vb.severity, vb.code, "|", vb.title)
print(vb.summary)
causes = pd.DataFrame(vb.details.get("causes", []))
if USING_EXAMPLE:
    assert vb.code == "val_below_train" and vb.details["top_cause"] == "gradient_accumulation"
causes[["cause", "score", "explains", "text"]] if len(causes) else vb.evidence''',
    '''# md
## Cause 1: the train loss is summed over gradient-accumulation micro-batches
With `gradient_accumulation_steps = k`, a training loop that adds up `loss.item()` over the k
micro-batches reports a train loss k times too high. Evidence: the epoch train loss divided by
the mean of that epoch's per-batch train losses.''',
    '''k = run.config.get("gradient_accumulation_steps")
s = run.scalars
batch_losses = s[(s["name"] == "loss") & (s["phase"].isin(["train"]) | s["phase"].isna()) & s["batch"].notna()]
batch_mean = batch_losses.groupby(batch_losses["epoch"].astype(float))["value"].mean()
epoch_train = run.epochs.set_index(run.epochs["epoch"].astype(float))["train_loss"] if "train_loss" in run.epochs else None
if epoch_train is not None and len(batch_mean):
    factor = (epoch_train / batch_mean).dropna()
    print(f"gradient_accumulation_steps = {k}; epoch train loss / mean per-batch loss per epoch:")
    print(factor.round(3).to_string())
    if USING_EXAMPLE:
        assert abs(factor.median() / k - 1) < 0.25
        acc = causes.set_index("cause").loc["gradient_accumulation"]
        assert abs(acc["epoch_over_batch_mean"] - factor.median()) < 0.05
else:
    print("No per-batch train losses to compare with the epoch values.")''',
    '''# md
## Cause 2: dropout and other train-only regularisation
Dropout is on during training and off during validation: that explains a gap of ~1.1-1.3x at most.''',
    '''ratio = vb.details.get("ratio_median")
print(f"dropout = {run.config.get('dropout')}; median train/val = {ratio}")
row = causes.set_index("cause").loc["train_only_regularisation"] if "cause" in causes else None
if row is not None:
    print(row["text"])
if USING_EXAMPLE:
    assert ratio > vb.details["thresholds"]["dropout_ratio"] and row["score"] < 0.3''',
    '''# md
## Cause 3: a different reduction (sum vs mean)
A train loss with `reduction="sum"` is `batch_size` times the mean.''',
    '''print(f"batch_size = {run.config.get('batch_size')}; median train/val = {ratio}")
if "cause" in causes and (causes["cause"] == "reduction_sum").any():
    print(causes.set_index("cause").loc["reduction_sum", "text"])
if USING_EXAMPLE:
    assert causes.set_index("cause").loc["reduction_sum", "score"] < 0.1''',
    '''# md
## Cause 4: leakage, or an easier validation split
If the validation targets vary less than the training targets, a squared-error validation loss is
lower by `(std_train / std_val)**2`. Compare the target spread per phase (`run.outputs`).''',
    '''spread = run.outputs.groupby("phase", observed=True)["target_std"].median()
print(spread.to_string() if len(spread) else "no target statistics logged")
if {"train", "val"} <= set(spread.index):
    explained = (spread["train"] / spread["val"]) ** 2
    print(f"the target spreads alone explain a {explained:.2f}x gap")
    if USING_EXAMPLE:
        assert explained < 1.3     # not the explanation here''',
    '''# md
## And the other way round: validation far above training
That is overfitting (or a distribution shift); the `overfitting` check looks for it.''',
    '''for f in cnb.diagnose(run, checks=["overfitting"]):
    print(f.severity, f.code, "|", f.title)''',
    '''ax = draw(plots.loss_curves, run, x="epoch")''',
]

TEACHING = [
    '''# md
# Teaching gradient flow: watch gradients vanish, explode or flow

Small networks trained live on the CPU (`collapse_nb.teaching`): choose the depth, the activation,
the initialisation, normalisation and residual connections, press **train**, and see each
layer's gradient norm from the input (left) to the output head (right). Each recording is also a
collapse_nb run, so the library's own checks judge it.''',
    '''# Parameters
RUN_PATH = None        # at the end, your run's gradient flow is compared (None: the bundled example)
STEPS = 40             # SGD steps per network''',
    '''%matplotlib inline
import collapse_nb as cnb
from collapse_nb import plots, teaching, widgets
from collapse_nb.example import default_example_dir
from collapse_nb.widgets.teaching import plot_layer_grads''',
    '''# md
## The explorer
Change the controls and press **train**; earlier networks stay on the chart (untick *keep* to
start over). Run headless, the cell trains the default network: 10 sigmoid layers.''',
    '''explorer = widgets.teaching_explorer()
explorer.steps.value = STEPS
first = explorer.train()                  # what the "train" button does
print(first.config.label, "->", first.verdict)
assert first.verdict == "vanishing"
explorer.widget''',
    '''# md
## Four networks side by side
- **deep sigmoid**: the sigmoid's slope is at most 0.25, so every layer multiplies the gradient
  by a small factor going back: the first layers get almost nothing (a line falling to the left).
- **tanh, small init**: weights too small shrink the signal forward and the gradient backward.
- **relu, large init**: each layer doubles the signal; within a step or two the loss and the
  gradients overflow to inf/NaN (red crosses).
- **residual relu + layer norm**: the identity path carries the gradient past every block,
  normalisation keeps each block's scale: the line is flat.''',
    '''results = teaching.train_many(steps=STEPS)
verdicts = {name: r.verdict for name, r in results.items()}
print(verdicts)
assert verdicts["deep sigmoid"] == "vanishing"
assert verdicts["relu, large init"] == "exploding"
assert verdicts["residual relu + layer norm"] == "healthy"
ax = plot_layer_grads(results)''',
    '''# md
## The library's checks agree
Each recording converts to a run (`result.to_run()`), and `diagnose` runs the same gradient
checks it runs on a real training log.''',
    '''for name, r in results.items():
    found = cnb.diagnose(r.to_run(), checks=["vanishing_gradients", "exploding_gradients"])
    print(f"{name:28s}", "; ".join(f"{f.severity} {f.code}" for f in found))
    codes = {f.code for f in found}
    if name == "deep sigmoid":
        assert "vanishing_gradients" in codes
    if name == "relu, large init":
        assert "exploding_gradients" in codes
    if name == "residual relu + layer norm":
        assert codes == {"gradients_not_vanishing", "gradients_finite"}''',
    '''ax = plots.gradient_flow(results["deep sigmoid"].to_run())''',
    '''# md
## Your run
The same per-parameter chart for a real run: compare its shape with the four above.''',
    '''run = cnb.load(default_example_dir() if RUN_PATH is None else RUN_PATH)
flow = plots.grad_flow_table(plots.grads_over_time(run))
live = flow[~flow["dead"] & flow["param"].astype(str).str.endswith("weight")]
if len(live) >= 2:
    print(f"first / last weight matrix mean gradient norm: {live['mean'].iloc[0] / live['mean'].iloc[-1]:.3g}")
try:
    ax = plots.gradient_flow(run)
except plots.MissingDataError as exc:
    print(f"not drawn: {exc}")''',
]

NOTEBOOK_CELLS = {
    "00_quickstart.ipynb": (QUICKSTART, 10),
    "01_variance_collapse.ipynb": (VARIANCE, 10),
    "02_gradient_flow.ipynb": (GRADIENTS, 6),
    "03_train_val_gap.ipynb": (GAP, 3),
    "04_teaching_gradient_flow.ipynb": (TEACHING, 6),
}


def build(cells: list[str], key_figure: int) -> nbformat.NotebookNode:
    """A notebook of ``cells``; cell ``key_figure`` (index) is tagged ``key-figure``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": KERNEL, "language_info": {"name": "python"}}
    first_code = True
    for i, src in enumerate(cells):
        if src.startswith("# md\n"):
            cell = nbformat.v4.new_markdown_cell(src[len("# md\n"):])
        else:
            cell = nbformat.v4.new_code_cell(src)
            if first_code:
                cell.metadata["tags"] = ["parameters"]
                first_code = False
        if i == key_figure:
            cell.metadata.setdefault("tags", []).append("key-figure")
        cell.id = f"cell-{i:02d}"
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 when a notebook would change")
    args = ap.parse_args(argv)
    NOTEBOOKS.mkdir(exist_ok=True)
    stale = []
    for name, (cells, key) in NOTEBOOK_CELLS.items():
        text = nbformat.writes(build(cells, key)) + "\n"
        path = NOTEBOOKS / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO)}")
    if stale:
        print("out of date: " + ", ".join(stale) + " (run python scripts/make_notebooks.py)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
