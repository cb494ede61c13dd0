"""Synthetic data sets for the zoo: small, made in milliseconds, drawn from torch's global generator.

Every function draws its tensors from ``torch``'s global random generator in a
fixed order, so a scenario that calls ``torch.manual_seed(seed)`` first gets the
same data for the same seed. Targets of the regression sets have a std near 1,
so "the loss of predicting the mean" is about 1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class Data:
    """Train and validation tensors, and what kind of task they are."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    task: str = "regression"            # "regression" (float targets) or "classification" (class indices)
    num_classes: int | None = None
    x_test: torch.Tensor | None = None  # a held-out test set, evaluated per epoch when present
    y_test: torch.Tensor | None = None

    @property
    def n_train(self) -> int:
        return len(self.x_train)


def linear(n_train: int, n_val: int, d: int = 8, noise: float = 0.1) -> Data:
    """``y = x . w / sqrt(d) + noise``; ``x`` standard normal. Draws w, x_train, noise, x_val, noise in that order."""
    w = torch.randn(d)
    x = torch.randn(n_train, d)
    y = (x @ w) / math.sqrt(d) + noise * torch.randn(n_train)
    xv = torch.randn(n_val, d)
    yv = (xv @ w) / math.sqrt(d) + noise * torch.randn(n_val)
    return Data(x, y, xv, yv)


def nonlinear(n_train: int, n_val: int, d: int = 8, noise: float = 0.1, hidden: int = 16) -> Data:
    """Targets from a random one-hidden-layer tanh teacher, standardised to std 1, plus noise."""
    w1 = torch.randn(d, hidden) * (1.5 / math.sqrt(d))
    w2 = torch.randn(hidden)
    x = torch.randn(n_train + n_val, d)
    y = torch.tanh(x @ w1) @ w2
    y = (y - y.mean()) / y.std()
    y = y + noise * torch.randn(len(y))
    return Data(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def blobs(n_train: int, n_val: int, d: int = 10, k: int = 4, spread: float = 1.0) -> Data:
    """K Gaussian clusters (centres ~ N(0, 1.5^2)), balanced labels, within-cluster std ``spread``."""
    centres = 1.5 * torch.randn(k, d)
    n = n_train + n_val
    labels = torch.arange(n) % k
    labels = labels[torch.randperm(n)]
    x = centres[labels] + spread * torch.randn(n, d)
    return Data(x[:n_train], labels[:n_train], x[n_train:], labels[n_train:], "classification", k)


def random_labels(n_train: int, n_val: int, d: int = 10, k: int = 4) -> Data:
    """Inputs and labels drawn independently (balanced labels): nothing to learn, chance is ``ln k``."""
    n = n_train + n_val
    x = torch.randn(n, d)
    labels = (torch.arange(n) % k)[torch.randperm(n)]
    return Data(x[:n_train], labels[:n_train], x[n_train:], labels[n_train:], "classification", k)


def _templates(size: int) -> torch.Tensor:
    """Four 1 x size x size patterns: horizontal bars, vertical bars, a diagonal, a centred square."""
    i = torch.arange(size).float()
    rows, cols = torch.meshgrid(i, i, indexing="ij")
    horiz = (rows.long() % 2 == 0).float()
    vert = (cols.long() % 2 == 0).float()
    diag = ((rows - cols).abs() <= 1).float()
    c = (size - 1) / 2
    square = (((rows - c).abs() <= size / 4) & ((cols - c).abs() <= size / 4)).float()
    t = torch.stack([horiz, vert, diag, square])
    return (t - t.mean(dim=(1, 2), keepdim=True)).unsqueeze(1)


def patterns(n_train: int, n_val: int, size: int = 8, noise: float = 1.0) -> Data:
    """Noisy 1 x size x size images of four patterns (bars, stripes, diagonal, square): a CNN's task, K = 4."""
    t = _templates(size)
    n = n_train + n_val
    labels = (torch.arange(n) % 4)[torch.randperm(n)]
    x = t[labels] + noise * torch.randn(n, 1, size, size)
    return Data(x[:n_train], labels[:n_train], x[n_train:], labels[n_train:], "classification", 4)


def sequences(n_train: int, n_val: int, length: int = 8, d: int = 4, noise: float = 0.1) -> Data:
    """Sequences of ``length`` vectors; the target is the standardised mean over positions of
    ``tanh(2 x0) * x1`` (a product inside each token, pooled over the sequence): a transformer's task."""
    x = torch.randn(n_train + n_val, length, d)
    y = (torch.tanh(2 * x[..., 0]) * x[..., 1]).mean(dim=1)
    y = (y - y.mean()) / y.std() + noise * torch.randn(len(y))
    return Data(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def leak(data: Data, n_val: int | None = None) -> Data:
    """The validation set replaced by copies of the first training rows (leakage); the real validation
    rows become the held-out test set, which shows what the validation loss should have been."""
    n = len(data.x_val) if n_val is None else n_val
    return Data(data.x_train, data.y_train, data.x_train[:n].clone(), data.y_train[:n].clone(), data.task,
                data.num_classes, x_test=data.x_val, y_test=data.y_val)
