"""diagnose(): thresholds, selection, a failing check, the order of findings; root_causes()."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pytest

from collapse_nb.checks import CHECKS, DEFAULT_CHECKS, Check, VarianceCollapse, default_checks
from collapse_nb.diagnose import diagnose, root_causes
from collapse_nb.findings import SEVERITIES, Finding
from collapse_nb.run import Run
from collapse_nb.tables import normalise_raw
from tests.checks import by_code, load, write_config, write_jsonl


@pytest.fixture
def run(tmp_path):
    """A short run with a NaN loss (critical), a configured lr and no gradients (several not_checked)."""
    rows = [{"step": s, "train/loss": 2.0 / (s + 1), "val/loss": 2.2 / (s + 1), "lr": 1e-3} for s in range(10)]
    rows[7]["train/loss"] = float("nan")
    write_jsonl(tmp_path / "log.jsonl", rows)
    write_config(tmp_path, learning_rate=1e-3)
    return load(tmp_path)


def test_registry():
    assert len(CHECKS) == len(DEFAULT_CHECKS) >= 14
    assert all(isinstance(c, Check) and c.name for c in default_checks())
    assert {"variance_collapse", "dead_parameters", "vanishing_gradients", "exploding_gradients", "nonfinite_loss",
            "loss_plateau", "loss_divergence", "overfitting", "val_below_train", "chance_level_loss",
            "lr_schedule_mismatch", "update_ratio", "clipping_saturated"} <= set(CHECKS)


def test_findings_come_sorted(run):
    fs = diagnose(run)
    ranks = [0 if f.severity in ("critical", "warning") else SEVERITIES.index(f.severity) for f in fs]
    assert ranks == sorted(ranks)                      # problems, then info, then ok
    assert fs[0].code == "nonfinite_loss" and fs[0].severity == "critical"
    assert {f.check for f in fs if f.code == "not_checked"} >= {"variance_collapse", "dead_parameters"}


def test_thresholds_three_ways(run):
    def ratio_threshold(fs):
        return by_code(fs, "lr_schedule_ok").details["thresholds"]["fit_tolerance"]

    assert ratio_threshold(diagnose(run, lr_schedule_mismatch__fit_tolerance=0.2)) == 0.2
    assert ratio_threshold(diagnose(run, lr_schedule_mismatch={"fit_tolerance": 0.3})) == 0.3
    assert ratio_threshold(diagnose(run, thresholds={"lr_schedule_mismatch": {"fit_tolerance": 0.4}})) == 0.4


def test_bad_arguments_are_named(run):
    with pytest.raises(ValueError, match="unknown check 'varience_collapse' in thresholds; known checks: "
                                         "chance_level_loss"):
        diagnose(run, varience_collapse__critical_ratio=0.1)
    with pytest.raises(ValueError, match="unknown threshold\\(s\\) for variance_collapse: critcal_ratio; allowed: "
                                         "critical_ratio"):
        diagnose(run, variance_collapse__critcal_ratio=0.1)
    with pytest.raises(ValueError, match="thresholds given for check\\(s\\) not being run: loss_plateau"):
        diagnose(run, checks=["variance_collapse"], loss_plateau__window_frac=0.2)
    with pytest.raises(TypeError, match="unexpected keyword verbose=True"):
        diagnose(run, verbose=True)
    with pytest.raises(ValueError, match="unknown check 'nope'"):
        diagnose(run, checks=["nope"])


def test_a_threshold_of_the_wrong_type_is_an_error_not_a_failed_check(run):
    with pytest.raises(TypeError, match=r"threshold variance_collapse__critical_ratio='abc': the variance_collapse "
                                        r"check's field critical_ratio is a float \(a number\); got str"):
        diagnose(run, variance_collapse__critical_ratio="abc")
    with pytest.raises(TypeError, match="field min_points is an int .* got float"):
        diagnose(run, loss_plateau={"min_points": 2.5})
    with pytest.raises(TypeError, match="field include_biases is a bool .* got int"):
        diagnose(run, thresholds={"update_ratio": {"include_biases": 1}})
    with pytest.raises(TypeError, match="field critical_ratio is a float .* got bool"):
        diagnose(run, variance_collapse__critical_ratio=True)
    with pytest.raises(TypeError, match="field phase is a str"):
        diagnose(run, variance_collapse__phase=1)
    fs = diagnose(run, loss_plateau__min_points=3.0, lr_schedule_mismatch__fit_tolerance=1,   # 3.0 is whole; 1 real
                  update_ratio__include_biases=True)
    assert not [f for f in fs if f.code == "check_failed"]
    assert by_code(fs, "lr_schedule_ok").details["thresholds"]["fit_tolerance"] == 1.0


def test_select_checks_by_name_class_or_instance(run):
    fs = diagnose(run, checks=["nonfinite_loss", VarianceCollapse, VarianceCollapse(critical_ratio=0.01)])
    assert {f.check for f in fs} == {"nonfinite_loss", "variance_collapse"}


@dataclass
class Broken(Check):
    name = "broken"

    def __call__(self, run):
        raise ZeroDivisionError("division by zero")


@dataclass
class WrongType(Check):
    name = "wrong_type"

    def __call__(self, run):
        return "not a list"


def test_a_failing_check_becomes_info_and_others_still_run(run):
    fs = diagnose(run, checks=[Broken(), WrongType(), "nonfinite_loss"])
    failed = [f for f in fs if f.code == "check_failed"]
    assert {f.check for f in failed} == {"broken", "wrong_type"}
    assert all(f.severity == "info" for f in failed)
    assert "ZeroDivisionError: division by zero" in failed[0].title + failed[1].title
    assert by_code(fs, "nonfinite_loss").severity == "critical"


def test_root_causes_rules():
    collapse = Finding("variance_collapse", "critical", "c")
    head = Finding("tiny_output_head", "warning", "h")
    lr = Finding("lr_schedule_mismatch", "warning", "l")
    dead = Finding("dead_parameters", "warning", "d", details={"head_dead": False})
    rc = root_causes([collapse, lr, dead, head, Finding("loss_finite", "ok", "ok")])
    assert list(rc["code"]) == ["tiny_output_head", "dead_parameters", "lr_schedule_mismatch", "variance_collapse"]
    assert rc["share"].iloc[0] == pytest.approx(0.9)
    assert "a low learning rate" in rc.set_index("code").loc["lr_schedule_mismatch", "reasoning"] or \
        "slows learning" in rc.set_index("code").loc["lr_schedule_mismatch", "reasoning"]
    dead_head = Finding("dead_parameters", "critical", "d", details={"head_dead": True})
    assert root_causes([collapse, dead_head]).set_index("code").loc["dead_parameters", "share"] == pytest.approx(0.9)
    empty = root_causes([Finding("loss_finite", "ok", "ok")])
    assert empty.empty and list(empty.columns)[:3] == ["rank", "code", "severity"]


def test_a_cause_ranks_above_the_symptoms_it_explains():
    """A warning that explains a critical symptom outranks it, in root_causes() and in diagnose()'s order."""
    from collapse_nb.diagnose import order_findings

    collapse = Finding("variance_collapse", "critical", "c", score=10)
    plateau = Finding("loss_plateau", "warning", "p")
    slow = Finding("update_ratio", "warning", "u", details={"median_ratio": 1e-6, "thresholds": {"too_small": 1e-5}})
    vanishing = Finding("vanishing_gradients", "warning", "v")
    info = Finding("intermittent_gradients", "info", "i")
    rc = root_causes([collapse, plateau, slow])
    assert list(rc["code"]) == ["update_ratio", "variance_collapse", "loss_plateau"]
    assert "variance_collapse" in rc["explains"].iloc[0]
    assert [f.code for f in order_findings([info, collapse, plateau, slow])] == \
        ["update_ratio", "variance_collapse", "loss_plateau", "intermittent_gradients"]
    # vanishing gradients explain the tiny updates: they rank above them even with a smaller share
    rc = root_causes([collapse, slow, vanishing])
    assert list(rc["code"])[:2] == ["vanishing_gradients", "update_ratio"]
    assert rc.set_index("code").loc["update_ratio", "share"] > rc.set_index("code").loc["vanishing_gradients", "share"]
    # tiny updates in a few layers only explain a collapse weakly
    few = Finding("update_ratio", "warning", "u", details={"median_ratio": 1e-3, "thresholds": {"too_small": 1e-5}})
    assert root_causes([collapse, few]).set_index("code").loc["update_ratio", "share"] == pytest.approx(0.3)
    # a symptom that nothing present explains stays on top
    assert root_causes([plateau, collapse, Finding("lr_schedule_ok", "ok", "ok")])["code"].iloc[0] == \
        "variance_collapse"
    # most of the parameters dead (not the head) explains a collapse as a dead head does
    dead = Finding("dead_parameters", "critical", "d", details={"head_dead": False, "fraction": 0.9,
                                                                "thresholds": {"critical_fraction": 0.5}})
    assert root_causes([collapse, dead]).set_index("code").loc["dead_parameters", "share"] == pytest.approx(0.9)


