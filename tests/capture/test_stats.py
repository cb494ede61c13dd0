"""collapse_nb.capture.stats against plain per-tensor computations."""
from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from collapse_nb.capture.stats import (ActivationStats, Fetch, copy_tensors, foreach_norms, mean_std,  # noqa: E402
                                       select_modules, subtract_)


def gathered(groups, n):
    out = [None] * n
    for idx, norms in groups:
        for i, v in zip(idx, norms.tolist()):
            out[i] = v
    return out


def test_foreach_norms_mixed_dtypes_none_and_sparse():
    g = torch.Generator().manual_seed(0)
    ts = [torch.randn(5, 3, generator=g), None, torch.randn(7, generator=g, dtype=torch.float64),
          (torch.randn(4, 4, generator=g) * 300).to(torch.float16),       # squares overflow fp16: float32 math
          torch.randn(3, generator=g).to(torch.bfloat16), torch.zeros(2),
          torch.sparse_coo_tensor([[0, 2]], [3.0, 4.0], (5,))]
    groups = foreach_norms(ts)
    assert len(groups) == 5                      # float32, float64, float16, bfloat16, sparse
    got = gathered(groups, len(ts))
    for t, v in zip(ts, got):
        if t is None:
            assert v is None
            continue
        ref = t.to_dense().double().norm().item()
        assert v == pytest.approx(ref, rel=1e-6)
        assert math.isfinite(v)
    assert got[5] == 0.0 and got[6] == 5.0


def test_copy_and_subtract_give_the_update():
    ps = [torch.randn(4, requires_grad=True), torch.randn(2, 2, dtype=torch.float64)]
    before = copy_tensors(ps)
    assert all(b.grad_fn is None and not b.requires_grad for b in before)
    assert all(b.data_ptr() != p.data_ptr() and torch.equal(b, p) for b, p in zip(before, ps))
    with torch.no_grad():
        ps[0].add_(1.0)
        ps[1].mul_(2.0)
    again = copy_tensors(ps, out=before)
    assert all(a is b for a, b in zip(again, before))                 # buffers reused
    assert copy_tensors(ps, out=before[:1])[0] is not before[0]        # not when they do not fit
    old = [b.clone() for b in before]
    subtract_(before, ps)
    assert torch.equal(before[0], old[0] - ps[0].detach()) and torch.equal(before[1], old[1] - ps[1])


def test_fetch_orders_values_by_key():
    f = Fetch()
    f.add("a", torch.tensor([1.0, 2.0]))
    f.add(("b", 0), torch.tensor(3, dtype=torch.int64))
    f.add("c", torch.tensor([0.5], dtype=torch.bfloat16))
    assert len(f) == 3
    assert f.values() == {"a": [1.0, 2.0], ("b", 0): [3.0], "c": [0.5]}
    assert len(f) == 0


def test_mean_std():
    assert mean_std(torch.tensor([1.0, 2.0, 3.0, 4.0])).tolist() == pytest.approx([2.5, 1.2909944])
    assert mean_std(torch.tensor([3])).tolist() == [3.0, 0.0]        # integers, one value: std 0, not NaN
    assert all(math.isnan(v) for v in mean_std(torch.empty(0)).tolist())
    x = torch.randn(10, requires_grad=True) * 2
    assert mean_std(x).grad_fn is None


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.relu = nn.ReLU()
        self.drop = nn.Dropout(0.0)
        self.block = nn.Sequential(nn.Identity(), nn.Tanh())

    def forward(self, x):
        return self.block(self.drop(self.relu(self.fc(x))))


def test_select_modules():
    m = Small()
    assert [n for n, _ in select_modules(m, True)] == ["fc", "relu", "block.1"]
    assert [n for n, _ in select_modules(m, ["block", "fc"])] == ["block", "fc"]
    assert [n for n, _ in select_modules(m, lambda n, mod: isinstance(mod, nn.ReLU))] == ["relu"]
    with pytest.raises(ValueError, match="no module named 'relu2'"):
        select_modules(m, ["relu2"])


def test_activation_stats_armed_grad_mode_and_frac_zero():
    m = Small()
    armed = [False]
    acts = ActivationStats(select_modules(m, ["relu"]), lambda: armed[0])
    x = torch.randn(64, 3)
    m(x)
    assert acts.pending == [None]               # not armed: nothing computed
    armed[0] = True
    with torch.no_grad():
        m(x)
    assert acts.pending == [None]               # evaluation pass: not recorded
    out = torch.relu(m.fc(x))
    m(x)
    f = Fetch()
    numel = acts.take(f)
    vals = f.values()
    assert numel == {0: 256}
    assert vals[("act", 0)] == pytest.approx([out.mean().item(), out.std().item()], rel=1e-6)
    assert (256 - vals[("act0", 0)][0]) / 256 == (out == 0).double().mean().item()
    acts.remove()
    assert not m.relu._forward_hooks
