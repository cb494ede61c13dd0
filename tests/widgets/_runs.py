"""A small run written as a real JSON-lines log, for the widget tests."""
from __future__ import annotations

import json

PARAMS = ["encoder.weight", "encoder.bias", "attn.key.weight", "attn.key.bias", "head.weight", "head.bias"]


def write_small_run(path, collapse: float = 0.9, dead: str | None = "attn.key") -> None:
    """A 4-epoch, 20-step run: per-parameter gradients (``dead``'s exactly 0), a prediction std shrinking by
    ``collapse`` per step against a target std of 1, train and val losses."""
    rows, step = [], 0
    for epoch in range(1, 5):
        for _ in range(5):
            step += 1
            r = {"step": step, "epoch": epoch, "train_loss": 1.0 / step + 0.5, "pred_std": 0.5 * collapse ** step,
                 "target_std": 1.0, "pred_mean": 0.0, "target_mean": 0.0, "lr": 1e-3}
            for p in PARAMS:
                r[f"grad_norm/{p}"] = 0.0 if dead and p.startswith(dead) else 0.1 * (1 + 0.1 * step)
                r[f"weight_norm/{p}"] = 1.0
            rows.append(r)
        rows.append({"step": step, "epoch": epoch, "val_loss": 0.4 / epoch + 0.3})
    path.mkdir(parents=True, exist_ok=True)
    (path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
