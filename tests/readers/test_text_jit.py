"""The compiled (numba) text-log tokeniser: numbers read exactly as ``float()`` reads them, lines of one
shape read through one plan exactly as the grammar reads each of them, and the context state machine
compiled or not. (Whole logs, engine against engine: ``test_text_engines``.)"""
from __future__ import annotations

import math
import random
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from collapse_nb.readers import _text_fast as fast
from collapse_nb.readers import _text_grammar as g
from collapse_nb.readers import _text_jit as jit
from collapse_nb.readers import _text_shapes as sh

from .test_text_engines import random_log

needs_numba = pytest.mark.skipif(not jit.AVAILABLE, reason="numba is not installed")


def bits(x: float) -> bytes:
    return struct.pack("<d", x)


def parse_all(strings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """parse_number over each string, through the compiled bulk kernel."""
    data = "".join(strings).encode("ascii")
    ends = np.cumsum([len(s) for s in strings])
    starts = ends - np.array([len(s) for s in strings])
    return jit.parse_spans(np.frombuffer(data, dtype=np.uint8), starts.astype(np.int64), ends.astype(np.int64))


EDGE = ["0", "-0", "-0.0", "+0", "0.0", ".5", "-.5", "5.", "1e5", "1E-5", "1e+5", "1.e5", "-1.5e-3", "1e0", "7e-0",
        "00000", "000123.4500", "0.000000000000000000001234", "1e-320", "4.9e-324", "5e-324", "2.4e-324",
        "2.2250738585072014e-308", "2.2250738585072011e-308", "1.7976931348623157e308", "1.7976931348623159e308",
        "1e308", "1e309", "1e-400", "1e400", "0e999", "-0e-999", "9007199254740992", "9007199254740993",
        "9007199254740995", "9007199254740993.0", "18014398509481985", "123456789012345678901234567890",
        "1234567890123456789", "12345678901234567890", "0.1", "0.2", "0.3", "0.30000000000000004",
        "1,234", "1,234.5", "12,345,678.9", "-1,000", "1,234e2", "999,999,999,999,999,999", "nan", "NaN", "NAN",
        "-nan", "+nan", "+inf", "inf", "-inf", "Inf", "INF", "infinity", "-Infinity", "1e22", "1e23", "1e-22",
        "1e-23", "123456789012345e22", "123456789012345e23", "1.5e37", "3.14159265358979323846",
        "2.718281828459045", "8.98846567431158e307", "0.1e-309", "100000000000000000000000", "1" + "0" * 400,
        "0." + "0" * 400 + "1", "12.91712345", "0.00100000", "-0.012345"]
INVALID = ["", "+", "-", ".", "-.", "e5", "1e", "1e+", "1,23", "12,3456", ",123", "1,,234", "1,234,", "1.2.3", "1..2",
           "--1", "+-1", "nana", "in", "nan0", "0x10", "1_000", " 1", "1 ", "1e5.5", "infinite", "Nan", "iNF",
           "1.5e", "1,234.5,6", "١٢", "1e1e1"]


def check(strings: list[str]) -> int:
    """Every NUM is recognised as one and, when said to be exact, bit for bit float(); returns how many
    took the exact path."""
    st, val = parse_all(strings)
    exact = 0
    for s, code, v in zip(strings, st.tolist(), val.tolist()):
        is_num = g._NUM_RE.match(s) is not None
        assert (code >= 0) == is_num, s
        if code == 0:
            assert bits(v) == bits(float(s.replace(",", ""))), (s, v)
            exact += 1
    return exact


@needs_numba
def test_parse_number_edge_cases():
    assert check([s for s in EDGE if s.isascii()]) > 30
    st, _ = parse_all([s for s in INVALID if s.isascii()])
    assert (st == -1).all()


@needs_numba
def test_parse_number_common_values_take_the_exact_path():
    vals = ["12.91712345", "0.00100000", "-0.012345", "1.1325", "3", "1e-05", "0.5", "1,234.5", "-0", "15.06"]
    st, v = parse_all(vals)
    assert (st == 0).all()
    assert [bits(x) for x in v] == [bits(float(s.replace(",", ""))) for s in vals]
    assert math.copysign(1.0, v[vals.index("-0")]) == -1.0


@needs_numba
def test_parse_number_random_decimals():
    rng = random.Random(1)
    strings = []
    for _ in range(20_000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 22)))
        point = rng.randint(0, len(digits))
        s = digits[:point] + ("." if rng.random() < 0.8 else "") + digits[point:]
        if s.startswith(".") and len(s) == 1:
            s = "0"
        if rng.random() < 0.4:
            s += rng.choice("eE") + rng.choice(["", "+", "-"]) + str(rng.randint(0, 340))
        strings.append(rng.choice(["", "-", "+"]) + s)
    assert check(strings) > 8_000


