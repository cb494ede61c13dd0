"""Speed and memory of the TensorBoard reader against tbparse on a large scalar event file.

Writes an event file of exactly ``--events`` scalar events (default 1,000,000) after the file-version
record: four tags (``train/loss`` every step, ``lr`` every step, ``grad_norm`` every 2nd, ``val/loss``
every 10th) with float32 values. The records are built here, byte for byte what
``torch.utils.tensorboard.SummaryWriter.add_scalar(tag, value, step, walltime)`` writes (checked at
start-up against a real SummaryWriter on the first events), because the real writer needs ~17 us per
event. Then times, in one run, each in a fresh child process (collapse_nb's read cache off):

- ``collapse_nb.load(path)`` (the run's ``scalars`` table: canonical names, segments, dtypes), its
  first call in the process (numba's import and the loading of the compiled kernels from its disk
  cache included), then a second, warm call;
- ``tbparse.SummaryReader(path).scalars``;

checks that both give the same rows (count, and every tag, step and value), and prints the events,
the seconds of each, the ratio (tbparse / ours, first call) and the peak RSS of each child. numba's
cache is a fresh folder for the run: a first child compiles the kernels once (its time is printed
apart: what the very first read after installing costs), the measured children load them.
``--repeat N`` measures N times and prints the medians (of the seconds, and of each run's ratio).

    python benchmarks/bench_tb_events.py --events 1000000 --repeat 3
    python benchmarks/bench_tb_events.py --engine numpy     # the reader without numba
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from collapse_nb.readers._tfrecord import crc32c, mask

TAGS = (("train/loss", 1), ("lr", 1), ("grad_norm", 2), ("val/loss", 10))
WRITER = b"tensorboard.summary.writer.event_file_writer"


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _record(data: bytes) -> bytes:
    head = struct.pack("<Q", len(data))
    return head + struct.pack("<I", mask(crc32c(head))) + data + struct.pack("<I", mask(crc32c(data)))


def version_record(wall: float) -> bytes:
    """Event(wall_time, file_version='brain.Event:2', source_metadata{writer}) as SummaryWriter writes it."""
    meta = b"\x0a" + _varint(len(WRITER)) + WRITER
    return _record(b"\x09" + struct.pack("<d", wall) + b"\x1a\x0dbrain.Event:2" + b"\x52" + _varint(len(meta)) + meta)


def scalar_record(tag: bytes, value: float, step: int, wall: float) -> bytes:
    """Event(wall_time, step, summary{value{tag, simple_value}}), the bytes of ``add_scalar``."""
    val = b"\x0a" + _varint(len(tag)) + tag + b"\x15" + struct.pack("<f", value)
    summ = b"\x0a" + _varint(len(val)) + val
    step_b = b"\x10" + _varint(step) if step else b""
    return _record(b"\x09" + struct.pack("<d", wall) + step_b + b"\x2a" + _varint(len(summ)) + summ)


def events(n: int, seed: int = 0):
    """The first ``n`` (tag, value, step, wall_time) of the benchmark run."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(n + 16).astype(np.float32).tolist()
    step, k = 0, 0
    while True:
        for tag, every in TAGS:
            if step % every:
                continue
            if k == n:
                return
            v = {"train/loss": 2.0 / (1 + step * 1e-4), "lr": 1e-3 * min(1.0, step / 1000 + 1e-3),
                 "grad_norm": 1.0 + 0.1 * noise[k], "val/loss": 2.1 / (1 + step * 1e-4)}[tag] + 1e-3 * noise[k + 1]
            yield tag, float(np.float32(v)), step, 1.7e9 + step * 0.01 + k * 1e-6
            k += 1
        step += 1


def generate(path: Path, n: int) -> None:
    tags = {t: t.encode() for t, _ in TAGS}
    with open(path, "wb") as f:
        f.write(version_record(1.7e9 - 1))
        chunk: list[bytes] = []
        for t, v, s, w in events(n):
            chunk.append(scalar_record(tags[t], v, s, w))
            if len(chunk) == 65536:
                f.write(b"".join(chunk))
                chunk.clear()
        f.write(b"".join(chunk))


def check_writer(tmp: Path, n: int = 2000) -> None:
    """The generator's records equal SummaryWriter's for the first ``n`` events (and the version record's layout)."""
    from torch.utils.tensorboard import SummaryWriter
    w = SummaryWriter(str(tmp / "reference"), max_queue=n + 10, flush_secs=3600)
    for tag, v, s, wall in events(n):
        w.add_scalar(tag, v, s, walltime=wall)
    w.close()
    ref = next((tmp / "reference").glob("events.out.tfevents.*")).read_bytes()
    (length,) = struct.unpack_from("<Q", ref)
    first = ref[:16 + length]
    mine = version_record(struct.unpack_from("<d", first, 13)[0])
    body = b"".join(scalar_record(t.encode(), v, s, wall) for t, v, s, wall in events(n))
    if mine != first or body != ref[len(first):]:
        raise SystemExit("the generated records differ from SummaryWriter's: fix the benchmark writer")


