"""Runs written by the real trainers: Hugging Face ``Trainer`` on a tiny GPT-2 and a Lightning module
with ``CSVLogger``, trained here for a few seconds on the CPU, then loaded and diagnosed.

These are the files users point the tool at (an HF output folder with ``checkpoint-N/`` copies of
``trainer_state.json`` and a pickled ``training_args.bin``; Lightning ``version_N`` folders, a resumed
run among them), written by the libraries themselves rather than by hand.
"""
from __future__ import annotations

import math
import os

import pytest

import collapse_nb as cnb

torch = pytest.importorskip("torch")

VOCAB = 64


def _hf_run(out, max_steps=30, stop_at=None, accumulation=2):
    transformers = pytest.importorskip("transformers")
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=16, n_embd=16, n_layer=1, n_head=2))

    def data(n, seed):
        g = torch.Generator().manual_seed(seed)
        rows = []
        for _ in range(n):
            x = torch.randint(0, VOCAB, (16,), generator=g)
            rows.append({"input_ids": x, "labels": x})
        return rows

    class StopAt(TrainerCallback):          # a run killed part-way: training stops, the plan stays max_steps
        def on_step_end(self, args, state, control, **kw):
            if stop_at and state.global_step >= stop_at:
                control.should_training_stop = True
                control.should_save = True

    args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=4,
                             gradient_accumulation_steps=accumulation, max_steps=max_steps, logging_steps=2,
                             eval_strategy="steps", eval_steps=10, save_steps=10, report_to=[], learning_rate=1e-3,
                             use_cpu=True, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=data(64, 0),
                      eval_dataset={"wiki": data(8, 1), "code": data(8, 2)}, callbacks=[StopAt()])
    transformers.logging.set_verbosity_error()
    trainer.train()
    trainer.save_state()                     # as HF's example scripts do: trainer_state.json in the output folder
    return out


@pytest.fixture(scope="module")
def hf_run(tmp_path_factory):
    return _hf_run(tmp_path_factory.mktemp("hf") / "out")


@pytest.fixture(scope="module")
def hf_diagnosed(hf_run):
    run = cnb.load(hf_run)
    return run, cnb.diagnose(run)


def _by(findings, check):
    return [f for f in findings if f.check == check]


def test_hf_checkpoint_copies_of_the_history_are_read_once(hf_diagnosed):
    run, _ = hf_diagnosed
    repeats = [n for n in run.meta["notes"] if "repeats the history" in n and "read once" in n]
    assert len(repeats) == 3                                     # each checkpoint-N's inside the final one
    train = run.objective("train")
    assert len(train.rows) == 15                                 # logging_steps=2 over 30 steps, each once
    assert train.rows["step"].is_unique


def test_hf_each_eval_dataset_is_its_own_validation_series(hf_diagnosed):
    run, findings = hf_diagnosed
    cat = run.series
    val = cat[(cat["phase"] == "val") & (cat["role"] == "objective")]
    assert set(val["eval_set"]) == {"wiki", "code"}
    assert set(val["raw_names"].map(lambda r: r[0])) == {"eval_wiki_loss", "eval_code_loss"}
    for f in _by(findings, "overfitting") + _by(findings, "val_below_train"):
        assert "'code'" in f.title or "'wiki'" in f.title        # the set checked is named


def test_hf_run_average_is_a_summary_not_the_last_point(hf_diagnosed):
    run, _ = hf_diagnosed
    train = run.objective("train")
    assert train.rows["step"].max() == 30
    summary = run.scalars[run.scalars["raw_name"] == "train_loss"]
    assert len(summary) == 1                                     # HF's final run average, kept as a summary row
    assert not train.rows["raw_name"].eq("train_loss").any()


def test_hf_config_from_training_args_bin_through_the_safe_loader(hf_diagnosed):
    run, _ = hf_diagnosed
    assert run.config["gradient_accumulation_steps"] == 2
    assert run.config["lr_scheduler"] == "linear"                # an enum member rebuilt inertly, read as its value
    assert run.config["learning_rate"] == pytest.approx(1e-3)
    assert any("training_args.bin" in n and "inert placeholders" in n for n in run.meta["notes"])


