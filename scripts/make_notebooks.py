"""Write the notebooks in notebooks/ (outputs empty) from the cell sources below.

    python scripts/make_notebooks.py            # rewrite every notebook
    python scripts/make_notebooks.py --check    # exit 1 if a notebook differs from what this writes

The .ipynb files are the product (committed, outputs stripped); this script is a convenient way
to keep their cells reviewable. A cell source starting with ``# md`` is Markdown. The first code
cell is tagged ``parameters``; a cell whose source starts with ``# key-figure`` (a line removed from
the notebook) is tagged ``key-figure``: it draws the figure that ``scripts/make_doc_images.py`` saves
for docs/notebooks.md.

The notebooks are written for a person investigating a run: narrative Markdown, one idea a cell,
no ``assert``. What they compute is checked by tests/notebooks/ (each notebook executed on the
bundled example, on a run lacking its data and on runs of the shared corpus, then its outputs and
the objects left in its kernel inspected).
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
RUN_PATH = None        # a log file, a run folder, or a list of them; None: the bundled example run
ZOO_SCENARIO = None    # or train a failure-zoo scenario here first, e.g. "vanishing_gradients" (needs torch)'''

SETUP = '''%matplotlib inline
import re
import tempfile
from pathlib import Path

import pandas as pd

import collapse_nb as cnb
from collapse_nb import plots, widgets
from collapse_nb.example import default_example_dir

if ZOO_SCENARIO:
    from collapse_nb import zoo
    RUN_PATH = zoo.generate(ZOO_SCENARIO, Path(tempfile.mkdtemp()) / ZOO_SCENARIO)
run = cnb.load(RUN_PATH or default_example_dir())
print(run.summary())


def draw(plot, *args, **kwargs):
    """Draw a plot; when the run lacks what it needs, say what is missing instead."""
    try:
        return plot(*args, **kwargs)
    except plots.MissingDataError as exc:
        print(f"Not drawn: {exc}")'''

QUICKSTART = [
    '''# md
# Quickstart: what went wrong with this run?

A training run failed, or looks wrong. This notebook reads the files it left behind, runs every
check collapse_nb knows, and ends with the failure report you would otherwise write by hand.

Set `RUN_PATH` in the next cell to your own run (a log file or a run folder) and run all cells.
Left at `None`, it reads the bundled example: a small encoder/decoder really trained, with three
faults injected (see `data/README.md`). Try to find them before the checks do.''',
    PARAMS, SETUP,
    '''# md
## What the files hold
The summary above lists every file read, its format and what was not understood. The numbers land
in tidy tables: `run.scalars` (every logged value, long format), `run.epochs` (one row per epoch),
`run.outputs` (prediction against target statistics) and `run.grads` (per-parameter norms).
One row per epoch is usually the first thing to look at:''',
    '''if run.scalars.empty:
    print("These files hold no logged numbers (no loss, no metric): the checks below can only read what "
          "the checkpoints and the configuration hold, and there are no curves to draw.")
run.epochs.head(10)''',
    '''# md
## Ask the checks
`cnb.diagnose(run)` runs every check and returns its findings, problems first. A symptom (the
predictions collapsed) and its cause (an output layer initialised tiny) both show up;
`cnb.root_causes` ranks them by how much of the failure each one explains.''',
    '''findings = cnb.diagnose(run)
problems = [f for f in findings if f.severity in ("critical", "warning")]
print(f"{len(findings)} checks ran; {len(problems)} found a problem:")
for f in problems:
    print(f"  {f.severity:8s} {f.title}")
cnb.root_causes(findings)''',
    '''# md
The same findings with their evidence, in a panel. The toggles filter by severity: here the checks
that passed are hidden; click **ok** to bring them back.''',
    '''panel = widgets.findings_panel(findings)
panel.severity_buttons["ok"].value = False
panel.widget''',
    '''# md
## Look at the curves
The loss first (log scale: a run that failed early still shows its shape), then the spread of the
predictions against the spread of the targets: a model that predicts the same value for every
input has a prediction std far below the target std.''',
    '''ax = draw(plots.loss_curves, run, logy=True)''',
    '''# key-figure
ax = draw(plots.output_std, run)''',
    '''# md
## Explore it yourself
The explorer puts everything in tabs: the curves (with a choice of x axis and an epoch range),
the outputs, the gradients (filter the layers with a regex), the findings, and a threshold slider
that re-runs a check live. The **run path** box on top loads another run.''',
    '''explorer = widgets.explore(run)
explorer.widget''',
    '''# md
## Write the report
`collapse_nb.report.report(run, path)` writes the failure report: the verdict with its numbers,
the findings with their evidence, the suspects ranked, what to do, what is *not* wrong, and the
plots, as a self-contained HTML page and as Markdown.''',
    '''from collapse_nb.report import report

out_dir = Path(tempfile.mkdtemp())
rep = report(run, out_dir, findings=findings)
print(rep.verdict)
for path in sorted(out_dir.iterdir()):
    print(f"wrote {path} ({path.stat().st_size / 1000:.0f} kB)")''',
]

VARIANCE = [
    '''# md
# Variance collapse: is the model predicting a constant?

A regression model whose loss stops improving may have found the cheapest answer: predict the
mean for every input. Its predictions then barely vary while the targets still do. Three
questions: is the spread of the predictions far below the targets'? When did it start? Which
layer shrank: the output head, or something before it?''',
    PARAMS, SETUP,
    '''# md
## What did the run log about its predictions?
The check needs the standard deviation of the predictions and of the targets per logged batch
(`run.outputs`; a `y_pred ... mean/std` line in a text log, or `pred_std`/`target_std` metrics).''',
    '''outputs = run.outputs
if outputs.empty:
    print("This run logged no prediction or target statistics (run.outputs is empty), so whether its "
          "predictions collapsed cannot be told from its files. Log pred_std and target_std per batch "
          "(docs/capture.md shows how), or point RUN_PATH at another run.")
else:
    counts = outputs["phase"].astype(object).fillna("no phase").value_counts()
    phases = ", ".join(f"{p}: {n}" for p, n in counts.items())
    print(f"{len(outputs)} logged batches with prediction and target std ({phases})")
    display(outputs[["phase", "epoch", "batch", "pred_std", "target_std", "std_ratio"]].tail())''',
    '''# md
## 1. Is the model predicting (nearly) a constant?
The `variance_collapse` check compares the prediction std with the target std over the last
logged batches. Below 0.1 (ten times less spread than the targets) it calls the predictions
collapsed; below 0.3, suspicious.''',
    '''vc = cnb.diagnose(run, checks=["variance_collapse"])[0]
print(f"{vc.severity}: {vc.title}")
print(vc.summary)
vc.evidence''',
    '''ax = draw(plots.output_std, run, threshold=vc.details.get("thresholds", {}).get("critical_ratio", 0.1))''',
    '''# md
## 2. When did it start?
A collapse that sets in during training points at the optimisation (a learning rate too high, a
loss that rewards the mean); one that is there from the first batch points at the model as it was
built. The check reports the onset (the first batch after which the ratio stays low) and the trend.''',
    '''onset, trend = vc.details.get("onset"), vc.details.get("trend")
if outputs.empty:
    print("No prediction statistics: there is no collapse to date.")
elif onset:
    start = "from the very first logged batch" if onset.get("from_start") else f"from {onset['where']}"
    print(f"The ratio is low {start}; over the run it is {trend}.")
else:
    print("No onset: the ratio never stayed below the warning threshold.")
train = outputs[outputs["phase"] == "train"] if (outputs["phase"] == "train").any() else outputs
per_epoch = train.groupby("epoch")["std_ratio"].median().rename("median pred std / target std")
per_epoch.to_frame()''',
    '''# md
## 3. Which layer shrank?
If the output head's weights are orders of magnitude smaller than every other layer's, every input
maps to nearly the same output, however well the layers before it work. The weight norm of each
parameter (`run.grads.weight_norm`) at the first and last logged step shows it; the `output_head`
check makes the comparison.''',
    '''oh = cnb.diagnose(run, checks=["output_head"])[0]
print(f"{oh.severity}: {oh.title}")
g = run.grads
if "weight_norm" in g and g["weight_norm"].notna().any():
    g = g.dropna(subset=["weight_norm"]).assign(param=lambda d: d["param"].astype(str))
    norms = g.groupby("param", sort=False)["weight_norm"].agg(first="first", last="last")
    display(norms)
else:
    norms = None
    print("This run logged no per-parameter weight norms (run.grads has none): the layers cannot be compared.")''',
    '''# key-figure
ax = draw(plots.gradient_heatmap, run, value="weight_norm")''',
    '''# md
### Across checkpoints
A head that is small but learning grows at every checkpoint; one that is small and stuck does not.
When the run saved checkpoints, `run.params` has each tensor's norm per checkpoint.''',
    '''if run.params.empty:
    print("No checkpoints were read (run.params is empty): nothing to compare across checkpoints.")
else:
    changes = plots.param_norm_change_table(run.params)
    for c in ("from_checkpoint", "to_checkpoint"):
        changes[c] = changes[c].map(lambda p: Path(p).name)
    head = oh.details.get("head")
    cols = ["param", "from_checkpoint", "to_checkpoint", "norm_before", "norm_after", "rel_change"]
    display(changes.loc[changes["param"] == head, cols] if head else changes[cols].head(12))
    ax = draw(plots.param_norm_changes, run)''',
    '''# md
## How sure is the verdict? Move the thresholds
The threshold explorer re-runs the check with the slider's values, exactly as
`diagnose(run, checks=["variance_collapse"], variance_collapse__critical_ratio=...)` would. The two
sliders are linked: a critical ratio above the warning ratio would make no sense, so dragging one
past the other moves both.''',
    '''te = widgets.threshold_explorer(run, "variance_collapse", "critical_ratio")
te.widget''',
]

GRADIENTS = [
    '''# md
# Gradient flow: where do gradients die or explode?

A layer whose gradient is exactly zero at every step never learns: it is *dead* (detached from
the graph, frozen by mistake, or behind a ReLU that never fires). Gradients that shrink by orders
of magnitude towards the input *vanish*; huge or NaN ones *explode*. This notebook finds each in
the per-parameter norms the run logged.''',
    PARAMS, SETUP,
    '''# md
## What did the run log about its gradients?
The charts below need a gradient norm per parameter and step (`run.grads`: `grad_norm/<param>`
metrics, TensorBoard gradient histograms, or the seed report's `OPTIMIZER STEP DIAGNOSTICS` blocks).''',
    '''if run.grads.empty:
    print("This run logged no per-parameter gradient norms (run.grads is empty): where gradients die or "
          "explode cannot be told from its files. Log them (docs/capture.md shows how), or point RUN_PATH "
          "at another run.")
else:
    names = run.grads["param"].astype(str)
    modules = names.str.rsplit(".", n=1).str[0]
    print(f"{names.nunique()} parameters in {modules.nunique()} modules, "
          f"logged at {plots.grads_over_time(run)['x'].nunique()} points in time")''',
    '''# md
## Dead parameters, grouped by module
The `dead_parameters` check lists the parameters whose gradient is 0 at every logged step (or whose
weights never changed between checkpoints), grouped by the module they belong to.''',
    '''dp = cnb.diagnose(run, checks=["dead_parameters"])[0]
print(f"{dp.severity}: {dp.title}")
print(dp.summary)
dead_modules = dp.details.get("modules", {})
for module, params in dead_modules.items():
    print(f"  {module}: {', '.join(params)}")''',
    '''# md
## The gradient flow chart
Each parameter's gradient norm, mean and max over the logged steps, on a log scale; dead ones in
red. Read it from the top (the input side) to the bottom (the output head).''',
    '''# key-figure
ax = draw(plots.gradient_flow, run)''',
    '''# md
The numbers behind the bars:''',
    '''flow = plots.grad_flow_table(plots.grads_over_time(run)) if not run.grads.empty else pd.DataFrame()
flow''',
    '''# md
## Vanishing or exploding?
`vanishing_gradients` looks for layers whose gradients are orders of magnitude below the others
(the first layer far below the last); `exploding_gradients` for huge, spiking or NaN norms;
`update_ratio` for layers whose updates are tiny or huge next to their weights.''',
    '''for f in cnb.diagnose(run, checks=["vanishing_gradients", "exploding_gradients", "update_ratio"]):
    print(f"{f.severity:8s} {f.title}")''',
    '''# md
Over time, per parameter and step: the gradient norm, then how far each step moved the weights
relative to their size (about 1e-3 is the usual healthy rate; white on this scale).''',
    '''ax = draw(plots.gradient_heatmap, run)''',
    '''ax = draw(plots.update_ratio_heatmap, run)''',
    '''# md
## Histograms over time
Norms say how large a gradient is, not how it is spread. When the run wrote TensorBoard histograms
(`SummaryWriter.add_histogram`), the distribution of each tensor at each logged step shows it, as
TensorBoard draws it: one curve per step, the latest in front.''',
    '''from collapse_nb.plots.histograms import histogram_tags, plot_histograms

tags = histogram_tags(run)
dead_params = set(dp.details.get("dead", []))
if not tags:
    print("This run wrote no TensorBoard histograms (run.histograms is empty). The failure-zoo runs and "
          "the bundled example do: `collapse-nb zoo vanishing_gradients --out DIR`.")
else:
    live = [t for t in tags if t.startswith("grad") and t.split("/", 1)[-1] not in dead_params] or tags
    print(f"{len(tags)} histogram tags; a live gradient first: {live[0]}")
    ax = plot_histograms(run, live[0], kind="ridge")''',
    '''# md
The same distribution as a heatmap (step by value, colour = how many values fell there), and, when a
dead parameter has histograms, its gradient: every value 0, at every step.''',
    '''if tags:
    ax = plot_histograms(run, live[0], kind="heatmap")
    dead_tags = [t for t in tags if t.startswith("grad") and t.split("/", 1)[-1] in dead_params]
    if dead_tags:
        ax = plot_histograms(run, dead_tags[0], kind="ridge")''',
    '''# md
## Explore: filter the layers, move through the steps
Type a regex in the filter: the list narrows as you type and the charts follow. Pick layers, move
the step slider to see one step, switch the heatmap's value. It starts on the first module with a
dead parameter, if there is one.''',
    '''ge = widgets.gradient_explorer(run)
if dead_modules:
    ge.layer_filter.value = re.escape(next(iter(dead_modules)))
ge.widget''',
]

GAP = [
    '''# md
# Train / validation gap: why is the validation loss below (or far above) the training loss?

A validation loss a little below the training loss is normal with dropout; several times below
is a reporting bug or a data problem; far above is overfitting. The `val_below_train` check ranks
the candidate causes with the evidence for each; this notebook walks through them with the tables.''',
    PARAMS, SETUP,
    '''# md
## Both losses, per epoch
The comparison needs a training and a validation loss at the same epochs.''',
    '''e = run.epochs
both = [c for c in ("train_loss", "val_loss") if c in e]
if len(both) < 2 or not e[both].notna().all(axis=1).any():
    print("This run has no training and validation loss at the same epochs "
          f"(run.epochs has: {', '.join(map(str, e.columns)) or 'no columns'}), so there is no gap to explain. "
          "Point RUN_PATH at a run that logged both.")
    gap = pd.DataFrame()
else:
    gap = e[["epoch", *both]].dropna().assign(**{"train / val": lambda d: d["train_loss"] / d["val_loss"]})
gap''',
    '''# md
The curves on the run's own time axis: per-step values where they were logged per step, per-epoch
values at the end of their epoch (the same placement the explorer's epoch range uses). Then the
ratio of the two per epoch, placed the same way.''',
    '''curves = draw(plots.loss_curves, run)''',
    '''# key-figure
from collapse_nb.widgets.explorer import place_epoch_values

ax = draw(plots.val_train_ratio, run)
timeline = plots.metric_timeline(run, "loss")
if ax is not None and timeline.kind == "epoch":     # fractional epochs: epoch e's values at its end, e + 1
    place_epoch_values(ax, timeline)''',
    '''# md
## What the check says
Each candidate cause gets a score from the evidence in the files, and how much of the gap it would
explain.''',
    '''vb = cnb.diagnose(run, checks=["val_below_train"])[0]
print(f"{vb.severity}: {vb.title}")
print(vb.summary)
causes = pd.DataFrame(vb.details.get("causes", []), columns=["cause", "score", "explains", "text"])
causes.set_index("cause")''',
    '''# md
## Cause 1: the train loss is summed over gradient-accumulation micro-batches
With `gradient_accumulation_steps = k`, a training loop that adds up `loss.item()` over the k
micro-batches reports a train loss k times too high. Evidence: each epoch's train loss divided by
the mean of that epoch's per-batch train losses.''',
    '''k = run.config.get("gradient_accumulation_steps")
s = run.scalars
batch_losses = s[(s["name"] == "loss") & (s["phase"].isna() | (s["phase"] == "train")) & s["batch"].notna()]
batch_mean = batch_losses.groupby(batch_losses["epoch"].astype(float))["value"].mean()
if "train_loss" in e and len(batch_mean):
    factor = (e.set_index(e["epoch"].astype(float))["train_loss"] / batch_mean).dropna()
    print(f"gradient_accumulation_steps = {k}; epoch train loss / mean per-batch loss, per epoch:")
    display(factor.rename("factor").round(3).to_frame())
else:
    factor = pd.Series(dtype=float)
    print("No per-batch train losses to compare with the epoch values: this cause cannot be checked.")''',
    '''# md
## Cause 2: dropout and other train-only regularisation
Dropout is on during training and off during validation: that explains a gap of about 1.1-1.3x, not more.''',
    '''ratio = vb.details.get("ratio_median")
print(f"dropout = {run.config.get('dropout')}; median train / val = {ratio}")
if (causes["cause"] == "train_only_regularisation").any():
    print(causes.set_index("cause").loc["train_only_regularisation", "text"])''',
    '''# md
## Cause 3: a different reduction (sum against mean)
A train loss computed with `reduction="sum"` is `batch_size` times the mean.''',
    '''print(f"batch_size = {run.config.get('batch_size')}; median train / val = {ratio}")
if (causes["cause"] == "reduction_sum").any():
    print(causes.set_index("cause").loc["reduction_sum", "text"])''',
    '''# md
## Cause 4: leakage, or an easier validation split
If the validation targets vary less than the training targets, a squared-error validation loss is
lower by `(std_train / std_val) ** 2`. The target spread per phase tells: per logged batch
(`run.outputs`), or once per epoch (`run.epochs`, `train_target_std` / `val_target_std`).''',
    '''spread = run.outputs.groupby("phase", observed=True)["target_std"].median().to_dict()
for phase in ("train", "val"):
    col = f"{phase}_target_std"
    if phase not in spread and col in e and e[col].notna().any():
        spread[phase] = e[col].median()
if {"train", "val"} <= set(spread):
    explained = (spread["train"] / spread["val"]) ** 2
    print(f"median target std: train {spread['train']:.3g}, val {spread['val']:.3g}: "
          f"the spreads alone explain a {explained:.2f}x gap")
else:
    explained = None
    print("No target statistics for both phases (run.outputs, run.epochs): this cause cannot be checked.")''',
    '''# md
## And the other way round: validation far above training
That is overfitting (or a shift between the splits); the `overfitting` check looks for a validation
loss that turns up while the training loss keeps falling.''',
    '''for f in cnb.diagnose(run, checks=["overfitting"]):
    print(f"{f.severity}: {f.title}")
    print(f.summary)''',
    '''# md
## Explore the curves yourself
The explorer's curves tab: the per-step or the per-epoch view, a log scale, and an epoch range.
Both views put an epoch's values at the same place, the one used above.''',
    '''explorer = widgets.explore(run)
explorer.tabs.selected_index = 1          # the curves tab
explorer.widget''',
]

TEACHING = [
    '''# md
# Teaching gradient flow: watch gradients vanish, explode or flow

Small networks trained live on the CPU (`collapse_nb.teaching`): choose the depth, the activation,
the initialisation, normalisation and residual connections, press **train**, and see each
layer's gradient norm from the input (left) to the output head (right). Each recording is also a
collapse_nb run, so the library's own checks judge it.''',
    '''# Parameters
RUN_PATH = None        # at the end, your run's gradient flow is shown (None: the bundled example)
STEPS = 40             # SGD steps per network''',
    '''%matplotlib inline
import collapse_nb as cnb
from collapse_nb import plots, teaching, widgets
from collapse_nb.example import default_example_dir
from collapse_nb.widgets.teaching import plot_layer_grads''',
    '''# md
## The explorer
Change the controls and press **train**; earlier networks stay on the chart (untick *keep* to
start over). The cell trains the default network once, so the chart is not empty: 10 sigmoid layers.''',
    '''explorer = widgets.teaching_explorer()
explorer.steps.value = STEPS
first = explorer.train()                  # what the "train" button does
print(f"{first.config.label}: {first.verdict}")
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
    '''# key-figure
results = teaching.train_many(steps=STEPS)
for name, r in results.items():
    print(f"{name:28s} {r.verdict}")
ax = plot_layer_grads(results)''',
    '''# md
## The library's checks agree
Each recording converts to a run (`result.to_run()`), and `diagnose` runs on it the same gradient
checks it runs on a real training log.''',
    '''for name, r in results.items():
    found = cnb.diagnose(r.to_run(), checks=["vanishing_gradients", "exploding_gradients"])
    print(f"{name:28s}", "; ".join(f"{f.severity} {f.code}" for f in found))''',
    '''ax = plots.gradient_flow(results["deep sigmoid"].to_run())''',
    '''# md
## Your run
The same per-parameter chart for a real run: compare its shape with the four above. A flat profile
is healthy; one that falls towards the input is vanishing.''',
    '''run = cnb.load(RUN_PATH or default_example_dir())
if run.grads.empty:
    print(f"{RUN_PATH or 'the example'} logged no per-parameter gradient norms (run.grads is empty): "
          "there is no gradient flow to compare.")
else:
    flow = plots.grad_flow_table(plots.grads_over_time(run))
    live = flow[~flow["dead"] & flow["param"].astype(str).str.endswith("weight")]
    if len(live) >= 2:
        print(f"first / last weight matrix mean gradient norm: {live['mean'].iloc[0] / live['mean'].iloc[-1]:.3g}")
    ax = plots.gradient_flow(run)''',
]

NOTEBOOK_CELLS = {
    "00_quickstart.ipynb": QUICKSTART,
    "01_variance_collapse.ipynb": VARIANCE,
    "02_gradient_flow.ipynb": GRADIENTS,
    "03_train_val_gap.ipynb": GAP,
    "04_teaching_gradient_flow.ipynb": TEACHING,
}

KEY_FIGURE = "# key-figure\n"


def build(cells: list[str]) -> nbformat.NotebookNode:
    """A notebook of ``cells``; the one starting with ``# key-figure`` is tagged ``key-figure`` (the line dropped)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": KERNEL, "language_info": {"name": "python"}}
    first_code = True
    for i, src in enumerate(cells):
        key = src.startswith(KEY_FIGURE)
        src = src[len(KEY_FIGURE):] if key else src
        if src.startswith("# md\n"):
            cell = nbformat.v4.new_markdown_cell(src[len("# md\n"):])
        else:
            cell = nbformat.v4.new_code_cell(src)
            if first_code:
                cell.metadata["tags"] = ["parameters"]
                first_code = False
        if key:
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
    for name, cells in NOTEBOOK_CELLS.items():
        text = nbformat.writes(build(cells)) + "\n"
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
