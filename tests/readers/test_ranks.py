"""Several ranks of one distributed run: a file per rank, or one file of prefixed lines, read as one run.

The logs are written with Python ``logging`` as each rank's process would (``tests/rank_logs.py``).
"""
from __future__ import annotations

import pytest

import collapse_nb as cnb
from collapse_nb.discovery import find_runs
from collapse_nb.ranks import one_rank, rank_from_path, without_rank
from collapse_nb.readers._text_ranks import srun_labelled
from collapse_nb.readers.text_log import TextLogReader
from collapse_nb.timeaxis import curve

from ..rank_logs import rank_values, write_interleaved, write_rank_files


@pytest.mark.parametrize("path, rank", [
    ("rank_3.log", 3), ("rank3.log", 3), ("log_rank3.txt", 3), ("train-rank-03.out", 3), ("RANK2.log", 2),
    ("run/rank_1/model.pt", 1), ("ckpt_rank3.pt", 3), ("dp_rank_2.log", 2),
    ("worker_3.log", None), ("local_rank_2.log", None), ("node_rank1/out.log", None), ("ranking_3.txt", None),
    ("mp_rank_00_model_states.pt", None), ("zero_pp_rank_0_mp_rank_00_optim_states.pt", None),
    ("iter_0001000/mp_rank_00/model_optim_rng.pt", None), ("lora_rank_8/train.log", None), ("train.log", None),
])
def test_the_rank_a_file_name_states(path, rank):
    assert rank_from_path(path) == rank


def test_ranks_copies_of_one_file_share_a_name():
    assert without_rank("ck/rank_0/model.pt") == without_rank("ck/rank_1/model.pt") == "ck/rank_*/model.pt"
    assert without_rank("ck/mp_rank_00/model.pt") == "ck/mp_rank_00/model.pt"


def test_a_file_per_rank_is_one_run_with_a_rank_column(tmp_path):
    write_rank_files(tmp_path / "run", rank_values(n_ranks=4, steps=200))
    assert [r.name for r in find_runs(tmp_path / "run")] == ["."]
    run = cnb.load(tmp_path / "run")
    s = run.scalars
    assert str(s["rank"].dtype) == "Int64"
    assert run.meta["ranks"] == [0, 1, 2, 3]
    loss = s[s["name"] == "loss"]
    assert loss.groupby("rank").size().to_dict() == {0: 200, 1: 200, 2: 200, 3: 200}
    assert {f["source"].rsplit("/", 1)[-1] for f in run.meta["files"] if f["rows"]} == \
        {"rank_0.log", "rank_1.log", "rank_2.log", "rank_3.log"}     # no rank's file is taken for a copy of another
    assert run.meta["restarts"] == []
    assert len(curve(run, "train")) == 200
    assert run.series.set_index("name").loc["loss", "points"] == 200
    assert not any("differs from" in n for n in run.meta["notes"])   # local losses differ: by design, not a conflict


def test_identical_rank_files_are_not_dropped_as_repeats(tmp_path):
    """All-reduced values are the same on every rank: the files repeat each other row for row but the rank."""
    vals = rank_values(n_ranks=2, steps=50)
    vals[1] = list(vals[0])
    write_rank_files(tmp_path, vals)
    run = cnb.load(tmp_path)
    assert run.scalars.groupby("rank").size().to_dict() == {0: 3 * 50 + 2, 1: 3 * 50 + 2}   # + world_size, rank


def test_interleaved_rank_prefixes_give_each_row_its_rank(tmp_path):
    vals = rank_values(n_ranks=4, steps=200)
    tb = {1: ["Traceback (most recent call last):", '  File "train.py", line 12, in <module>',
              "RuntimeError: NCCL communicator was aborted on rank 1"]}
    path = write_interleaved(tmp_path / "train.log", vals, tail=tb)
    run = cnb.load(path)
    s = run.scalars
    loss = s[s["name"] == "loss"]
    assert loss.groupby("rank").size().to_dict() == {0: 200, 1: 200, 2: 200, 3: 200}
    assert run.meta["restarts"] == []
    # each row carries its own rank's value: rank 2's loss at step 7 is what rank 2 logged
    got = loss[(loss["rank"] == 2) & (loss["step"] == 7)]["value"].tolist()
    assert got == [pytest.approx(vals[2][6][1], abs=1e-5)]
    assert len(curve(run, "train")) == 200 and len(run.one_rank.scalars) == len(s) // 4
    assert any("NCCL communicator was aborted" in n for n in run.meta["notes"])     # the traceback, prefix removed


