"""Each scenario shows its symptom in the tables collapse_nb reads from the run directory it left."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from collapse_nb import zoo


def from_file(df: pd.DataFrame, suffix: str) -> pd.DataFrame:
    """Rows of a table that came from the file whose name ends with ``suffix``."""
    return df[df["source"].astype(str).str.endswith(suffix)]


def train_outputs(run, suffix: str = "training_diagnostic.log") -> pd.DataFrame:
    o = from_file(run.outputs_from(), suffix)
    return o[o["phase"] == "train"].dropna(subset=["std_ratio"])


def first_batch_loss(run) -> float:
    s = from_file(run.scalars, "training_diagnostic.log")
    s = s[(s["name"] == "loss") & (s["phase"] == "train") & s["batch"].notna()]
    return float(s.sort_values("line")["value"].iloc[0])


def capture_scalar(run, name: str) -> pd.DataFrame:
    s = from_file(run.scalars, "capture.jsonl")
    return s[(s["name"] == name) & s["param"].isna()].sort_values("step")


# ---------------------------------------------------------------------------------------- healthy
@pytest.mark.parametrize("name", ["healthy_mlp", "healthy_classifier", "healthy_cnn", "healthy_transformer"])
def test_healthy_runs_really_learn(zoo_run, name):
    _, run = zoo_run(name)
    ep = run.epochs
    first, last = first_batch_loss(run), ep.iloc[-1]
    assert last["train_loss"] < 0.5 * first
    assert abs(last["val_loss"] - last["train_loss"]) < 0.5 * max(last["train_loss"], last["val_loss"])
    assert last["val_loss"] < 0.5 * ep["val_loss"].iloc[0] or last["val_loss"] < 0.25
    if "classifier" in name or "cnn" in name:
        assert last["train_loss"] < 0.5 * math.log(4) and last["val_accuracy"] > 0.8
        assert run.meta["config_raw"] and run.config["loss"] == "cross_entropy"
    else:
        assert train_outputs(run)["std_ratio"].iloc[-30:].median() > 0.8      # predictions spread like targets


# ---------------------------------------------------------------------------------------- faults
def test_variance_collapse_predictions_shrink_to_a_constant(zoo_run):
    _, run = zoo_run("variance_collapse")
    per_epoch = train_outputs(run).groupby("epoch")["std_ratio"].median()
    assert per_epoch.iloc[-1] < 0.1                        # pred std under 1/10 of the target std at the end
    assert per_epoch.max() > 2 * per_epoch.iloc[-1]        # ... having been wider before it collapsed
    assert from_file(run.outputs_from(), "capture.jsonl")["std_ratio"].dropna().iloc[-1] < 0.1
    assert run.config["weight_decay"] == 30.0


def test_dead_branch_gets_exactly_zero_gradient_at_every_step(zoo_run):
    d, run = zoo_run("dead_branch")
    g = run.grads_from()          # every file: the text log, the capture log and the TensorBoard histograms
    side = g[g["param"].astype(str).str.startswith("side.")]
    assert set(side["param"].astype(str)) == {"side.0.weight", "side.0.bias", "side.2.weight", "side.2.bias"}
    assert (side["grad_norm"] == 0).all()
    for suffix in ("capture.jsonl", "training_diagnostic.log"):
        assert len(from_file(side, suffix)) > 0
    assert len(side[side["source"].astype(str).str.contains("tfevents")]) > 0     # from the gradient histograms
    steps = from_file(side, "capture.jsonl")["step"].nunique()
    assert steps == from_file(g, "capture.jsonl")["step"].nunique() > 10
    alive = g[~g["param"].astype(str).str.startswith("side.")]
    assert (from_file(alive, "capture.jsonl")["grad_norm"] > 0).all()
    assert run.epochs["train_loss"].iloc[-1] < 0.5 * first_batch_loss(run)       # the rest still learns


def test_dying_relu_units_output_zero(zoo_run):
    _, run = zoo_run("dying_relu")
    s = run.scalars
    frac = s[(s["name"] == "act_frac_zero")]
    relus = frac[frac["param"].astype(str).isin(["net.1", "net.3", "net.5"])]
    assert relus["param"].nunique() == 3
    assert relus.groupby("param", observed=True)["value"].min().min() > 0.95     # ~all units output 0
    hidden = from_file(run.grads_from(), "capture.jsonl")
    hidden = hidden[hidden["param"].astype(str).isin(["net.0.weight", "net.2.weight", "net.4.weight"])]
    assert hidden["grad_norm"].max() < 1e-3
    ep = run.epochs
    assert ep["train_loss"].iloc[-1] > 0.95 * ep["train_loss"].iloc[0]           # nothing learned


def test_vanishing_gradients_early_layers_orders_of_magnitude_smaller(zoo_run):
    _, run = zoo_run("vanishing_gradients")
    g = from_file(run.grads_from(), "capture.jsonl")
    med = g.groupby(g["param"].astype(str))["grad_norm"].median()
    first, last_hidden, out = med["net.0.weight"], med["net.22.weight"], med["net.24.weight"]
    assert first < 1e-3 * out and first < 1e-2 * last_hidden
    layers = [med[f"net.{2 * i}.weight"] for i in range(13)]
    assert sum(b > a for a, b in zip(layers, layers[1:])) >= 10                   # rising towards the output


def test_exploding_gradients_then_nonfinite_loss(zoo_run):
    _, run = zoo_run("exploding_gradients")
    total = capture_scalar(run, "grad_norm")
    finite = total[np.isfinite(total["value"])]
    assert finite["value"].max() > 1e6 * finite["value"].iloc[0]
    assert not np.isfinite(total["value"].iloc[-1])
    ep = run.epochs
    assert np.isfinite(ep["train_loss"].iloc[0]) and not np.isfinite(ep["train_loss"].iloc[-1])
    loss = from_file(run.scalars, "training_diagnostic.log")
    assert (~np.isfinite(loss[loss["name"] == "loss"]["value"])).any()            # nan/inf written in the text log
    assert run.config.get("clip_grad_norm") is None


def test_lr_too_low_loss_hardly_moves(zoo_run):
    _, run = zoo_run("lr_too_low")
    ep = run.epochs
    assert ep["train_loss"].iloc[-1] > 0.97 * ep["train_loss"].iloc[0]
    assert (ep["lr"] == 1e-6).all() and run.config["learning_rate"] == 1e-6


def test_overfitting_val_turns_up_while_train_falls(zoo_run):
    _, run = zoo_run("overfitting")
    ep = run.epochs.reset_index(drop=True)
    best = int(ep["val_loss"].idxmin())
    assert best < len(ep) // 2
    assert ep["val_loss"].iloc[-1] > 1.3 * ep["val_loss"].min()
    assert ep["train_loss"].iloc[-1] < 0.05 * ep["train_loss"].iloc[0]
    after_best = ep["train_loss"].iloc[best:]
    assert after_best.is_monotonic_decreasing or ep["train_loss"].iloc[-1] < ep["train_loss"].iloc[best]


def test_accumulation_reporting_bug_makes_train_three_times_val(zoo_run):
    _, run = zoo_run("val_below_train_accumulation")
    ep = run.epochs
    ratio = (ep["train_loss"] / ep["val_loss"]).iloc[1:]
    assert abs(ratio.median() - 3) < 0.5 and ((ratio - 3).abs() < 0.5).all()
    assert run.config["gradient_accumulation_steps"] == 3
    assert (capture_scalar(run, "grad_accum_steps")["value"] == 3).all()          # micro-batches per step, recorded
    per_batch = from_file(run.scalars, "training_diagnostic.log")
    per_batch = per_batch[(per_batch["name"] == "loss") & per_batch["batch"].notna()]
    last = per_batch[per_batch["epoch"] == ep["epoch"].iloc[-1]]["value"].mean()
    assert abs(ep["train_loss"].iloc[-1] / last - 3) < 0.1                         # summed, not averaged


def test_heavy_dropout_train_loss_above_val(zoo_run):
    _, run = zoo_run("val_below_train_dropout")
    ep = run.epochs
    assert ((ep["train_loss"] / ep["val_loss"]) > 1.5).all()
    assert run.config["dropout"] == 0.5
    assert ep["val_loss"].iloc[-1] < 0.25 * first_batch_loss(run)                # the model does learn


def test_leakage_val_tracks_train_below_it_while_held_out_rises(zoo_run):
    _, run = zoo_run("leakage")
    ep = run.epochs
    assert (ep["val_loss"] < ep["train_loss"]).mean() >= 0.9
    assert np.corrcoef(ep["train_loss"], ep["val_loss"])[0, 1] > 0.9
    assert ep["val_loss"].iloc[-1] < 0.2 * ep["val_loss"].iloc[0]
    assert ep["test_loss"].iloc[-1] > 5 * ep["val_loss"].iloc[-1]                 # the held-out rows tell the truth
    assert ep["test_loss"].iloc[-1] > ep["test_loss"].min()


def test_lr_schedule_bug_logged_lr_disagrees_with_config(zoo_run):
    from collapse_nb.zoo.trainer import Spec

    _, run = zoo_run("lr_schedule_bug")
    cfg = run.config
    intended = Spec(epochs=int(cfg["epochs"]), lr=cfg["learning_rate"], scheduler="cosine",
                    warmup_epochs=int(cfg["warmup_epochs"]), min_lr=cfg["min_lr"])
    s = from_file(run.scalars, "capture.jsonl")
    lr = s[s["name"] == "lr"].sort_values("step")
    expected = np.array([intended.lr_at(e) for e in lr["epoch"].astype(float)])
    rel = np.abs(lr["value"].to_numpy() - expected) / expected
    assert np.median(rel) > 0.3
    within = lr.groupby(lr["epoch"].astype(float))["value"].agg(lambda v: v.max() / max(v.min(), 1e-12))
    assert (within > 2).mean() >= 0.5                                             # the lr moves inside epochs
    assert cfg["lr_scheduler"] == "cosine" and cfg["warmup_epochs"] == 2


def test_lr_schedule_bug_warmup_never_ends(tmp_path):
    import collapse_nb
    from collapse_nb import zoo

    run = collapse_nb.load(zoo.generate("lr_schedule_bug", tmp_path, bug="warmup_never_ends", epochs=4))
    lr = run.epochs["lr"].to_numpy()
    assert (np.diff(lr) > 0).all() and lr[-1] < 0.1 * run.config["learning_rate"]


def test_chance_level_loss_stays_at_ln_k(zoo_run):
    _, run = zoo_run("chance_level")
    ep = run.epochs
    assert run.config.get("loss") == "cross_entropy"
    for col in ("train_loss", "val_loss"):
        assert abs(ep[col].iloc[-1] - math.log(4)) / math.log(4) < 0.05
    assert abs(ep["val_accuracy"].iloc[-1] - 0.25) < 0.06
    assert any(v.get("num_classes") == 4 for v in run.meta["config_raw"].values())


def test_seed_replica_reproduces_the_seed_report(zoo_run):
    _, run = zoo_run("seed_replica")
    ep = run.epochs
    ratio = ep["train_loss"] / ep["val_loss"]
    assert ((ratio - 3).abs() < 0.3).all()                                        # val "3.6x lower" than train
    assert ep["train_loss"].iloc[-1] > 0.8 * ep["train_loss"].iloc[0]            # train loss nearly flat
    last = train_outputs(run)
    last = last[last["epoch"] == ep["epoch"].iloc[-1]]["std_ratio"]
    assert 0.03 < last.median() < 0.1                                             # pred std ~1/13 of the target's
    g = run.grads
    dead = g[g["param"].astype(str).str.startswith("attn.key_projection")]
    assert len(from_file(dead, "training_diagnostic.log")) == 2 * 60 and (dead["grad_norm"] == 0).all()
    lr = ep["lr"].to_numpy()
    assert lr[1] == pytest.approx(1e-3) and lr[0] == pytest.approx(5e-4) and lr[-1] == pytest.approx(1e-5)
    assert run.config["gradient_accumulation_steps"] == 3 and run.config["lr_scheduler"] == "cosine"


# ---------------------------------------------------------------------------------------- findings
@pytest.mark.parametrize("name", list(zoo.scenarios()))
def test_checks_report_the_expected_findings(zoo_run, name):
    """scenario.json's expected_findings are what collapse_nb's checks say about the run: the first is the top-ranked
    root cause and diagnose()'s first finding, a problem; every one is a problem. Healthy runs have no problem."""
    from collapse_nb.diagnose import diagnose, root_causes

    _, run = zoo_run(name)
    findings = diagnose(run)
    problems = [f for f in findings if f.severity in ("critical", "warning")]
    if name.startswith("healthy"):
        assert not problems, [(f.code, f.severity) for f in problems]
        assert zoo.expected_findings(name)[0] in {f.code for f in findings if f.severity == "ok"}
        return
    expected = zoo.expected_findings(name)
    rc = root_causes(findings)
    summary = [(f.code, f.severity) for f in problems]
    assert rc["code"].iloc[0] == expected[0] and rc["severity"].iloc[0] in ("critical", "warning"), (rc, summary)
    assert problems and problems[0].code == expected[0], summary
    assert all(a is b for a, b in zip(findings, problems))                   # problems first ...
    ranked = [c for c in rc["code"] if c in {f.code for f in problems}]
    assert [f.code for f in problems] == ranked                               # ... in root-cause order
    for code in expected:
        assert code in {f.code for f in problems}, (code, summary)