def collapse(path: str, engine: str) -> dict:
    import collapse_nb as cnb
    import collapse_nb.readers._all  # noqa: F401  (import the readers before the clock starts)
    from collapse_nb.readers.base import readers
    try:
        from collapse_nb.readers.tb_events import kernels_for
    except ImportError:                # a reader without engines (to measure an older version)
        def kernels_for(engine, size):
            return None
    reader = readers()["tensorboard"]
    reader.engine = engine
    t = time.perf_counter()
    run = cnb.load(path)
    secs = time.perf_counter() - t
    peak = peak_rss_mb()
    df = run.scalars
    res = {"seconds": secs, "peak_rss_mb": peak, "rows": len(df), "tag": df["raw_name"].astype(str).to_numpy(),
           "step": df["step"].to_numpy("int64"), "value": df["value"].to_numpy("float64"),
           "jit": kernels_for(engine, os.path.getsize(path)) is not None}
    del run, df
    gc.collect()
    t = time.perf_counter()
    cnb.load(path)
    res["warm_seconds"] = time.perf_counter() - t
    return res
def tbparse(path: str) -> dict:
    from tbparse import SummaryReader
    t = time.perf_counter()
    df = SummaryReader(path).scalars
    secs = time.perf_counter() - t
    peak = peak_rss_mb()
    return {"seconds": secs, "peak_rss_mb": peak, "rows": len(df), "tag": df["tag"].astype(str).to_numpy(),
            "step": df["step"].to_numpy("int64"), "value": df["value"].to_numpy("float64")}


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux's VmHWM starts afresh at exec; ru_maxrss would
    carry over the parent's peak into a child started by fork+exec."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(which: str, path: str, out: str, engine: str) -> None:
    base = peak_rss_mb()
    res = collapse(path, engine) if which == "collapse" else tbparse(path)
    res["rss_before_mb"] = base
    np.savez(out, tag=res.pop("tag"), step=res.pop("step"), value=res.pop("value"))
    print(json.dumps(res))


def measure(which: str, path: str, out: Path, engine: str, env: dict) -> tuple[dict, dict]:
    res = subprocess.run([sys.executable, __file__, "--child", which, path, str(out), engine], capture_output=True,
                         text=True, env=env)
    if res.returncode:
        raise SystemExit(f"the {which} child failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1]), dict(np.load(out, allow_pickle=True))


def _sorted(rows: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.lexsort((rows["step"], rows["tag"]))
    return rows["tag"][order], rows["step"][order], rows["value"][order]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000, help="scalar events to write (default 1,000,000)")
    ap.add_argument("--repeat", type=int, default=1, help="measure this many times, print the medians (default 1)")
    ap.add_argument("--engine", default="auto", choices=("auto", "jit", "numpy"),
                    help="TensorBoardReader engine (default auto: jit for a big file where numba is installed)")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(*args.child)
        return
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        check_writer(tmp)
        run_dir = tmp / "run"
        run_dir.mkdir()
        path = run_dir / "events.out.tfevents.1700000000.bench.1.0"
        t = time.perf_counter()
        generate(path, args.events)
        print(f"event file: {path.stat().st_size / 1e6:.1f} MB, {args.events:,} scalar events "
              f"(+1 version record), written in {time.perf_counter() - t:.1f} s")
        env = {**os.environ, "COLLAPSE_NB_CACHE": "0", "NUMBA_CACHE_DIR": str(tmp / "numba-cache")}
        compile_run, _ = measure("collapse", str(path), tmp / "c.npz", args.engine, env)
        if compile_run["jit"]:
            print(f"compiling the numba kernels once (empty numba cache): first load {compile_run['seconds']:.3f} s")
        ours, theirs = [], []
        for k in range(args.repeat):
            c, c_rows = measure("collapse", str(path), tmp / "c.npz", args.engine, env)
            b, b_rows = measure("tbparse", str(path), tmp / "b.npz", args.engine, env)
            same = c["rows"] == b["rows"] == args.events and all(
                np.array_equal(x, y) for x, y in zip(_sorted(c_rows), _sorted(b_rows)))
            if not same:
                raise SystemExit("collapse_nb and tbparse disagree")
            ours.append(c)
            theirs.append(b)
            if args.repeat > 1:
                print(f"  run {k + 1}: ours {c['seconds']:.3f} s (warm {c['warm_seconds']:.3f} s), tbparse "
                      f"{b['seconds']:.3f} s, ratio {b['seconds'] / c['seconds']:.1f}x, peak {c['peak_rss_mb']:.0f} MB")

        def med(rows: list[dict], key: str) -> float:
            return statistics.median(r[key] for r in rows)

        c_s, w_s, b_s = med(ours, "seconds"), med(ours, "warm_seconds"), med(theirs, "seconds")
        engine = f"{args.engine}: {'numba kernels' if ours[0]['jit'] else 'numpy'}"
        median = f"median of {args.repeat} runs, " if args.repeat > 1 else ""
        print(f"events: {args.events:,} (same rows, tags, steps and values from both: True)")
        print(f"collapse_nb.load ({engine}), {median}first call in a fresh process: {c_s:.3f} s = "
              f"{args.events / c_s:,.0f} events/s; warm (second) call: {w_s:.3f} s")
        print(f"tbparse SummaryReader(path).scalars, {median}{b_s:.3f} s = {args.events / b_s:,.0f} events/s")
        print(f"peak RSS: collapse_nb {med(ours, 'peak_rss_mb'):.0f} MB ({med(ours, 'rss_before_mb'):.0f} MB "
              f"after imports), tbparse {med(theirs, 'peak_rss_mb'):.0f} MB")
        ratio = statistics.median(b["seconds"] / c["seconds"] for b, c in zip(theirs, ours))
        warm = statistics.median(b["seconds"] / c["warm_seconds"] for b, c in zip(theirs, ours))
        print(f"speed ratio collapse_nb / tbparse ({'median of the ratios of each run' if median else 'this run'}): "
              f"{ratio:.1f}x first call, {warm:.1f}x warm")


if __name__ == "__main__":
    main()
