"""The per-line grammar of free-form text logs (``_text_grammar.parse_line``), one line shape at a time."""
from __future__ import annotations

import math

import pytest

from collapse_nb.readers._text_grammar import is_traceback_start, parse_line, strip_prefix


def values(line: str) -> dict[str, float]:
    return dict(parse_line(line).values)


# ---------------------------------------------------------------- diagnostic blocks (the seed's log)

def test_batch_header_sets_epoch_batch_and_phase():
    p = parse_line("EPOCH 1 | BATCH 0/3529 | TRAINING MODE")
    assert p.kind == "context"
    assert p.context == {"epoch": 1.0, "batch": 0.0}
    assert p.phase == "train"
    assert p.values == []


@pytest.mark.parametrize("line, phase", [
    ("EPOCH 3 | BATCH 7/25 | VALIDATION MODE", "val"),
    ("EPOCH 3 | BATCH 7/25 | TEST MODE", "test"),
    ("Running validation", "val"),
])
def test_phase_words(line, phase):
    assert parse_line(line).phase == phase


def test_key_with_parenthesised_remark():
    p = parse_line("raw_loss (full batch loss): 1.13")
    assert p.kind == "values"
    assert p.values == [("raw_loss (full batch loss)", 1.13)]
    assert p.context == {}


def test_pair_of_statistics_split_into_two_values():
    p = parse_line("y_pred_for_loss mean/std: 0.74 / 0.55")
    assert p.values == [("y_pred_for_loss mean", 0.74), ("y_pred_for_loss std", 0.55)]
    assert parse_line("y_true_for_loss mean/std: -0.050417 / 0.341665").values == [
        ("y_true_for_loss mean", -0.050417), ("y_true_for_loss std", 0.341665)]


def test_subject_line():
    p = parse_line("encoder.fc.weight:")
    assert p.kind == "subject"
    assert p.subject == "encoder.fc.weight"
    assert p.values == []
    assert parse_line("dynamic_spatiotemporal_encoder.node_feature_projection.weight:").subject == \
        "dynamic_spatiotemporal_encoder.node_feature_projection.weight"


def test_indented_value_under_subject():
    assert parse_line("  weight_norm_before: 12.91740513").values == [("weight_norm_before", 12.91740513)]
    assert parse_line("  grad_norm: 0.00000000").values == [("grad_norm", 0.0)]


def test_section_title():
    p = parse_line("--- OPTIMIZER STEP DIAGNOSTICS ---")
    assert p.kind == "section"
    assert p.section == "OPTIMIZER STEP DIAGNOSTICS"
    assert p.values == [] and p.context == {}


@pytest.mark.parametrize("line", ["", "   ", "=" * 80, "-" * 40, "\r\n"])
def test_blank_and_separator_lines(line):
    assert parse_line(line).kind == "blank"


def test_text_value_true_is_not_a_number():
    p = parse_line("optimizer_step_executed: True")
    assert p.values == []
    assert p.text_values == [("optimizer_step_executed", "True")]


# ---------------------------------------------------------------- logging prefixes

def test_python_logging_space_separated_with_logger_name():
    line = "2025-10-26 09:41:51,130 INFO __main__: Batch 10/520 | loss=15.06 elapsed=12.3s"
    p = parse_line(line)
    assert p.timestamp == "2025-10-26 09:41:51,130"
    assert p.context == {"batch": 10.0}
    assert p.values == [("loss", 15.06), ("elapsed", 12.3)]


def test_dotted_logger_name_is_dropped():
    p = parse_line("2025-10-26 09:41:49,165 INFO models.Celestial.Model: Gate stats | mean=0.5 std=0.08")
    assert p.values == [("Gate stats mean", 0.5), ("Gate stats std", 0.08)]


