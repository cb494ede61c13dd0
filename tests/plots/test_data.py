"""The tables behind the plots (collapse_nb.plots._data), checked against plain loops over the run's tables."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import collapse_nb
from collapse_nb.plots import _data

from . import example_run, no_step_rows, restarted_run, write_jsonl


def test_timeline_with_steps(tmp_path):
    run = restarted_run(tmp_path)
    tl = _data.timeline(run.scalars)
    assert tl.kind == "step" and tl.label == "step" and tl.unit == "step"
    g = run.grads
    assert np.array_equal(tl.positions(g), g["step"].to_numpy(dtype=float))
    assert tl.epoch_end(0, 1.0) == 30 and tl.epoch_end(1, 1.0) == 30 and tl.epoch_end(1, 3.0) == 60


def test_timeline_counts_batches_when_no_step_was_logged():
    run = example_run()
    tl = _data.timeline(run.scalars)
    assert (tl.kind, tl.batches_per_epoch, tl.first_epoch) == ("batch", 30, 1.0)
    assert "no step logged" in tl.label
    g = run.grads
    expected = [(e - 1) * 30 + b for e, b in zip(g["epoch"].astype(float), g["batch"].astype(float))]
    assert np.array_equal(tl.positions(g), expected)
    assert tl.epoch_end(0, 1.0) == 29 and tl.epoch_end(0, 6.0) == 179


def test_timeline_without_steps_or_batches(tmp_path):
    run = collapse_nb.load(write_jsonl(tmp_path / "m.jsonl", no_step_rows()))
    tl = _data.timeline(run.scalars)
    assert tl.kind is None and tl.label == "epoch"
    assert _data.metric_over_time(run, "loss").empty


def test_metric_over_time_separates_per_step_and_per_epoch_values():
    run = example_run()
    d = _data.metric_over_time(run, "loss")
    step = d[d["level"] == "step"]
    assert len(step) == 180 and set(step["phase"]) == {"train"}
    raw = run.scalars[(run.scalars["name"] == "loss") & run.scalars["batch"].notna()]
    assert np.allclose(np.sort(step["value"]), np.sort(raw["value"]))
    epoch = d[d["level"] == "epoch"]
    for phase in ("train", "val"):
        rows = epoch[epoch["phase"] == phase].sort_values("x")
        assert list(rows["x"]) == [29, 59, 89, 119, 149, 179]            # each epoch's last batch
        assert np.allclose(rows["value"], run.epochs[f"{phase}_loss"])   # one value per epoch (files deduplicated)


def test_metric_over_time_keeps_segments(tmp_path):
    run = restarted_run(tmp_path)
    d = _data.metric_over_time(run, "loss")
    seg1 = d[(d["segment"] == 1) & d["phase"].isna()]
    assert list(seg1["x"]) == [20, 30, 40, 50, 60]
    assert np.allclose(seg1["value"], [1 + 1 / (s + 1) for s in (20, 30, 40, 50, 60)])
    starts = _data.segment_starts(d)
    assert starts.to_dict("list") == {"segment": [1], "x": [20.0]}


def test_epoch_columns():
    e = pd.DataFrame(columns=["segment", "epoch", "train_loss", "val_loss", "loss", "lr", "lr_pg1", "lr_x"])
    assert _data.epoch_columns(e, "loss") == {"train": "train_loss", "val": "val_loss", "": "loss"}
    assert _data.epoch_columns(e, "lr") == {"lr": "lr", "lr_pg1": "lr_pg1", "lr_x": "lr_x"}


def _reference_flow(grads: pd.DataFrame) -> dict[str, tuple[float, float, bool]]:
    values: dict[str, list[float]] = {}
    for p, v in zip(grads["param"].astype(str), grads["grad_norm"]):
        if v == v:                                                       # not NaN
            values.setdefault(p, []).append(float(v))
    return {p: (sum(v) / len(v), max(v), all(x == 0 for x in v)) for p, v in values.items()}


def test_grad_flow_table_matches_a_plain_loop():
    run = example_run()
    t = _data.grad_flow_table(_data.grads_over_time(run))
    ref = _reference_flow(run.grads)
    assert list(t["param"]) == list(dict.fromkeys(run.grads["param"].astype(str)))   # model order
    for row in t.itertuples():
        mean, mx, dead = ref[row.param]
        assert math.isclose(row.mean, mean) and math.isclose(row.max, mx) and row.dead == dead
    assert set(t.loc[t["dead"], "param"]) == {"attn.query_projection.weight", "attn.query_projection.bias",
                                              "attn.key_projection.weight", "attn.key_projection.bias"}
    assert (t["n_logged"] == 60).all()


def test_grad_flow_table_at_one_position(tmp_path):
    run = restarted_run(tmp_path)
    g = _data.grads_over_time(run)
    t = _data.grad_flow_table(g, at=10)
    head = t.set_index("param").loc["head.bias"]
    assert head["n_logged"] == 1 and head["dead"]                       # 0 at step 10 only
    whole = _data.grad_flow_table(g).set_index("param")
    assert not whole.loc["head.bias", "dead"] and whole.loc["layer.1.weight", "dead"]


def test_grad_flow_table_needs_grad_norm():
    with pytest.raises(_data.MissingDataError, match="grad_norm"):
        _data.grad_flow_table(pd.DataFrame({"param": ["a"]}))


def test_grads_matrix_is_parameters_by_logged_steps():
    run = example_run()
    g = _data.grads_over_time(run)
    mat, cols = _data.grads_matrix(g, "grad_norm")
    assert mat.shape == (12, 60) and len(cols) == 60
    assert list(mat.index) == list(dict.fromkeys(run.grads["param"].astype(str)))
    row = g.iloc[37]
    j = int(np.flatnonzero(cols["x"].to_numpy() == row["x"])[0])
    assert mat.loc[str(row["param"]), j] == row["grad_norm"]


def test_grads_matrix_orders_columns_by_segment_then_position(tmp_path):
    run = restarted_run(tmp_path)
    mat, cols = _data.grads_matrix(_data.grads_over_time(run), "grad_norm")
    assert list(zip(cols["segment"], cols["x"])) == [(0, s) for s in (0, 10, 20, 30, 40)] + \
        [(1, s) for s in (20, 30, 40, 50, 60)]
    assert mat.shape == (3, 10)


def test_update_ratios():
    g = pd.DataFrame({"update_norm": [0.002, 1.0, 0.5, np.nan], "weight_norm": [2.0, 0.0, 1.0, 1.0],
                      "update_ratio": [np.nan, np.nan, 0.25, 0.125]})
    r = _data.update_ratios(g)
    assert r.iloc[0] == pytest.approx(0.001)
    assert np.isnan(r.iloc[1])                                          # zero weight norm: no ratio, not inf
    assert r.iloc[2] == 0.25 and r.iloc[3] == 0.125                     # the logged ratio wins
    assert np.isnan(_data.update_ratios(g.drop(columns="update_ratio")).iloc[3])


def test_val_train_ratio_table():
    run = example_run()
    t = _data.val_train_ratio_table(run.epochs)
    assert np.allclose(t["ratio"], run.epochs["train_loss"] / run.epochs["val_loss"])
    assert (t["ratio"].between(3.0, 3.3)).all()                       # the injected x3 (accumulation of 3)
    with pytest.raises(_data.MissingDataError, match="val_loss"):
        _data.val_train_ratio_table(run.epochs.drop(columns="val_loss"))


def test_outputs_over_time_places_rows_on_the_run_axis():
    run = example_run()
    o, phase = _data.outputs_over_time(run)
    assert phase == "train" and len(o) == 180
    assert np.array_equal(o["x"], (o["epoch"].astype(float) - 1) * 30 + o["batch"].astype(float))


def params_table() -> pd.DataFrame:
    """Three checkpoints, listed out of step order; 'frozen' never changes, 'zero' stays 0, 'grow' starts at 0."""
    rows = []
    for ck, step in (("ckpt/step-200.pt", 200), ("ckpt/step-100.pt", 100), ("ckpt/step-300.pt", 300)):
        k = step / 100
        rows += [(ck, step, "enc.weight", 2.0 * k), (ck, step, "frozen.weight", 3.0), (ck, step, "zero.bias", 0.0),
                 (ck, step, "grow.bias", 0.0 if step == 100 else k)]
    return pd.DataFrame(rows, columns=["checkpoint", "step", "param", "norm"])


def test_param_norm_changes_between_consecutive_checkpoints():
    ch = _data.param_norm_changes(params_table())
    assert list(dict.fromkeys(zip(ch["from_step"], ch["to_step"]))) == [(100, 200), (200, 300)]
    enc = ch[ch["param"] == "enc.weight"]
    assert np.allclose(enc["rel_change"], [(4 - 2) / 2, (6 - 4) / 4])
    frozen = ch.drop_duplicates("param").set_index("param")["frozen"]
    assert frozen.to_dict() == {"enc.weight": False, "frozen.weight": True, "zero.bias": True, "grow.bias": False}
    grow = ch[ch["param"] == "grow.bias"]["rel_change"].to_numpy()
    assert np.isnan(grow[0]) and grow[1] == pytest.approx(0.5)         # from 0: no relative change


def test_param_norm_changes_needs_two_checkpoints_and_the_columns():
    one = params_table()
    with pytest.raises(_data.MissingDataError, match="at least 2 checkpoints"):
        _data.param_norm_changes(one[one["step"] == 100])
    with pytest.raises(_data.MissingDataError, match="norm"):
        _data.param_norm_changes(one.drop(columns="norm"))
