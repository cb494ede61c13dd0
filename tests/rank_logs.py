"""Logs of a simulated data-parallel run, written with Python ``logging`` as each rank's process would.

Every rank logs ``step N | loss=... | grad_norm=... | lr=...`` at every step: the loss is the rank's local
loss (the run's curve plus its own batch noise), the gradient norm and lr are the all-reduced values every
replica holds (identical on all ranks), unless a rank is told to drift from a step on.
"""
from __future__ import annotations

import logging
import math
import random
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s train: %(message)s"


def rank_values(n_ranks: int = 4, steps: int = 200, seed: int = 0, drift_rank: int | None = None,
                drift_from: int = 120, drift_loss: float = 0.02, drift_grad: float = 0.0,
                offsets: dict[int, float] | None = None) -> dict[int, list[tuple[int, float, float, float]]]:
    """``{rank: [(step, loss, grad_norm, lr), ...]}``; ``drift_rank``'s loss climbs ``drift_loss`` per step from
    ``drift_from`` on and its grad norm departs by ``drift_grad`` (relative) per step."""
    rng = random.Random(seed)
    out: dict[int, list] = {r: [] for r in range(n_ranks)}
    for step in range(1, steps + 1):
        level = 2.5 * math.exp(-step / 60) + 0.6
        grad = 1.0 + 0.3 * math.sin(step / 7) + 0.05 * rng.gauss(0, 1)      # all-reduced: one value for every rank
        lr = 1e-3 * min(1.0, step / 20)
        for r in range(n_ranks):
            loss = level + (offsets or {}).get(r, 0.0) + 0.05 * rng.gauss(0, 1)
            g = grad
            if r == drift_rank and step >= drift_from:
                loss += drift_loss * (step - drift_from + 1)
                g = grad * (1 + drift_grad * (step - drift_from + 1))
            out[r].append((step, loss, g, lr))
    return out


def _logger(name: str, path: Path, fmt: str) -> logging.Logger:
    log = logging.getLogger(name)
    log.handlers.clear()
    log.propagate = False
    log.setLevel(logging.INFO)
    h = logging.FileHandler(path, mode="w")
    h.setFormatter(logging.Formatter(fmt))
    log.addHandler(h)
    return log


def _close(log: logging.Logger) -> None:
    for h in list(log.handlers):
        h.close()
        log.removeHandler(h)


def message(step: int, loss: float, grad: float, lr: float) -> str:
    return f"step {step} | loss={loss:.5f} | grad_norm={grad:.6f} | lr={lr:.6g}"


def write_rank_files(folder: Path, values: dict, name: str = "rank_{r}.log") -> list[Path]:
    """One log per rank (``rank_0.log`` ...), each written by that rank's logger."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for r, rows in values.items():
        path = folder / name.format(r=r)
        log = _logger(f"collapse_nb_test.rank{r}.{folder.name}", path, FORMAT)
        log.info("world_size=%d rank=%d starting", len(values), r)
        for row in rows:
            log.info(message(*row))
        _close(log)
        paths.append(path)
    return paths


def write_interleaved(path: Path, values: dict, prefix: str = "[rank{r}]:", seed: int = 1,
                      tail: dict[int, list[str]] | None = None) -> Path:
    """One file the ranks' lines arrive in, each prefixed as a launcher writes it (``[rank3]:``,
    ``[default3]:``, ``3: ``), in a shuffled order within each step (processes race for the stream)."""
    rng = random.Random(seed)
    log = _logger(f"collapse_nb_test.merged.{path.stem}", path, "%(prefix)s" + FORMAT)
    n = len(next(iter(values.values())))
    for i in range(n):
        order = list(values)
        rng.shuffle(order)
        for r in order:
            log.info(message(*values[r][i]), extra={"prefix": prefix.format(r=r)})
    for r, lines in (tail or {}).items():
        for text in lines:
            log.handlers[0].stream.write(prefix.format(r=r) + text + "\n")
    _close(log)
    return path
