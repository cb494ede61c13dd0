"""How much a training step slows down with collapse_nb.capture.Recorder attached.

Four loops, each on its own copy of the same model and optimizer with the
same data, interleaved step by step (none, none_b, recorder, naive, then
none_b, recorder, naive, none, ...) so that machine noise hits all alike:

- ``none``: the plain step (forward, MSE loss, backward, AdamW step, zero_grad);
- ``recorder``: the same step with ``Recorder(model, opt, path)`` at its
  defaults, and the documented calls ``rec.log_outputs(pred, y)`` and
  ``rec.log(loss=loss, epoch=..., batch=...)`` on every step;
- ``none_b``: the plain step again, on a second copy: how far it lands from
  ``none`` is the measurement's noise floor on this machine;
- ``naive``: what people write by hand: every step, per parameter,
  ``p.grad.norm().item()``, ``p.norm().item()`` and the update norm from a
  clone of the weights, ``.item()`` each.

Per-step times are wall-clock (``torch.cuda.synchronize()`` after each step on
CUDA, for every variant) and, on CPU, also the process's CPU time. Printed: the
median and the mean step time of each loop and its overhead against ``none``;
the extra cost of a recorded step; and the amortised overhead, from the
medians of recorded and unrecorded steps (the median alone hides the one step
in ``every`` that is recorded; the mean is at the mercy of other processes).

    python benchmarks/bench_capture_overhead.py                 # CPU, ~5M-parameter MLP
    python benchmarks/bench_capture_overhead.py --device cuda --batch 256
    python benchmarks/bench_capture_overhead.py --model transformer
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from collapse_nb.capture import Recorder  # noqa: E402
from collapse_nb.capture.recorder import Recorder as _R  # noqa: E402

DEFAULT_EVERY = _R.__init__.__defaults__[0]


def mlp(width: int, depth: int, d_in: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Linear(d_in, width), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), nn.ReLU()]
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


class Transformer(nn.Module):
    def __init__(self, d: int = 256, layers: int = 6, heads: int = 4):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d, heads, dim_feedforward=4 * d, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, 1)

    def forward(self, x):
        return self.head(self.enc(x)).mean(1)


def naive_step_stats(model: nn.Module, before: list[torch.Tensor]) -> list[float]:
    out = []
    for p, b in zip(model.parameters(), before):
        out.append(p.grad.norm().item() if p.grad is not None else 0.0)
        out.append(p.norm().item())
        out.append((p.detach() - b).norm().item())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--model", choices=("mlp", "transformer"), default="mlp")
    ap.add_argument("--width", type=int, default=1024, help="MLP width (default 1024: ~5.25M parameters)")
    ap.add_argument("--depth", type=int, default=5, help="MLP hidden layers (default 5)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=300, help="timed steps per loop (default 300)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--every", type=int, default=None, help=f"Recorder every= (default: its own, {DEFAULT_EVERY})")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    ap.add_argument("--no-naive", action="store_true", help="leave out the naive recorder")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: CUDA is not available here")
    if args.every is not None and args.every < 1:
        ap.error(f"--every must be >= 1, got {args.every}")
    if args.threads:
        torch.set_num_threads(args.threads)

    def build():
        torch.manual_seed(0)
        if args.model == "mlp":
            m = mlp(args.width, args.depth, args.width).to(device)
        else:
            m = Transformer().to(device)
        return m, torch.optim.AdamW(m.parameters(), lr=1e-4, weight_decay=0.01)

    # "none_b" is the plain loop again on a second copy: its distance from "none" is the noise floor
    variants = ["none", "none_b", "recorder"] + ([] if args.no_naive else ["naive"])
    setups = {v: build() for v in variants}          # one identical model + optimizer per loop
    torch.manual_seed(1)
    x = (torch.randn(args.batch, args.width, device=device) if args.model == "mlp"
         else torch.randn(args.batch, 32, 256, device=device))
    y = torch.randn(args.batch, device=device)
    n_params = sum(p.numel() for p in setups["none"][0].parameters())
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    tmp = Path(tempfile.mkdtemp(prefix="bench_capture_"))
    rec_kw = {} if args.every is None else {"every": args.every}
    every = args.every or DEFAULT_EVERY

    def step(v: str, i: int, rec: Recorder | None = None) -> tuple[float, float]:
        model, opt = setups[v]
        naive = v == "naive"
        sync()
        c0 = time.process_time()
        t0 = time.perf_counter()
        pred = model(x).squeeze(-1)
        loss = nn.functional.mse_loss(pred, y)
        if rec is not None:
            rec.log_outputs(pred, y)
            rec.log(loss=loss, epoch=0, batch=i)
        loss.backward()
        before = [p.detach().clone() for p in model.parameters()] if naive else None
        opt.step()
        if naive:
            naive_step_stats(model, before)
            loss.item()
        opt.zero_grad(set_to_none=True)
        sync()
        return time.perf_counter() - t0, time.process_time() - c0

    for i in range(args.warmup):
        for v in variants:
            step(v, i)
    times: dict[str, list[float]] = {v: [] for v in variants}
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    recorded: dict[str, list[float]] = {"wall": [], "cpu": []}
    unrecorded: dict[str, list[float]] = {"wall": [], "cpu": []}
    # interleaved: one step of each loop in turn (the order rotating), so that a burst of machine noise
    # hits every loop alike; the recorder stays attached to its own model throughout
    with Recorder(*setups["recorder"], tmp / "capture.jsonl", mode="w", **rec_kw) as rec:
        for i in range(args.steps):
            k = i % len(variants)
            for v in variants[k:] + variants[:k]:
                wall, proc = step(v, i, rec=rec if v == "recorder" else None)
                times[v].append(wall)
                cpu[v].append(proc)
                if v == "recorder":
                    into = recorded if i % every == 0 else unrecorded
                    into["wall"].append(wall)
                    into["cpu"].append(proc)

    print(f"device={device} model={args.model} params={n_params:,} batch={args.batch} "
          f"threads={torch.get_num_threads()} torch={torch.__version__}")
    print(f"Recorder every={every} (defaults otherwise); {args.steps} steps per loop, one step of each loop in turn")
    clocks = [("wall", times)] + ([("cpu", cpu)] if device.type == "cpu" else [])
    for clock, table in clocks:
        what = "wall-clock" if clock == "wall" else "process CPU time (all threads; less sensitive to other processes)"
        print(f"-- {what}")
        base_med = statistics.median(table["none"])
        base_mean = statistics.fmean(table["none"])
        print(f"{'variant':<10} {'median ms':>10} {'mean ms':>10} {'median ovh':>11} {'mean ovh':>9}")
        for v in variants:
            med, mean = statistics.median(table[v]), statistics.fmean(table[v])
            print(f"{v:<10} {med * 1e3:>10.3f} {mean * 1e3:>10.3f} {100 * (med / base_med - 1):>10.2f}% "
                  f"{100 * (mean / base_mean - 1):>8.2f}%")
        if recorded[clock] and unrecorded[clock]:
            med_r, med_u = statistics.median(recorded[clock]), statistics.median(unrecorded[clock])
            print(f"recorded step: median {med_r * 1e3:.3f} ms vs {med_u * 1e3:.3f} ms unrecorded "
                  f"(+{(med_r - med_u) * 1e3:.3f} ms, {len(recorded[clock])} recorded steps)")
            amortised = (med_u * (every - 1) + med_r) / every
            print(f"amortised over every={every} steps (from medians): {amortised * 1e3:.3f} ms/step, "
                  f"{100 * (amortised / base_med - 1):+.2f}% vs none")
    size = (tmp / "capture.jsonl").stat().st_size
    print(f"capture file: {size:,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
