"""Checkpoint summary: speed and peak memory, collapse_nb against plain torch.

Writes a checkpoint of ``--gb`` GB (several large float32 tensors and a few small ones, one
``torch.save`` zip file) into ``--dir``, then summarises it in fresh subprocesses, so that
each gets its own peak resident memory (``ru_maxrss``):

- ``torch``: ``torch.load(weights_only=True)`` (the whole file into memory), then per tensor
  ``norm, mean, std, abs().max(), min, max, (t == 0).mean()`` with plain torch;
- ``torch-mmap``: the same with ``mmap=True`` (file-backed, pages never given back);
- ``collapse_nb``: ``open_checkpoint`` + ``params_table`` (mmap, chunked float64 statistics,
  BLAKE2b digest, pages released after each chunk).

The checkpoint is written by a subprocess too, so this process never holds it. Prints
seconds, GB/s, peak RSS (the child's ``VmHWM``), the RSS just after ``import torch`` (the floor every mode
pays) and peak RSS / file size. The target: collapse_nb's peak RSS under 1/4 of the file
size. The file is deleted afterwards unless ``--keep``.

    python benchmarks/bench_checkpoint.py --gb 2 --dir /tmp
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
mode, path = sys.argv[1], sys.argv[2]
import torch
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
base = rss_mb()
t0 = time.perf_counter()
if mode == "collapse_nb":
    from collapse_nb.checkpoints import open_checkpoint, params_table
    with open_checkpoint(path) as ck:
        df = params_table(ck)
    n = len(df)
    check = float(df["norm"].sum())
else:
    sd = torch.load(path, weights_only=True, mmap=(mode == "torch-mmap"))
    rows = []
    for name, t in sd.items():
        t = t if t.is_floating_point() else t.double()
        rows.append((name, float(t.norm()), float(t.mean()), float(t.std()), float(t.abs().max()),
                     float(t.min()), float(t.max()), float((t == 0).float().mean())))
    n = len(rows)
    check = sum(r[1] for r in rows)
secs = time.perf_counter() - t0
# VmHWM: the peak of this process's own memory (ru_maxrss can include the parent's, from before exec)
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024
print(json.dumps({"mode": mode, "secs": secs, "peak_mb": peak, "base_mb": base, "tensors": n, "norm_sum": check}))
"""


MAKE = r"""
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from bench_checkpoint import make_checkpoint
make_checkpoint(Path(sys.argv[1]), float(sys.argv[2]))
"""


def make_checkpoint(path: Path, gb: float) -> int:
    """Write the benchmark checkpoint (call in a subprocess: it holds the tensors while saving)."""
    import torch
    torch.manual_seed(0)
    big = 64 * 2**20                        # 64 Mi float32 = 256 MiB per large tensor
    n_big = max(1, math.ceil(gb * 1e9 / (big * 4)))
    sd = {}
    for i in range(n_big):
        sd[f"layers.{i}.weight"] = torch.randn(8192, big // 8192)
        sd[f"layers.{i}.bias"] = torch.zeros(8192)
        sd[f"layers.{i}.norm.weight"] = torch.ones(8192).bfloat16()
    sd["step_counter"] = torch.tensor(1000)
    torch.save(sd, path)
    del sd
    return path.stat().st_size


def run(mode: str, path: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    # run in the checkpoint's own (fresh) folder: nothing there can shadow a module
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(path)], capture_output=True, text=True, env=env,
                         cwd=path.parent)
    if out.returncode:
        raise SystemExit(f"{mode} run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=2.0, help="checkpoint size in GB (default 2)")
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where to write it (default: the temp dir)")
    ap.add_argument("--repeat", type=int, default=2, help="runs per mode, best time reported (default 2)")
    ap.add_argument("--keep", action="store_true", help="keep the checkpoint file")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="cnb_bench_", dir=args.dir))
    path = work / "big.pt"
    try:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", MAKE, str(path), str(args.gb), str(Path(__file__).parent)],
                       check=True, cwd=work)
        size = path.stat().st_size
        print(f"checkpoint: {path} {size / 1e9:.3f} GB ({size:,} bytes), written in {time.perf_counter() - t0:.1f} s")
        print(f"{'mode':<12} {'best s':>8} {'GB/s':>7} {'peak RSS MB':>12} {'after import MB':>16} {'RSS/file':>9}")
        results = {}
        for mode in ("torch", "torch-mmap", "collapse_nb"):
            runs = [run(mode, path) for _ in range(args.repeat)]
            best = min(runs, key=lambda r: r["secs"])
            peak = max(r["peak_mb"] for r in runs)
            results[mode] = best
            print(f"{mode:<12} {best['secs']:>8.2f} {size / 1e9 / best['secs']:>7.2f} {peak:>12.0f} "
                  f"{best['base_mb']:>16.0f} {peak * 2**20 / size:>9.3f}")
        ref, ours = results["torch"]["norm_sum"], results["collapse_nb"]["norm_sum"]
        print(f"sum of norms: torch {ref:.6f}, collapse_nb {ours:.6f} "
              f"(relative difference {abs(ref - ours) / ref:.2e}; torch sums float32 in float32)")
    finally:
        if args.keep:
            print(f"kept {path}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