def test_eight_ranks_logging_the_same_steps_are_one_curve_and_no_restart(tmp_path):
    vals = rank_values(n_ranks=8, steps=150)
    run = cnb.load(write_interleaved(tmp_path / "merged.log", vals))
    assert run.meta["restarts"] == [] and run.scalars["segment"].eq(0).all()
    assert len(run.scalars[run.scalars["name"] == "loss"]) == 8 * 150
    c = curve(run, "train")
    assert len(c) == 150 and c["value"].iloc[0] == pytest.approx(vals[0][0][1], abs=1e-5)     # rank 0's curve
    assert run.series.set_index("name").loc["loss", "points"] == 150
    assert run.objective().rows["step"].is_unique
    files = tmp_path / "files"
    run2 = cnb.load(write_rank_files(files, vals) and files)
    assert run2.meta["restarts"] == [] and len(curve(run2, "train")) == 150


@pytest.mark.parametrize("prefix", ["[default{r}]:", "[RANK {r}] ", "[Rank {r}]: ", "{r}: "])
def test_launcher_prefixes(tmp_path, prefix):
    """torchrun --tee (``[default3]:``), ``[RANK 3]``/``[Rank 3]``, srun --label (``3: ``)."""
    vals = rank_values(n_ranks=3, steps=60)
    run = cnb.load(write_interleaved(tmp_path / "out.log", vals, prefix=prefix))
    loss = run.scalars[run.scalars["name"] == "loss"]
    assert loss.groupby("rank").size().to_dict() == {0: 60, 1: 60, 2: 60}
    assert run.meta["restarts"] == [] and len(curve(run, "train")) == 60


def test_deepspeed_log_dist_rank_tag(tmp_path):
    """DeepSpeed's ``log_dist`` writes ``[Rank N]`` after the logging prefix; lines without it stay NA."""
    lines = ["[2025-01-02 15:46:44,637] [INFO] [launch.py:152:main] nnodes=1, num_local_procs=2"]
    for step in range(1, 31):
        for r in (1, 0):
            lines.append(f"[2025-01-02 15:47:{step:02d},841] [INFO] [logging.py:128:log_dist] [Rank {r}] "
                         f"step={step}, skipped=0, lr=[{1e-4 * (1 + r * 0.0):.6g}], loss_scale={2.0 ** 16:.1f}")
    path = tmp_path / "ds.log"
    path.write_text("\n".join(lines) + "\n")
    s = cnb.load(path).scalars
    assert s.loc[s["raw_name"] == "num_local_procs", "rank"].isna().all()
    assert s[s["name"] == "loss_scale"].groupby("rank").size().to_dict() == {0: 30, 1: 30}


def test_a_column_of_numbered_values_is_no_srun_label():
    assert srun_labelled(b"0: step=1 loss=2\n1: step=1 loss=2\n0: step=2 loss=1\n1: step=2 loss=1\n")
    assert not srun_labelled(b"1: 0.52\n2: 0.48\n3: 0.45\n4: 0.44\n5: 0.43\n")


def test_engines_agree_on_a_prefixed_log(tmp_path):
    path = write_interleaved(tmp_path / "train.log", rank_values(n_ranks=3, steps=40))
    frames = [TextLogReader(engine=e).read(path).scalars for e in ("python", "numpy")]
    cols = ["line", "raw_name", "value", "step", "rank"]
    a, b = (f[cols].astype({"raw_name": str}).sort_values(["line", "raw_name"]).reset_index(drop=True) for f in frames)
    assert a.equals(b) and len(a) == 3 * 40 * 3


def test_a_file_without_prefixes_has_no_rank(tmp_path):
    path = tmp_path / "plain.log"
    path.write_text("".join(f"step {i} | loss={1.0 / i:.4f}\n" for i in range(1, 30)))
    s = cnb.load(path).scalars
    assert "rank" in s.columns and s["rank"].isna().all() and one_rank(s) is s
