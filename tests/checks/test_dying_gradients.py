"""dying_gradients on runs recorded by collapse_nb.capture.Recorder from a real training loop."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import collapse_nb as cnb  # noqa: E402
from collapse_nb.capture import Recorder  # noqa: E402
from collapse_nb.checks import DyingGradients  # noqa: E402


class Gated(torch.nn.Module):
    """Two branches; the gate of ``side`` is switched off after ``cut`` optimizer steps."""

    def __init__(self):
        super().__init__()
        self.main = torch.nn.Linear(4, 1)
        self.side = torch.nn.Linear(4, 1)
        self.gate = 1.0

    def forward(self, x):
        return self.main(x) + self.gate * self.side(x)


def _train(path, cut: int | None, steps: int = 60):
    torch.manual_seed(0)
    model = Gated()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    with Recorder(model, opt, path, every=2) as rec:
        for step in range(steps):
            if cut is not None and step == cut:
                model.gate = 0.0                  # the side branch is cut off from the loss from here on
            loss = torch.nn.functional.mse_loss(model(x), y)
            rec.log(loss=loss, epoch=0, batch=step)
            loss.backward()
            opt.step()
            opt.zero_grad()
    return cnb.load(path)


def test_a_branch_cut_off_mid_run_is_reported_with_its_onset(tmp_path):
    [f] = DyingGradients()(_train(tmp_path / "capture.jsonl", cut=30))
    assert (f.code, f.severity) == ("gradients_die", "warning")
    assert set(f.details["params"]) == {"side.weight", "side.bias"}
    assert [m["module"] for m in f.details["modules"]] == ["side"]
    assert f.details["first_died_at"] in ("step 30 (epoch 0)", "step 30")


def test_a_branch_that_never_learned_is_not_dying(tmp_path):
    """Zero from the first step is dead_parameters' finding, not this one."""
    [f] = DyingGradients()(_train(tmp_path / "capture.jsonl", cut=0))
    assert f.code == "gradients_stay_alive"
    [g] = DyingGradients()(_train(tmp_path / "healthy.jsonl", cut=None))
    assert g.code == "gradients_stay_alive"
