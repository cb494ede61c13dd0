"""The read cache (collapse_nb/cache.py): a second look reads no file twice, and gives the same run."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

import collapse_nb as cnb
from collapse_nb import cache as cache_mod
from collapse_nb.cache import ReadCache, default_dir
from collapse_nb.readers.base import ReadResult, readers


def _jsonl(n=20, scale=1.0):
    return "".join(f'{{"step": {s}, "epoch": {s // 5}, "loss": {scale / (s + 1)}, "lr": 0.1}}\n' for s in range(n))


CSV = "epoch,step,train_loss_step,val_loss\n" + "".join(f"{s // 10},{s},{1.0 / (s + 1):.4f},{2.0 / (s + 1):.4f}\n"
                                                       for s in range(0, 50, 5))


def _runs(root: Path) -> Path:
    for name in ("a", "b"):
        d = root / "exp" / name
        d.mkdir(parents=True)
        (d / "log.jsonl").write_text(_jsonl())
        (d / "metrics.csv").write_text(CSV)
        (d / "hparams.yaml").write_text("learning_rate: 0.1\nbatch_size: 4\n")
        (d / "notes.txt").write_text("nothing numeric here\n")            # ignored: no reader takes it
    return root / "exp"


def _same_runs(got, want):
    assert got.names == want.names
    for a, b in zip(got, want):
        pd.testing.assert_frame_equal(a.scalars, b.scalars)
        pd.testing.assert_frame_equal(a.epochs, b.epochs)
        pd.testing.assert_frame_equal(a.grads, b.grads)
        assert {k: v for k, v in a.meta.items() if k != "cache"} == {k: v for k, v in b.meta.items() if k != "cache"}


def _files_per_run(runs):
    return [len(run.meta["files"]) + len(run.meta["ignored"]) for run in runs]


def test_second_load_hits_for_every_file_and_equals_a_fresh_load(tmp_path):
    root, store = _runs(tmp_path), tmp_path / "cache"
    first = cnb.load_runs(root, cache=store)
    assert [r.meta["cache"]["hits"] for r in first] == [0, 0]
    assert [r.meta["cache"]["stored"] for r in first] == _files_per_run(first) == [4, 4]
    second = cnb.load_runs(root, cache=store)
    assert [r.meta["cache"]["hits"] for r in second] == [4, 4]
    assert [r.meta["cache"]["misses"] for r in second] == [0, 0]
    fresh = cnb.load_runs(root, cache=False)
    assert all("cache" not in r.meta for r in fresh)
    _same_runs(second, fresh)
    assert [f.code for f in cnb.diagnose(second[0])] == [f.code for f in cnb.diagnose(fresh[0])]


def test_a_hit_runs_no_reader(tmp_path, monkeypatch):
    root, store = _runs(tmp_path), tmp_path / "cache"
    fresh = cnb.load_runs(root, cache=store)

    def boom(*args, **kwargs):
        raise AssertionError("a file was read on a cache hit")

    for reader in readers().values():
        monkeypatch.setattr(type(reader), "read", boom)
    monkeypatch.setattr("collapse_nb.loading._read_one", boom)
    monkeypatch.setattr("collapse_nb.loading._examine", boom)        # where a file is sniffed, then read
    _same_runs(cnb.load_runs(root, cache=store), fresh)
    single = root / "a" / "log.jsonl"
    with pytest.raises(AssertionError):
        cnb.load(single, cache=False)
    run = cnb.load(single, cache=store)                  # stored by load_runs, hit by load
    assert run.meta["cache"]["hits"] == 1 and len(run.scalars) == 40


def test_a_touched_or_grown_file_is_read_again_alone(tmp_path, monkeypatch):
    root, store = _runs(tmp_path), tmp_path / "cache"
    cnb.load_runs(root, cache=store)
    read = []
    for reader in readers().values():
        real = type(reader).read

        def counting(self, path, _real=real):
            read.append(Path(path).name)
            return _real(self, path)
        monkeypatch.setattr(type(reader), "read", counting)
    touched, grown = root / "a" / "metrics.csv", root / "b" / "log.jsonl"
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    grown.write_text(_jsonl(30))
    again = cnb.load_runs(root, cache=store)
    assert sorted(read) == ["log.jsonl", "metrics.csv"]
    assert [r.meta["cache"]["misses"] for r in again] == [1, 1]
    assert [r.meta["cache"]["hits"] for r in again] == [3, 3]
    s = again["b"].scalars
    assert s.loc[s["source"].astype(str).str.endswith("log.jsonl"), "step"].max() == 29
    _same_runs(again, cnb.load_runs(root, cache=False))


def test_a_reader_change_is_a_new_key(tmp_path, monkeypatch):
    root, store = _runs(tmp_path), tmp_path / "cache"
    cnb.load_runs(root, cache=store)
    monkeypatch.setattr(cache_mod, "code_fingerprint", lambda: "another version of the readers")
    assert [r.meta["cache"]["hits"] for r in cnb.load_runs(root, cache=store)] == [0, 0]


def test_a_corrupt_entry_is_read_again_and_rewritten(tmp_path):
    root, store = _runs(tmp_path), tmp_path / "cache"
    fresh = cnb.load_runs(root, cache=store)
    entries = sorted(store.rglob("entry.json"))
    tables = sorted(store.rglob("*.parquet"))
    assert len(entries) == 8 and tables
    for p in entries[:3]:
        p.write_bytes(b"\x00\xffgarbage{")
    for p in tables:
        p.write_bytes(b"PAR1 not parquet")
    again = cnb.load_runs(root, cache=store)
    _same_runs(again, fresh)
    assert sum(r.meta["cache"]["misses"] for r in again) >= 3 + 1
    assert sum(r.meta["cache"]["stored"] for r in again) == sum(r.meta["cache"]["misses"] for r in again)
    third = cnb.load_runs(root, cache=store)
    assert [r.meta["cache"]["hits"] for r in third] == [4, 4]
    _same_runs(third, fresh)


def test_the_environment_turns_it_off_and_names_the_folder(tmp_path, monkeypatch):
    root = _runs(tmp_path)
    monkeypatch.setenv("COLLAPSE_NB_CACHE_DIR", str(tmp_path / "envcache"))
    monkeypatch.setenv("COLLAPSE_NB_CACHE", "0")
    runs = cnb.load_runs(root)
    assert all("cache" not in r.meta for r in runs) and not (tmp_path / "envcache").exists()
    monkeypatch.setenv("COLLAPSE_NB_CACHE", "1")
    runs = cnb.load_runs(root)
    assert runs[0].meta["cache"]["dir"] == str(tmp_path / "envcache")
    assert len(list((tmp_path / "envcache").rglob("entry.json"))) == 8
    assert cnb.load(root / "a").meta["cache"]["hits"] == 4          # load of a folder uses it too


def test_default_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("COLLAPSE_NB_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_dir() == tmp_path / "xdg" / "collapse_nb"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_dir() == Path.home() / ".cache" / "collapse_nb"
    monkeypatch.setenv("COLLAPSE_NB_CACHE_DIR", str(tmp_path / "mine"))
    assert default_dir() == tmp_path / "mine"


def test_a_cache_folder_that_cannot_be_written_is_not_fatal(tmp_path):
    root = _runs(tmp_path)
    blocked = tmp_path / "a_file"
    blocked.write_text("not a folder")
    runs = cnb.load_runs(root, cache=blocked)
    assert [r.meta["cache"]["stored"] for r in runs] == [0, 0]
    _same_runs(runs, cnb.load_runs(root, cache=False))
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            _same_runs(cnb.load_runs(root, cache=locked), runs)
        finally:
            locked.chmod(0o700)


def test_only_what_comes_back_exactly_is_stored(tmp_path):
    f = tmp_path / "x.log"
    f.write_text("x\n")
    store = ReadCache(tmp_path / "cache")
    df = pd.DataFrame({"raw_name": ["loss"], "value": [1.0]})
    for bad in ({"betas": (0.9, 0.999)}, {1: "an int key"}, {"when": pd.Timestamp("2024-01-01")}):
        key = store.key(f, None)
        assert not store.put(key, ("read", ReadResult(source=str(f), format="jsonl", scalars=df, config=bad)))
        assert store.get(key) is None
    good = ReadResult(source=str(f), format="jsonl", scalars=df, config={"lr": float("nan"), "n": 3, "ok": True},
                      notes=["a note"], segment_starts=[3])
    good.skipped.add(2, "why", "text")
    key = store.key(f, None)
    assert store.put(key, ("read", good))
    kind, back = store.get(key)
    assert kind == "read" and back.skipped == good.skipped and back.notes == good.notes
    assert back.config["n"] == 3 and back.config["ok"] is True and back.config["lr"] != back.config["lr"]
    pd.testing.assert_frame_equal(back.scalars, df)


def test_writers_of_one_entry_at_once(tmp_path):
    f = tmp_path / "log.jsonl"
    f.write_text(_jsonl())
    run = cnb.load(f, cache=False)
    stores = [ReadCache(tmp_path / "cache") for _ in range(8)]
    from collapse_nb.loading import _read_one
    result = _read_one(f, None)
    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(lambda s: s.put(s.key(f, None), ("read", result)), stores))
    again = cnb.load(f, cache=tmp_path / "cache")
    assert again.meta["cache"]["hits"] == 1
    pd.testing.assert_frame_equal(again.scalars, run.scalars)


def test_checkpoint_tables_come_back_exactly(tmp_path):
    torch = pytest.importorskip("torch")
    d = tmp_path / "run"
    d.mkdir()
    (d / "log.jsonl").write_text(_jsonl())
    torch.save({"model": {"fc.weight": torch.randn(4, 3), "fc.bias": torch.zeros(4)}, "epoch": 3}, d / "last.pt")
    first = cnb.load(d, cache=tmp_path / "cache")
    second = cnb.load(d, cache=tmp_path / "cache")
    assert second.meta["cache"]["hits"] == 2
    assert isinstance(second.params["shape"].iloc[0], tuple)
    pd.testing.assert_frame_equal(second.params, first.params)
    assert {k: v for k, v in second.meta.items() if k != "cache"} == {k: v for k, v in first.meta.items()
                                                                      if k != "cache"}


def test_a_triaged_run_whose_files_did_not_change_is_not_read_or_diagnosed_again(tmp_path, monkeypatch):
    from collapse_nb import cluster
    root, store = _runs(tmp_path / "runs"), tmp_path / "cache"
    first = cluster.triage_folder(root, cache=store)
    calls = []
    import sys
    diagnose_mod = sys.modules["collapse_nb.diagnose"]           # (collapse_nb.diagnose is also the function)
    real = diagnose_mod.diagnose
    monkeypatch.setattr(diagnose_mod, "diagnose", lambda run, **kw: calls.append(run) or real(run, **kw))
    pd.testing.assert_frame_equal(cluster.triage_folder(root, cache=store), first)
    assert calls == []                                                  # every row from the cache
    victim = next(p for p in sorted(root.rglob("*.jsonl")))
    victim.write_text(_jsonl(30, 2.0))                                  # one run changed: only it is redone
    again = cluster.triage_folder(root, cache=store)
    assert len(calls) == 1 and len(again) == len(first)
    assert cluster.triage_folder(root, cache=store, loss_plateau__window_frac=0.3) is not None
    assert len(calls) == 1 + len(first)                                 # other thresholds: other rows
