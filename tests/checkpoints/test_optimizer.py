"""The optimizer table against a direct computation on the same optimizer state."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from torch import nn

from collapse_nb.checkpoints import open_checkpoint, optimizer_table
from collapse_nb.checkpoints.optimizer import map_names

from . import TinyNet, adam_reference, close, train


def _table(tmp_path, obj, name="c.pt"):
    path = tmp_path / name
    torch.save(obj, path)
    with open_checkpoint(path) as ck:
        return optimizer_table(ck, chunk=7)          # tiny chunks: the chunked path is what is tested


def test_adamw_rows_match_direct_computation(tmp_path):
    tr = train(3, opt="adamw")
    sd, osd = tr.history[-1]
    df = _table(tmp_path, {"global_step": 3, "model": sd, "optimizer": osd})
    params = [n for n, _ in tr.model.named_parameters()]
    assert df["param"].tolist() == params                       # names verified by shapes, in order
    assert df["param_index"].tolist() == list(range(len(params)))
    group = osd["param_groups"][0]
    for _, row in df.iterrows():
        assert row["lr"] == group["lr"] and row["eps"] == group["eps"]
        assert row["weight_decay"] == group["weight_decay"] and row["betas"] == (0.9, 0.99)
        assert row["step"] == 3
        st = osd["state"].get(row["param_index"])
        if row["param"] == "fc1.bias":                          # frozen: in the optimizer, no state
            assert st is None and math.isnan(row["adam_step"]) and math.isnan(row["effective_step_norm"])
            continue
        assert row["adam_step"] == 3.0
        for k, v in adam_reference(st, group).items():
            assert close(row[k], v, 1e-9), (row["param"], k, row[k], v)
        assert tuple(row["shape"]) == tuple(st["exp_avg"].shape)


def test_effective_step_is_the_real_adam_update(tmp_path):
    """With weight decay 0, the effective step is exactly what Adam's next step moves the weights by."""
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(50))
    opt = torch.optim.Adam([w], lr=0.01, betas=(0.8, 0.95))
    for _ in range(4):
        opt.zero_grad()
        (w ** 2).sum().backward()
        opt.step()
    before = w.detach().clone()
    opt.zero_grad()
    (w ** 2).sum().backward()
    opt.step()
    moved = float((w.detach() - before).double().norm())
    # the state after this step, as a checkpoint saved now holds it: its m and v made this step
    df = _table(tmp_path, opt.state_dict(), "opt.pt")
    assert close(df.loc[0, "effective_step_norm"], moved, 1e-5)


def test_frozen_params_left_out_of_optimizer_still_map(tmp_path):
    tr = train(2, filter_frozen=True)
    sd, osd = tr.history[-1]
    df = _table(tmp_path, {"state_dict": sd, "optimizer_state_dict": osd})
    trained = [n for n, p in tr.model.named_parameters() if p.requires_grad]
    assert df["param_index"].tolist() == list(range(len(trained)))
    # fc1.bias (frozen, left out), bn.weight and bn.bias are all (8,): which two the optimizer holds
    # cannot be told from shapes, so those stay unnamed; every other one is named
    got = dict(zip(trained, df["param"].tolist()))
    assert pd.isna(got["bn.weight"]) and pd.isna(got["bn.bias"])
    assert {k: v for k, v in got.items() if not k.startswith("bn.")} == \
        {k: k for k in trained if not k.startswith("bn.")}


def test_amsgrad_uses_max_exp_avg_sq(tmp_path):
    tr = train(3, opt="amsgrad")
    sd, osd = tr.history[-1]
    df = _table(tmp_path, {"model": sd, "optimizer": osd})
    group = osd["param_groups"][0]
    row = df[df["param"] == "fc2.weight"].iloc[0]
    for k, v in adam_reference(osd["state"][row["param_index"]], group).items():
        assert close(row[k], v, 1e-9), k


def test_sgd_momentum_buffer(tmp_path):
    tr = train(2, opt="sgd")
    sd, osd = tr.history[-1]
    df = _table(tmp_path, {"model": sd, "optimizer": osd})
    row = df[df["param"] == "embed.weight"].iloc[0]
    buf = osd["state"][row["param_index"]]["momentum_buffer"]
    assert close(row["momentum_buffer_norm"], float(buf.double().norm()))
    assert row["momentum"] == 0.9 and math.isnan(row["effective_step_norm"]) and row["betas"] is None


def test_lightning_list_of_optimizers(tmp_path):
    tr = train(2)
    sd, osd = tr.history[-1]
    df = _table(tmp_path, {"state_dict": sd, "optimizer_states": [osd, osd], "global_step": 2})
    assert sorted(df["optimizer"].unique()) == [0, 1]
    assert (df.groupby("optimizer").size() == len(osd["param_groups"][0]["params"])).all()


def test_optimizer_only_file_has_no_names(tmp_path):
    tr = train(2)
    df = _table(tmp_path, tr.history[-1][1], "optimizer.pt")
    assert len(df) == len(list(tr.model.parameters())) and df["param"].isna().all()


def test_ambiguous_shapes_are_not_named():
    shape = (4, 4)
    params = [("a", shape), ("b", shape), ("c", shape)]
    opt = {"state": {0: {"exp_avg": torch.zeros(shape)}, 1: {"exp_avg": torch.zeros(shape)}},
           "param_groups": [{"params": [0, 1]}]}
    assert map_names(opt, params) == {}                                # a,b or b,c or a,c: cannot tell
    params4 = [("x", (2,))] + params
    opt["state"][0] = {"exp_avg": torch.zeros(2)}
    assert map_names(opt, params4) == {0: "x"}                         # x is certain, the (4, 4) one is not
    opt["state"][0] = {"exp_avg": torch.zeros(shape)}
    opt["param_groups"][0]["params"] = [0, 1, 2]
    opt["state"][2] = {"exp_avg": torch.zeros(shape)}
    assert map_names(opt, params) == {0: "a", 1: "b", 2: "c"}           # all of them: only one way
    opt["state"][1] = {"exp_avg": torch.zeros(5)}
    assert map_names(opt, params) == {}                                # a shape that does not fit


def test_two_groups_decay_and_no_decay():
    params = [("w1", (3, 2)), ("b1", (3,)), ("w2", (1, 3)), ("b2", (1,))]
    opt = {"state": {i: {"exp_avg": torch.zeros(s)} for i, s in enumerate([(3, 2), (1, 3), (3,), (1,)])},
           "param_groups": [{"params": [0, 1]}, {"params": [2, 3]}]}
    assert map_names(opt, params) == {0: "w1", 1: "w2", 2: "b1", 3: "b2"}


def test_named_parameters_optimizer(tmp_path):
    model = TinyNet()
    try:
        opt = torch.optim.Adam(model.named_parameters(), lr=1e-3)
    except (TypeError, ValueError):
        pytest.skip("this torch takes no named parameters")
    names = opt.state_dict()["param_groups"][0].get("param_names")
    if names is None:
        pytest.skip("this torch does not store param_names")
    df = _table(tmp_path, {"optimizer": opt.state_dict()}, "named.pt")      # no model, no state: names anyway
    assert df["param"].tolist() == [n for n, _ in model.named_parameters()]