def test_python_logging_dash_separated():
    p = parse_line("2025-06-04 17:39:02,341 - INFO - Epoch 1/35, Train Loss: 1.6279, Test Acc: 59.86%")
    assert p.timestamp == "2025-06-04 17:39:02,341"
    assert p.context == {"epoch": 1.0}
    assert p.values == [("Train Loss", 1.6279), ("Test Acc", 59.86)]


def test_python_logging_with_name_and_level_dash_separated():
    p = parse_line("2025-06-04 17:36:55,380 - __main__ - INFO - Epoch 2 | val_loss: 0.25")
    assert p.context == {"epoch": 2.0}
    assert p.values == [("val_loss", 0.25)]


def test_basicconfig_default_format():
    p = parse_line("INFO:root:epoch 3 loss=nan grad_norm=inf")
    assert p.context == {"epoch": 3.0}
    v = values("INFO:root:epoch 3 loss=nan grad_norm=inf")
    assert math.isnan(v["loss"]) and v["grad_norm"] == math.inf
    assert values("WARNING:trainer.loop:step 7: loss=-inf") == {"loss": -math.inf}


def test_bracketed_timestamp_and_level():
    p = parse_line("[2025-06-04 17:36:55,380] INFO: step=5 loss=0.3")
    assert p.timestamp == "2025-06-04 17:36:55,380"
    assert p.context == {"step": 5.0}
    assert p.values == [("loss", 0.3)]


def test_olmo_tab_separated_header():
    line = "2025-12-12 11:05:02.009\tquick-rain-shines-fin-03:0\tolmo.train:979\tINFO\t[step=1/15000,epoch=0]"
    p = parse_line(line)
    assert p.timestamp == "2025-12-12 11:05:02.009"
    assert p.kind == "context"
    assert p.context == {"step": 1.0, "epoch": 0.0}
    assert p.values == []


def test_glog_prefix():
    assert strip_prefix("W1212 11:03:17.693000 9724 f.py:803] text") == ("text", None)
    p = parse_line("W1212 11:03:17.693000 9724 f.py:803] text")
    assert p.kind == "text" and p.values == [] and p.context == {}
    p = parse_line("I1212 11:03:17.693000 9724 train.py:80] step 10 loss=0.25")
    assert p.context == {"step": 10.0}
    assert p.values == [("loss", 0.25)]


@pytest.mark.parametrize("line, expected", [
    ("2025-06-04 17:36:55,380 - INFO -   learning_rate: 0.001", [("learning_rate", 0.001)]),
    ("2025-06-04 17:36:55,380 - INFO - lr: 0.001", [("lr", 0.001)]),
    ("2025-06-04 17:36:55,380 - INFO -   batch_size: 128", [("batch_size", 128.0)]),
    ("2025-10-26 09:41:51,130 INFO __main__: loss: 0.5", [("loss", 0.5)]),
])
def test_message_key_value_is_not_a_logger_name(line, expected):
    assert parse_line(line).values == expected


def test_message_text_key_value_is_not_a_logger_name():
    p = parse_line("2025-06-04 17:36:55,380 - INFO -   optimizer: adam")
    assert p.text_values == [("optimizer", "adam")]
    assert p.timestamp == "2025-06-04 17:36:55,380"


# ---------------------------------------------------------------- nanoGPT and friends

def test_nanogpt_iter_line():
    p = parse_line("iter 100: loss 4.2345, time 123.45ms, mfu 12.34%")
    assert p.context == {"step": 100.0}
    assert p.values == [("loss", 4.2345), ("time", 123.45), ("mfu", 12.34)]
    assert values("iter 0: loss 10.9812, time 12345.67ms, mfu -100.00%")["mfu"] == -100.0


def test_nanogpt_eval_line():
    p = parse_line("step 500: train loss 4.1234, val loss 4.3456")
    assert p.context == {"step": 500.0}
    assert p.values == [("train loss", 4.1234), ("val loss", 4.3456)]


