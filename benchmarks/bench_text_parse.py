"""Speed and memory of the text-log reader on a large diagnostic-block log.

Generates a log in the seed report's diagnostic-block format (optimizer blocks
with per-parameter norms, batch headers, loss and prediction statistics), then
times, in one run on the same file:

- the baseline: the five ``re.findall`` calls of the seed author's script over
  the whole file (they attach no epoch or batch, and the gradient pattern finds
  nothing on this format);
- ``collapse_nb.load`` (full contextual parse) plus building ``epochs``,
  ``outputs`` and ``grads``.

Prints MB/s for both, the ratio, the rows recovered, and peak RSS of each
measured in a fresh child process (so the two do not share a high-water mark).

With numba installed, the reader tokenises big logs with compiled code, which
numba compiles on first use and caches on disk. The benchmark then reports a
*cold* run (an empty numba cache: compiling included) and *warm* runs (the
compiled code loaded from the cache, as on every later run), each in a fresh
process. ``--engine numpy`` times the numpy/pyarrow engine instead.

    python benchmarks/bench_text_parse.py --mb 200
    python benchmarks/bench_text_parse.py --mb 200 --repeat 3 --engine numpy
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PARAMS = [f"encoder.layers.{i}.{n}" for i in range(6)
          for n in ("self_attn.q_proj.weight", "self_attn.q_proj.bias", "linear1.weight", "linear1.bias")]
PARAMS += ["celestial_key_projection.weight", "celestial_key_projection.bias", "projection.weight", "projection.bias"]


def generate(path: Path, megabytes: float, seed: int = 0) -> int:
    rng = random.Random(seed)
    target = int(megabytes * 1_000_000)
    written = 0
    epoch, batch, n_batches = 1, 0, 3529
    acc = 0.0
    with open(path, "w") as f:
        f.write("CELESTIAL ENHANCED PGAT - TRAINING DIAGNOSTICS\n" + "=" * 80 + "\n\n")
        while written < target:
            parts = ["\n--- OPTIMIZER STEP DIAGNOSTICS ---\n"]
            for p in PARAMS:
                dead = "celestial_key" in p
                w = rng.uniform(5, 15)
                ch = 0.0 if dead else rng.uniform(0, 0.01)
                g = 0.0 if dead else rng.uniform(0, 0.1)
                parts.append(f"{p}:\n  weight_norm_before: {w:.8f}\n  weight_norm_after: {w - ch:.8f}\n"
                             f"  weight_change: {ch:.8f}\n  grad_norm: {g:.8f}\n")
            loss = rng.uniform(0.5, 1.5)
            acc += loss
            parts.append(
                f"optimizer_step_executed: True\ncurrent_lr: {0.001:.8f}\n\n{'=' * 80}\n"
                f"EPOCH {epoch} | BATCH {batch}/{n_batches} | TRAINING MODE\n{'=' * 80}\n"
                f"raw_loss (full batch loss): {loss:.8f}\nloss (scaled for backward): {loss / 3:.8f}\n"
                f"effective_cycle (gradient_accumulation_steps): 3\n"
                f"accumulated train_loss so far: {acc:.8f}\navg train_loss so far: {acc / (batch + 1):.8f}\n"
                f"y_pred_for_loss mean/std: {rng.gauss(0, 0.05):.6f} / {rng.uniform(0.02, 0.06):.6f}\n"
                f"y_true_for_loss mean/std: {rng.gauss(0, 0.1):.6f} / {rng.uniform(0.7, 0.95):.6f}\n")
            s = "".join(parts)
            f.write(s)
            written += len(s)
            batch += 1
            if batch == n_batches:
                epoch, batch, acc = epoch + 1, 0, 0.0
    return written


def baseline(path: str) -> dict:
    """The seed author's script: five findall calls over the whole file."""
    t = time.perf_counter()
    text = open(path, encoding="utf-8", errors="replace").read()
    found = [
        re.findall(r"y_pred_for_loss mean/std: ([-\d.]+) / ([\d.]+)", text),
        re.findall(r"y_true_for_loss mean/std: ([-\d.]+) / ([\d.]+)", text),
        re.findall(r"(\S+):\s*grad_norm: ([\d.]+)", text),
        re.findall(r"raw_loss \(full batch loss\): ([\d.]+)", text),
        re.findall(r"current_lr: ([\d.]+)", text),
    ]
    return {"seconds": time.perf_counter() - t, "rows": sum(len(x) for x in found),
            "grad_rows": len(found[2])}


