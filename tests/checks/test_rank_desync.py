"""rank_desync on simulated data-parallel runs: logs written by each rank's ``logging``, checkpoints by ``torch.save``.

Healthy ranks log their own local loss (batch noise differs per rank) and the same all-reduced gradient norm
and lr; a desynchronised rank's values depart from a step on.
"""
from __future__ import annotations

import pytest

import collapse_nb as cnb
from collapse_nb.checks import RankDesync
from collapse_nb.timeaxis import curve

from ..rank_logs import rank_values, write_interleaved, write_rank_files


def _codes(findings):
    return {f.code: f for f in findings}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_healthy_ranks_with_noisy_local_losses_agree(tmp_path, seed):
    write_rank_files(tmp_path, rank_values(n_ranks=4, steps=200, seed=seed))
    found = _codes(RankDesync()(cnb.load(tmp_path)))
    assert set(found) == {"ranks_agree"}
    d = found["ranks_agree"].details
    assert d["ranks"] == [0, 1, 2, 3] and "grad_norm" in d["synced_series"] and "loss" in d["local_series"]


def test_a_rank_offset_from_the_start_is_no_drift(tmp_path):
    """A harder data shard puts one rank's loss above the others from the first step: an offset, not a drift."""
    write_rank_files(tmp_path, rank_values(n_ranks=4, steps=200, offsets={3: 0.2}))
    assert set(_codes(RankDesync()(cnb.load(tmp_path)))) == {"ranks_agree"}


@pytest.mark.parametrize("layout", ["files", "interleaved"])
def test_a_rank_that_drifts_from_step_120_is_named(tmp_path, layout):
    vals = rank_values(n_ranks=4, steps=200, drift_rank=2, drift_from=120, drift_grad=0.002)
    if layout == "files":
        write_rank_files(tmp_path, vals)
        run = cnb.load(tmp_path)
    else:
        run = cnb.load(write_interleaved(tmp_path / "train.log", vals))
    found = _codes(RankDesync()(run))
    desync = found["rank_desync"]
    assert desync.severity == "critical"
    assert desync.details["desync_ranks"] == [2] and desync.details["first_where"] == "step 120"
    assert "Rank 2" in desync.title and "step 120" in desync.title
    drift = found["rank_loss_drift"]
    assert drift.severity == "warning" and drift.details["drift_ranks"] == [2]
    start = int(drift.details["drift_from"].split()[1])
    assert 118 <= start <= 135, drift.details["drift_from"]
    assert drift.details["drift"] > 0


def test_a_drifting_local_loss_alone_is_a_warning(tmp_path):
    write_rank_files(tmp_path, rank_values(n_ranks=4, steps=200, drift_rank=1, drift_from=120))
    found = _codes(RankDesync()(cnb.load(tmp_path)))
    assert set(found) == {"rank_loss_drift"} and found["rank_loss_drift"].details["drift_ranks"] == [1]


def test_a_brief_blip_is_not_reported(tmp_path):
    vals = rank_values(n_ranks=4, steps=200)
    step, loss, grad, lr = vals[3][100]
    vals[3][100] = (step, loss, grad * 1.5, lr)           # one step off: a print of another value, not a desync
    write_rank_files(tmp_path, vals)
    assert set(_codes(RankDesync()(cnb.load(tmp_path)))) == {"ranks_agree"}


def test_two_ranks_are_both_named(tmp_path):
    write_rank_files(tmp_path, rank_values(n_ranks=2, steps=200, drift_rank=1, drift_from=100, drift_grad=0.01))
    f = _codes(RankDesync()(cnb.load(tmp_path)))["rank_desync"]
    assert f.details["desync_ranks"] == [0, 1] and "either may be the one" in f.summary


def test_one_rank_does_not_apply(tmp_path):
    write_rank_files(tmp_path, {0: rank_values(n_ranks=1, steps=50)[0]})
    (f,) = RankDesync()(cnb.load(tmp_path))
    assert f.code == "not_checked" and f.details["not_applicable"]


def _state(torch, scale_fc: float = 1.0):
    g = torch.Generator().manual_seed(0)
    sd = {"encoder.weight": torch.randn(16, 8, generator=g), "encoder.bias": torch.zeros(16),
          "head.weight": torch.randn(4, 16, generator=g), "head.bias": torch.zeros(4)}
    sd["head.weight"] = sd["head.weight"] * scale_fc
    return sd


def test_checkpoints_of_two_ranks_that_differ_in_one_parameter(tmp_path):
    torch = pytest.importorskip("torch")
    for r, scale in ((0, 1.0), (1, 1.01)):
        (tmp_path / f"rank_{r}").mkdir()
        torch.save({"model": _state(torch, scale), "global_step": 500}, tmp_path / f"rank_{r}" / "model.pt")
    write_rank_files(tmp_path, rank_values(n_ranks=2, steps=60))
    f = _codes(RankDesync()(cnb.load(tmp_path)))["rank_desync"]
    assert f.severity == "critical" and f.details["differing_params"] == ["head.weight"]
    assert "head.weight" in f.title and "head.weight" in f.summary
    assert set(f.evidence["series"]) >= {"head.weight"}


def test_identical_checkpoints_of_two_ranks_agree(tmp_path):
    torch = pytest.importorskip("torch")
    for r in (0, 1):
        torch.save(_state(torch), tmp_path / f"model_rank{r}.pt")
    found = _codes(RankDesync()(cnb.load(tmp_path)))
    assert set(found) == {"ranks_agree"}
    assert found["ranks_agree"].details["checkpoints_compared"] == 1
    assert found["ranks_agree"].details["tensors_compared"] == 4


def test_diagnose_gives_the_other_checks_one_rank(tmp_path):
    """Eight ranks: the loss checks read one curve of 200 points; rank_desync reads all eight."""
    write_rank_files(tmp_path, rank_values(n_ranks=8, steps=200, drift_rank=5, drift_grad=0.002))
    run = cnb.load(tmp_path)
    findings = cnb.diagnose(run)
    by_check = {}
    for f in findings:
        by_check.setdefault(f.check, []).append(f)
    desync = next(f for f in by_check["rank_desync"] if f.code == "rank_desync")
    assert desync.details["desync_ranks"] == [5] and len(desync.details["ranks"]) == 8
    plateau = by_check["loss_plateau"][0]
    assert plateau.details.get("points") == 200
    assert plateau.details["series"].endswith("of rank 0 (of 8 ranks)")       # whose loss the checks read
    assert len(curve(run, "train")) == 200 and run.meta["restarts"] == []
