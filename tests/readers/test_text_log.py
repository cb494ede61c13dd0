"""The free-form text-log reader, on logs written here by Python's ``logging`` and by ``print``, and on real logs."""
from __future__ import annotations

import contextlib
import logging
import math
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import collapse_nb

TSL_FMT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DASH_FMT = "%(asctime)s - %(levelname)s - %(message)s"
FORMATS = [TSL_FMT, DASH_FMT, "%(asctime)s - %(name)s - %(levelname)s - %(message)s",
           "%(levelname)s:%(name)s:%(message)s", "[%(asctime)s] %(levelname)s: %(message)s"]


@contextlib.contextmanager
def file_logger(path: Path, fmt: str, mode: str = "a"):
    """A real ``logging`` logger writing to ``path`` with the given format (removed afterwards)."""
    logger = logging.getLogger(f"trainer.{uuid.uuid4().hex[:8]}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = logging.FileHandler(path, mode=mode, encoding="utf-8")
    handler.setFormatter(logging.Formatter(fmt))
    logger.addHandler(handler)
    try:
        yield logger
    finally:
        handler.close()
        logger.removeHandler(handler)


def line_of(path: Path, text: str, nth: int = 0) -> int:
    """1-based number of the ``nth`` line of ``path`` containing ``text``."""
    hits = [i for i, ln in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if text in ln]
    return hits[nth]


def table(run, names) -> list[tuple]:
    """(raw_name, value, segment, phase, epoch, batch, step) of the rows with these raw names, in file order."""
    s = run.scalars[run.scalars["raw_name"].isin(names)].sort_values("line", kind="stable")
    def py(v):
        return None if v is pd.NA or (isinstance(v, float) and math.isnan(v)) else v
    return [tuple(py(v) for v in row) for row in s[["raw_name", "value", "segment", "phase", "epoch", "batch",
                                                     "step"]].astype(object).itertuples(index=False)]


# ---------------------------------------------------------------- Python logging (the seed's training_run.log)

LOSSES = {1: [1.5, 1.25, 1.0, 0.75], 2: [0.9, 0.8, 0.7, 0.6]}
SUMMARY = {1: (1.111111, 0.155555, 0.001), 2: (0.777777, 0.111111, 0.002)}


def write_logging_run(path: Path, fmt: str, lr: float = 0.003, epochs=(1, 2), crash_after: int | None = None):
    with file_logger(path, fmt) as log:
        log.info("Starting PRODUCTION training run")
        log.info("Heavy-duty overnight configuration enabled")
        log.info(f"Optimization summary | batch_size=12 learning_rate={lr} patience=999")
        log.info("Gradient accumulation configured | steps=3 effective_batch_size=36")
        for e in epochs:
            log.info(f"Epoch {e}/3 - production training")
            for i, loss in enumerate(LOSSES[e]):
                log.info(f"Batch {i * 10}/40 | loss={loss} elapsed={12.5 + i}s")
                if i == 0:
                    log.debug(f"Model outputs stats | mean=0.1 std={0.5 / e}")
                    log.debug("Scaled targets stats | mean=0.07 std=0.86")
                if crash_after is not None and e == epochs[-1] and i == crash_after:
                    try:
                        raise RuntimeError("CUDA out of memory")
                    except RuntimeError:
                        log.exception("training failed")
                    return
            tl, vl, l_r = SUMMARY[e]
            log.info(f"Epoch {e}/3 complete | train_loss={tl} val_loss={vl} lr={l_r:.8f}")


@pytest.mark.parametrize("fmt", FORMATS)
def test_logging_run_scalars_exact(tmp_path, fmt):
    p = tmp_path / "training_run.log"
    write_logging_run(p, fmt)
    run = collapse_nb.load(p)
    assert run.meta["formats"] == ["text-log"]
    # "Epoch 1/3 - production training" sets the phase of the batch lines under it
    expected = [("loss", loss, 0, "train", float(e), i * 10, None) for e in (1, 2) for i, loss in enumerate(LOSSES[e])]
    assert table(run, ["loss"]) == expected
    assert table(run, ["train_loss", "val_loss"]) == [
        (k, SUMMARY[e][j], 0, k[:-5], float(e), None, None)
        for e in (1, 2) for j, k in enumerate(("train_loss", "val_loss"))]
    assert run.meta["restarts"] == []


def test_logging_run_epochs_summary_beats_batch_mean(tmp_path):
    p = tmp_path / "training_run.log"
    write_logging_run(p, TSL_FMT)
    ep = collapse_nb.load(p).epochs
    assert list(ep["epoch"]) == [1.0, 2.0]
    for e in (1, 2):
        row = ep[ep["epoch"] == e].iloc[0]
        assert row["train_loss"] == SUMMARY[e][0] != pytest.approx(np.mean(LOSSES[e]))
        assert row["val_loss"] == SUMMARY[e][1]
        assert row["lr"] == SUMMARY[e][2]


def test_logging_run_outputs_and_wall_time(tmp_path):
    p = tmp_path / "training_run.log"
    write_logging_run(p, TSL_FMT)
    run = collapse_nb.load(p)
    out = run.outputs
    assert list(out["epoch"]) == [1.0, 2.0] and list(out["batch"]) == [0, 0]
    assert list(out["pred_std"]) == [0.5, 0.25]
    assert list(out["target_std"]) == [0.86, 0.86]
    assert out["std_ratio"].tolist() == pytest.approx([0.5 / 0.86, 0.25 / 0.86])
    assert run.scalars["wall_time"].notna().all()


def test_logging_run_config_and_skipped_lines(tmp_path):
    p = tmp_path / "training_run.log"
    write_logging_run(p, TSL_FMT)
    run = collapse_nb.load(p)
    assert run.config["learning_rate"] == 0.003
    assert run.config["batch_size"] == 12
    assert run.config["gradient_accumulation_steps"] == 3
    skipped = run.meta["files"][0]["skipped"]
    assert skipped["count"] == 1 == skipped["by_reason"]["no numeric value (message text)"]
    assert skipped["examples"][0]["line"] == 2 and "Heavy-duty" in skipped["examples"][0]["text"]
    assert "at line 2" in run.summary()


def test_restarted_run_becomes_a_segment(tmp_path):
    p = tmp_path / "training_run.log"
    write_logging_run(p, TSL_FMT, epochs=(1, 2), crash_after=1)
    write_logging_run(p, TSL_FMT, lr=0.001, epochs=(1,))          # appended: the counter goes back
    run = collapse_nb.load(p)
    start = line_of(p, "Optimization summary", nth=1)
    assert run.meta["restarts"] == [{"source": str(p), "line": start, "segment": 1}]
    s = run.scalars
    assert (s.loc[s["line"] < start, "segment"] == 0).all()
    assert (s.loc[s["line"] >= start, "segment"] == 1).all()
    assert run.config["learning_rate"] == 0.001                    # the later run's opening lines win
    seg1 = [r for r in table(run, ["loss"]) if r[2] == 1]
    assert seg1 == [("loss", loss, 1, "train", 1.0, i * 10, None) for i, loss in enumerate(LOSSES[1])]
    ep = run.epochs.set_index(["segment", "epoch"])
    assert ep.loc[(0, 1.0), "train_loss"] == SUMMARY[1][0]
    assert ep.loc[(0, 2.0), "train_loss"] == pytest.approx(np.mean(LOSSES[2][:2]))   # crashed: no summary
    assert ep.loc[(1, 1.0), "train_loss"] == SUMMARY[1][0]
    tb = line_of(p, "Traceback (most recent call last):")
    assert any(f"traceback at line {tb}: RuntimeError: CUDA out of memory" in n for n in run.meta["notes"])


def test_restart_at_a_header_line_keeps_its_context(tmp_path):
    p = tmp_path / "train.log"
    p.write_text("".join(f"Epoch 1 | Batch {b} | loss={v}\n" for b, v in [(0, 1.0), (1, 0.9), (0, 1.1), (1, 0.8)]))
    run = collapse_nb.load(p)
    assert run.meta["restarts"] == [{"source": str(p), "line": 3, "segment": 1}]
    assert table(run, ["loss"]) == [("loss", 1.0, 0, None, 1.0, 0, None), ("loss", 0.9, 0, None, 1.0, 1, None),
                                    ("loss", 1.1, 1, None, 1.0, 0, None), ("loss", 0.8, 1, None, 1.0, 1, None)]


# ---------------------------------------------------------------- the seed's diagnostic blocks (print style)

PARAMS = ["encoder.fc.weight", "encoder.fc.bias", "celestial_key_projection.weight"]   # the last one is dead


def diag_values(b: int):
    grads = {"encoder.fc.weight": 0.01 * (b + 1), "encoder.fc.bias": 0.002 + b / 1000,
             "celestial_key_projection.weight": 0.0}
    return grads, 1.0 + b / 10, 0.5 / (b + 1), 0.4 + b / 5


def write_diag_log(path: Path, n_batches: int = 4, validation: bool = False):
    """The seed's training_diagnostic.log: each optimizer block is written BEFORE its batch's header."""
    out = ["CELESTIAL ENHANCED PGAT - TRAINING DIAGNOSTICS", "=" * 80, "Config: configs/prod.yaml",
           "Start time: 2025-10-27 13:15:54", "=" * 80, "", ""]
    for b in range(n_batches):
        grads, loss, pstd, tstd = diag_values(b)
        out.append("--- OPTIMIZER STEP DIAGNOSTICS ---")
        for name in PARAMS:
            change = 0.0 if grads[name] == 0 else 0.001 * (b + 1)
            out += [f"{name}:", f"  weight_norm_before: {10 + b:.8f}", f"  weight_norm_after: {10 + b + change:.8f}",
                    f"  weight_change: {change:.8f}", f"  grad_norm: {grads[name]:.8f}"]
        out += ["optimizer_step_executed: True", "current_lr: 0.00100000", "", "=" * 80,
                f"EPOCH 1 | BATCH {b}/{n_batches} | TRAINING MODE", "=" * 80,
                f"raw_loss (full batch loss): {loss:.8f}", f"loss (scaled for backward): {loss / 3:.8f}",
                "effective_cycle (gradient_accumulation_steps): 3",
                "NOTE: NOW ACCUMULATING 'loss' (scaled), NOT 'raw_loss'",
                f"y_pred_for_loss mean/std: 0.010000 / {pstd:.6f}",
                f"y_true_for_loss mean/std: 0.020000 / {tstd:.6f}", ""]
    if validation:
        for b, loss in enumerate([0.25, 0.35]):
            out += ["=" * 80, f"EPOCH 1 | BATCH {b}/2 | VALIDATION MODE", "=" * 80,
                    f"raw_loss (full batch loss): {loss:.8f}", ""]
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def test_diag_grads_one_row_per_param_per_step(tmp_path):
    p = tmp_path / "training_diagnostic.log"
    write_diag_log(p)
    g = collapse_nb.load(p).grads
    assert len(g) == 4 * len(PARAMS)
    assert not g.duplicated(["epoch", "batch", "param"]).any()
    for b in range(4):
        grads, *_ = diag_values(b)
        for name in PARAMS:
            row = g[(g["batch"] == b) & (g["param"] == name)].iloc[0]
            assert row["epoch"] == 1.0        # the block before "EPOCH 1 | BATCH b" belongs to batch b
            assert row["grad_norm"] == round(grads[name], 8)
            change = 0.0 if grads[name] == 0 else 0.001 * (b + 1)
            assert row["weight_norm"] == pytest.approx(10 + b + change, abs=1e-8)
            assert row["weight_norm_before"] == 10 + b
            assert row["update_norm"] == pytest.approx(change, abs=1e-8)
    dead = g[g["param"] == "celestial_key_projection.weight"]
    assert len(dead) == 4 and (dead["grad_norm"] == 0.0).all() and (dead["update_norm"] == 0.0).all()


def test_diag_scalars_and_outputs(tmp_path):
    p = tmp_path / "training_diagnostic.log"
    write_diag_log(p)
    run = collapse_nb.load(p)
    assert table(run, ["raw_loss (full batch loss)"]) == [
        ("raw_loss (full batch loss)", round(diag_values(b)[1], 8), 0, "train", 1.0, b, None) for b in range(4)]
    lr = table(run, ["current_lr"])
    assert [(r[1], r[4], r[5]) for r in lr] == [(0.001, 1.0, b) for b in range(4)]
    out = run.outputs
    assert list(out["batch"]) == [0, 1, 2, 3] and (out["phase"] == "train").all()
    assert out["pred_mean"].tolist() == [0.01] * 4 and out["target_mean"].tolist() == [0.02] * 4
    assert out["pred_std"].tolist() == [round(diag_values(b)[2], 6) for b in range(4)]
    assert out["target_std"].tolist() == [round(diag_values(b)[3], 6) for b in range(4)]
    assert out["std_ratio"].tolist() == pytest.approx((out["pred_std"] / out["target_std"]).tolist())
    assert run.config["gradient_accumulation_steps"] == 3          # logged at every batch, one value
    ep = run.epochs
    assert ep["train_loss"].tolist() == pytest.approx([np.mean([diag_values(b)[1] for b in range(4)])])
    assert ep["lr"].tolist() == [0.001]
    assert any("before the header" in n for n in run.meta["notes"])
    skipped = run.meta["files"][0]["skipped"]
    assert [e["line"] for e in skipped["examples"][:2]] == [3, 4]            # "Config: ..." and "Start time: ..."
    assert run.meta["config_raw"][str(p)]["Start time"] == "2025-10-27 13:15:54"


def test_validation_batches_after_training_batches_are_not_a_restart(tmp_path):
    p = tmp_path / "training_diagnostic.log"
    write_diag_log(p, validation=True)
    run = collapse_nb.load(p)
    assert run.meta["restarts"] == []
    val = run.metric("loss", "val")
    assert val["value"].tolist() == [0.25, 0.35]
    assert val["epoch"].tolist() == [1.0, 1.0] and val["batch"].tolist() == [0, 1]
    ep = run.epochs
    assert len(ep) == 1 and ep["val_loss"].iloc[0] == pytest.approx(0.3)


def test_batch_counters_per_phase(tmp_path):
    """An evaluation loop counts from 0 again each time (no restart); the training counter going back is one."""
    p = tmp_path / "train.log"
    heads = [("TRAINING", 0), ("TRAINING", 1), ("VALIDATION", 0), ("VALIDATION", 1), ("TRAINING", 2),
             ("VALIDATION", 0), ("VALIDATION", 1), ("TRAINING", 0)]
    p.write_text("".join(f"EPOCH 1 | BATCH {b}/9 | {m} MODE\nraw_loss: {i}\n" for i, (m, b) in enumerate(heads)))
    run = collapse_nb.load(p)
    assert run.meta["restarts"] == [{"source": str(p), "line": 15, "segment": 1}]     # the header that restarts
    assert table(run, ["raw_loss"])[5] == ("raw_loss", 5.0, 0, "val", 1.0, 0, None)


# ---------------------------------------------------------------- nanoGPT and OLMo

def write_nanogpt(path: Path):
    out = ["tokens per iteration will be: 491,520", "Initializing a new model from scratch"]
    for it in range(0, 30, 10):
        if it % 20 == 0:
            out.append(f"step {it}: train loss {4 - it / 100:.4f}, val loss {4.2 - it / 100:.4f}")
        out.append(f"iter {it}: loss {4.1 - it / 100:.4f}, time {100 + it:.2f}ms, mfu {12 + it / 10:.2f}%")
    path.write_text("\n".join(out) + "\n")


def test_nanogpt(tmp_path):
    p = tmp_path / "train.log"
    write_nanogpt(p)
    run = collapse_nb.load(p)
    s = run.scalars
    it = s[s["raw_name"] == "loss"]
    assert it["step"].tolist() == [0, 10, 20] and it["value"].tolist() == [4.1, 4.0, 3.9]
    assert run.metric("loss", "val")[["step", "value"]].values.tolist() == [[0, 4.2], [20, 4.0]]
    assert run.metric("loss", "train")[["step", "value"]].values.tolist() == [[0, 4.0], [20, 3.8]]
    assert s.loc[s["raw_name"] == "time", "value"].tolist() == [100.0, 110.0, 120.0]
    assert s.loc[s["raw_name"] == "tokens per iteration will be", "value"].tolist() == [491520.0]


def write_olmo(path: Path, steps: int = 3):
    head = "2025-12-12 11:05:{:02d}.009\tquick-rain-shines-fin-03:0\tolmo.train:979\tINFO\t"
    out = [head.format(0) + "CLI environment prepared"]
    for s in range(1, steps + 1):
        out += [head.format(s) + f"[step={s}/15000,epoch=0]", f"    optim/total_grad_norm={0.2 + s / 100:.4f}",
                f"    train/CrossEntropyLoss={3 - s / 10:.3f}", f"    throughput/total_tokens={s * 2_097_152:,}",
                f"    System/Peak GPU Memory (MB)={111_476 + s:,}"]
    out += ["Traceback (most recent call last):", '  File "run.py", line 936, in main', "    run(args)",
            "torch.distributed.elastic.multiprocessing.api.SignalException: Process 9724 got signal: 15"]
    path.write_text("\n".join(out) + "\n")


def test_olmo(tmp_path):
    p = tmp_path / "training.log"
    write_olmo(p)
    run = collapse_nb.load(p)
    s = run.scalars
    tok = s[s["raw_name"] == "throughput/total_tokens"]
    assert tok["step"].tolist() == [1, 2, 3] and tok["value"].tolist() == [2097152.0, 4194304.0, 6291456.0]
    assert (tok["epoch"] == 0).all()
    gn = run.metric("grad_norm")
    assert gn["raw_name"].astype(str).unique().tolist() == ["optim/total_grad_norm"]
    assert gn["value"].tolist() == [0.21, 0.22, 0.23]
    assert run.metric("loss", "train")["value"].tolist() == [2.9, 2.8, 2.7]
    assert s.loc[s["raw_name"] == "System/Peak GPU Memory (MB)", "value"].tolist() == [111477.0, 111478.0, 111479.0]
    tb = line_of(p, "Traceback")
    assert f"{p}: traceback at line {tb}: torch.distributed.elastic.multiprocessing.api.SignalException: " \
           "Process 9724 got signal: 15" in run.meta["notes"]
    assert not s["raw_name"].astype(str).str.contains("signal").any()      # the exception line is no metric


def test_a_step_counted_within_each_epoch_is_not_a_restart(tmp_path):
    """pix2pix's loss_log.txt counts 'iters' from the start of each epoch: a new epoch, not a new run."""
    p = tmp_path / "loss_log.txt"
    lines = ["================ Training Loss (Mon Jan  1 00:00:00 2024) ================"]
    for e in (1, 2, 3):
        for it in (100, 200, 300):
            lines.append(f"(epoch: {e}, iters: {it}, time: 0.126, data: 0.002) G_GAN: {e + it / 1000:.3f} "
                         f"G_L1: 21.767 D_real: 0.872 D_fake: 0.068 ")
    p.write_text("\n".join(lines) + "\n")
    run = collapse_nb.load(p)
    assert run.meta["restarts"] == []
    g = run.scalars[run.scalars["raw_name"] == "G_GAN"]
    assert g["segment"].tolist() == [0] * 9 and g["epoch"].tolist() == [1.0] * 3 + [2.0] * 3 + [3.0] * 3


@pytest.mark.parametrize("line, expected", [
    ("Epoch {e}: Train Loss={t}, Val Loss={v}", {"Train Loss": "train", "Val Loss": "val"}),
    ("epoch {e} | train_loss {t} | valid_loss {v}", {"train_loss": "train", "valid_loss": "val"}),
    ("Epoch {e}/3, Train Loss: {t}, Test Acc: {v}%", {"Train Loss": "train", "Test Acc": "test"}),
])
def test_train_and_val_on_one_line_take_their_phase_from_their_own_words(tmp_path, line, expected):
    p = tmp_path / "train.log"
    with file_logger(p, "%(asctime)s - %(levelname)s - %(message)s") as log:
        for e, (t, v) in enumerate([(1.5, 1.6), (1.2, 1.3), (1.0, 1.25)], start=1):
            log.info(line.format(e=e, t=t, v=v))
    run = collapse_nb.load(p)
    got = run.scalars.groupby("raw_name", observed=True)["phase"].agg(lambda x: set(x.astype(str)))
    assert {k: got[k] for k in expected} == {k: {ph} for k, ph in expected.items()}
    assert run.scalars.groupby("raw_name", observed=True)["epoch"].nunique().min() == 3


def test_word_language_model_batches_and_valid_loss(tmp_path):
    """PyTorch's examples/word_language_model prints '|   200/ 2983 batches |' and '| valid loss  5.12 |'."""
    p = tmp_path / "lm.log"
    lines = []
    for e in (1, 2):
        for b in (200, 400):
            lines.append(f"| epoch {e:3d} | {b:5d}/ 2983 batches | lr 20.00 | ms/batch 45.20 "
                         f"| loss {7 - e - b / 1000:5.2f} "
                         f"| ppl {1000.0:8.2f}")
        lines.append("-" * 89)
        lines.append(f"| end of epoch {e:3d} | time: 140.20s | valid loss {5.5 - e / 10:5.2f} | valid ppl {245.0:8.2f}")
    p.write_text("\n".join(lines) + "\n")
    run = collapse_nb.load(p)
    s = run.scalars
    train = s[(s["raw_name"] == "loss")]
    assert train["batch"].tolist() == [200, 400, 200, 400] and set(train["phase"].dropna()) <= {"train"}
    val = s[s["raw_name"] == "valid loss"]
    assert val["phase"].tolist() == ["val", "val"] and val["batch"].isna().all()


def test_a_validation_line_with_its_own_values_does_not_make_later_lines_validation(tmp_path):
    """Megatron: 'validation loss at iteration 100 | lm loss value: ...' between training iterations."""
    p = tmp_path / "megatron.log"
    lines = []
    for it in range(10, 310, 10):
        lines.append(f" iteration {it:8d}/ 1716613 | consumed samples: {it * 256:12d} | learning rate: 5.839E-06 | "
                     f"lm loss: {10 - it / 100:.6E} | loss scale: 2048.0 | number of skipped iterations:   0 |")
        if it % 100 == 0:
            lines.append("-" * 100)
            lines.append(f" validation loss at iteration {it} | lm loss value: {9 - it / 100:.6E} | "
                         f"lm loss PPL: {8000.0 - it:.6E} | ")
            lines.append("-" * 100)
    p.write_text("\n".join(lines) + "\n")
    from collapse_nb.readers import _text_jit
    from collapse_nb.readers.text_log import TextLogReader
    for engine in ("python", "numpy") + (("jit",) if _text_jit.AVAILABLE else ()):
        raw = TextLogReader(engine=engine).read(p).scalars
        phase = raw["phase"] if "phase" in raw else pd.Series([None] * len(raw))
        assert phase[raw["raw_name"] == "lm loss"].isna().all(), engine         # no carried-over "val"
        assert phase[raw["raw_name"] == "lm loss value"].tolist() == ["val"] * 3, engine
    run = collapse_nb.load(p)
    s = run.scalars
    val = s[s["raw_name"] == "lm loss value"]
    assert val["phase"].tolist() == ["val"] * 3 and val["step"].tolist() == [100, 200, 300]
    assert run.objective("train").names == ["lm_loss"] and len(run.objective("train").rows) == 30


def test_an_evaluating_section_makes_its_lines_validation(tmp_path):
    p = tmp_path / "dpo.log"
    p.write_text("***** Running training *****\n***** Evaluating rewards, Epoch 1/1 *****\n"
                 "chosen: 0.0, rejected: 0.0, loss: 0.693359375\nBeginning of Epoch 1/1, Total Micro Batches 4708\n")
    s = collapse_nb.load(p).scalars
    assert s.loc[s["raw_name"] == "loss", "phase"].tolist() == ["val"]


# ----------------------------------------------------------------------------- counter totals: the plan

def _logging_run(path, lines):
    import logging

    logger = logging.getLogger(f"cnb-test-{path.name}")
    logger.propagate = False
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    for line in lines:
        logger.info(line)
    handler.close()
    logger.removeHandler(handler)
    return path


def test_epoch_counter_total_is_the_planned_length(tmp_path):
    import collapse_nb as cnb

    lines = [f"Epoch {e}/10 | Batch {b}/5 | loss={2.0 * 0.97 ** (5 * e + b):.4f}" for e in range(1, 4)
             for b in range(1, 6)]
    run = cnb.load(_logging_run(tmp_path / "train.log", lines))
    assert run.config["epochs"] == 10                                  # the batch total (5) is not a plan
    assert run.meta["config_sources"]["epochs"] == str(tmp_path / "train.log")
    assert run.meta["config_lines"]["epochs"] == "line 1 ('Epoch 1/10')"
    stopped = [f for f in cnb.diagnose(run) if f.code == "run_incomplete"]
    assert stopped and stopped[0].details["reached"] == 3 and stopped[0].details["planned"] == 10


def test_step_counter_total_without_epochs(tmp_path):
    from collapse_nb.readers._text_counters import counter_totals

    p = _logging_run(tmp_path / "a.log", [f"step {s}/1000 loss={1.0 / s:.4f}" for s in range(1, 30)])
    assert counter_totals(p)["max_steps"][0] == 1000
    q = _logging_run(tmp_path / "b.log", [f"Epoch {e}/3 step {s}/200 loss=1.0" for e in range(1, 3) for s in (1, 2)])
    assert set(counter_totals(q)) == {"epochs"}                        # a step counter within epochs: not a plan


def test_counter_totals_that_disagree_state_no_plan(tmp_path):
    from collapse_nb.readers._text_counters import counter_totals

    lines = [f"Epoch {e}/3 loss=1.0" for e in range(1, 4)] + [f"Epoch {e}/8 loss=1.0" for e in range(1, 4)]
    assert counter_totals(_logging_run(tmp_path / "c.log", lines)) == {}
    dates = ["2024/03/05 12:00 loss=1.0", "lr 1e-3 ratio 3/4 loss=0.9"]
    assert counter_totals(_logging_run(tmp_path / "d.log", dates)) == {}