def collapse(path: str) -> dict:
    import collapse_nb as cnb
    from collapse_nb.readers import base
    engine = os.environ.get("BENCH_TEXT_ENGINE", "auto")
    if engine != "auto":
        from collapse_nb.readers.text_log import TextLogReader
        base._REGISTRY["text-log"] = TextLogReader(engine=engine)
    t, cpu = time.perf_counter(), time.process_time()
    run = cnb.load(path, format="text-log")
    t_scalars = time.perf_counter() - t
    sizes = {"scalars": len(run.scalars), "epochs": len(run.epochs), "outputs": len(run.outputs),
             "grads": len(run.grads)}
    return {"seconds": time.perf_counter() - t, "seconds_scalars_only": t_scalars, "rows": sizes,
            "cpu_seconds": time.process_time() - cpu}


def _child(which: str, path: str) -> None:
    out = baseline(path) if which == "baseline" else collapse(path)
    out["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(out))


def peak_rss_mb() -> float:
    """This process's own high-water mark (VmHWM). ``ru_maxrss`` would not do: Linux carries the
    parent's peak into a forked child, so a child would report at least the parent's peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(which: str, path: str, env: dict | None = None) -> dict:
    res = subprocess.run([sys.executable, __file__, "--child", which, path], capture_output=True, text=True,
                         check=True, env={**os.environ, **(env or {})})
    return json.loads(res.stdout.strip().splitlines()[-1])


def _numba() -> bool:
    import importlib.util
    return importlib.util.find_spec("numba") is not None


def _report(label: str, c: dict, mb: float, b: dict) -> None:
    print(f"{label}: {c['seconds']:.2f} s = {mb / c['seconds']:.1f} MB/s "
          f"(scalars alone {mb / c['seconds_scalars_only']:.1f} MB/s; {c['cpu_seconds']:.2f} s of CPU, all threads), "
          f"rows {c['rows']}, peak RSS {c['peak_rss_mb']:.0f} MB; {b['seconds'] / c['seconds']:.2f}x the baseline")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=200.0, help="size of the generated log (default 200 MB)")
    ap.add_argument("--keep", help="write the log here and keep it")
    ap.add_argument("--repeat", type=int, default=2, help="warm runs of collapse_nb (default 2)")
    ap.add_argument("--engine", default="auto", choices=["auto", "jit", "numpy", "python"],
                    help="text-log engine (default auto: compiled with numba for big logs)")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(*args.child)
        return
    tmp = None
    if args.keep:
        path = Path(args.keep)
    else:
        tmp = tempfile.TemporaryDirectory()
        path = Path(tmp.name) / "training_diagnostic.log"
    size = generate(path, args.mb)
    mb = size / 1e6
    print(f"log: {path} ({mb:.1f} MB, {sum(1 for _ in open(path, 'rb')):,} lines)")
    b = measure("baseline", str(path))
    print(f"baseline (5 x re.findall): {b['seconds']:.2f} s = {mb / b['seconds']:.1f} MB/s, "
          f"{b['rows']:,} matches ({b['grad_rows']} gradient rows), no epoch/batch context, "
          f"peak RSS {b['peak_rss_mb']:.0f} MB")
    env = {"BENCH_TEXT_ENGINE": args.engine}
    compiled = args.engine in ("auto", "jit") and _numba()
    warm = []
    with tempfile.TemporaryDirectory() as cache:
        if compiled:
            env["NUMBA_CACHE_DIR"] = cache              # empty: the first run compiles
            _report("collapse_nb.load + tables, cold (numba compiles)", measure("collapse", str(path), env), mb, b)
        for i in range(max(args.repeat, 1)):
            c = measure("collapse", str(path), env)
            warm.append(c)
            label = "warm (compiled code from numba's cache)" if compiled else f"engine {args.engine}"
            _report(f"collapse_nb.load + tables, {label}, run {i + 1}", c, mb, b)
    best = min(warm, key=lambda c: c["seconds"])
    print(f"speed ratio collapse_nb / baseline: {b['seconds'] / best['seconds']:.2f}x "
          f"(best of {len(warm)}{' warm' if compiled else ''} runs: {mb / best['seconds']:.1f} MB/s)")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
