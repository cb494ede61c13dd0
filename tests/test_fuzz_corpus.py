"""Mutation fuzzing of the shared corpus: load, diagnose and both reports accept only a Run or a collapse_nb error.

Each example takes one real file of ``../shared/corpus`` (the first 96 KiB of a large one), mutates its bytes
(a cut, flipped or inserted bytes, a number replaced by an odd one, a line repeated, NUL padding, another
encoding), and runs it through ``load -> diagnose -> report`` (Markdown and HTML, without plots). Anything but a
:class:`collapse_nb.Run` or a :class:`collapse_nb.CollapseNBError` fails, as does an example running past
its deadline. The default run is small and derandomised (the suite stays fast and repeatable); set
``COLLAPSE_NB_FUZZ_EXAMPLES=5000`` for a long run.
"""
from __future__ import annotations

import os
import warnings

import pytest

from tests.conftest import CORPUS

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

import collapse_nb as cnb  # noqa: E402
from collapse_nb.errors import CollapseNBError  # noqa: E402
from collapse_nb.report import report  # noqa: E402

FILES = [("chainer-dcgan", "log"), ("cifar-logging", "training.log"), ("d2-kevin", "metrics.json"),
         ("detr-moqixis", "log.txt"), ("hf-jaong", "trainer_state.json"),
         ("hf-phi4-lora-gradnorm-spike", "trainer_state.json"), ("jsonl-nanollama", "log.jsonl"),
         ("keras-brats", "training.log"), ("keras-glove-lstm-overfit", "training_history.json"),
         ("mm-fruit", "scalars.json"), ("olmo-train", "training.log"), ("pix2pix-d-collapse", "loss_log.txt"),
         ("pl-opal", "metrics.csv"), ("tsl-diag-f7a0244", "training_diagnostic.log"),
         ("tsl-run-1644469", "training_run.log"), ("yolo-fire-csv", "results.csv"),
         ("deepspeed-8rank-dpo", "opt-350M_globalBatchSize-32.log")]
HEAD = 96 * 1024
EXAMPLES = int(os.environ.get("COLLAPSE_NB_FUZZ_EXAMPLES", "40"))
ODD_NUMBERS = [b"1e400", b"-1e400", b"NaN", b"inf", b"-0", b"9" * 400, b"1.5", b"0x1F", b"1,000,000", b"1e-400",
               b"", b"null", b'"7"', b"[]", b"{}", b"[" * 2000]


def _sources() -> list[bytes]:
    out = []
    for folder, name in FILES:
        p = CORPUS / folder / name
        if p.exists():
            with open(p, "rb") as fh:
                out.append((name, fh.read(HEAD)))
    return out


SOURCES = _sources()


def _mutate(data: bytes, kind: str, a: float, b: float, junk: bytes, odd: bytes) -> bytes:
    n = len(data)
    i, j = sorted((int(a * n), int(b * n)))
    if kind == "cut":
        return data[:i]
    if kind == "flip":
        return data[:i] + bytes(x ^ 0xFF for x in data[i:i + 1 + len(junk) % 8]) + data[i + 1 + len(junk) % 8:]
    if kind == "insert":
        return data[:i] + junk + data[i:]
    if kind == "delete":
        return data[:i] + data[j:]
    if kind == "number":             # the first number at or after i replaced by an odd one
        k = i
        while k < n and not chr(data[k]).isdigit():
            k += 1
        e = k
        while e < n and (chr(data[e]).isdigit() or data[e] in b".eE-+"):
            e += 1
        return data[:k] + odd + data[e:]
    if kind == "repeat":             # one line written twice, as an appending writer might
        s = data.rfind(b"\n", 0, i) + 1
        e = data.find(b"\n", i)
        e = n if e < 0 else e + 1
        return data[:e] + data[s:e] + data[e:]
    if kind == "nul":
        return data[:i] + b"\x00" * (1 + len(junk) * 16) + data[i:]
    if kind == "utf16":
        return data.decode("utf-8", "replace").encode("utf-16")
    if kind == "crlf":
        return data.replace(b"\n", b"\r\n" if a < 0.5 else b"\r")
    raise AssertionError(kind)


@pytest.mark.skipif(not SOURCES, reason="../shared/corpus is absent")
@settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 200, database=None,
          suppress_health_check=list(HealthCheck))
@given(src=st.integers(min_value=0, max_value=max(len(SOURCES) - 1, 0)),
       kind=st.sampled_from(["cut", "flip", "insert", "delete", "number", "repeat", "nul", "utf16", "crlf"]),
       a=st.floats(0, 1), b=st.floats(0, 1), junk=st.binary(max_size=64), odd=st.sampled_from(ODD_NUMBERS))
def test_mutated_corpus_files_give_a_run_or_a_collapse_nb_error(tmp_path_factory, src, kind, a, b, junk, odd):
    name, data = SOURCES[src]
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / name
    path.write_bytes(_mutate(data, kind, a, b, junk, odd))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            run = cnb.load(path)
        except CollapseNBError as exc:
            assert str(exc)                                   # a message that names what went wrong
            return
        findings = cnb.diagnose(run)
        rep = report(run, findings=findings, plots=False)
        assert rep.markdown and rep.html
