"""The bundled example (data/example_run) is what ``python -m collapse_nb.zoo seed_replica`` writes.

A float32 training run is not bit-reproducible across CPUs: vector width, the BLAS kernel and the
thread count change the rounding of reductions, so a run regenerated on another machine differs in
the last digits of its losses and norms. The comparison with the committed files is therefore
structural and numeric: every non-numeric piece of text and every integer must be identical, every
decimal number must agree within a relative tolerance, and an exact zero (a dead parameter's
gradient) must stay exactly zero. What *is* exact is checked exactly: the same process writing the
run twice gives the same bytes, and the diagnosis of the regenerated run has the same findings, with
the same codes and severities, as the bundled one.
"""
from __future__ import annotations

import json
import math
import re

import pytest

pytest.importorskip("torch")
pytest.importorskip("tensorboard")

import torch  # noqa: E402

import collapse_nb  # noqa: E402
from collapse_nb.example import default_example_dir, make_example_run  # noqa: E402

TEXT_FILES = ("training_diagnostic.log", "metrics.csv", "config.yaml", "scenario.json")
RTOL = 2e-3            # float32 drift over 60 optimizer steps on another CPU stays far below this
ATOL = 1e-9            # ... and values this close to zero are rounding noise, not a signal
_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
_VOLATILE = ("wall_time", "python", "torch")


def _split(text: str) -> tuple[list[str], list[str]]:
    """The text with every number replaced by a placeholder, and the numbers in order."""
    numbers = _NUMBER.findall(text)
    return _NUMBER.sub("#", text).splitlines(), numbers


def _is_integer(token: str) -> bool:
    return re.fullmatch(r"[-+]?\d+", token) is not None


def _last_place(token: str) -> float:
    """One unit in the last printed digit: the text's own resolution ('0.000034' -> 1e-06)."""
    mantissa, _, exponent = token.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals)


def _numbers_close(a: str, b: str) -> bool:
    if _is_integer(a) or _is_integer(b):
        return a == b                                  # counters, steps, shapes: exact
    x, y = float(a), float(b)
    resolution = max(_last_place(a), _last_place(b))
    return abs(x - y) <= RTOL * max(abs(x), abs(y)) + resolution


def assert_same_run_text(fresh: str, bundled: str, name: str) -> None:
    """Same structure and words; numbers equal within the tolerance (integers and zeros exactly)."""
    f_lines, f_nums = _split(fresh)
    b_lines, b_nums = _split(bundled)
    assert len(f_lines) == len(b_lines), f"{name}: {len(f_lines)} lines, bundled has {len(b_lines)}"
    for i, (fl, bl) in enumerate(zip(f_lines, b_lines), start=1):
        assert fl == bl, f"{name} line {i}: {fl!r} != {bl!r}"
    assert len(f_nums) == len(b_nums), name
    off = [(i, a, b) for i, (a, b) in enumerate(zip(f_nums, b_nums)) if not _numbers_close(a, b)]
    assert not off, f"{name}: {len(off)} numbers differ beyond rtol={RTOL}, first {off[:5]}"


def _records(path):
    out = []
    for line in path.read_text().splitlines():
        r = json.loads(line)
        for k in _VOLATILE:
            r.pop(k, None)
        out.append(r)
    return out


def _assert_close_json(a, b, where: str) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            _assert_close_json(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_close_json(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert isinstance(b, (int, float)) and not isinstance(b, bool), where
        if a == 0.0 or b == 0.0:
            assert a == b, f"{where}: {a} != {b}"     # a dead parameter's exact zero stays exact
        elif math.isnan(a) or math.isnan(b):
            assert math.isnan(a) and math.isnan(b), f"{where}: {a} != {b}"
        else:
            assert math.isclose(a, b, rel_tol=RTOL, abs_tol=ATOL), f"{where}: {a} != {b}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _findings(run_dir):
    return [(f.code, f.severity) for f in collapse_nb.diagnose(collapse_nb.load(run_dir))]


@pytest.fixture(scope="module")
def fresh_example(tmp_path_factory):
    return make_example_run(tmp_path_factory.mktemp("fresh") / "example_run")


def test_tolerant_comparison_can_fail():
    """The comparison tells a drifted last digit from a changed value, a word or a dead gradient."""
    assert_same_run_text("loss: 0.93215859\nstep 3", "loss: 0.93215871\nstep 3", "ok")
    assert_same_run_text("std: 0.000034", "std: 0.000035", "ok")             # the last printed digit
    for fresh, bundled in [("loss: 0.9321", "loss: 0.9500"),        # a real change
                           ("grad: 0.00000000", "grad: 0.00001000"),  # a dead gradient came alive
                           ("step 3", "step 4"),                    # a counter
                           ("val_loss: 1.0", "train_loss: 1.0"),    # a word
                           ("a: 1.0\n", "a: 1.0\nb: 2.0\n")]:       # a line
        with pytest.raises(AssertionError):
            assert_same_run_text(fresh, bundled, "bad")


def test_bundled_example_matches_a_regenerated_run(fresh_example):
    bundled = default_example_dir()
    for name in TEXT_FILES:
        assert_same_run_text((fresh_example / name).read_text(), (bundled / name).read_text(), name)
    _assert_close_json(_records(fresh_example / "capture.jsonl"), _records(bundled / "capture.jsonl"),
                       "capture.jsonl")
    names = sorted(p.name for p in (bundled / "checkpoints").iterdir())
    assert names == sorted(p.name for p in (fresh_example / "checkpoints").iterdir())
    for name in names:
        a = torch.load(fresh_example / "checkpoints" / name, weights_only=True, map_location="cpu")
        b = torch.load(bundled / "checkpoints" / name, weights_only=True, map_location="cpu")
        sa, sb = a.get("model_state_dict", a), b.get("model_state_dict", b)
        assert sa.keys() == sb.keys(), name
        for k in sa:
            if torch.is_tensor(sa[k]) and sa[k].is_floating_point():
                torch.testing.assert_close(sa[k], sb[k], rtol=RTOL, atol=1e-6, msg=f"{name}: {k}")
    assert len(list((bundled / "tb").iterdir())) == 1


def test_regenerating_in_one_process_is_exact(fresh_example, tmp_path):
    """Within one process the training is deterministic: the same bytes, twice."""
    again = make_example_run(tmp_path / "again")
    for name in TEXT_FILES:
        assert (again / name).read_bytes() == (fresh_example / name).read_bytes(), name
    assert _records(again / "capture.jsonl") == _records(fresh_example / "capture.jsonl")


def test_regenerated_run_has_the_bundled_diagnosis(fresh_example):
    assert _findings(fresh_example) == _findings(default_example_dir())


def test_bundled_example_is_small_and_fully_readable():
    d = default_example_dir()
    assert sum(p.stat().st_size for p in d.rglob("*") if p.is_file()) < 5e6
    run = collapse_nb.load(d)
    assert run.meta["ignored"] == [] and set(run.meta["formats"]) == {
        "collapse-capture", "config", "keras-csv", "tensorboard", "text-log", "torch-checkpoint"}
