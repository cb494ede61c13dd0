"""collapse_nb.capture.writer: buffered JSON lines that keep their tail."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from collapse_nb.capture.writer import JsonlWriter, encode


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_buffered_until_flush_every(tmp_path):
    p = tmp_path / "a" / "b.jsonl"
    w = JsonlWriter(p, flush_every=3, flush_seconds=1e9)
    w.write({"i": 0})
    w.write({"i": 1})
    assert p.read_text() == ""                     # still in memory
    w.write({"i": 2})
    assert [r["i"] for r in lines(p)] == [0, 1, 2]
    w.write({"i": 3})
    w.close()
    assert [r["i"] for r in lines(p)] == [0, 1, 2, 3]
    w.close()                                       # twice is fine
    with pytest.raises(ValueError, match="writer is closed"):
        w.write({"i": 4})


def test_flush_seconds_zero_writes_every_record(tmp_path):
    p = tmp_path / "c.jsonl"
    w = JsonlWriter(p, flush_every=100, flush_seconds=0)
    w.write({"a": 1})
    assert lines(p) == [{"a": 1}]
    w.close()


def test_context_manager_keeps_tail_on_exception(tmp_path):
    p = tmp_path / "c.jsonl"
    with pytest.raises(KeyError):
        with JsonlWriter(p, flush_every=1000, flush_seconds=1e9) as w:
            for i in range(5):
                w.write({"i": i})
            raise KeyError("x")
    assert len(lines(p)) == 5


def test_append_after_a_cut_line_starts_a_fresh_line(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text('{"i": 0}\n{"i": 1, "x": [1,')
    with JsonlWriter(p) as w:
        w.write({"i": 2})
    text = p.read_text().splitlines()
    assert text[1] == '{"i": 1, "x": [1,' and json.loads(text[2]) == {"i": 2}
    with JsonlWriter(p, mode="w") as w:
        w.write({"i": 3})
    assert lines(p) == [{"i": 3}]


def test_encoding_of_special_values():
    line = encode({"nan": math.nan, "inf": -math.inf, "np": np.float32(1.5), "arr": np.arange(2), "t": (1, 2),
                   "obj": object})
    assert line.endswith("\n") and "\n" not in line[:-1]
    assert '"nan":NaN' in line and '"inf":-Infinity' in line
    back = json.loads(line)
    assert back["np"] == 1.5 and back["arr"] == [0, 1] and back["t"] == [1, 2] and "object" in back["obj"]


@pytest.mark.parametrize("kw, msg", [({"mode": "r"}, "mode must be 'a' or 'w', got 'r'"),
                                     ({"flush_every": 0}, "flush_every must be an int >= 1, got 0"),
                                     ({"flush_seconds": -1}, "flush_seconds must be a number >= 0, got -1")])
def test_argument_validation(tmp_path, kw, msg):
    with pytest.raises(ValueError, match=msg):
        JsonlWriter(tmp_path / "c.jsonl", **kw)
