"""dead_parameters and output_head: from optimizer-step blocks, checkpoints and a diff table."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from collapse_nb.checks import DeadParameters, OutputHead
from collapse_nb.run import Run
from collapse_nb.tables import normalise_raw
from tests.checks import DiagLog, load, write_jsonl

PARAMS = ["encoder.0.weight", "encoder.0.bias", "attn.key.weight", "attn.key.bias", "attn.value.weight",
          "decoder.0.weight", "projection.weight", "projection.bias"]


def _run(tmp_path, grad, head_norm=0.5, steps=6, change=None):
    """``grad(param, step)`` -> grad_norm; weights ~3 except the head (``head_norm``)."""
    log = DiagLog()
    for s in range(steps):
        log.batch(1, s, steps, loss=1.0)
        w = {p: (head_norm if p == "projection.weight" else 3.0) for p in PARAMS}
        log.step({p: (w[p], w[p], (change(p, s) if change else 0.003), grad(p, s)) for p in PARAMS}, lr=1e-3)
    log.write(tmp_path / "training_diagnostic.log")
    return load(tmp_path)


def test_dead_branch_is_listed_by_module(tmp_path):
    run = _run(tmp_path, lambda p, s: 0.0 if p.startswith("attn.key") else 0.01 * (s + 1))
    [f] = DeadParameters()(run)
    assert f.code == "dead_parameters" and f.severity == "warning"
    assert f.details["dead"] == ["attn.key.weight", "attn.key.bias"]
    assert f.details["modules"] == {"attn.key": ["attn.key.weight", "attn.key.bias"]}
    assert f.details["n_params"] == 8 and f.details["fraction"] == pytest.approx(0.25)
    assert list(f.evidence["steps_seen"]) == [6, 6] and list(f.evidence["status"]) == ["dead", "dead"]
    assert "2 of 8 parameters (25%) in 1 module(s) never learn: attn.key.* (2)" in f.summary
    assert "grad_norm 0 at all 6 logged steps; weights move only by decay" in f.evidence["reason"].iloc[0]


def test_dead_head_is_critical(tmp_path):
    run = _run(tmp_path, lambda p, s: 0.0 if p.startswith("projection") else 0.01)
    [f] = DeadParameters()(run)
    assert f.severity == "critical" and f.details["head"] == "projection.weight" and f.details["head_dead"]
    assert f.actions[0].startswith("Fix the output head projection.weight")


def test_frozen_and_intermittent(tmp_path):
    run = _run(tmp_path, lambda p, s: (0.0 if p == "attn.value.weight" and s % 3 else 0.01),
               change=lambda p, s: 0.0 if p == "encoder.0.bias" else 0.003)
    [f] = DeadParameters()(run)
    ev = f.evidence.set_index("param")
    assert f.details["dead"] == ["encoder.0.bias"]
    assert "never change" in ev.loc["encoder.0.bias", "reason"]
    assert ev.loc["attn.value.weight", "status"] == "intermittent"
    assert ev.loc["attn.value.weight", "zero_fraction"] == pytest.approx(4 / 6)
    assert "1 more parameter(s) get exactly zero gradient at 67%-67% of steps" in f.summary


def test_only_intermittent_is_info(tmp_path):
    [f] = DeadParameters()(_run(tmp_path, lambda p, s: 0.0 if p == "attn.key.weight" and s < 4 else 0.01))
    assert (f.code, f.severity) == ("intermittent_gradients", "info")


def test_healthy_is_ok(tmp_path):
    [f] = DeadParameters()(_run(tmp_path, lambda p, s: 0.01))
    assert (f.code, f.severity, f.details["n_dead"]) == ("parameters_receive_gradient", "ok", 0)


def test_tiny_threshold(tmp_path):
    # (the diagnostic log prints 8 decimals, so 1e-10 would read as 0 there: JSON lines keep it)
    write_jsonl(tmp_path / "log.jsonl", [{"step": s, "grad_norm/a.weight": 1e-10, "grad_norm/b.weight": 0.1}
                                         for s in range(4)])
    run = load(tmp_path)
    assert DeadParameters()(run)[0].code == "parameters_receive_gradient"     # 1e-10 > 1e-12
    assert DeadParameters(zero_grad=1e-9)(run)[0].details["dead"] == ["a.weight"]


def test_gradient_never_logged(tmp_path):
    rows = [{"step": s, "weight_norm/a.weight": 1.0, "grad_norm/a.weight": 0.1, "weight_norm/b.weight": 1.0}
            for s in range(4)]
    write_jsonl(tmp_path / "log.jsonl", rows)
    [f] = DeadParameters()(load(tmp_path))
    assert f.details["dead"] == ["b.weight"] and "no gradient logged" in f.evidence["reason"].iloc[0]


def _params_run(norms: dict[str, list[float]], extra=None) -> Run:
    rows = [{"checkpoint": f"ckpt{i}", "step": 100 * i, "param": p, "norm": v[i]}
            for p, v in norms.items() for i in range(len(v))]
    scalars = normalise_raw(pd.DataFrame({"raw_name": pd.Series([], dtype=object),
                                          "value": pd.Series([], dtype=float)}), "none")
    return Run(scalars=scalars, meta={}, extra={"params": pd.DataFrame(rows), **(extra or {})})


def test_unchanged_across_checkpoints():
    run = _params_run({"enc.weight": [3.0, 3.1, 3.2], "frozen.weight": [2.0, 2.0, 2.0], "head.weight": [0.5, 0.6, 0.7]})
    [f] = DeadParameters()(run)
    assert f.details["dead"] == ["frozen.weight"] and f.evidence["source"].iloc[0] == "checkpoints"
    assert "identical in all 3 checkpoints (norm)" in f.evidence["reason"].iloc[0]


def test_diff_table():
    diff = pd.DataFrame({"param": ["a.weight", "b.weight"], "max_abs_diff": [0.1, 0.0]})
    run = _params_run({"a.weight": [1.0]}, extra={"diff": diff})
    [f] = DeadParameters()(run)
    assert f.details["dead"] == ["b.weight"] and f.evidence["source"].iloc[0] == "diff"


def test_nothing_to_look_at(tmp_path):
    write_jsonl(tmp_path / "log.jsonl", [{"step": 1, "loss": 1.0}])
    [f] = DeadParameters()(load(tmp_path))
    assert f.code == "not_checked" and "run.grads" in f.summary


# ----------------------------------------------------------------------------- output head

def test_tiny_output_head(tmp_path):
    [f] = OutputHead()(_run(tmp_path, lambda p, s: 0.01, head_norm=1e-4))
    assert (f.code, f.severity) == ("tiny_output_head", "warning")
    assert f.details["head"] == "projection.weight"
    assert f.details["ratio_first"] == pytest.approx(1e-4 / 3.0)
    assert "30,000x smaller" in f.summary


def test_normal_output_head(tmp_path):
    [f] = OutputHead()(_run(tmp_path, lambda p, s: 0.01, head_norm=0.5))
    assert (f.code, f.severity) == ("output_head_ok", "ok")


def test_output_head_from_checkpoints():
    run = _params_run({"enc.0.weight": [3.0, 3.0], "enc.1.weight": [3.0, 3.1], "mid.weight": [2.0, 2.0],
                       "head.weight": [1e-5, 1e-3]})
    [f] = OutputHead()(run)
    assert f.code == "tiny_output_head" and f.evidence["where"].tolist() == ["checkpoint ckpt0", "checkpoint ckpt1"]
    assert np.isclose(f.details["ratio_last"], 1e-3 / 3.0)


def test_checkpoint_buffers_ema_and_integers_are_not_parameters():
    rows = []
    for i in range(2):
        for p, kind, dtype, state, norm in [("enc.weight", "parameter", "float32", "state_dict", 3.0 + i),
                                            ("bn.running_mean", "buffer", "float32", "state_dict", 1.0),
                                            ("bn.num_batches_tracked", None, "int64", "state_dict", 5.0),
                                            ("enc.weight", "parameter", "float32", "ema", 3.0)]:
            rows.append({"checkpoint": f"c{i}", "step": i, "param": p, "kind": kind, "dtype": dtype, "state": state,
                         "norm": norm, "digest": f"{p}{norm}"})
    run = Run(scalars=normalise_raw(pd.DataFrame({"raw_name": pd.Series([], dtype=object),
                                                  "value": pd.Series([], dtype=float)}), "none"),
              extra={"params": pd.DataFrame(rows)})
    [f] = DeadParameters()(run)
    assert f.code == "parameters_receive_gradient"


def test_diff_table_from_collapse_nb_diff_columns():
    diff = pd.DataFrame({"param": ["a.weight", "a.weight", "b.weight", "b.weight", "c.weight"],
                         "changed": pd.array([True, False, False, False, pd.NA], dtype="boolean"),
                         "dtype": ["float32"] * 5})
    run = _params_run({"a.weight": [1.0]}, extra={"diff": diff})
    [f] = DeadParameters()(run)
    assert f.details["dead"] == ["b.weight"]
    assert f.evidence["reason"].iloc[0] == "unchanged in all 2 compared checkpoint pair(s)"


def test_real_checkpoints_written_by_torch(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8),
                                torch.nn.Linear(8, 1))
    for step in (100, 200, 300):
        torch.save({"state_dict": model.state_dict(), "global_step": step}, tmp_path / f"step{step}.pt")
        with torch.no_grad():                   # a step that leaves layer 2 (a frozen middle layer) untouched
            for i in (0, 3):
                model[i].weight.mul_(1.01)
                model[i].bias.add_(0.01)
    [f] = DeadParameters()(load(tmp_path))
    assert f.details["dead"] == ["2.weight", "2.bias"] and f.details["modules"] == {"2": ["2.weight", "2.bias"]}
    assert f.evidence["reason"].iloc[0] == "identical in all 3 checkpoints (digest)"
    assert f.severity == "warning"
