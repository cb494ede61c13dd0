"""The ``collapse-capture`` reader: a Recorder's file loads into run.grads / run.outputs / run.epochs."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import collapse_nb as cnb
from collapse_nb.loading import sniff
from collapse_nb.readers.base import read_head
from collapse_nb.readers.capture_log import CaptureLogReader, header_config

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from collapse_nb.capture import Recorder  # noqa: E402


def records(path, kind=None):
    out = [json.loads(line) for line in open(path) if line.strip()]
    return [r for r in out if kind is None or r.get("type") == kind]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(8, 1)
        self.dead = nn.Linear(4, 1)

    def forward(self, x):
        return (self.fc2(self.act(self.fc1(x))) + self.dead(x).detach()).squeeze(-1)


@pytest.fixture
def capture(tmp_path):
    """Two epochs of 6 batches, accumulation 2, every recorded; val loss per epoch. Returns (path, facts)."""
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.AdamW([{"params": [*model.fc1.parameters(), *model.dead.parameters()]},
                             {"params": model.fc2.parameters(), "lr": 1e-3}], lr=3e-3, weight_decay=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / 4)
    path = tmp_path / "run" / "capture.jsonl"
    g = torch.Generator().manual_seed(0)
    facts: dict = {"loss": {}, "val": {}}
    with Recorder(model, opt, path, every=1, activations=True,
                  metadata={"gradient_accumulation_steps": 2, "batch_size": 8, "clip_grad_norm": 5.0}) as rec:
        for epoch in range(2):
            for b in range(6):
                x = torch.randn(8, 4, generator=g)
                y = x.sum(1)
                pred = model(x)
                loss = nn.functional.mse_loss(pred, y)
                rec.log_outputs(pred, y, epoch=epoch, batch=b)
                rec.log(loss=loss, epoch=epoch, batch=b)
                (loss / 2).backward()
                if b % 2 == 1:
                    facts["loss"].setdefault(epoch, []).append(loss.item())
                    opt.step()
                    sched.step()
                    opt.zero_grad()
            v = 0.5 / (epoch + 1)
            facts["val"][epoch] = v
            rec.log(val_loss=v, phase="val", epoch=epoch)
    return path, facts


def test_sniffed_and_read_into_tables(capture):
    path, facts = capture
    reader, score = sniff(path)
    assert reader.name == "collapse-capture" and score >= 0.99
    run = cnb.load(path.parent)                    # a directory: found by content
    assert run.meta["formats"] == ["collapse-capture"]
    assert run.meta["files"][0]["skipped"]["count"] == 0
    steps = records(path, "step")
    header = records(path, "header")[0]
    names = [p["name"] for p in header["params"]]
    assert names == ["fc1.weight", "fc1.bias", "dead.weight", "dead.bias", "fc2.weight", "fc2.bias"]

    # grads: one row per parameter per recorded step, the recorded values
    g = run.grads
    assert len(g) == len(steps) * len(names) == 6 * 6
    for r in steps:
        rows = g[g["step"] == r["step"]].set_index("param")
        assert rows.loc[names, "grad_norm"].tolist() == r["grad_norm"]
        assert rows.loc[names, "weight_norm"].tolist() == r["weight_norm"]
        assert rows.loc[names, "update_norm"].tolist() == r["update_norm"]
    assert (g.loc[g["param"] == "dead.weight", "grad_norm"] == 0).all()
    none = run.metric("grad_is_none")
    assert set(none["param"]) == {"dead.weight", "dead.bias"} and (none["value"] == 1).all()

    # outputs: pred/target statistics of the last micro-batch before each step
    o = run.outputs
    assert len(o) == 6 and set(o["phase"]) == {"train"}
    assert o["pred_std"].tolist() == [r["outputs"]["pred_std"] for r in steps]
    assert np.allclose(o["std_ratio"], o["pred_std"] / o["target_std"])
    assert o["batch"].tolist() == [1, 3, 5, 1, 3, 5]

    # epochs: the mean of the recorded train losses, the val loss, lr of group 0 and lr_pg1
    e = run.epochs.set_index("epoch")
    for epoch in (0, 1):
        assert e.loc[epoch, "train_loss"] == pytest.approx(np.mean(facts["loss"][epoch]), rel=1e-6)
        assert e.loc[epoch, "val_loss"] == pytest.approx(facts["val"][epoch])
    lr = run.metric("lr")
    assert sorted(lr["param"].unique()) == ["pg0", "pg1"]
    assert lr[lr["param"] == "pg0"]["value"].tolist() == pytest.approx([3e-3 * (s + 1) / 4 for s in range(6)])
    assert "lr" in e.columns and "lr_pg1" in e.columns
    assert e.loc[0, "grad_accum_steps"] == 2
    total = run.metric("grad_norm")
    total = total[total["param"].isna()]
    assert total["raw_name"].unique().tolist() == ["grad_norm_total"]
    assert total["value"].tolist() == pytest.approx([r["total_grad_norm"] for r in steps])

    # activations: with the module in the param column
    act = run.metric("act_frac_zero")
    assert set(act["param"]) == {"fc1", "act", "fc2", "dead"}
    relu = act[act["param"] == "act"]["value"].tolist()
    assert relu == [r["act_frac_zero"][header["modules"].index("act")] for r in steps]
    assert all(0 < v < 1 for v in relu)

    # configuration from the header and the metadata
    cfg = run.config
    assert cfg["optimizer"] == "AdamW" and cfg["learning_rate"] == 3e-3      # initial lr, not the warmed-up one
    assert cfg["weight_decay"] == 0.1 and cfg["momentum"] == 0.9
    assert cfg["gradient_accumulation_steps"] == 2 and cfg["batch_size"] == 8 and cfg["clip_grad_norm"] == 5.0
    raw = run.meta["config_raw"][str(path)]
    assert raw["capture.every"] == 1 and raw["optimizer.beta2"] == 0.999
    assert len(raw["optimizer.param_groups"]) == 2


def test_truncated_last_line_is_counted(capture):
    path, _ = capture
    lines = path.read_text().splitlines(keepends=True)
    assert json.loads(lines[-1])["type"] == "end"
    cut = "".join(lines[:-2]) + lines[-2][: len(lines[-2]) // 2]     # killed while writing a log record
    path.write_text(cut)
    run = cnb.load(path)
    skipped = run.meta["files"][0]["skipped"]
    assert skipped["count"] == 1
    assert skipped["examples"][0]["line"] == len(lines) - 1
    assert "truncated last line" in skipped["examples"][0]["reason"]
    assert len(run.grads) == 36 and run.epochs["val_loss"].notna().sum() == 1
    assert any("no end record" in n for n in run.meta["notes"])


def test_clip_norm_names_and_loss_scale(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0)
    with Recorder(model, opt, tmp_path / "c.jsonl", every=1, scaler=scaler) as rec:
        for i in range(2):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = model(torch.randn(4, 3)).float().pow(2).mean()
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            if i == 0:
                rec.set_clip_norm(torch.nn.utils.clip_grad_norm_(model.parameters(), 1e-3))
            scaler.step(opt)
            scaler.update()
            opt.zero_grad()
    run = cnb.load(tmp_path / "c.jsonl")
    s = run.scalars
    by = {(int(st), str(r)): v for st, r, v in zip(s["step"], s["raw_name"], s["value"])}
    steps = records(tmp_path / "c.jsonl", "step")
    assert by[(0, "clip_grad_norm_total")] == steps[0]["clip_total_norm"]
    assert by[(0, "grad_norm_after_clip")] == pytest.approx(1e-3, rel=1e-4)
    assert (0, "grad_norm_total") not in by and (1, "grad_norm_total") in by
    assert by[(0, "loss_scale")] == 256.0
    assert run.metric("loss_scale")["value"].tolist() == [256.0, 256.0]
    assert run.config["mixed_precision"] is True


def _write(path, recs, tail=""):
    path.write_text("".join(json.dumps(r) + "\n" for r in recs) + tail)
    return path


HEADER = {"format": "collapse-capture", "version": 1, "type": "header", "every": 1,
          "params": [{"name": "w", "numel": 3}, {"name": "b", "numel": 1}], "modules": [],
          "optimizer": {"class": "SGD", "param_groups": [{"lr": 0.1, "momentum": 0.0}]}, "metadata": {}}


def test_bad_records_are_counted_not_fatal(tmp_path):
    p = _write(tmp_path / "c.jsonl", [
        HEADER,
        {"type": "step", "step": 0, "grad_norm": [1.0, None], "weight_norm": [1.0], "lr": [0.1],
         "total_grad_norm": 1.0, "new_key": 3},
        {"type": "mystery"},
        {"type": "step", "step": 1, "grad_norm": [2.0, float("nan")], "scalars": {"loss": "NaN", "note": "x"}},
    ], tail="not json\n")
    run = cnb.load(p)
    sk = run.meta["files"][0]["skipped"]
    assert sk["count"] == 2 and set(sk["by_reason"]) == {"unknown capture record type 'mystery'", "not valid JSON"}
    g = run.grads
    assert g[g["step"] == 0]["grad_norm"].tolist() == [1.0]            # null entries are missing values
    assert math.isnan(g[(g["step"] == 1) & (g["param"] == "b")]["grad_norm"].iloc[0])
    assert g["weight_norm"].isna().all()                                 # wrong length: not read, noted
    notes = " ".join(run.meta["notes"])
    assert "weight_norm" in notes and "new_key" in notes
    assert math.isnan(run.metric("loss")["value"].iloc[0])


def test_header_only_and_records_before_header(tmp_path):
    run = cnb.load(_write(tmp_path / "h.jsonl", [HEADER]))
    assert len(run.scalars) == 0 and run.meta["formats"] == ["collapse-capture"]
    assert any("only the header" in n for n in run.meta["notes"])
    p = _write(tmp_path / "x.jsonl", [{"type": "step", "step": 0, "grad_norm": [1.0, 2.0]}, HEADER,
                                      {"type": "step", "step": 1, "grad_norm": [1.0, 2.0]}])
    run = cnb.load(p, format="collapse-capture")
    assert run.meta["files"][0]["skipped"]["count"] == 1 and run.grads["step"].tolist() == [1, 1]


def test_sniff_other_key_order_and_refuse_other_jsonl(tmp_path):
    reordered = {"type": "header", **{k: v for k, v in HEADER.items() if k != "type"}}
    p = _write(tmp_path / "r.jsonl", [reordered, {"type": "step", "step": 0, "grad_norm": [1.0, 2.0]}])
    assert CaptureLogReader().sniff(read_head(p), p) == 0.95
    assert cnb.load(p).meta["formats"] == ["collapse-capture"]
    other = _write(tmp_path / "o.jsonl", [{"step": 1, "loss": 2.0, "format": "collapse-capture"}])
    assert CaptureLogReader().sniff(read_head(other), other) == 0.0
    assert cnb.load(other).meta["formats"] == ["jsonl"]


def test_newer_version_is_noted(tmp_path):
    run = cnb.load(_write(tmp_path / "v.jsonl", [{**HEADER, "version": 2},
                                                 {"type": "step", "step": 0, "grad_norm": [1.0, 2.0]}]))
    assert any("version 2" in n for n in run.meta["notes"]) and len(run.grads) == 2


def test_header_config_without_groups():
    cfg = header_config({"optimizer": {"class": "Adam", "defaults": {"lr": 1e-4, "betas": [0.9, 0.95]}},
                         "scaler": {"enabled": False}, "metadata": {"a": {"b": 1}}})
    assert cfg == {"optimizer": "Adam", "optimizer.lr": 1e-4, "optimizer.beta1": 0.9, "optimizer.beta2": 0.95,
                   "metadata.a.b": 1}
