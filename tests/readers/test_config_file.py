"""The ``config`` reader: YAML/JSON run configuration beside the logs."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

import collapse_nb
from collapse_nb.errors import NothingReadableError, UnreadableFileError
from collapse_nb.loading import sniff
from collapse_nb.readers.base import get_reader, read_head

READER = get_reader("config")

TRAINING_CONFIG = {
    "model": {"name": "pgat", "dropout": 0.1, "encoder": {"layers": 4}},
    "optimizer": {"name": "adamw", "learning_rate": 0.001, "weight_decay": 1e-4},
    "scheduler": {"warmup_epochs": 5, "min_lr": 1e-6},
    "training": {"clip_grad_norm": 1.0, "gradient_accumulation_steps": 3, "epochs": 50, "batch_size": 32},
    "tags": ["baseline", "v2"],
}

HF_TRAINING_ARGS = {
    "output_dir": "out", "overwrite_output_dir": False, "do_train": True, "evaluation_strategy": "epoch",
    "per_device_train_batch_size": 8, "gradient_accumulation_steps": 4, "learning_rate": 5e-05,
    "weight_decay": 0.01, "adam_beta1": 0.9, "adam_beta2": 0.999, "max_grad_norm": 1.0,
    "num_train_epochs": 3.0, "max_steps": -1, "lr_scheduler_type": "linear", "warmup_ratio": 0.0,
    "warmup_steps": 500, "seed": 42, "fp16": True, "report_to": ["tensorboard"],
}

HPARAMS_WITH_TAGS = """\
lr: 0.001
batch_size: 16
betas: !!python/tuple
- 0.9
- 0.999
activation: !!python/name:torch.nn.modules.activation.ReLU ''
args: !!python/object:argparse.Namespace
  weight_decay: 0.0001
  dropout: 0.2
