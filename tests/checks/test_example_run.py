"""The bundled example run (data/example_run): every injected fault is found, with its numbers."""
from __future__ import annotations

import json

import pytest

import collapse_nb as cnb
from collapse_nb.diagnose import diagnose, root_causes
from collapse_nb.example import INJECTED, default_example_dir
from tests.checks import by_code


@pytest.fixture(scope="module")
def findings():
    return diagnose(cnb.load(default_example_dir()))


def test_variance_collapse_with_ratio_numbers(findings):
    f = by_code(findings, "variance_collapse")
    assert f.severity == "critical"
    d = f.details
    assert 0.05 < d["ratio_last"] < 0.1                 # pred std ~0.09 vs target std ~1.2
    assert d["ratio_first"] < 0.01 and d["trend"] == "rising"     # collapsed from the start (tiny head init)
    assert d["onset"]["from_start"] and d["onset"]["where"] == "epoch 1 batch 0"
    assert "1:13" in f.title and "0.077" in f.summary
    assert list(f.evidence.columns[:3]) == ["window", "epoch", "rows"] and len(f.evidence) == 6   # one row per epoch


def test_dead_key_projection(findings):
    f = by_code(findings, "dead_parameters")
    dead = set(f.details["dead"])
    assert set(INJECTED["dead_parameters"]) <= dead
    # the query projection's gradient is q * k with k = 0: it is dead too, and the report says so
    assert dead == {"attn.key_projection.weight", "attn.key_projection.bias", "attn.query_projection.weight",
                    "attn.query_projection.bias"}
    assert set(f.details["modules"]) == {"attn.key_projection", "attn.query_projection"}
    assert f.severity == "warning" and not f.details["head_dead"]
    assert (f.evidence.loc[f.evidence["status"] == "dead", "steps_seen"] == 60).all()


def test_val_below_train_names_gradient_accumulation(findings):
    f = by_code(findings, "val_below_train")
    assert f.severity == "warning"
    assert 3.0 < f.details["ratio_median"] < 3.2
    top = f.details["causes"][0]
    assert top["cause"] == "gradient_accumulation" and top["factor"] == 3 and top["score"] > 0.9
    assert 2.9 < top["epoch_over_batch_mean"] < 3.1
    assert "train/val = 3.1x, gradient_accumulation_steps = 3" in f.summary
    assert "summed over 3 micro-batches" in f.summary


def test_tiny_head_and_healthy_parts(findings):
    head = by_code(findings, "tiny_output_head")
    assert head.details["head"] == "projection.weight" and head.details["ratio_first"] < 1e-3
    for ok in ("lr_schedule_ok", "loss_finite", "gradients_finite", "gradients_not_vanishing"):
        assert by_code(findings, ok).severity == "ok"
    assert "warmup (2 epochs, to 0.001) + cosine decay to 1e-05" in by_code(findings, "lr_schedule_ok").title


def test_root_causes_rank_the_head_first(findings):
    rc = root_causes(findings)
    assert rc["code"].iloc[0] == "tiny_output_head"
    row = rc.set_index("code").loc["val_below_train"]
    assert row["role"] == "both" and row["explains"] == "val_below_train"
    assert rc.set_index("code").loc["variance_collapse", "role"] == "symptom"
    assert "explained by tiny_output_head" in rc.set_index("code").loc["variance_collapse", "reasoning"]


def test_every_finding_exports_to_json(findings):
    records = [f.to_dict() for f in findings]
    json.dumps(records, allow_nan=False)
    assert all(r["check"] for r in records) and all(isinstance(r["evidence"], list) for r in records)


def test_every_check_that_ran_says_what_it_read(findings):
    from collapse_nb.report.document import checks_read
    rows = {r[0]: r for r in checks_read(findings)}
    assert rows["dead_parameters"][2] == "per-parameter gradient norms of 12 parameters (run.grads)"
    assert rows["variance_collapse"][3:] == ["batch", "180"]
    assert rows["loss_plateau"][2] == "the logged train loss 'loss'" and rows["loss_plateau"][3] == "step"
    assert all(r[2] for r in rows.values())                 # ran or not, each says what (or what it lacked)