def test_hf_chance_level_from_the_vocabulary(hf_diagnosed):
    _, findings = hf_diagnosed
    (chance,) = _by(findings, "chance_level_loss")
    assert chance.severity == "ok"
    assert f"ln {VOCAB}" in chance.title and f"{math.log(VOCAB):.2f}" in chance.title


def test_hf_schedule_and_completion_read_from_the_trainer_files(hf_diagnosed):
    _, findings = hf_diagnosed
    (lr,) = _by(findings, "lr_schedule_mismatch")
    assert lr.severity == "ok" and "linear decay" in lr.title
    assert not [f for f in findings if f.code == "run_incomplete"]       # max_steps reached: complete
    # GPT-2 ties its head to the input embedding: no block's projection is taken for the head
    (head,) = _by(findings, "output_head")
    assert head.severity == "info" and "tied" in head.summary


def test_hf_run_stopped_part_way_says_where(tmp_path):
    out = _hf_run(tmp_path / "out", max_steps=40, stop_at=12)
    findings = cnb.diagnose(cnb.load(out))
    (stopped,) = [f for f in findings if f.code == "run_incomplete"]
    assert stopped.details["reached"] == 12 and stopped.details["planned"] == 40
    assert "max_steps = 40" in stopped.summary


# ----------------------------------------------------------------------------- Lightning

@pytest.fixture(scope="module")
def lightning_logs(tmp_path_factory):
    L = pytest.importorskip("lightning")
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader, TensorDataset

    class Regressor(L.LightningModule):
        def __init__(self, lr=0.05):
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))

        def training_step(self, batch, i):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss, on_step=True, on_epoch=True)
            return loss

        def validation_step(self, batch, i):
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    root = tmp_path_factory.mktemp("pl")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=g)
    y = x.sum(1, keepdim=True)
    train = DataLoader(TensorDataset(x, y), batch_size=16)
    xv = torch.randn(64, 4, generator=g)                               # a held-out set of the same task
    val = DataLoader(TensorDataset(xv, xv.sum(1, keepdim=True)), batch_size=32)
    opts = dict(log_every_n_steps=4, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    torch.manual_seed(0)
    first = L.Trainer(max_epochs=3, logger=CSVLogger(root, name="exp"), **opts)
    first.fit(Regressor(), train, val)
    resumed = L.Trainer(max_epochs=5, logger=CSVLogger(root, name="exp"), **opts)   # a new version_1 folder
    resumed.fit(Regressor(), train, val, ckpt_path=first.checkpoint_callback.best_model_path)
    return root / "exp"


def test_lightning_step_and_epoch_values_are_one_series_at_step_resolution(lightning_logs):
    from collapse_nb.timeaxis import curve

    run = cnb.load(lightning_logs)
    train = curve(run, "train")                                        # the curve the checks read
    assert set(train["level"]) == {"step"}                             # *_epoch are per-epoch, not step points
    assert len(train) == 20                                            # 80 steps, one row every 4
    step_rows = run.scalars[run.scalars["raw_name"] == "train_loss_step"]
    assert sorted(train["value"]) == sorted(step_rows["value"])
    assert run.objective("val").found


def test_lightning_resumed_version_is_one_timeline(lightning_logs):
    run = cnb.load(lightning_logs)
    (resume,) = run.meta["resumes"]
    assert resume["source"].endswith("version_1/metrics.csv") and resume["after"].endswith("version_0/metrics.csv")
    from collapse_nb.timeaxis import curve

    steps = curve(run, "train")["step"]
    assert steps.is_monotonic_increasing and steps.is_unique and steps.iloc[-1] == 79
    findings = cnb.diagnose(run)
    assert not [f for f in findings if f.severity in ("warning", "critical")]   # a healthy regression
    (cov,) = [f for f in findings if f.code == "objective"]
    assert cov.details["resolution"] == "step"


@pytest.fixture(scope="module")
def lightning_two_val_sets(tmp_path_factory):
    """A 4-class classifier with two validation dataloaders, a StepLR schedule and the lr monitor, logged by
    TensorBoardLogger and CSVLogger at once."""
    L = pytest.importorskip("lightning")
    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
    from torch.utils.data import DataLoader, TensorDataset

    class Classifier(L.LightningModule):
        def __init__(self, lr=0.05, num_classes=4):
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, num_classes))

        def training_step(self, batch, i):
            x, y = batch
            out = self.net(x)
            loss = torch.nn.functional.cross_entropy(out, y)
            self.log("train/loss", loss, on_step=True, on_epoch=True)
            self.log("train/acc", (out.argmax(1) == y).float().mean(), on_step=False, on_epoch=True)
            return loss

        def validation_step(self, batch, i, dataloader_idx=0):
            x, y = batch
            out = self.net(x)
            self.log("val/loss", torch.nn.functional.cross_entropy(out, y))
            self.log("val/acc", (out.argmax(1) == y).float().mean())

        def configure_optimizers(self):
            opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr)
            return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, 2, 0.5)}

    g = torch.Generator().manual_seed(0)

    def data(n):
        x = torch.randn(n, 8, generator=g)
        return TensorDataset(x, x[:, :4].argmax(1))

    root = tmp_path_factory.mktemp("pl2")
    torch.manual_seed(0)
    trainer = L.Trainer(max_epochs=6, logger=[TensorBoardLogger(root, name="tb"), CSVLogger(root, name="csv")],
                        log_every_n_steps=5, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                        callbacks=[LearningRateMonitor()])
    trainer.fit(Classifier(), DataLoader(data(512), batch_size=32),
                [DataLoader(data(64), batch_size=32), DataLoader(data(64), batch_size=32)])
    return root


