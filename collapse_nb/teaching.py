"""Teaching gradient flow: train small networks live on the CPU and record each layer's gradient.

>>> from collapse_nb import teaching
>>> deep = teaching.train(depth=12, activation="sigmoid")             # doctest: +SKIP
>>> deep.verdict, deep.first_last_ratio                                 # doctest: +SKIP
('vanishing', 3.1e-09)
>>> teaching.train(depth=12, activation="relu", init="kaiming", norm="layer", residual=True).verdict  # doctest: +SKIP
'healthy'

A network is ``input -> depth x [linear -> norm -> activation] -> head`` (with
``residual=True`` each block adds its input back) trained with plain SGD on a small
synthetic regression task. Every step records each parameter's gradient, weight and
update norm, so the result is a tidy table (:attr:`TeachingResult.grads`) and a
collapse_nb :class:`~collapse_nb.run.Run` (:meth:`TeachingResult.to_run`) that the
library's own plots (``gradient_flow``) and checks (``vanishing_gradients``,
``exploding_gradients``) read like any logged run. Needs ``torch`` (imported on first use).
The charts are in :mod:`collapse_nb.widgets.teaching`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from .checks.exploding_gradients import ExplodingGradients
from .checks.vanishing_gradients import VanishingGradients

ACTIVATIONS = ("sigmoid", "tanh", "relu", "linear")
INITS = ("default", "xavier", "kaiming", "small", "large")
NORMS = ("none", "batch", "layer")

#: first-layer / last-layer gradient norm below this is "vanishing", above ``EXPLODING`` "exploding": the
#: thresholds of the checks themselves (AUTOTRAINER's beta_1 and beta_3), never copies of them
VANISHING = VanishingGradients.first_last_ratio
EXPLODING = ExplodingGradients.first_last_ratio
#: the median layer's gradient norm below ``VANISHING_NORM`` is "vanishing", any layer's above
#: ``EXPLODING_NORM`` "exploding" (healthy ones here are ~1e-3 to 1)
VANISHING_NORM = 1e-5
EXPLODING_NORM = 1e3


@dataclass(frozen=True)
class NetConfig:
    """One network and how it is trained. ``init``: ``default`` (PyTorch's), ``xavier``, ``kaiming``,
    ``small`` (std ``0.3 / sqrt(fan_in)``: each layer shrinks the signal ~3x) or ``large`` (2x Kaiming's std:
    each ReLU layer doubles it). ``residual``: pre-norm residual blocks ``x + linear(act(norm(x)))``."""

    depth: int = 10
    width: int = 32
    activation: str = "sigmoid"
    init: str = "default"
    norm: str = "none"
    residual: bool = False
    steps: int = 40
    lr: float = 0.05
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        for name, allowed in (("activation", ACTIVATIONS), ("init", INITS), ("norm", NORMS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        for name, lo in (("depth", 1), ("width", 2), ("steps", 1), ("batch_size", 2)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an int >= {lo}; got {v!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr must be a positive number; got {self.lr!r}")

    @property
    def label(self) -> str:
        extra = [x for x in (self.init if self.init != "default" else "",
                             f"{self.norm} norm" if self.norm != "none" else "",
                             "residual" if self.residual else "") if x]
        return f"{self.depth} x {self.activation}" + (f" ({', '.join(extra)})" if extra else "")


@dataclass
class TeachingResult:
    """What :func:`train` recorded: ``grads`` (``step, param, layer, grad_norm, weight_norm, update_norm``;
    ``layer`` numbers the weight matrices from the input, 0, to the head, ``depth + 1``; other parameters
    have ``layer`` -1) and ``loss`` (``step, loss``)."""

    config: NetConfig
    grads: pd.DataFrame
    loss: pd.DataFrame
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def layer_table(self) -> pd.DataFrame:
        """One row per weight matrix, input to head: ``layer, param, grad_median, grad_first_step, weight_median``."""
        g = self.grads[self.grads["layer"] >= 0]
        agg = g.groupby(["layer", "param"], sort=True).agg(
            grad_median=("grad_norm", "median"), weight_median=("weight_norm", "median"))
        first = g[g["step"] == g["step"].min()].set_index(["layer", "param"])["grad_norm"].rename("grad_first_step")
        return agg.join(first).reset_index()

    @property
    def first_last_ratio(self) -> float:
        """Median over steps of the first weight matrix's gradient norm / the head's (NaN if undefined)."""
        g = self.grads[self.grads["layer"] >= 0]
        wide = g.pivot_table(index="step", columns="layer", values="grad_norm", aggfunc="last")
        if wide.shape[1] < 2:
            return math.nan
        with np.errstate(divide="ignore", invalid="ignore"):
            r = wide[wide.columns.min()] / wide[wide.columns.max()]
        r = r.replace([np.inf, -np.inf], np.nan).dropna()
        return float(r.median()) if len(r) else math.nan

    @property
    def verdict(self) -> str:
        """``exploding`` (a non-finite loss or gradient, a layer's median gradient norm above
        :data:`EXPLODING_NORM`, or first/last above :data:`EXPLODING`), ``vanishing`` (first/last below
        :data:`VANISHING`, or the median layer's gradient norm below :data:`VANISHING_NORM`) or ``healthy``.

        With weight gradients, a per-layer gain cancels between the forward signal and the backward one
        (``dW = delta x h``), so exploding shows in the size of every layer's gradient more than in the ratio.
        """
        finite = np.isfinite(self.grads["grad_norm"]).all() and np.isfinite(self.loss["loss"]).all()
        r = self.first_last_ratio
        layers = self.layer_table()["grad_median"]
        if not finite or layers.max() > EXPLODING_NORM or (np.isfinite(r) and r > EXPLODING):
            return "exploding"
        if not np.isfinite(r) or r < VANISHING or layers.median() < VANISHING_NORM:
            return "vanishing"
        return "healthy"

    def to_run(self):
        """The recording as a collapse_nb :class:`~collapse_nb.run.Run` (scalars: per-step ``loss`` and per-parameter
        ``grad_norm``, ``weight_norm``, ``update_norm``), for the library's plots and checks."""
        from .run import Run
        from .tables import normalise_raw

        g = self.grads
        parts = [pd.DataFrame({"raw_name": "loss", "value": self.loss["loss"].to_numpy(float),
                               "step": self.loss["step"].to_numpy(), "phase": "train", "param": None})]
        for col in ("grad_norm", "weight_norm", "update_norm"):
            parts.append(pd.DataFrame({"raw_name": col, "value": g[col].to_numpy(float), "step": g["step"].to_numpy(),
                                       "phase": None, "param": g["param"].astype(str).to_numpy()}))
        raw = pd.concat(parts, ignore_index=True)
        raw["epoch"], raw["segment"] = 1.0, 0
        raw["line"] = np.arange(1, len(raw) + 1)
        source = f"teaching:{self.config.label}"
        scalars = normalise_raw(raw, source)
        meta = {"files": [{"source": source, "format": "teaching", "rows": len(scalars), "skipped": {},
                           "skipped_text": "recorded in memory", "notes": []}],
                "formats": ["teaching"],
                "config": {"learning_rate": self.config.lr, "batch_size": self.config.batch_size},
                "restarts": [], "notes": []}
        return Run(scalars=scalars, meta=meta)


def _build(cfg: NetConfig, d_in: int):
    import torch
    from torch import nn

    act = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "linear": nn.Identity}[cfg.activation]

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(cfg.width, cfg.width)
            norms: dict[str, Callable[[], nn.Module]] = {
                "none": nn.Identity, "batch": lambda: nn.BatchNorm1d(cfg.width),
                "layer": lambda: nn.LayerNorm(cfg.width)}
            self.norm = norms[cfg.norm]()
            self.act = act()

        def forward(self, x):
            if cfg.residual:                    # pre-norm residual block: the branch ends in a linear layer
                return x + self.linear(self.act(self.norm(x)))
            return self.act(self.norm(self.linear(x)))

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.input = nn.Linear(d_in, cfg.width)
            self.blocks = nn.Sequential(*[Block() for _ in range(cfg.depth)])
            self.final_norm = (nn.LayerNorm(cfg.width) if cfg.residual and cfg.norm != "none" else nn.Identity())
            self.head = nn.Linear(cfg.width, 1)

        def forward(self, x):
            return self.head(self.final_norm(self.blocks(act()(self.input(x)))))

    net = Net()
    blocks = [b for b in net.blocks if isinstance(b, Block)]      # (all of them)
    for m in [net.input, *[b.linear for b in blocks]]:          # the head keeps PyTorch's default init
        fan_in = m.weight.shape[1]
        if cfg.init == "xavier":
            nn.init.xavier_normal_(m.weight)
        elif cfg.init == "kaiming":
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        elif cfg.init == "small":
            nn.init.normal_(m.weight, std=0.3 / math.sqrt(fan_in))
        elif cfg.init == "large":
            nn.init.normal_(m.weight, std=2 * math.sqrt(2 / fan_in))
        if cfg.init != "default":
            nn.init.zeros_(m.bias)
    layer_of = {f"{name}.weight": i for i, name in
                enumerate(["input", *[f"blocks.{j}.linear" for j in range(cfg.depth)], "head"])}
    return net, layer_of, torch


def _data(torch, n: int = 512, d_in: int = 16):
    """A smooth nonlinear regression target: every configuration sees the same data."""
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(n, d_in, generator=g)
    w = torch.randn(d_in, 1, generator=g) / math.sqrt(d_in)
    y = torch.sin(2 * x @ w) + 0.1 * torch.randn(n, 1, generator=g)
    return x, y


def train(config: NetConfig | None = None, **overrides: Any) -> TeachingResult:
    """Train one network (``config`` and/or :class:`NetConfig` fields as keywords) and record every step.

    Deterministic for a given ``seed``; torch's global random state and thread count are restored afterwards.
    A configuration that blows up (inf/NaN loss) is recorded as it is, not stopped.
    """
    import time

    cfg = NetConfig(**{**(asdict(config) if config is not None else {}), **overrides})
    import torch

    t0 = time.perf_counter()
    x, y = _data(torch)
    threads = torch.get_num_threads()
    rows, losses = [], []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        torch.set_num_threads(1)
        try:
            net, layer_of, _ = _build(cfg, x.shape[1])
            params = [(n, p) for n, p in net.named_parameters()]
            opt = torch.optim.SGD(net.parameters(), lr=cfg.lr)
            perm = torch.randperm(len(x))
            for step in range(1, cfg.steps + 1):
                i = (step - 1) * cfg.batch_size % len(x)
                idx = perm[i:i + cfg.batch_size]
                loss = torch.nn.functional.mse_loss(net(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                before = [p.detach().clone() for _, p in params]
                opt.step()
                with torch.no_grad():
                    for (name, p), b in zip(params, before):
                        grad = p.grad.norm().item() if p.grad is not None else math.nan
                        rows.append((step, name, layer_of.get(name, -1), grad, b.norm().item(),
                                     (p - b).norm().item()))
                losses.append((step, loss.item()))
        finally:
            torch.set_num_threads(threads)
    grads = pd.DataFrame(rows, columns=["step", "param", "layer", "grad_norm", "weight_norm", "update_norm"])
    return TeachingResult(cfg, grads, pd.DataFrame(losses, columns=["step", "loss"]), time.perf_counter() - t0)


#: Configurations that show the three regimes on the default depth.
DEMOS: dict[str, dict[str, Any]] = {
    "deep sigmoid": dict(activation="sigmoid"),
    "deep tanh, small init": dict(activation="tanh", init="small"),
    "relu, large init": dict(activation="relu", init="large", lr=0.001),
    "residual relu + layer norm": dict(activation="relu", init="kaiming", norm="layer", residual=True),
}


def train_many(configs: dict[str, dict[str, Any]] | None = None, **common: Any) -> dict[str, TeachingResult]:
    """Train several configurations (default :data:`DEMOS`), each ``{**common, **its own}``; returns name -> result."""
    return {name: train(**{**common, **kw}) for name, kw in (configs or DEMOS).items()}
