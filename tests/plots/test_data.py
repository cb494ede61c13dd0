"""The tables behind the plots (collapse_nb.plots._data), checked against plain loops over the run's tables."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import collapse_nb
from collapse_nb.plots import _data
from collapse_nb import timeaxis

from . import example_run, no_step_rows, restarted_run, rows_of, source, text_log_run, write_jsonl

TEXT, CAPTURE, CSV, TB = "training_diagnostic.log", "capture.jsonl", "metrics.csv", "tfevents"


def test_timeline_with_steps(tmp_path):
    run = restarted_run(tmp_path)
    tl = timeaxis.timeline(run.scalars)
    assert tl.kind == "step" and tl.label == "step" and tl.unit == "step"
    g = run.grads
    assert np.array_equal(tl.positions(g), g["step"].to_numpy(dtype=float))
    assert tl.epoch_end(0, 1.0) == 30 and tl.epoch_end(1, 1.0) == 30 and tl.epoch_end(1, 3.0) == 60


def test_timeline_counts_batches_when_no_step_was_logged():
    run = example_run()
    text = rows_of(run, TEXT)
    tl = timeaxis.timeline(text)                                           # the text log's rows alone
    assert (tl.kind, tl.batches_per_epoch, tl.first_epoch) == ("batch", int(text["batch"].max()) + 1, 1.0)
    assert tl.batches_per_epoch == 30 and "no step logged" in tl.label
    g = run.grads                                                       # the text log: most logged steps
    assert set(g["source"].astype(str)) == {source(run, TEXT)} and g["step"].isna().all()
    expected = [(e - 1) * 30 + b for e, b in zip(g["epoch"].astype(float), g["batch"].astype(float))]
    assert np.array_equal(tl.positions(g), expected)
    assert tl.epoch_end(0, 1.0) == 29 and tl.epoch_end(0, 6.0) == 179
    assert timeaxis.table_timeline(run, g) == tl                           # a table's axis: that of its file
    alone = timeaxis.timeline(text_log_run().scalars)                      # the same file loaded alone
    assert (alone.kind, alone.batches_per_epoch, alone.first_epoch) == ("batch", 30, 1.0)


def test_timeline_of_files_disagreeing_on_step_and_batch_is_in_fractional_epochs():
    run = example_run()
    tl = timeaxis.timeline(run.scalars)
    text, cap, tb, csv = (source(run, n) for n in (TEXT, CAPTURE, TB, CSV))
    assert tl.kind == "epoch" and tl.unit == "epoch" and set(tl.sources) == {text, cap, tb, csv}
    clocks = tl.clocks
    assert (clocks[text].how, clocks[text].per) == ("batch", 30)
    # the capture log's own step -> epoch relation, from the first optimizer step it logged in each epoch
    c = rows_of(run, CAPTURE)
    steps = c[c["batch"].notna()]
    first = steps.groupby("epoch")["step"].min().astype(float)
    per = float(np.median(np.diff(first.to_numpy())))
    assert per == 10 and (clocks[cap].how, clocks[cap].per) == ("step", per)
    x = tl.positions(steps)
    ep = steps["epoch"].astype(float).to_numpy()
    assert np.allclose(x, ep + (steps["step"].astype(float).to_numpy() - first.loc[ep].to_numpy()) / per)
    assert ((x >= ep) & (x < ep + 1)).all()                            # inside the epoch the file logged
    summaries = c[c["batch"].isna()]                                    # epoch summaries: at the epoch's end
    assert np.allclose(tl.positions(summaries), summaries["epoch"].astype(float) + 1)
    # TensorBoard logged steps and no epochs: it goes by the capture log's relation, and the label says so
    assert clocks[tb].borrowed_from == cap and (clocks[tb].how, clocks[tb].per) == ("step", per)
    events = rows_of(run, TB)
    assert np.allclose(tl.positions(events), (events["step"].astype(float) - clocks[cap].origin) / per)
    # the text log: epoch + batch / 30; its per-epoch rows and the CSV's at the epoch's end
    t = rows_of(run, TEXT)
    per_batch = t[t["batch"].notna()]
    expected = per_batch["epoch"].astype(float) + per_batch["batch"].astype(float) / 30
    assert np.allclose(tl.positions(per_batch), expected)
    for rows in (t[t["batch"].isna()], rows_of(run, CSV)):
        assert np.array_equal(tl.positions(rows), rows["epoch"].astype(float) + 1)
    assert clocks[csv].how == "epoch" and tl.epoch_end(0, 3.0) == 4.0
    assert tl.label.split("\n") == [
        "epoch (fractional; per-epoch values at the epoch's end) · epoch + batch/30: training_diagnostic.log",
        "10 steps per epoch: capture.jsonl, tb/events.out.tfevents… (by capture.jsonl's steps)"]


def test_timeline_without_steps_or_batches(tmp_path):
    run = collapse_nb.load(write_jsonl(tmp_path / "m.jsonl", no_step_rows()))
    tl = timeaxis.timeline(run.scalars)
    assert tl.kind is None and tl.label == "epoch"
    assert _data.metric_over_time(run, "loss").empty


def test_metric_over_time_separates_per_step_and_per_epoch_values():
    run = text_log_run()                                                # one file: counted batches
    d = _data.metric_over_time(run, "loss")
    step = d[d["level"] == "step"]
    assert len(step) == 180 and set(step["phase"]) == {"train"}
    raw = run.scalars[(run.scalars["name"] == "loss") & run.scalars["batch"].notna()]
    assert np.allclose(step["value"], raw.sort_values(["epoch", "batch"])["value"])
    assert np.array_equal(step["x"], (raw["epoch"].astype(float) - 1) * 30 + raw["batch"].astype(float))
    epoch = d[d["level"] == "epoch"]
    for phase in ("train", "val"):
        rows = epoch[epoch["phase"] == phase].sort_values("x")
        assert list(rows["x"]) == [29, 59, 89, 119, 149, 179]            # each epoch's last batch
        assert np.allclose(rows["value"], run.epochs[f"{phase}_loss"])
    assert d.attrs["unplaced"] == {}


def test_metric_over_time_places_each_file_by_its_own_clock():
    run = example_run()
    tl = timeaxis.metric_timeline(run, "loss")
    assert tl.kind == "epoch"                                           # steps (capture, TensorBoard) and batches
    d = _data.metric_over_time(run, "loss")
    assert d.attrs["unplaced"] == {}                                    # no row left out
    step = d[d["level"] == "step"]
    for name, n in ((TEXT, 180), (TB, 66), (CAPTURE, 12)):
        raw = rows_of(run, name, "loss")
        per_step = raw if name == TB else raw[raw["batch"].notna()]    # TensorBoard's val loss is per step too
        got = step[step["source"] == source(run, name)]
        assert len(got) == len(per_step) == n
        assert np.allclose(np.sort(got["value"]), np.sort(per_step["value"]))
        assert np.allclose(np.sort(got["x"]), np.sort(tl.positions(per_step)))
        assert set(got["sources"]) == {(source(run, name),)}
    text = step[step["source"] == source(run, TEXT)]
    raw = rows_of(run, TEXT, "loss").dropna(subset=["batch"])
    assert np.allclose(np.sort(text["x"]), np.sort(raw["epoch"].astype(float) + raw["batch"].astype(float) / 30))
    epoch = d[d["level"] == "epoch"]
    agreeing = frozenset(source(run, n) for n in (CAPTURE, CSV, TEXT))
    for phase in ("train", "val"):
        rows = epoch[epoch["phase"] == phase].sort_values("x")
        assert list(rows["x"]) == [2, 3, 4, 5, 6, 7]                    # the end of epochs 1 to 6
        assert np.allclose(rows["value"], run.epochs[f"{phase}_loss"])   # one value per epoch ...
        assert {frozenset(s) for s in rows["sources"]} == {agreeing}    # ... that three files agree on


def test_metric_over_time_keeps_files_that_disagree_and_counts_rows_it_cannot_place(tmp_path):
    rows = [{"epoch": e, "batch": b, "loss": 2.0 - e - b / 10} for e in range(2) for b in range(4)]
    rows += [{"epoch": e, "val_loss": 3.0 - e} for e in range(2)]
    write_jsonl(tmp_path / "batches.jsonl", rows)
    write_jsonl(tmp_path / "steps.jsonl", [{"step": s, "loss": 1.0 / s} for s in range(1, 21)])   # no epochs
    (tmp_path / "log.csv").write_text("epoch,val_loss\n0,3.0\n1,2.5\n")                      # 2.5: disagrees
    run = collapse_nb.load(tmp_path)
    d = _data.metric_over_time(run, "loss")
    steps = next(s for s in map(str, run.sources) if s.endswith("steps.jsonl"))
    assert d.attrs["unplaced"] == {steps: 20}                           # no step -> epoch relation anywhere
    assert not (d["source"] == steps).any()
    val = d[d["phase"] == "val"]
    by_file = {s[0].rsplit("/", 1)[-1]: g.sort_values("x") for s, g in val.groupby("sources")}
    assert set(by_file) == {"batches.jsonl", "log.csv"}                 # two series: they disagree at epoch 1
    assert list(by_file["batches.jsonl"]["value"]) == [3.0, 2.0] and list(by_file["log.csv"]["value"]) == [3.0, 2.5]
    assert list(by_file["log.csv"]["x"]) == [1.0, 2.0]                  # the end of epochs 0 and 1
    train = d[d["phase"].isna()]
    assert np.allclose(train["x"], [e + b / 4 for e in range(2) for b in range(4)])


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


def test_outputs_over_time_places_rows_on_the_axis_of_their_file():
    run = example_run()
    o, phase = _data.outputs_over_time(run)
    assert phase == "train" and len(o) == 180 and o.attrs["unplaced"] == {}
    assert set(o["source"].astype(str)) == {source(run, TEXT)}          # the text log: most logged batches
    assert run.meta["table_sources"]["outputs"]["used"] == source(run, TEXT)
    assert np.array_equal(o["x"], (o["epoch"].astype(float) - 1) * 30 + o["batch"].astype(float))
    assert timeaxis.table_timeline(run, run.outputs).kind == "batch"       # not the run's fractional epochs


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
