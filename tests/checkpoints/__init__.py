"""Helpers for the checkpoint tests: a small model really trained with Adam, checkpointed after each step.

Everything is written with the real writers (``torch.save``, ``safetensors.torch.save_file``)
into ``tmp_path``; nothing binary is committed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn


class TinyNet(nn.Module):
    """Embedding, two linear layers, batch norm, a persistent and a non-persistent buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.fc1 = nn.Linear(4, 8)
        self.bn = nn.BatchNorm1d(8)
        self.fc2 = nn.Linear(8, 1)
        self.register_buffer("scale", torch.full((1,), 2.0))
        self.register_buffer("scratch", torch.zeros(3), persistent=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.bn(self.fc1(self.embed(idx))))) * self.scale


@dataclass
class Trained:
    model: TinyNet
    optimizer: torch.optim.Optimizer
    #: after each step: (state_dict copy, optimizer state_dict copy)
    history: list[tuple[dict, dict]] = field(default_factory=list)


def train(steps: int = 3, *, freeze: tuple[str, ...] = ("fc1.bias",), lr: float = 1e-2,
          filter_frozen: bool = False, opt: str = "adamw") -> Trained:
    """Train :class:`TinyNet` for ``steps`` steps; ``freeze`` parameters keep requires_grad=False."""
    torch.manual_seed(0)
    model = TinyNet()
    for name, p in model.named_parameters():
        if name in freeze:
            p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad] if filter_frozen else list(model.parameters())
    if opt == "adamw":
        optim = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.01)
    elif opt == "amsgrad":
        optim = torch.optim.Adam(params, lr=lr, amsgrad=True)
    else:
        optim = torch.optim.SGD(params, lr=lr, momentum=0.9)
    out = Trained(model, optim)
    for _ in range(steps):
        idx = torch.randint(0, 10, (16,))
        y = torch.randn(16, 1)
        loss = ((model(idx) - y) ** 2).mean()
        optim.zero_grad()
        loss.backward()
        optim.step()
        out.history.append(({k: v.detach().clone() for k, v in model.state_dict().items()},
                            _clone(optim.state_dict())))
    return out


def _clone(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _clone(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clone(v) for v in obj]
    return obj


def ref_stats(t: torch.Tensor) -> dict[str, float]:
    """The statistics computed directly with torch on the whole tensor (float64)."""
    d = t.detach().double()
    n = d.numel()
    return {"numel": n, "norm": float(d.norm()), "mean": float(d.mean()), "std": float(d.std(correction=0)),
            "abs_max": float(d.abs().max()), "min": float(d.min()), "max": float(d.max()),
            "frac_zero": float((d == 0).sum()) / n, "n_nonfinite": int((~torch.isfinite(d)).sum())}


def close(a: float, b: float, rel: float = 1e-9) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b or abs(a - b) <= rel * max(1.0, abs(a), abs(b))


def assert_stats_match(row, t: torch.Tensor, rel: float = 1e-9) -> None:
    for k, v in ref_stats(t).items():
        assert close(float(row[k]), float(v), rel), (k, row[k], v)
    assert tuple(row["shape"]) == tuple(t.shape)
    assert row["dtype"] == str(t.dtype).removeprefix("torch.")


def adam_reference(p_state: dict, group: dict) -> dict[str, float]:
    """Adam's bias-corrected update for one parameter, computed directly (float64)."""
    m, v = p_state["exp_avg"].double(), p_state["exp_avg_sq"].double()
    if group.get("amsgrad"):
        v_den = p_state["max_exp_avg_sq"].double()
    else:
        v_den = v
    t = float(p_state["step"])
    b1, b2 = group["betas"]
    lr, eps = group["lr"], group["eps"]
    denom = (v_den / (1 - b2 ** t)).sqrt() + eps
    update = lr * (m / (1 - b1 ** t)) / denom
    return {"exp_avg_norm": float(m.norm()), "exp_avg_sq_mean": float(v.mean()),
            "effective_step_norm": float(update.norm()), "effective_lr_mean": float((lr / denom).mean())}


def save_steps(trained: Trained, directory: Path, name: str = "step={step}.pt", wrap=None) -> list[Path]:
    """One torch.save per step of ``trained.history``; ``wrap(sd, opt_sd, step)`` builds what is saved."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (sd, osd) in enumerate(trained.history, start=1):
        p = directory / name.format(step=i)
        torch.save(wrap(sd, osd, i) if wrap else sd, p)
        paths.append(p)
    return paths
