"""Triage of a folder of many small runs: cold (nothing cached), warm (the read cache full), and peak memory.

Writes ``--runs`` (default 1,000) small runs under a temporary folder, each like a real small run: a
``metrics.jsonl`` of 300 steps (train loss, lr, grad norm; a validation loss every 30 steps), a
``config.yaml`` and, for one run in ten, a Lightning-style ``metrics.csv`` beside it. A tenth of the runs
diverge (NaN loss), a tenth plateau, the rest are healthy. Then, each in a fresh child process (so the
imports are measured apart and the peak RSS is the child's own):

- **cold**: ``collapse_nb.cluster.triage_folder(root, cache=<empty folder>)``, which is what
  ``collapse-nb triage DIR`` runs: discovery, then each run read, diagnosed and dropped in turn;
- **warm**: the same again with the cache the cold pass filled: no log is parsed again;
- **memory**: the cold pass on a quarter of the runs, to compare its peak RSS with the full one's (flat in the
  number of runs when each run is dropped after its row is made).

Prints seconds per run (cold), seconds in all (warm), the warm/cold ratio, and the peak RSS of each child.
Targets (issue 12): cold at most 0.25 s per run on 2 cores, warm under 10 s for 1,000 runs, memory flat.

    python benchmarks/bench_many_runs.py --runs 1000
"""
from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from collapse_nb.cluster import triage_folder
t1 = time.perf_counter()
table = triage_folder(sys.argv[1], cache=sys.argv[2])
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "triage_s": t2 - t1, "runs": len(table),
                  "statuses": table["status"].value_counts().to_dict(),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_runs(root: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    for i in range(n):
        d = root / f"sweep_{i // 100:02d}" / f"run_{i:04d}"
        d.mkdir(parents=True)
        kind = "diverge" if i % 10 == 3 else "plateau" if i % 10 == 7 else "healthy"
        lr = 10 ** rng.uniform(-4, -2)
        lines = []
        for s in range(300):
            if kind == "healthy":
                loss = 2.3 * math.exp(-s / 80) + 0.1 + rng.gauss(0, 0.02)
            elif kind == "plateau":
                loss = 2.3 + rng.gauss(0, 0.02)
            else:
                loss = 2.3 * math.exp(-s / 80) + 0.1 if s < 200 else float("nan")
            row = {"step": s, "epoch": s // 30, "train_loss": loss, "lr": lr, "grad_norm": 1.0 + rng.random()}
            lines.append(json.dumps(row))
            if s % 30 == 29:
                lines.append(json.dumps({"step": s, "epoch": s // 30, "val_loss": loss * 1.05}))
        (d / "metrics.jsonl").write_text("\n".join(lines) + "\n")
        (d / "config.yaml").write_text(f"learning_rate: {lr}\nbatch_size: 32\nepochs: 10\nseed: {i}\n")
        if i % 10 == 0:
            (d / "metrics.csv").write_text("epoch,step,val_loss\n" + "".join(
                f"{e},{e * 30 + 29},{2.0 / (e + 1):.4f}\n" for e in range(10)))


def child(root: Path, cache: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(root), str(cache)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        full, quarter = tmp / "full", tmp / "quarter"
        write_runs(full, args.runs)
        write_runs(quarter, max(1, args.runs // 4))
        cold = child(full, tmp / "cache")
        warm = child(full, tmp / "cache")
        small = child(quarter, tmp / "cache_quarter")
    n = cold["runs"]
    print(f"runs: {n} ({cold['statuses']})")
    print(f"cold: {cold['triage_s']:.1f} s, {cold['triage_s'] / n:.3f} s per run (target <= 0.25), "
          f"imports {cold['import_s']:.1f} s, peak RSS {cold['peak_rss_mb']:.0f} MB")
    print(f"warm: {warm['triage_s']:.1f} s for all {n} (target < 10 s), {warm['triage_s'] / n * 1000:.1f} ms per run, "
          f"{cold['triage_s'] / warm['triage_s']:.1f}x faster than cold, peak RSS {warm['peak_rss_mb']:.0f} MB")
    print(f"memory: peak RSS {small['peak_rss_mb']:.0f} MB for {small['runs']} runs vs {cold['peak_rss_mb']:.0f} MB "
          f"for {n} (ratio {cold['peak_rss_mb'] / small['peak_rss_mb']:.2f}; flat is 1.0)")


if __name__ == "__main__":
    main()
