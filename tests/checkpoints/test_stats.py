"""Chunked per-tensor statistics against plain torch, and page release on mapped files."""
from __future__ import annotations

import math

import pytest
import torch

from collapse_nb.checkpoints import open_checkpoint, params_table
from collapse_nb.checkpoints.stats import (file_mappings, iter_chunks, release_pages, release_range,
                                           tensor_stats)

from . import ref_stats

torch.manual_seed(0)
CASES = {
    "f32": torch.randn(300, 41),
    "f32_transposed": torch.randn(200, 70).t(),
    "f32_strided": torch.randn(500, 300)[::3, ::7],
    "f16": torch.randn(257).half(),
    "bf16": torch.randn(64, 33).bfloat16(),
    "f64_offset": torch.randn(1000, dtype=torch.float64) * 1e-3 + 1e4,
    "int64": torch.randint(-50, 50, (333,)),
    "int8": torch.randint(-128, 127, (40, 5), dtype=torch.int8),
    "uint8": torch.randint(0, 255, (99,), dtype=torch.uint8),
    "bool": torch.rand(123) > 0.7,
    "scalar": torch.tensor(2.5),
    "sparse_zeros": torch.where(torch.rand(1000) > 0.9, torch.randn(1000), torch.zeros(1000)),
}


def _close(a, b, rel=1e-9):
    if math.isnan(a) and math.isnan(b):
        return True
    return a == b or abs(a - b) <= rel * max(1.0, abs(b))


@pytest.mark.parametrize("chunk", [1 << 23, 1000, 7])
@pytest.mark.parametrize("name", list(CASES))
def test_stats_match_torch(name, chunk):
    t = CASES[name]
    got = tensor_stats(t, chunk=chunk)
    for k, v in ref_stats(t).items():
        assert _close(float(got[k]), float(v)), (k, got[k], v)


def test_nonfinite_as_torch_gives_them():
    for t in (torch.tensor([1.0, float("nan"), -2.0]), torch.tensor([1.0, float("inf"), 2.0]),
              torch.tensor([-float("inf"), 3.0]), torch.tensor([-float("inf"), float("inf")])):
        got, d = tensor_stats(t, chunk=2), t.double()
        assert got["n_nonfinite"] == int((~torch.isfinite(d)).sum())
        for k, ref in (("norm", d.norm()), ("mean", d.mean()), ("min", d.min()), ("max", d.max())):
            assert _close(got[k], float(ref)), (t, k, got[k], ref)
        assert math.isnan(got["std"])


def test_empty_and_complex():
    e = tensor_stats(torch.zeros(0, 3))
    assert e["numel"] == 0 and e["norm"] == 0.0 and math.isnan(e["mean"]) and e["digest"]
    c = torch.randn(10, dtype=torch.complex64)
    got = tensor_stats(c)
    assert _close(got["norm"], float(c.abs().double().norm()))     # complex: by magnitude


def test_digest_is_content_only():
    t = torch.randn(50, 20)
    d = tensor_stats(t)["digest"]
    assert tensor_stats(t.clone())["digest"] == d
    assert tensor_stats(t.t().contiguous().t(), chunk=13)["digest"] == d       # same values, other strides
    assert tensor_stats(t.reshape(20, 50))["digest"] != d                    # shape is part of it
    assert tensor_stats(t.double())["digest"] != d                           # and the dtype
    u = t.clone()
    u[7, 3] += 1e-6
    assert tensor_stats(u)["digest"] != d


def test_iter_chunks_line_up_across_strides():
    a = torch.randn(30, 17)
    b = a.t().contiguous().t()                   # same values, column-major
    flat_a = torch.cat([ca for ca, _ in iter_chunks(a, b, chunk=40)])
    flat_b = torch.cat([cb for _, cb in iter_chunks(a, b, chunk=40)])
    assert torch.equal(flat_a, a.reshape(-1)) and torch.equal(flat_b, a.reshape(-1))
    big_rows = torch.randn(3, 100)
    assert all(c.numel() <= 40 for (c,) in iter_chunks(big_rows, chunk=40))


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(not hasattr(torch.UntypedStorage, "from_file"), reason="needs file-backed storages")
def test_release_pages_gives_memory_back_and_values_stay(tmp_path):
    path = tmp_path / "big.pt"
    torch.manual_seed(1)
    ref = {"a": torch.randn(4096, 2048), "b": torch.randn(2048, 2048)}       # 32 + 16 MiB
    torch.save(ref, path)
    sd = torch.load(path, weights_only=True, mmap=True)
    ranges = file_mappings(path)
    if not ranges:
        pytest.skip("no /proc/self/maps here")
    a = sd["a"]
    before = _rss_mb()
    total = float(a.double().sum())             # touches every page of a (plus a temporary)
    touched = _rss_mb()
    assert release_pages(a, ranges)
    released = _rss_mb()
    assert touched - released > 24, (before, touched, released)            # the 32 MiB of a's pages went
    assert float(a.double().sum()) == total                                 # and read back the same
    assert torch.equal(sd["a"], ref["a"]) and torch.equal(sd["b"], ref["b"])
    # memory outside the file mappings is never touched
    anon = torch.ones(1 << 20)
    assert not release_range(anon.data_ptr(), anon.numel() * 4, ranges)
    assert bool((anon == 1).all())


def test_params_table_releases_and_values_survive(tmp_path):
    path = tmp_path / "m.pt"
    sd = {"w": torch.randn(1024, 1024), "tied": None, "b": torch.randn(7)}
    sd["tied"] = sd["w"]                                                      # same storage, read once
    torch.save(sd, path)
    with open_checkpoint(path) as ck:
        assert ck.mapped
        df = params_table(ck, chunk=100_000)
        w = {r.name: r.load() for r in ck.tensors}
        assert torch.equal(w["w"], sd["w"]) and torch.equal(w["b"], sd["b"])  # after release: still right
    rows = df.set_index("param")
    assert rows.loc["w", "digest"] == rows.loc["tied", "digest"]
    for name in ("w", "b"):
        for k, v in ref_stats(sd[name]).items():
            assert _close(float(rows.loc[name, k]), float(v)), (name, k)


def test_param_columns_agree():
    from collapse_nb.checkpoints import PARAM_COLUMNS
    from collapse_nb.checkpoints.stats import PARAM_DTYPES
    assert PARAM_COLUMNS == tuple(PARAM_DTYPES)