@needs_numba
def test_parse_number_random_doubles_round_trip():
    rng = random.Random(2)
    strings = []
    for _ in range(20_000):
        x = rng.choice([rng.uniform(-1e3, 1e3), rng.gauss(0, 1), 10 ** rng.uniform(-30, 30),
                        struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]])
        if math.isnan(x) or math.isinf(x):
            continue
        fmt = rng.choice(["{!r}", "{:.17g}", "{:.8f}", "{:.3e}", "{:.6f}", "{:.15g}", "{:.0f}", "{:,.2f}"])
        strings.append(fmt.format(x))
    assert check(strings) > 5_000


@needs_numba
def test_parse_number_thousands_separators():
    rng = random.Random(3)
    strings = [f"{rng.randint(0, 10 ** rng.randint(1, 18)):,}" + rng.choice(["", f".{rng.randint(0, 999)}"])
               for _ in range(5_000)]
    assert check(strings) > 4_000


# ------------------------------------------------------------------------------------------------ line shapes

SHAPES = [
    "EPOCH 3 | BATCH 17/3529 | TRAINING MODE",
    "EPOCH 1 | BATCH 0/2 | VALIDATION MODE",
    "y_pred_for_loss mean/std: -0.012345 / 0.034567",
    "2025-10-26 09:41:51,130 INFO __main__: Batch 10/520 | loss=15.06 elapsed=12.5s",
    "2025-10-26 09:41:51,130 - INFO - Epoch 3/35, Train Loss: 0.1234, Test Acc: 91.5%",
    "iter 100: loss 4.2345, time 123.45ms, mfu 12.3%",
    "2024-01-01T12:00:00Z\thost:0\tolmo.train:979\tINFO\t[step=1/15000,epoch=0]",
    "INFO:root:epoch 2 loss=0.5 grad_norm=1e-05",
    "2025-10-26 09:41:51,130 INFO x: Model outputs stats | mean=0.1 std=0.5",
    "Epoch 1/3 complete | train_loss=1.111111 val_loss=0.155555 lr=0.00100000",
    "step 1,000 | loss 2.5 | layer1_loss=0.25 | lr 3e-4",
    "[2024-05-01 10:00:00] INFO: Epoch 4 | Batch 7 | loss: 0.25 | acc: 98%",
    "I1212 11:03:17.693 9724 f.py:80] step 12 loss = 3.5",
    "--- EPOCH 2 VALIDATION ---",
    "Start time: 2025-10-27 13:15:54",
    "Config: configs/prod.yaml",
    "optimizer_step_executed: True",
    "loss: 1e999 | x: +5 | y: 5. | z: -0",
    "loss=nan grad_norm=inf step 3",
    "val/loss_epoch: 0.25, val/acc 0.75, epoch 2",
    "Running validation 3",
    "NOTE: 2 accumulations of 'loss' (scaled)",
    "Epoch [3/10], Step [100/600], Loss: 0.2213",
    "epoch 1 iter 20: lr 0.001 loss 2.0e-3 time 55ms",
]


def variants(line: str, rng: random.Random, k: int) -> list[str]:
    digits = [i for i, ch in enumerate(line) if ch.isdigit()]
    out = []
    for _ in range(k):
        chars = list(line)
        for i in digits:
            chars[i] = rng.choice("0123456789")
        out.append("".join(chars))
    return out


def assert_plan_reads_like_the_grammar(line: str, rng: random.Random, k: int = 30) -> bool:
    plan = sh.build_plan(line)
    if plan is None:
        return False
    for v in [line] + variants(line, rng, k):
        assert sh._same_parsed(plan.apply_one(v), g.parse_line(v)), (line, v, plan)
    return True


def test_plans_read_every_line_of_a_shape_like_the_grammar():
    rng = random.Random(4)
    planned = sum(assert_plan_reads_like_the_grammar(ln, rng) for ln in SHAPES)
    assert planned >= len(SHAPES) - 4


def test_plans_on_random_log_lines(tmp_path):
    rng = random.Random(5)
    planned = 0
    for seed in (11, 12):
        p = tmp_path / f"r{seed}.log"
        random_log(p, seed, n=150)
        for ln in p.read_bytes().decode("utf-8", errors="replace").splitlines():
            if ln.isascii() and ln.strip():
                planned += assert_plan_reads_like_the_grammar(ln.rstrip("\r"), rng, k=8)
    assert planned > 100


def test_plan_constants_and_spans():
    plan = sh.build_plan("EPOCH 3 | BATCH 17/3529 | TRAINING MODE")
    assert plan.kind == "context" and plan.phase == 0
    assert dict(plan.context) == {0: (6, 7), 1: (16, 18)}
    plan = sh.build_plan("loss=nan grad_norm=inf step 3")
    assert plan is not None and [k for k, _ in plan.values] == ["loss", "grad_norm"]
    assert math.isnan(plan.values[0][1]) and plan.values[1][1] == math.inf


