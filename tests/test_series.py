"""collapse_nb.series: roles, networks, eval sets and the objective, from files written by real writers."""
from __future__ import annotations

import csv
import json
import math

import pytest

import collapse_nb as cnb
from collapse_nb import series
from collapse_nb.checks import Coverage, GANBalance, Overfitting
from collapse_nb.checks._base import curve
from collapse_nb.report.document import make_verdict


def _ultralytics_csv(path, n=12):
    """An Ultralytics results.csv: loss components, no total, space-padded headers."""
    cols = ["epoch", "train/box_loss", "train/cls_loss", "train/dfl_loss", "metrics/mAP50(B)", "val/box_loss",
            "val/cls_loss", "val/dfl_loss", "lr/pg0"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"{c:>20}" for c in cols])
        for e in range(n):
            t = 1.0 / (1 + e)
            w.writerow([e, 1.5 * t + 0.5, 2.0 * t + 0.3, 1.2 * t + 0.8, 0.1 + 0.05 * e, 1.4 * t + 0.6, 1.9 * t + 0.4,
                        1.1 * t + 0.9, 0.01])
    return path


def test_components_without_a_total_are_summed_and_said_so(tmp_path):
    run = cnb.load(_ultralytics_csv(tmp_path / "results.csv"))
    roles = dict(zip(run.series["name"] + "/" + run.series["phase"].fillna(""), run.series["role"]))
    assert roles["box_loss/train"] == roles["cls_loss/val"] == "component"
    assert roles["metrics_map50/val"] == "eval_metric"
    obj = run.objective("train")
    assert obj.how == "sum" and obj.names == ["box_loss", "cls_loss", "dfl_loss"]
    assert "sum of the train loss components" in obj.description
    assert obj.rows.sort_values("epoch")["value"].iloc[0] == pytest.approx(1.5 + 0.5 + 2.0 + 0.3 + 1.2 + 0.8)
    assert run.objective("val").how == "sum"
    [cov] = Coverage()(run)
    assert cov.code == "objective" and "sum of the train loss components" in cov.title


def test_a_total_beside_its_components_is_the_objective(tmp_path):
    rows = [{"iteration": i, "total_loss": 3.0 - i / 100, "loss_cls": 1.0, "loss_box_reg": 2.0 - i / 100,
             "lr": 0.01} for i in range(0, 200, 20)]
    (tmp_path / "metrics.json").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    run = cnb.load(tmp_path / "metrics.json")
    obj = run.objective("train")
    assert obj.how == "logged" and obj.names == ["loss"]
    assert set(run.series.loc[run.series["role"] == "component", "name"]) == {"loss_cls", "loss_box_reg"}


def test_names_say_the_network_and_gan_losses_are_not_one_objective(tmp_path):
    assert series.network_of("gen/loss") == "generator" and series.network_of("dis/loss") == "discriminator"
    assert series.network_of("loss_G") == "generator" and series.network_of("D_real") == "discriminator"
    assert series.network_of("errD") == "discriminator" and series.network_of("loss") is None
    assert series.network_of("grad_norm") is None and series.network_of("d_model") is None
    log = [{"iteration": i * 100, "epoch": i // 10, "gen/loss": 1.0 + i / 50, "dis/loss": 0.7, "elapsed_time": i}
           for i in range(40)]
    (tmp_path / "log").write_text(json.dumps(log, indent=4))
    run = cnb.load(tmp_path / "log")
    assert series.networks(run.series) == ["generator", "discriminator"]
    assert not run.objective("train").found and "generator and the discriminator" in run.objective("train").reason
    assert run.objective("train", network="generator").names == ["gen_loss"]


def test_direction_of_eval_metrics():
    assert [series.direction_of(n) for n in ("accuracy", "map50_95", "rouge_l", "auc", "f1")] == ["up"] * 5
    assert [series.direction_of(n) for n in ("wer", "cer", "perplexity", "class_error")] == ["down"] * 4
    assert series.direction_of("samples_per_second") is None


def test_several_eval_sets_are_separate_validation_series(tmp_path):
    hist = []
    for s in range(1, 11):
        hist.append({"epoch": s / 2, "step": s * 10, "loss": 2.0 - s / 10, "learning_rate": 1e-4})
        hist.append({"epoch": s / 2, "step": s * 10, "eval_squad_loss": 1.5 - s / 20,
                     "eval_news_loss": 1.0 + (s / 10 if s > 4 else -s / 20), "eval_news_accuracy": 0.5})
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": hist, "global_step": 100}))
    run = cnb.load(tmp_path / "trainer_state.json")
    assert series.eval_sets(run.series) == ["news", "squad"]
    assert run.objective("val", eval_set="news").found and run.objective("val", eval_set="squad").found
    [f] = Overfitting()(run)
    assert f.code == "overfitting" and f.details["eval_set"] == "news"
    assert {p["series"] for p in f.details["per_set"]} == {"validation loss on 'news'", "validation loss on 'squad'"}


def test_an_eval_metric_that_goes_up_is_read_the_right_way(tmp_path):
    hist = {"loss": [1.0 - 0.08 * i for i in range(10)],
            "accuracy": [0.6 + 0.03 * i for i in range(10)],
            "val_accuracy": [0.60, 0.66, 0.70, 0.72, 0.71, 0.69, 0.66, 0.64, 0.62, 0.60]}
    (tmp_path / "history.json").write_text(json.dumps(hist))
    run = cnb.load(tmp_path / "history.json")
    assert run.meta["formats"] == ["keras-history"]
    [f] = Overfitting()(run)
    assert f.code == "overfitting" and f.details["direction"] == "up" and f.details["val_best"] == 0.72
    assert "validation accuracy" in f.title


def test_the_densest_honest_series_is_read(tmp_path):
    """1,000 steps that all say epoch=0 are 1,000 points, not one epoch."""
    rows = [{"step": s, "epoch": 0, "train/loss": 3.0 + math.sin(s) / 10} for s in range(1000)]
    (tmp_path / "log.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    c = curve(cnb.load(tmp_path / "log.jsonl"), "train")
    assert len(c) == 1000 and c.attrs["level"] == "step"


def test_a_run_summary_is_not_the_last_point_of_the_curve(tmp_path):
    hist = [{"epoch": e, "step": e * 10, "loss": 1.0 - e / 10} for e in range(1, 6)]
    hist.append({"epoch": 5.0, "step": 50, "train_loss": 0.9, "train_runtime": 100.0})
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": hist}))
    run = cnb.load(tmp_path / "trainer_state.json")
    c = curve(run, "train", level="step")
    assert c["value"].tolist() == pytest.approx([0.9, 0.8, 0.7, 0.6, 0.5])
    assert "summary" in set(run.series["role"])


def _pix2pix(path, epochs=40, d_wins=True):
    lines = ["================ Training Loss (Mon Jan  1 00:00:00 2024) ================"]
    for e in range(1, epochs + 1):
        late = e > epochs // 2
        for it in (100, 200, 300):
            d = 0.005 if (late and d_wins) else 0.6
            g = 8.0 if (late and d_wins) else 2.0
            lines.append(f"(epoch: {e}, iters: {it}, time: 0.126, data: 0.002) G_GAN: {g + it / 10000:.3f} "
                         f"G_L1: 20.000 D_real: {d:.3f} D_fake: {d:.3f} ")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_gan_discriminator_winning(tmp_path):
    run = cnb.load(_pix2pix(tmp_path / "loss_log.txt"))
    fs = GANBalance()(run)
    assert [f.code for f in fs] == ["gan_discriminator_wins", "gan_mode_collapse_unknown"]
    d = fs[0].details
    assert d["d_late"] == pytest.approx(0.01) and d["g_late"] > 8 and "g_gan" in d["generator_series"]


def test_gan_in_balance_still_says_mode_collapse_is_unknown(tmp_path):
    run = cnb.load(_pix2pix(tmp_path / "loss_log.txt", d_wins=False))
    assert [f.code for f in GANBalance()(run)] == ["gan_balanced", "gan_mode_collapse_unknown"]


def test_nothing_recognised_is_not_assessed_never_healthy(tmp_path):
    rows = [{"step": s, "tokens_per_second": 1000.0 + s, "reward_margin_mean": 0.1} for s in range(20)]
    (tmp_path / "log.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    run = cnb.load(tmp_path / "log.jsonl")
    fs = cnb.diagnose(run)
    cov = next(f for f in fs if f.check == "coverage")
    assert cov.code == "objective_not_found" and "tokens_per_second" in cov.summary
    status, verdict = make_verdict(fs, cnb.root_causes(fs))
    assert status == "not assessed" and verdict.startswith("Not assessed: no training objective recognised")


def test_a_run_stopped_before_its_plan_says_where(tmp_path):
    hist = [{"epoch": s / 100, "step": s, "loss": 2.0 - s / 1000} for s in range(10, 110, 10)]
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": hist, "max_steps": 1000}))
    fs = Coverage()(cnb.load(tmp_path / "trainer_state.json"))
    stop = next(f for f in fs if f.code == "run_incomplete")
    assert stop.details["reached"] == 100 and stop.details["planned"] == 1000
    assert stop.title.startswith("Stopped early: step 100 of 1,000 (10%)")


def test_a_plan_printed_in_the_log_counts_for_a_run_stopped_early(tmp_path):
    p = tmp_path / "train.log"
    lines = ["setting training iterations to 5000"]
    lines += [f" iteration {it:8d} | lm loss: {5 - it / 1000:.6E} |" for it in range(10, 510, 10)]
    p.write_text("\n".join(lines) + "\n")
    stop = next(f for f in Coverage()(cnb.load(p)) if f.code == "run_incomplete")
    assert (stop.details["reached"], stop.details["planned"]) == (500, 5000)
    assert "setting training iterations to" in stop.details["from"]
    # Megatron's progress counter states the same plan on every line: "iteration 10/ 5000"
    p.write_text("\n".join(f" iteration {it:8d}/ 5000 | lm loss: {5 - it / 1000:.6E} |"
                           for it in range(10, 510, 10)) + "\n")
    stop = next(f for f in Coverage()(cnb.load(p)) if f.code == "run_incomplete")
    assert (stop.details["reached"], stop.details["planned"]) == (500, 5000)
    assert "line 1 ('iteration       10/ 5000')" in stop.details["from"]


def test_a_capital_d_after_a_digit_is_not_a_discriminator(tmp_path):
    """Pose estimation logs loss_3D / loss_2D beside the total: one network, the total is the objective."""
    rows = [{"step": s, "loss": 2 - s / 100, "loss_3D": 1 - s / 200, "loss_2D": 1 - s / 200} for s in range(50)]
    (tmp_path / "log.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    run = cnb.load(tmp_path / "log.jsonl")
    assert series.network_of("loss_3D") is None and series.networks(run.series) == []
    assert run.objective("train").how == "logged"
    only_g = [{"step": s, "loss_G": 2 - s / 100} for s in range(50)]
    (tmp_path / "g.jsonl").write_text("\n".join(json.dumps(r) for r in only_g) + "\n")
    run = cnb.load(tmp_path / "g.jsonl")
    assert series.networks(run.series) == [] and run.objective("train").names == ["loss_g"]


def test_validation_components_are_one_validation_loss_not_eval_sets(tmp_path):
    p = tmp_path / "results.csv"
    p.write_text("epoch,train/loss,val/box_loss,val/cls_loss\n" +
                 "".join(f"{e},{2 - e / 20},{1 + e / 20},0.5\n" for e in range(11)))
    run = cnb.load(p)
    assert series.eval_sets(run.series) == [None]
    val = run.objective("val")
    assert val.how == "sum" and val.names == ["box_loss", "cls_loss"]
    [f] = Overfitting()(run)
    assert f.code == "overfitting" and f.details["eval_set"] is None


def test_a_loss_that_is_never_finite_is_not_assessed(tmp_path):
    p = tmp_path / "history.json"
    p.write_text('{"loss": [NaN, NaN, NaN, NaN], "val_loss": [1.0, 1.0, 1.0, 1.0]}')
    fs = cnb.diagnose(cnb.load(p))
    blind = next(f for f in fs if f.check == "coverage")
    assert blind.code == "objective_not_found" and "0 finite point(s) of 4 (NaN at epoch 1" in blind.summary
