"""checkpoint_weights on single checkpoints written with torch.save."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import collapse_nb as cnb  # noqa: E402
from collapse_nb.checks import CheckpointWeights  # noqa: E402


def _mlp(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32), torch.nn.ReLU(),
                               torch.nn.Linear(32, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))


def _codes(tmp_path, state):
    path = tmp_path / "model.pt"
    torch.save({"model_state_dict": state, "epoch": 3}, path)
    return {f.code: f for f in CheckpointWeights()(cnb.load(path))}


def test_a_sound_checkpoint_is_ok(tmp_path):
    assert list(_codes(tmp_path, _mlp().state_dict())) == ["checkpoint_weights_ok"]


def test_a_head_orders_of_magnitude_smaller_than_its_neighbours(tmp_path):
    m = _mlp()
    with torch.no_grad():
        m[6].weight.mul_(1e-4)
    f = _codes(tmp_path, m.state_dict())["checkpoint_norm_outlier"]
    assert f.details["outliers"][0]["param"] == "6.weight" and f.details["outliers"][0]["factor"] < 1e-3
    assert "smaller" in f.title


def test_nan_zero_and_dead_units(tmp_path):
    m = _mlp()
    with torch.no_grad():
        m[2].weight[:12] = 0.5           # 12 of 32 units constant: dead
        m[4].weight.zero_()              # a whole matrix at zero
        m[0].weight[0, 0] = float("nan")
    fs = _codes(tmp_path, m.state_dict())
    assert fs["checkpoint_nonfinite"].severity == "critical" and fs["checkpoint_nonfinite"].details["nonfinite"] == \
        ["0.weight"]
    assert fs["checkpoint_zero_tensors"].details["all_zero"] == ["4.weight"]
    units = {u["param"]: u for u in fs["checkpoint_dead_units"].details["dead_units"]}
    assert units["2.weight"]["constant_rows"] == 12 and units["2.weight"]["fraction"] == pytest.approx(12 / 32)