def _dict_states(events):
    """The context state machine as it was written over (line, context dict, phase) events, before it
    moved to arrays: the reference for ``_text_fast.context_states``."""
    n = len(events)
    ep, ba, st = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    ph, seg = [None] * n, np.zeros(n, dtype=np.int64)
    epoch = batch = step = math.nan
    last_batch, phase, segment, restarts = {}, None, 0, []
    for i, (_ln, ctx, p) in enumerate(events):
        e, b, s = ctx.get("epoch", math.nan), ctx.get("batch", math.nan), ctx.get("step", math.nan)
        own = ctx.get("own", False)      # a line's own phase: it does not carry over
        if p is not None and p != phase and p != "train" and not own:
            last_batch.pop(p, None)
        counted = p if p is not None else phase
        moved_on = e > epoch            # a step counted within each epoch goes back as the epoch moves on
        back = "reset" in ctx or (e < epoch) or (s < step and not moved_on) or (
            not math.isnan(b) and (e == epoch or math.isnan(e)) and b < last_batch.get(counted, math.nan))
        if back:
            segment += 1
            restarts.append(i)
            epoch = batch = step = math.nan
            last_batch, phase = {}, None
        if not math.isnan(e):
            if e != epoch:
                phase, last_batch = (None if own else p), {}
            batch, epoch = math.nan, e
        if not math.isnan(b):
            batch = b
            last_batch[counted] = max(last_batch.get(counted, b), b)
        if not math.isnan(s):
            step = s
        if p is not None and not own:
            phase = p
        ep[i], ba[i], st[i], ph[i], seg[i] = epoch, batch, step, (p if own else phase), segment
    return ep, ba, st, ph, seg, restarts


def test_context_states_equal_the_dict_state_machine():
    rng = np.random.default_rng(7)
    phases = [None, "train", "val", "test"]
    impls = [fast.context_states] + ([jit.context_states] if jit.AVAILABLE else [])
    for _ in range(1000):
        events = []
        for i in range(int(rng.integers(1, 60))):
            ctx = {k: float(rng.integers(0, hi))
                   for k, hi, p in (("epoch", 4, 0.5), ("batch", 6, 0.5), ("step", 30, 0.3)) if rng.random() < p}
            if rng.random() < 0.03:
                ctx = {"reset": 1.0}
            p = phases[int(rng.integers(0, 4))] if rng.random() < 0.5 or not ctx else None
            if p is not None and ctx and "reset" not in ctx and rng.random() < 0.2:
                ctx["own"] = True
            events.append((i + 1, ctx, p))
        ref = _dict_states(events)

        def col(k, events=events):
            return np.array([c.get(k, np.nan) for _, c, _ in events])

        codes = [phases.index(p) - 1 + (fast.OWN_PHASE if c.get("own") else 0) for _, c, p in events]
        args = (col("epoch"), col("batch"), col("step"), np.array(codes),
                np.array(["reset" in c for _, c, _ in events]))
        for impl in impls:
            ep, ba, st, ph, seg, back = impl(*args)
            for x, y in zip((ep, ba, st), ref[:3]):
                np.testing.assert_array_equal(x, y)
            assert [phases[int(x) + 1] for x in ph] == ref[3]
            assert seg.tolist() == ref[4].tolist() and np.flatnonzero(back).tolist() == ref[5]


@needs_numba
def test_context_states_compiled_equals_python():
    rng = np.random.default_rng(6)
    for _ in range(50):
        n = int(rng.integers(1, 200))

        def nan_or(p, hi, n=n):
            return np.where(rng.random(n) < p, np.nan, rng.integers(0, hi, n).astype(float))

        args = (nan_or(0.6, 4), nan_or(0.4, 6), nan_or(0.7, 50), rng.integers(-1, 3, n), rng.random(n) < 0.05)
        a = jit.context_states(*args)
        b = fast.context_states(*(x.tolist() for x in args))
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


@needs_numba
def test_scan_many_distinct_keys_grows_its_tables():
    lines = [f"key_{i}: {i}" for i in range(5000)] + ["subj_%d:\n  x: 1" % i for i in range(3000)]
    buf = ("\n".join(lines) + "\n").encode()
    cols = jit.tokenize(buf, 1)
    ref = fast.to_columns(fast.tokenize(buf, 1), 1)
    assert cols.keys == ref.keys and cols.subjects == ref.subjects
    np.testing.assert_array_equal(cols.f_value, ref.f_value)
    np.testing.assert_array_equal(cols.f_key, ref.f_key)
    np.testing.assert_array_equal(cols.f_param, ref.f_param)


def test_reader_without_numba(tmp_path):
    """With numba not importable: the module still imports, ``auto`` uses the numpy engine, ``jit`` says why
    it cannot run, and the tables are the reference engine's."""
    p = tmp_path / "run.log"
    random_log(p, 9, n=200)
    code = textwrap.dedent(f"""
        import sys
        sys.modules["numba"] = None                      # import numba -> ImportError
        import pandas as pd
        from collapse_nb.readers import text_log, _text_jit
        assert not _text_jit.AVAILABLE and not text_log.jit_available()
        from collapse_nb.readers.text_log import TextLogReader
        a = TextLogReader(engine="python").read({str(p)!r}).scalars
        b = TextLogReader().read({str(p)!r}).scalars
        pd.testing.assert_frame_equal(a.astype(object), b.astype(object))
        try:
            TextLogReader(engine="jit").read({str(p)!r})
        except ValueError as e:
            assert "numba" in str(e)
        else:
            raise AssertionError("engine='jit' ran without numba")
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr
