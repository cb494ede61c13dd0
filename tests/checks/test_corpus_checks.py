"""diagnose() on the real-log corpus (skipped when ../shared/corpus is absent).

The three runs that fail in a known way must show it; the other runs, which trained normally
(or whose logs hold too little to judge), must not get warnings or critical findings. Each
expectation below was checked by hand against the file.
"""
from __future__ import annotations

import json

import pytest

import collapse_nb as cnb
from collapse_nb.diagnose import diagnose, root_causes
from tests.checks import by_code, problems


def _diagnose(corpus, *parts):
    return diagnose(cnb.load(corpus(*parts)))


def test_tsl_diag_collapse_and_dead_parameters(corpus):
    fs = _diagnose(corpus, "tsl-diag-f7a0244", "training_diagnostic.log")
    vc = by_code(fs, "variance_collapse")
    assert vc.severity == "critical"
    # pred std ~0.56 at the first batch, ~0.03 at the end, target std ~0.4-2
    assert vc.details["ratio_first"] > 0.3 and vc.details["ratio_last"] < 0.1 and vc.details["trend"] == "falling"
    assert vc.details["onset"]["where"].startswith("epoch 1 batch")
    dead = by_code(fs, "dead_parameters")
    assert set(dead.details["dead"]) == {
        "celestial_key_projection.bias", "celestial_to_target_attention.celestial_key_projection.bias",
        "dynamic_spatiotemporal_encoder.node_feature_projection.weight",
        "dynamic_spatiotemporal_encoder.node_feature_projection.bias",
        "dynamic_spatiotemporal_encoder.node_feature_back_projection.weight",
        "dynamic_spatiotemporal_encoder.node_feature_back_projection.bias",
        "dual_stream_decoder.target_autocorr.target_projection.weight",
        "dual_stream_decoder.target_autocorr.target_projection.bias"}
    assert dead.details["n_params"] == 56 and dead.severity == "warning"
    assert "dynamic_spatiotemporal_encoder.node_feature_projection" in dead.details["modules"]
    # the seed report's "many celestial_*_projection layers" with zero gradients: live, then exactly zero from
    # some batch on (batches 650-1200, fading through 1e-08 first), after the outputs collapsed
    dying = by_code(fs, "gradients_die")
    assert "celestial_query_projection.weight" in dying.details["params"] and dying.details["n_dying"] == 12
    assert "celestial_query_projection.weight" not in dead.details["intermittent"]
    assert dying.details["first_died_at"] == "epoch 1 batch 650" and "collapse came first" in dying.summary
    assert by_code(fs, "output_head_ok").details["head"] == "projection.weight"
    assert {f.code for f in problems(fs)} == {"variance_collapse", "dead_parameters", "chance_level_loss",
                                              "gradients_die"}


def test_tsl_run_val_below_train(corpus):
    fs = _diagnose(corpus, "tsl-run-1644469", "training_run.log")
    f = by_code(fs, "val_below_train")
    assert f.severity == "warning"
    assert f.details["ratio_median"] == pytest.approx(1.414947 / 0.195179, rel=1e-4)       # 7.2x
    causes = {c["cause"]: c for c in f.details["causes"]}
    # accumulation 3 is configured, but the epoch train loss is the mean of the logged batch losses, and 3 != 7.2
    assert causes["gradient_accumulation"]["score"] <= 0.15
    # val batch targets have std 0.43 against 0.87 in the train batch logged: (0.87/0.43)^2 = 4x of the 7.2x
    assert f.details["top_cause"] == "easier_validation_targets"
    assert causes["easier_validation_targets"]["factor"] == pytest.approx(4.0, rel=0.02)
    assert by_code(fs, "lr_schedule_ok").severity == "ok"            # warmup 0.001, 0.002 towards 0.003
    assert {f.code for f in problems(fs)} == {"val_below_train"}


def test_nanollama_overfitting(corpus):
    fs = _diagnose(corpus, "jsonl-nanollama", "log.jsonl")
    f = by_code(fs, "overfitting")
    assert f.severity == "critical"
    assert f.details["val_min"] == pytest.approx(4.868, rel=1e-3) and f.details["val_min_where"] == "step 200"
    assert f.details["val_end"] > 8.5 and f.details["train_end"] < 0.03
    assert {g.code for g in problems(fs)} == {"overfitting"}
    assert root_causes(fs)["code"].iloc[0] == "overfitting"


# Runs that trained normally, or log too little to judge: no warning and no critical finding.
# (pl-opal's train loss flattens over its last epochs after falling 60%: an info "levelled off".)
QUIET = {
    "olmo-train/training.log": {"loss_finite", "gradients_finite", "gradients_not_vanishing", "clipping_ok"},
    "cifar-logging/training.log": {"loss_decreasing", "loss_finite"},
    "hf-jaong/trainer_state.json": {"loss_decreasing", "no_overfitting", "val_train_gap_ok", "gradients_finite"},
    "pl-opal/metrics.csv": {"loss_finite"},
    "keras-brats/training.log": {"loss_decreasing", "no_overfitting", "val_train_gap_ok"},
    "yolo-fire-csv/results.csv": {"loss_finite"},
    "d2-kevin/metrics.json": {"loss_decreasing", "loss_finite"},
    "mm-fruit/scalars.json": {"loss_decreasing", "loss_finite"},
    "detr-moqixis/log.txt": {"loss_decreasing", "no_overfitting", "val_train_gap_ok"},
    "chainer-dcgan/log": {"loss_finite"},
}


@pytest.mark.parametrize("rel", sorted(QUIET))
def test_healthy_corpus_runs_get_no_warnings(corpus, rel):
    fs = _diagnose(corpus, *rel.split("/"))
    assert problems(fs) == [], [(f.code, f.title) for f in problems(fs)]
    assert QUIET[rel] <= {f.code for f in fs if f.severity == "ok"}
    assert not [f for f in fs if f.code == "check_failed"]
    json.dumps([f.to_dict() for f in fs], allow_nan=False)


def test_pl_opal_levelled_off_is_info(corpus):
    f = by_code(_diagnose(corpus, "pl-opal", "metrics.csv"), "loss_plateau")
    assert f.severity == "info" and f.details["overall_improvement"] > 0.5


# ---------------------------------------------------------------- real metric names (issue 10)

def test_pix2pix_discriminator_wins(corpus):
    fs = _diagnose(corpus, "pix2pix-d-collapse")
    f = by_code(fs, "gan_discriminator_wins")
    # epochs 1-25: D_real/D_fake 0.14-0.72, G_GAN 1.9-3.2; from epoch 57 D ~0.026 and G_GAN 6.7-11.6
    assert f.details["d_early"] > 0.2 and f.details["d_late"] < 0.05 and f.details["g_late"] > 6
    assert by_code(fs, "gan_mode_collapse_unknown").severity == "info"
    stop = by_code(fs, "run_incomplete")        # planned niter + niter_decay = 200 epochs, stopped at 144
    assert (stop.details["reached"], stop.details["planned"]) == (144, 200)


def test_chainer_dcgan_is_read_per_network(corpus):
    fs = _diagnose(corpus, "chainer-dcgan")
    assert by_code(fs, "objective").details["networks"] == ["generator", "discriminator"]
    assert not problems(fs)


def test_olmo_is_a_thousand_steps_and_was_killed(corpus):
    fs = _diagnose(corpus, "olmo-train")
    assert by_code(fs, "objective").details["points"] == 1010
    stop = by_code(fs, "run_incomplete")
    assert (stop.details["reached"], stop.details["planned"]) == (1010, 15000) and stop.details["ending"]


def test_ultralytics_components_are_the_objective(corpus):
    for folder in ("yolo-fire-csv", "yolo-fire-tb"):
        fs = _diagnose(corpus, folder)
        obj = by_code(fs, "objective")
        assert obj.details["how"] == "sum" and obj.details["points"] == 25, folder


def test_keras_history_overfit(corpus):
    run = cnb.load(corpus("keras-glove-lstm-overfit"))
    assert run.meta["formats"] == ["keras-history"]
    f = by_code(diagnose(run), "overfitting")
    # val_loss minimum 0.465 at epoch 6, 0.505 by epoch 10, while train loss falls 0.517 -> 0.316
    assert f.details["val_best_where"] == "epoch 6" and f.details["consecutive_train_down_val_worse"] >= 3


def test_mlflow_store_validation_never_leaves_chance(corpus):
    # val/loss about ln(11) = 2.40 all run long while the train loss falls: no generalisation
    fs = _diagnose(corpus, "mlflow-vit-val-at-chance")
    f = by_code(fs, "val_at_chance")
    assert f.severity == "critical" and "ln 11" in f.details["chance_from"]
    assert by_code(fs, "objective").details["series"] == "the logged train loss 'loss'"


def test_hf_phi4_isolated_nan_grad_norm_is_survived_not_critical(corpus):
    fs = _diagnose(corpus, "hf-phi4-lora-gradnorm-spike")
    f = by_code(fs, "exploding_gradients")
    # one "grad_norm": NaN at step 2100; the loss there and after it is normal
    assert f.severity == "warning" and f.details["survived"] and f.details["first_nonfinite"].startswith("step 2100")
    assert by_code(fs, "objective").details["resolution"] == "step"


def test_megatron_train_and_validation_losses(corpus):
    fs = _diagnose(corpus, "megatron-ds-gpt125m-ctrl-c")
    obj = by_code(fs, "objective")
    assert obj.details["points"] == 213 and "lm_loss" in obj.details["series"]
    assert "lm_loss_value" in obj.details["val_series"]
    assert not problems(fs)


def test_megatron_stopped_at_iteration_2130_of_its_plan(corpus):
    stop = by_code(_diagnose(corpus, "megatron-ds-gpt125m-ctrl-c"), "run_incomplete")
    # "setting training iterations to 1716613"; the last iteration line is 2130; KeyboardInterrupt tracebacks follow
    assert (stop.details["reached"], stop.details["planned"]) == (2130, 1716613) and stop.details["ending"]
    assert "(0.1%)" in stop.title


def test_deepspeed_dpo_has_no_train_loss_and_says_so(corpus):
    fs = _diagnose(corpus, "deepspeed-8rank-dpo")
    blind = by_code(fs, "objective_not_found")
    # only two eval lines, under "***** Evaluating rewards, Epoch 1/1 *****": DPO loss 0.6934 before, 0.6651 after
    assert "0.693" in blind.summary and "0.665" in blind.summary and "Validation" in blind.summary