evil: !!python/object/apply:os.system
- touch {marker}
"""


def score(path: Path) -> float:
    return READER.sniff(read_head(path), path)


def write_lightning_csv(path: Path) -> Path:
    rows = [{"lr-Adam": 0.001, "step": 9}, {"train_loss": 0.5, "epoch": 0, "step": 9},
            {"val_loss": 0.75, "epoch": 0, "step": 9}]
    keys = sorted(set().union(*rows))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    return path


# --------------------------------------------------------------------------- reading

def test_nested_yaml_is_flattened(tmp_path: Path):
    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump(TRAINING_CONFIG))
    r = READER.read(p)
    assert r.format == "config" and len(r.scalars) == 0 and list(r.scalars.columns) == ["raw_name", "value"]
    assert r.config["optimizer.learning_rate"] == 0.001
    assert r.config["model.encoder.layers"] == 4
    assert r.config["training.gradient_accumulation_steps"] == 3
    assert r.config["tags"] == ["baseline", "v2"]
    assert r.config["scheduler.min_lr"] == 1e-6


def test_yaml_1_1_exponents_are_coerced_centrally(tmp_path: Path):
    p = tmp_path / "config.yaml"
    p.write_text("learning_rate: 0.001\nwarmup_epochs: 5\nmin_lr: 1e-6\nweight_decay: 1e-4\n"
                 "clip_grad_norm: 1.0\ndropout: 0.1\ngradient_accumulation_steps: 3\n")
    assert READER.read(p).config["min_lr"] == "1e-6"      # what the file says (YAML 1.1: a string)
    run = collapse_nb.load(p)
    assert run.config == {"learning_rate": 0.001, "warmup_epochs": 5, "min_lr": 1e-6, "weight_decay": 1e-4,
                          "clip_grad_norm": 1.0, "dropout": 0.1, "gradient_accumulation_steps": 3}


def test_hf_training_args_json(tmp_path: Path):
    p = tmp_path / "training_args.json"
    p.write_text(json.dumps(HF_TRAINING_ARGS, indent=2))
    assert sniff(p)[0].name == "config"
    r = READER.read(p)
    assert r.config == HF_TRAINING_ARGS                   # flat already: every key as written
    cfg = collapse_nb.load(p).config
    assert cfg["learning_rate"] == 5e-05 and cfg["clip_grad_norm"] == 1.0
    assert cfg["gradient_accumulation_steps"] == 4 and cfg["batch_size"] == 8
    assert cfg["lr_scheduler"] == "linear" and cfg["warmup_steps"] == 500 and cfg["epochs"] == 3.0


def test_hf_model_config_json(tmp_path: Path):
    p = tmp_path / "config.json"
    p.write_text(json.dumps({"architectures": ["BertForMaskedLM"], "hidden_dropout_prob": 0.1,
                             "hidden_size": 768, "model_type": "bert", "id2label": {"0": "A", "1": "B"}}))
    assert score(p) > 0
    r = READER.read(p)
    assert r.config["id2label.1"] == "B"
    assert collapse_nb.load(p).config["dropout"] == 0.1


def test_hparams_with_python_tags_builds_no_object(tmp_path: Path):
    marker = tmp_path / "HACKED"
    p = tmp_path / "hparams.yaml"
    p.write_text(HPARAMS_WITH_TAGS.format(marker=marker))
    assert sniff(p)[0].name == "config"
    r = READER.read(p)
    assert not marker.exists()                                   # os.system was never called
    assert r.config["lr"] == 0.001
    assert r.config["betas"] == [0.9, 0.999]                     # a tuple becomes a list
    assert r.config["activation"] == "<python/name:torch.nn.modules.activation.ReLU>"
    assert r.config["args.__type__"] == "<python/object:argparse.Namespace>"
    assert r.config["args.weight_decay"] == 0.0001               # an object's fields are kept as data
    assert r.config["evil"] == "<python/object/apply:os.system>"
    assert any("python/object:argparse.Namespace" in n and "no object constructed" in n for n in r.notes)
    cfg = collapse_nb.load(p).config
    assert cfg["learning_rate"] == 0.001 and cfg["weight_decay"] == 0.0001 and cfg["dropout"] == 0.2
    with pytest.raises(yaml.constructor.ConstructorError):      # the global safe loader is untouched
        yaml.safe_load("x: !!python/tuple [1, 2]")


def test_duplicate_keys_noted(tmp_path: Path):
    p = tmp_path / "config.yaml"
    p.write_text("lr: 0.1\nbatch_size: 8\nlr: 0.2\n")
    r = READER.read(p)
    assert r.config["lr"] == 0.2 and any("'lr'" in n for n in r.notes)


def test_trainer_state_read_when_forced_drops_log_history(tmp_path: Path):
    p = tmp_path / "trainer_state.json"
    p.write_text(json.dumps({"global_step": 10, "train_batch_size": 8,
                             "log_history": [{"loss": 1.0, "step": 5}, {"loss": 0.5, "step": 10}]}))
    assert score(p) == 0
    r = READER.read(p)
    assert "log_history" not in r.config and r.config["train_batch_size"] == 8
    assert any("log_history" in n for n in r.notes)


# --------------------------------------------------------------------------- sniffing

@pytest.mark.parametrize("name, content", [
    ("trainer_state.json", json.dumps({"log_history": [{"loss": 1.0}], "learning_rate": 1e-3,
                                       "train_batch_size": 8}, indent=2)),
    ("metrics.json", '{"iteration": 19, "lr": 0.01, "total_loss": 1.5}\n{"iteration": 39, "lr": 0.01}\n'),
    ("log.json", json.dumps([{"epoch": 0, "lr": 0.1, "loss": 1.0}])),
    ("metrics.csv", "epoch,lr,loss\n0,0.1,1.0\n"),
    ("list.yaml", "- lr\n- batch_size\n"),
    ("train.log", "lr: 0.1\nloss: 0.5\nlr: 0.1\nloss: 0.4\nbatch_size: 8\n"),   # repeated keys: a log
    ("notes.txt", "just some text about lr and batch_size\n"),
    ("random.yaml", "name: my-run\nauthor: me\n"),                              # no hyper-parameter at all
    ("empty.yaml", ""),
])
def test_sniff_rejects(tmp_path: Path, name: str, content: str):
    p = tmp_path / name
    p.write_text(content)
    assert score(p) == 0


def test_one_json_record_of_numbers_is_rather_a_metrics_log(tmp_path: Path):
    p = tmp_path / "log.json"
    p.write_text('{"iter": 0, "lr": 0.1, "loss": 1.0}\n')       # a JSON-lines log with one record so far
    assert 0 < score(p) < 0.5
    assert sniff(p)[0].name != "config"


def test_sniff_without_extension(tmp_path: Path):
    p = tmp_path / "run_args"
    p.write_text("learning_rate: 0.0003\nbatch_size: 64\nmax_epochs: 10\nexperiment: foo\n")
    assert score(p) > 0
    assert collapse_nb.load(p, format="config").config["learning_rate"] == 0.0003


def test_sniff_config_beyond_the_sniff_window(tmp_path: Path):
    p = tmp_path / "model_config.json"
    big = {"learning_rate": 0.01, "dropout": 0.3, "id2label": {str(i): f"label_{i}" for i in range(5000)}}
    p.write_text(json.dumps(big, indent=2))
    assert p.stat().st_size > 64 * 1024
    assert score(p) > 0
    assert READER.read(p).config["id2label.4999"] == "label_4999"


def test_sniff_prefers_known_names(tmp_path: Path):
    a, b = tmp_path / "hparams.yaml", tmp_path / "other.yaml"
    for p in (a, b):
        p.write_text("lr: 0.1\nbatch_size: 8\n")
    assert score(a) > score(b) > 0


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize("content, match", [
    ("", "empty"),
    ("a: [1, 2\nb: 3\n", "not valid YAML or JSON"),
    ("- a\n- b\n", "mapping"),
    ("null\n", "no configuration"),
    ("\x00\x01\x02binary" * 100, "binary"),
])
def test_clear_errors(tmp_path: Path, content: str, match: str):
    p = tmp_path / "config.yaml"
    p.write_text(content)
    with pytest.raises(UnreadableFileError, match=match):
        READER.read(p)


def test_alias_bomb_is_refused_quickly(tmp_path: Path):
    lines = ["a0: &a0 {lr: 0.1, b: 1, c: 2, d: 3, e: 4, f: 5, g: 6, h: 7, i: 8, j: 9}"]
    lines += [f"a{i}: &a{i} {{" + ", ".join(f"k{j}: *a{i - 1}" for j in range(10)) + "}" for i in range(1, 9)]
    p = tmp_path / "config.yaml"
    p.write_text("\n".join(lines) + "\n")
    assert score(p) == 0
    with pytest.raises(UnreadableFileError, match="aliases"):
        READER.read(p)


# --------------------------------------------------------------------------- merging with logs

def test_directory_with_log_and_config(tmp_path: Path):
    write_lightning_csv(tmp_path / "metrics.csv")
    (tmp_path / "hparams.yaml").write_text(HPARAMS_WITH_TAGS.format(marker=tmp_path / "HACKED"))
    run = collapse_nb.load(tmp_path)
    assert sorted(run.meta["formats"]) == ["config", "lightning-csv"]
    cfg = run.meta["config"]
    assert cfg["learning_rate"] == 0.001 and cfg["batch_size"] == 16 and cfg["weight_decay"] == 0.0001
    assert run.meta["config_sources"]["learning_rate"].endswith("hparams.yaml")
    assert run.meta["config_raw"][str(tmp_path / "hparams.yaml")]["betas"] == [0.9, 0.999]
    assert run.epochs["train_loss"].tolist() == [0.5] and run.epochs["val_loss"].tolist() == [0.75]
    assert not (tmp_path / "HACKED").exists()


def test_two_config_files_conflict_is_kept(tmp_path: Path):
    write_lightning_csv(tmp_path / "metrics.csv")
    (tmp_path / "hparams.yaml").write_text("lr: 0.001\n")
    (tmp_path / "training_args.json").write_text(json.dumps({"learning_rate": 0.002, "seed": 1}))
    run = collapse_nb.load(tmp_path)
    assert run.config["learning_rate"] == 0.001 and run.config["seed"] == 1
    assert run.meta["config_conflicts"][0]["key"] == "learning_rate"


def test_directory_with_only_a_config_has_no_log(tmp_path: Path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(TRAINING_CONFIG))
    with pytest.raises(NothingReadableError):
        collapse_nb.load(tmp_path)


def test_corpus_directories_gain_no_config(corpus):
    # the real metrics files are never mistaken for configuration
    for folder, name in (("pl-opal", "metrics.csv"), ("hf-jaong", "trainer_state.json"),
                         ("d2-kevin", "metrics.json"), ("chainer-dcgan", "log"),
                         ("keras-brats", "training.log"), ("mm-fruit", "scalars.json")):
        assert score(corpus(folder, name)) == 0