def test_val_below_train_counts_half_in_the_observed_failure():
    collapse = Finding("variance_collapse", "warning", "c")
    head = Finding("tiny_output_head", "warning", "h")
    gap = Finding("val_below_train", "warning", "v", details={"causes": [{"cause": "gradient_accumulation",
                                                                          "score": 0.95, "text": "summed"}]})
    rc = root_causes([collapse, head, gap]).set_index("code")
    assert rc.loc["tiny_output_head", "share"] == pytest.approx(0.9 * 2 / 3, abs=1e-3)
    assert rc.loc["val_below_train", "share"] == pytest.approx(0.95 / 3, abs=1e-3)


def test_root_causes_val_below_train_explains_itself():
    f = Finding("val_below_train", "warning", "v", details={"causes": [
        {"cause": "gradient_accumulation", "score": 0.95, "text": "summed over 3 micro-batches"}]})
    rc = root_causes([f])
    assert rc["share"].iloc[0] == pytest.approx(0.95) and rc["role"].iloc[0] == "both"
    assert "summed over 3 micro-batches" in rc["reasoning"].iloc[0]


def test_an_empty_run_is_not_checked_by_every_check():
    empty = Run(scalars=normalise_raw(pd.DataFrame({"raw_name": pd.Series([], dtype=object),
                                                    "value": pd.Series([], dtype=float)}), "none"))
    fs = diagnose(empty)
    # every check says it did not run, and coverage says the run is not assessed (never a clean bill)
    assert [f.code for f in fs if f.check == "coverage"] == ["objective_not_found"]
    others = [f for f in fs if f.check != "coverage"]
    assert {f.code for f in others} == {"not_checked"} and len(others) == len(CHECKS) - 1


def test_the_rules_live_on_the_checks_and_the_report_reads_them():
    from collapse_nb.checks import CHECKS as ALL
    from collapse_nb.diagnose import EXPLAINS, SYMPTOMS, rule_key
    from collapse_nb.report.document import _why
    assert "variance_collapse" in SYMPTOMS and "gan_discriminator_wins" in SYMPTOMS
    assert all(any(key in c.explains for c in ALL.values()) for key in EXPLAINS)
    majority = Finding("dead_parameters", "critical", "d", check="dead_parameters",
                       details={"fraction": 0.8, "head_dead": False, "thresholds": {"critical_fraction": 0.5}})
    assert rule_key(majority) == "dead_majority"
    # the report's reason is the diagnosis's reason (it once read the branch rule for a dead majority)
    assert _why(majority, "variance_collapse") == EXPLAINS["dead_majority"]["variance_collapse"][1]
    tiny = Finding("update_ratio", "warning", "u", check="update_ratio", details={"median_ratio": 1e-7})
    assert rule_key(tiny) == "updates_too_small"