@pytest.mark.parametrize("logger", ["csv", "tb"])
def test_lightning_each_val_dataloader_is_its_own_set(lightning_two_val_sets, logger):
    run = cnb.load(lightning_two_val_sets / logger)
    cat = run.series
    val = cat[(cat["phase"] == "val") & (cat["role"] == "objective")]
    assert set(val["eval_set"]) == {"dataloader_idx_0", "dataloader_idx_1"}    # not two terms of one loss
    findings = cnb.diagnose(run)
    (vbt,) = _by(findings, "val_below_train")
    assert "dataloader_idx_" in vbt.title and 0.7 < vbt.details["ratio_median"] < 1.4   # not train/(val_0+val_1)
    (lr,) = _by(findings, "lr_schedule_mismatch")
    assert lr.severity == "ok" and "no scheduler" in lr.summary                 # StepLR is not in hparams.yaml
    (chance,) = _by(findings, "chance_level_loss")
    assert "ln 4" in chance.title


def test_hf_sequence_classifier_chance_is_its_labels_and_shuffled_eval_labels_stay_at_chance(tmp_path):
    pytest.importorskip("transformers")
    import numpy as np
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=32, num_labels=5,
                                                     max_position_embeddings=16))
    g = torch.Generator().manual_seed(0)

    def data(n, shuffled=False):          # the label is the first token mod 5; shuffled: a random label
        rows = []
        for _ in range(n):
            x = torch.randint(0, 50, (12,), generator=g)
            y = int(torch.randint(0, 5, (1,), generator=g)) if shuffled else int(x[0] % 5)
            rows.append({"input_ids": x, "labels": y})
        return rows

    def accuracy(p):
        return {"accuracy": float((np.argmax(p.predictions, -1) == p.label_ids).mean())}

    args = TrainingArguments(output_dir=str(tmp_path / "out"), per_device_train_batch_size=16, num_train_epochs=8,
                             logging_steps=5, eval_strategy="epoch", save_strategy="no", report_to=[],
                             learning_rate=3e-3, use_cpu=True, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=data(256), eval_dataset=data(64, shuffled=True),
                      compute_metrics=accuracy)
    trainer.train()
    trainer.save_state()
    trainer.save_model()                                   # config.json with architectures and id2label
    findings = cnb.diagnose(cnb.load(tmp_path / "out"))
    (chance,) = _by(findings, "chance_level_loss")
    assert "ln 5" in chance.title                          # the 5 labels, not the 50-token vocabulary
    (val,) = _by(findings, "val_at_chance")
    assert (val.code, val.severity) == ("val_at_chance", "critical")
    assert "id2label" in val.details["chance_from"] and "does not generalise" in val.summary