def test_counter_with_thousands_separator():
    p = parse_line("step 1,000: loss 2.5")
    assert p.context == {"step": 1000.0}
    assert p.values == [("loss", 2.5)]
    assert parse_line("[step=1,epoch=0]").context == {"step": 1.0, "epoch": 0.0}


def test_progress_bar_postfix():
    p = parse_line("Epoch 3: 100%|######| 50/50 [00:10<00:00, loss=0.123, v_num=0]")
    assert p.context == {"epoch": 3.0}
    assert ("loss", 0.123) in p.values


# ---------------------------------------------------------------- numbers

@pytest.mark.parametrize("line, key, value", [
    ("    System/Peak GPU Memory (MB)=20,487", "System/Peak GPU Memory (MB)", 20487.0),
    ("    throughput/total_tokens=2,097,152", "throughput/total_tokens", 2097152.0),
    ("loss: 1,234.5", "loss", 1234.5),
    ("loss=1.5e-3", "loss", 0.0015),
    ("learning rate: 3E-4", "learning rate", 3e-4),
    ("Train Loss: -0.5", "Train Loss", -0.5),
    ("x: .5", "x", 0.5),
    ("val acc: 85.2%", "val acc", 85.2),
    ("time per iter: 12.5ms", "time per iter", 12.5),
    ("accuracy = 0.9", "accuracy", 0.9),
])
def test_numbers(line, key, value):
    assert parse_line(line).values == [(key, value)]


@pytest.mark.parametrize("text, check", [
    ("nan", math.isnan), ("NaN", math.isnan), ("inf", lambda v: v == math.inf),
    ("-inf", lambda v: v == -math.inf), ("Infinity", lambda v: v == math.inf),
])
def test_nan_and_inf_are_kept(text, check):
    (key, v), = parse_line(f"loss: {text}").values
    assert key == "loss" and check(v)


def test_stat_keys_prefixed_with_their_subject():
    assert parse_line("Model outputs stats | mean=0.12 std=0.034").values == [
        ("Model outputs stats mean", 0.12), ("Model outputs stats std", 0.034)]
    v = values("Gate stats | mean=0.5 std=0.08 min=0.19 max=0.83 | celestial_features_std=0.99")
    assert v == {"Gate stats mean": 0.5, "Gate stats std": 0.08, "Gate stats min": 0.19,
                 "Gate stats max": 0.83, "celestial_features_std": 0.99}


def test_non_stat_keys_are_not_prefixed():
    assert parse_line("Optimization summary | batch_size=12 learning_rate=0.003").values == [
        ("batch_size", 12.0), ("learning_rate", 0.003)]


@pytest.mark.parametrize("line, key", [
    ("Start time: 2025-10-27 13:15:54", "Start time"),
    ("date: 2025-10-27", "date"),
    ("ETA: 01:23:45", "ETA"),
    ("version: 1.2.3", "version"),
])
def test_dates_times_and_versions_are_not_numbers(line, key):
    p = parse_line(line)
    assert p.values == []
    assert p.text_values and p.text_values[0][0] == key


def test_epoch_summary_line():
    line = ("2025-10-26 12:12:31,469 INFO __main__: Epoch 1/3 complete [WARMUP 1/3] | train_loss=1.414947 "
            "val_loss=0.195179 lr=0.00100000 epoch_time=6328.44s")
    p = parse_line(line)
    assert p.context == {"epoch": 1.0}
    assert p.values == [("train_loss", 1.414947), ("val_loss", 0.195179), ("lr", 0.001), ("epoch_time", 6328.44)]


def test_plain_text_has_no_values():
    p = parse_line("2025-10-26 09:41:49,480 INFO __main__: Model initialized successfully")
    assert p.kind == "text" and p.values == [] and p.context == {}


def test_traceback_start():
    assert is_traceback_start("Traceback (most recent call last):")
    assert is_traceback_start("2025-10-26 ERROR x: Traceback (most recent call last):")
    assert not is_traceback_start("loss: 1.0")
