"""Chainer ``LogReport`` reader (format ``chainer-log``)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import collapse_nb as cnb
from collapse_nb.errors import UnreadableFileError
from collapse_nb.loading import sniff
from collapse_nb.readers.chainer_log import ChainerLogReader, record_phase


def classifier_log(n_epochs: int = 3, iters_per_epoch: int = 600) -> list[dict]:
    """Entries as ``LogReport(trigger=(1, 'epoch'))`` collects them for a Classifier + Evaluator."""
    log = []
    for e in range(1, n_epochs + 1):
        log.append({"main/loss": 0.5 / e, "main/accuracy": 0.9 + e / 100, "validation/main/loss": 0.4 / e + 0.01,
                    "validation/main/accuracy": 0.92 + e / 200, "lr": 0.01 / e, "epoch": e,
                    "iteration": e * iters_per_epoch, "elapsed_time": 4.25 * e})
    return log


def write_log(path, log):
    """``LogReport``: ``json.dump(self._log, f, indent=4)`` into a file called ``log``."""
    with open(path, "w") as f:
        json.dump(log, f, indent=4)
    return path


def values(run, raw_name):
    s = run.scalars
    return s[s["raw_name"] == raw_name].reset_index(drop=True)


def test_sniffed_and_round_trip(tmp_path):
    log = classifier_log()
    p = write_log(tmp_path / "log", log)
    reader, score = sniff(p)
    assert reader.name == "chainer-log" and score >= 0.9
    run = cnb.load(p)
    assert run.meta["formats"] == ["chainer-log"]
    for key in ("main/loss", "main/accuracy", "validation/main/loss", "validation/main/accuracy", "lr",
                "elapsed_time"):
        v = values(run, key)
        assert v["value"].tolist() == [r[key] for r in log]
        assert v["step"].tolist() == [600, 1200, 1800]
        assert v["epoch"].tolist() == [1, 2, 3]
    assert not run.scalars["raw_name"].isin(["epoch", "iteration"]).any()
    # each record's line is where its "{" is: line 2, then every 10 lines (8 keys + braces)
    assert values(run, "lr")["line"].tolist() == [2, 12, 22]
    assert run.meta["restarts"] == []


def test_phases(tmp_path):
    run = cnb.load(write_log(tmp_path / "log", classifier_log(1)))
    phase = {r: values(run, r)["phase"].iloc[0] for r in ("main/loss", "validation/main/accuracy")}
    assert phase == {"main/loss": "train", "validation/main/accuracy": "val"}
    assert values(run, "elapsed_time")["phase"].isna().all()
    assert values(run, "lr")["phase"].isna().all()
    assert record_phase("gen/loss") == record_phase("dis/loss") == "train"
    assert record_phase("main/validation/loss") == "val"
    assert record_phase("test/main/loss") == "test"


def test_main_loss_is_canonical_loss(tmp_path):
    """``main/loss`` is *the* loss (Chainer's reporter prefix for the main target), so epochs has
    ``train_loss``/``val_loss``. Needs ``main`` among names.GROUP_PREFIXES (see the report)."""
    run = cnb.load(write_log(tmp_path / "log", classifier_log()))
    assert set(values(run, "main/loss")["name"]) == {"loss"}
    ep = run.epochs
    np.testing.assert_array_equal(ep["train_loss"], [0.5, 0.25, 0.5 / 3])
    np.testing.assert_array_equal(ep["val_loss"], [0.4 / e + 0.01 for e in (1, 2, 3)])
    np.testing.assert_array_equal(ep["lr"], [0.01, 0.005, 0.01 / 3])


def test_nan_and_gan_keys(tmp_path):
    log = [{"epoch": 0, "iteration": 100, "gen/loss": float("nan"), "dis/loss": 1.5, "elapsed_time": 29.1},
           {"epoch": 0, "iteration": 200, "gen/loss": float("inf"), "dis/loss": 1.25, "elapsed_time": 57.9}]
    run = cnb.load(write_log(tmp_path / "log", log))
    g = values(run, "gen/loss")["value"].tolist()
    assert math.isnan(g[0]) and g[1] == math.inf
    assert values(run, "dis/loss")["value"].tolist() == [1.5, 1.25]
    assert set(values(run, "gen/loss")["phase"]) == {"train"}


def test_cut_off_file_keeps_complete_records(tmp_path):
    p = write_log(tmp_path / "log", classifier_log(3))
    text = p.read_text()
    cut = text[: text.rindex('"lr"')]  # the third record is cut in the middle
    p.write_text(cut)
    run = cnb.load(p, format="chainer-log")
    assert values(run, "main/loss")["step"].tolist() == [600, 1200]
    sk = run.meta["files"][0]["skipped"]
    assert sk["count"] == 1 and sk["examples"][0]["line"] == 22
    assert "cut off" in sk["examples"][0]["reason"]


def test_broken_record_in_the_middle(tmp_path):
    p = tmp_path / "log"
    p.write_text('[\n    {"epoch": 1, "iteration": 10, "main/loss": 1.0},\n    {"epoch": 1, "iteration": oops},\n'
                 '    {"epoch": 2, "iteration": 20, "main/loss": 0.5}\n]')
    run = cnb.load(p, format="chainer-log")
    assert values(run, "main/loss")["step"].tolist() == [10, 20]
    assert run.meta["files"][0]["skipped"]["examples"][0]["line"] == 3


@pytest.mark.parametrize("content, reason", [
    ("", "empty"),
    ('{"epoch": 1}', "not a JSON array"),
    ("[]", "holds no object"),
    ('[{"name": "x"}]', "no numeric values"),
])
def test_unreadable(tmp_path, content, reason):
    p = tmp_path / "log"
    p.write_text(content)
    with pytest.raises(UnreadableFileError, match=reason):
        ChainerLogReader().read(p)


def test_sniff_rejects_other_json(tmp_path):
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"log_history": []}, indent=2))
    assert ChainerLogReader().sniff(p.read_bytes(), p) == 0.0
    q = tmp_path / "y.jsonl"
    q.write_text('{"step": 1, "loss": 1.0}\n')
    assert ChainerLogReader().sniff(q.read_bytes(), q) == 0.0


def test_corpus_chainer_dcgan(corpus):
    p = corpus("chainer-dcgan", "log")
    run = cnb.load(p)
    assert run.meta["formats"] == ["chainer-log"]
    assert run.meta["files"][0]["skipped"]["count"] == 0
    assert len(run.scalars) == 200 * 3
    gen = values(run, "gen/loss")
    assert gen["step"].tolist() == list(range(100, 20001, 100))
    assert gen["value"].iloc[0] == 1.4593017101287842 and gen["line"].iloc[0] == 2
    last = gen.iloc[-1]
    assert (last["value"], last["step"], last["epoch"]) == (2.449876070022583, 20000, 20)
    assert values(run, "dis/loss")["value"].iloc[-1] == 0.6569115519523621
    assert values(run, "elapsed_time")["value"].iloc[-1] == 6227.640501737595
    assert set(gen["phase"]) == {"train"}
    assert run.meta["restarts"] == []
    assert run.epochs["epoch"].tolist() == [float(e) for e in range(21)]
