"""TensorBoard event files: real files written by torch's SummaryWriter (and TensorBoard's own
protobuf classes for the tensor forms), read back and compared with what was written."""
from __future__ import annotations

import math
import struct
import warnings

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tensorboard")
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2  # noqa: E402
from torch.utils.tensorboard import SummaryWriter  # noqa: E402
from torch.utils.tensorboard.writer import FileWriter  # noqa: E402

import collapse_nb as cnb  # noqa: E402
from collapse_nb.errors import UnknownFormatError, UnreadableFileError  # noqa: E402
from collapse_nb.loading import sniff  # noqa: E402
from collapse_nb.readers import _tfrecord, _tfscalars  # noqa: E402
from collapse_nb.readers.base import read_head, readers  # noqa: E402
from collapse_nb.readers.tb_events import TensorBoardReader, tag_kind  # noqa: E402

WALL0 = 1_700_000_000.25


def event_file(d):
    (f,) = sorted(d.glob("events.out.tfevents.*"))
    return f


def records(path):
    """(offset, total size) of every record, by following the lengths: independent of the reader."""
    data, out, pos = path.read_bytes(), [], 0
    while pos < len(data):
        (n,) = struct.unpack_from("<Q", data, pos)
        out.append((pos, 16 + n))
        pos += 16 + n
    return out


def pb_events(d, events):
    """Write ``tensorflow.Event`` protos (built with TensorBoard's classes) with torch's FileWriter."""
    fw = FileWriter(str(d))
    for ev in events:
        fw.add_event(ev, walltime=ev.wall_time)
    fw.close()
    return event_file(d)


def value_event(step, value, wall=WALL0):
    return event_pb2.Event(wall_time=wall, step=step, summary=summary_pb2.Summary(value=[value]))


def scalar_rows(run, raw_name):
    return run.scalars[run.scalars["raw_name"].astype(str) == raw_name].reset_index(drop=True)


@pytest.fixture
def scalar_file(tmp_path):
    """60 add_scalar calls on three tags; returns the file and what was written, in order."""
    w = SummaryWriter(str(tmp_path), flush_secs=3600)
    written = []
    for i in range(20):
        for tag, v in (("train/loss", 2.0 / (i + 1)), ("val/loss", 2.5 / (i + 1) + 0.01), ("lr-Adam", 1e-3 * i)):
            step = i * 1000 if tag != "lr-Adam" else i
            w.add_scalar(tag, v, step, walltime=WALL0 + i + 0.001 * len(written))
            written.append((tag, v, step, WALL0 + i + 0.001 * len(written)))
    w.close()
    return event_file(tmp_path), written


# ------------------------------------------------------------------ scalars
def test_scalars_match_what_was_written(scalar_file):
    path, written = scalar_file
    run = cnb.load(path)
    s = run.scalars
    assert run.meta["formats"] == ["tensorboard"] and len(s) == len(written)
    assert s["raw_name"].astype(str).tolist() == [t for t, _, _, _ in written]
    assert s["value"].tolist() == [float(np.float32(v)) for _, v, _, _ in written]   # simple_value is float32
    assert s["step"].tolist() == [st for _, _, st, _ in written]
    assert s["wall_time"].tolist() == [w for _, _, _, w in written]
    assert s["line"].tolist() == list(range(2, len(written) + 2))   # record 1 is the file version
    assert s["source"].astype(str).unique().tolist() == [str(path)]
    assert s["segment"].eq(0).all() and run.meta["restarts"] == []
    assert set(zip(s["raw_name"].astype(str), s["name"].astype(str), s["phase"].astype(object).fillna("-"))) == {
        ("train/loss", "loss", "train"), ("val/loss", "loss", "val"), ("lr-Adam", "lr", "-")}
    assert run.meta["files"][0]["skipped"]["count"] == 0 and run.meta["notes"] == []


def test_tensor_scalars_special_values_and_steps(tmp_path):
    w = SummaryWriter(str(tmp_path))
    cases = [("a", 0.1, 0, {}), ("a", float("nan"), 1, {}), ("a", float("inf"), 2, {}), ("a", -0.0, 2 ** 40, {}),
             ("t", 0.1, 5, {"new_style": True}), ("d", 0.1, 6, {"new_style": True, "double_precision": True}),
             ("t", -3.5, 300, {"new_style": True})]
    for tag, v, step, kw in cases:
        w.add_scalar(tag, v, step, **kw)
    w.close()
    s = cnb.load(event_file(tmp_path)).scalars
    assert s["raw_name"].astype(str).tolist() == [c[0] for c in cases]
    assert s["step"].tolist() == [c[2] for c in cases]
    got = s["value"].to_numpy()
    assert got[0] == np.float32(0.1) and math.isnan(got[1]) and got[2] == math.inf and got[3] == 0.0
    assert got[4] == np.float32(0.1) and got[5] == 0.1 and got[6] == -3.5   # double_precision keeps float64


def test_agrees_with_official_protobuf_and_tbparse(scalar_file):
    path, _ = scalar_file
    ref = []
    data = path.read_bytes()
    for off, size in records(path):
        ev = event_pb2.Event.FromString(data[off + 12:off + size - 4])
        ref.extend((v.tag, v.simple_value, ev.step, ev.wall_time) for v in ev.summary.value)
    s = cnb.load(path).scalars
    assert list(zip(s["raw_name"].astype(str), s["value"], s["step"], s["wall_time"])) == ref
    tbparse = pytest.importorskip("tbparse")
    tb = tbparse.SummaryReader(str(path), extra_columns={"wall_time"}).scalars
    ours = s.rename(columns={"raw_name": "tag"}).assign(tag=lambda d: d["tag"].astype(str))
    key = ["tag", "step"]
    a = ours[key + ["value", "wall_time"]].sort_values(key).reset_index(drop=True).astype({"wall_time": float})
    b = tb[key + ["value", "wall_time"]].sort_values(key).reset_index(drop=True).astype({"value": float})
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


def test_tf2_style_tensor_scalars(tmp_path):
    """TF2 writes scalars as a tensor (tensor_content, empty shape) with the plugin metadata only once."""
    meta = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    shape = tensor_shape_pb2.TensorShapeProto()
    evs = []
    for step in range(5):
        t = tensor_pb2.TensorProto(dtype=1, tensor_shape=shape, tensor_content=np.float32(step / 3).tobytes())
        evs.append(value_event(step, summary_pb2.Summary.Value(tag="epoch_loss", tensor=t,
                                                               metadata=meta if step == 0 else None)))
    half = tensor_pb2.TensorProto(dtype=19, half_val=[int(np.float16(1.5).view(np.uint16))])
    bf16 = tensor_pb2.TensorProto(dtype=14, tensor_content=(np.float32(-2.25).view(np.uint32) >> 16)
                                  .astype("<u2").tobytes())
    i64 = tensor_pb2.TensorProto(dtype=9, int64_val=[-7])
    for i, t in enumerate((half, bf16, i64)):
        evs.append(value_event(10 + i, summary_pb2.Summary.Value(tag=f"x{i}", tensor=t, metadata=meta)))
    run = cnb.load(pb_events(tmp_path, evs))
    s = run.scalars
    assert s["raw_name"].astype(str).tolist() == ["epoch_loss"] * 5 + ["x0", "x1", "x2"]
    assert s["value"].tolist() == [float(np.float32(k / 3)) for k in range(5)] + [1.5, -2.25, -7.0]
    assert s["step"].tolist() == [0, 1, 2, 3, 4, 10, 11, 12]
    assert s["wall_time"].eq(WALL0).all()


def test_step_going_back_is_a_restart_and_a_repeated_step_is_not(tmp_path):
    w = SummaryWriter(str(tmp_path))
    for step in (0, 1, 1, 1, 2, 3, 1, 2):
        w.add_scalar("loss", 1.0, step)
    w.close()
    run = cnb.load(event_file(tmp_path))
    assert run.scalars["segment"].tolist() == [0, 0, 0, 0, 0, 0, 1, 1]
    assert [r["line"] for r in run.meta["restarts"]] == [8]


def test_fast_path_agrees_with_record_by_record_decoding(tmp_path, monkeypatch):
    """Every record shape the vectorised decoder takes gives what the general decoder gives."""
    from collapse_nb.readers import tb_events
    meta = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(
        plugin_name="scalars", content=b"x"), display_name="shown", data_class=1)
    V, T = summary_pb2.Summary.Value, tensor_pb2.TensorProto
    empty = tensor_shape_pb2.TensorShapeProto()
    values = [V(tag="simple", simple_value=0.5), V(tag="é/ü" * 70, simple_value=-1.25),
              V(tag="fv", tensor=T(dtype=1, float_val=[0.75]), metadata=meta),
              V(tag="dv", tensor=T(dtype=2, double_val=[0.1], tensor_shape=empty)),
              V(tag="tc", tensor=T(dtype=1, tensor_content=np.float32(3.5).tobytes(), tensor_shape=empty)),
              V(tag="tc8", tensor=T(dtype=2, tensor_content=np.float64(0.3).tobytes()), metadata=meta),
              V(tag="", simple_value=2.0)]
    events = [event_pb2.Event(wall_time=WALL0 + i, step=step, summary=summary_pb2.Summary(value=[v]))
              for i, (v, step) in enumerate((v, st) for st in (0, 5, 300, 2 ** 40, -3) for v in values)]
    events.append(event_pb2.Event(wall_time=WALL0, step=9, summary=summary_pb2.Summary(value=values[:2])))
    events.append(event_pb2.Event(step=10, summary=summary_pb2.Summary(value=values[:1])))   # no wall_time
    path = pb_events(tmp_path, events)
    fast = _tfscalars.fast_scalars(path.read_bytes(), *_frame_arrays(path))
    # not: the version record, empty tags (proto3 leaves the field out), the last two events
    assert len(fast.index) == 5 * (len(values) - 1)
    run_fast = cnb.load(path).scalars
    monkeypatch.setattr(tb_events, "fast_scalars", lambda buf, starts, lengths: _tfscalars.fast_scalars(
        buf, starts[:0], lengths[:0]))
    run_slow = cnb.load(path).scalars
    pd.testing.assert_frame_equal(run_fast, run_slow)
    assert len(run_fast) == 5 * len(values) + 3
    assert run_fast["step"].tolist()[:len(values) * 2] == [0] * len(values) + [5] * len(values)
    assert run_fast["value"].tolist()[:len(values)] == [0.5, -1.25, 0.75, 0.1, 3.5, 0.3, 2.0]


def _frame_arrays(path):
    fr = _tfrecord.frame(path.read_bytes())
    return fr.starts, fr.lengths


def test_many_records_with_damage_far_into_the_file(tmp_path):
    w = SummaryWriter(str(tmp_path), max_queue=20000, flush_secs=3600)
    for i in range(10_000):
        w.add_scalar("loss", float(i), i)
    w.close()
    path = event_file(tmp_path)
    recs = records(path)
    data = bytearray(path.read_bytes())
    data[recs[6000][0] + 20] ^= 1          # data checksum of record 6001
    data[recs[9000][0] + 2] ^= 1           # length of record 9001
    data += b"\x00" * 100                   # zero padding at the end
    bad = _write(tmp_path / "events.out.tfevents.bad", bytes(data))
    run = cnb.load(bad)
    assert run.scalars["value"].tolist() == [float(i) for i in range(10_000) if i not in (5999, 8999)]
    sk = run.meta["files"][0]["skipped"]
    assert sk["count"] == 3 and [e["line"] for e in sk["examples"]] == [6001, 9001, 10002]
    assert any(f"100 bytes from byte {len(data) - 100} to the end of the file skipped" in n
               for n in run.meta["notes"])


def test_session_log_start_after_data_is_a_restart(tmp_path):
    start = event_pb2.Event(wall_time=WALL0, session_log=event_pb2.SessionLog(status=1))
    loss = [value_event(st, summary_pb2.Summary.Value(tag="loss", simple_value=1.0)) for st in (0, 10, 20)]
    run = cnb.load(pb_events(tmp_path, [start, *loss[:2], start, loss[2]]))
    assert run.scalars["segment"].tolist() == [0, 0, 1]
    assert run.meta["restarts"] == [{"source": str(event_file(tmp_path)), "line": 6, "segment": 1}]


# ------------------------------------------------------------------ histograms
def _train(writer, steps=3, prefix=("parameters/", "gradients/")):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    written = {}
    for step in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        for name, p in model.named_parameters():
            for pre, t in zip(prefix, (p.detach(), p.grad)):
                writer.add_histogram(pre + name, t, step)
                written[(pre + name, step)] = t.clone().double().reshape(-1)
        writer.add_scalar("train/loss", loss.item(), step)
        opt.step()
    return written


def test_histograms_of_real_weights_and_gradients(tmp_path):
    w = SummaryWriter(str(tmp_path))
    written = _train(w)
    w.close()
    run = cnb.load(event_file(tmp_path))
    st = run.histogram_stats
    assert len(st) == len(written) == 24
    for row in st.itertuples():
        t = written[(row.tag, row.step)]
        assert (row.kind, row.param) == tag_kind(row.tag) and row.kind in ("grad", "weight")
        assert row.min == t.min().item() and row.max == t.max().item() and row.num == t.numel()
        np.testing.assert_allclose([row.sum, row.sum_squares, row.mean, row.norm],
                                   [t.sum().item(), (t * t).sum().item(), t.mean().item(), t.norm().item()],
                                   rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(row.std, t.std(unbiased=False).item(), rtol=1e-6, atol=1e-12)
    h = run.histograms
    for (tag, step), g in h.groupby(["tag", "step"], observed=True):
        t = written[(tag, step)]
        assert g["count"].sum() == t.numel()
        left, right = g["bucket_left"].to_numpy(), g["bucket_right"].to_numpy()
        assert (left[1:] == right[:-1]).all() and (left <= right).all()
        assert left[0] <= t.min().item() and right[-1] == t.max().item()
    # derived norms reach run.grads, exactly sqrt(sum_squares)
    grads = run.grads.set_index(["step", "param"])
    for (tag, step), t in written.items():
        kind, param = tag_kind(tag)
        col = "grad_norm" if kind == "grad" else "weight_norm"
        assert grads.loc[(step, param), col] == pytest.approx(t.norm().item(), rel=1e-12)
    assert any("derived from gradient/parameter histograms" in n for n in run.meta["notes"])
    assert len(run.metric("loss", "train")) == 3


def test_histograms_agree_with_tbparse(tmp_path):
    tbparse = pytest.importorskip("tbparse")
    w = SummaryWriter(str(tmp_path))
    _train(w, steps=2)
    w.close()
    path = event_file(tmp_path)
    run = cnb.load(path)
    tb = tbparse.SummaryReader(str(path), extra_columns={"min", "max", "num", "sum", "sum_squares"}).histograms
    assert len(tb) == len(run.histogram_stats)
    for r in tb.itertuples():
        g = run.histograms[(run.histograms["tag"] == r.tag) & (run.histograms["step"] == r.step)]
        np.testing.assert_array_equal(g["count"], r.counts)
        np.testing.assert_array_equal(g["bucket_right"].to_numpy()[:-1], np.asarray(r.limits)[:-1])
        s = run.histogram_stats.set_index(["tag", "step"]).loc[(r.tag, r.step)]
        assert (s["min"], s["max"], s["num"], s["sum"], s["sum_squares"]) == (r.min, r.max, r.num, r.sum,
                                                                               r.sum_squares)


def test_histogram_tags_kinds_and_params(tmp_path):
    w = SummaryWriter(str(tmp_path))
    vals = torch.arange(1.0, 7.0)
    for tag in ("params/enc.w", "enc.w/grad", "activations/relu1", "enc.w"):
        w.add_histogram(tag, vals, 1)
    w.close()
    run = cnb.load(event_file(tmp_path))
    st = run.histogram_stats
    assert st["kind"].tolist()[:3] == ["weight", "grad", "activation"] and pd.isna(st["kind"].iloc[3])
    assert st["param"].astype(str).tolist() == ["enc.w", "enc.w", "relu1", "enc.w"]
    s = run.scalars   # params/ is not a canonical per-parameter prefix: the derived row is named for its norm
    assert s["raw_name"].astype(str).tolist() == ["weight_norm/enc.w", "enc.w/grad"]
    assert s["name"].astype(str).tolist() == ["weight_norm", "grad_norm"]
    assert s["value"].tolist() == [math.sqrt(91.0)] * 2 and s["param"].astype(str).tolist() == ["enc.w"] * 2


def test_histogram_plugin_tensor_form(tmp_path):
    from tensorboard.plugins.histogram import summary_v2
    data = np.array([1.0, 2.0, 2.5, 4.0, 9.0])
    pb = summary_v2.histogram_pb("gradients/fc.bias", data, buckets=4)
    run = cnb.load(pb_events(tmp_path, [event_pb2.Event(wall_time=WALL0, step=7, summary=pb)]))
    h, st = run.histograms, run.histogram_stats
    assert h["count"].sum() == 5 and h["bucket_left"].iloc[0] == 1.0 and h["bucket_right"].iloc[-1] == 9.0
    assert (st["min"].item(), st["max"].item(), st["num"].item(), st["step"].item()) == (1.0, 9.0, 5.0, 7)
    assert st[["sum", "sum_squares", "mean", "std", "norm"]].isna().all(axis=None)
    assert run.scalars.empty and any("tensor form" in n for n in run.meta["notes"])


# ------------------------------------------------------------------ other summaries, config, directories
def test_unused_summaries_are_noted_and_hparams_go_to_config(tmp_path):
    w = SummaryWriter(str(tmp_path))
    w.add_scalar("loss", 1.0, 0)
    w.add_text("notes", "hello", 0)
    w.add_image("img", torch.zeros(3, 4, 4), 0)
    w.add_hparams({"lr": 0.01, "batch_size": 32, "optimizer": "adam", "amsgrad": True}, {"hp/acc": 0.9})
    w.close()
    main = cnb.load(event_file(tmp_path))
    assert main.scalars["raw_name"].astype(str).tolist() == ["loss"]
    notes = " | ".join(main.meta["notes"])
    assert "summaries not used" in notes and "text: 1" in notes and "image: 1" in notes
    (sub,) = [d for d in tmp_path.iterdir() if d.is_dir()]
    hp = cnb.load(event_file(sub))
    assert next(iter(hp.meta["config_raw"].values())) == {"lr": 0.01, "batch_size": 32, "optimizer": "adam",
                                                           "amsgrad": True}
    assert hp.config["learning_rate"] == 0.01 and hp.config["batch_size"] == 32
    both = cnb.load(tmp_path)
    assert both.config["learning_rate"] == 0.01 and set(both.scalars["raw_name"].astype(str)) == {"loss", "hp/acc"}


def test_run_directory_with_several_files(tmp_path):
    for suffix, offset in ((".a", 0), (".b", 100)):
        w = SummaryWriter(str(tmp_path), filename_suffix=suffix)
        for i in range(5):
            w.add_scalar("train/loss", float(offset + i), offset + i)
        w.close()
    w = SummaryWriter(str(tmp_path))
    w.add_scalars("loss", {"train": 1.0, "val": 2.0}, 3)
    w.close()
    files = sorted(tmp_path.rglob("events.out.tfevents.*"))
    assert len(files) == 5      # two, one main file, and one sub-directory per add_scalars key
    run = cnb.load(tmp_path)
    s = run.scalars
    assert sorted(run.meta["formats"]) == ["tensorboard"] and len(run.meta["files"]) == 5
    for f in files:
        alone = cnb.load(f).scalars
        mine = s[s["source"].astype(str) == str(f)].reset_index(drop=True)
        assert mine["value"].tolist() == alone["value"].tolist() and mine["line"].tolist() == alone["line"].tolist()
    by = s.groupby("source", observed=True)["value"].apply(list)
    assert sorted(by.tolist()) == [[0.0, 1.0, 2.0, 3.0, 4.0], [1.0], [2.0], [100.0, 101.0, 102.0, 103.0, 104.0]]
    sc = s[s["raw_name"].astype(str).str.startswith("loss/")]
    assert dict(zip(sc["raw_name"].astype(str), sc["phase"].astype(str))) == {"loss/train": "train", "loss/val": "val"}
    assert run.meta["ignored"] == []


# ------------------------------------------------------------------ damaged files
@pytest.mark.parametrize("where", ["mid-data", "in-header", "after-length", "before-crc", "boundary"])
def test_truncated_file(scalar_file, tmp_path, where):
    path, written = scalar_file
    recs = records(path)
    k = {"mid-data": 30, "in-header": 45, "after-length": 10, "before-crc": len(recs) - 1, "boundary": 20}[where]
    off, size = recs[k]
    cut = off + {"mid-data": size // 2, "in-header": 5, "after-length": 8, "before-crc": size - 2, "boundary": 0}[where]
    cut_path = tmp_path / "events.out.tfevents.cut"
    cut_path.write_bytes(path.read_bytes()[:cut])
    if where == "boundary":
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            run = cnb.load(cut_path)
        assert run.meta["notes"] == []
    else:
        with pytest.warns(UserWarning, match=rf"last {cut - off} bytes, from byte {off}, were dropped"):
            run = cnb.load(cut_path)
        assert any(f"the {k} whole records before" in n for n in run.meta["notes"])
    assert run.scalars["value"].tolist() == [float(np.float32(v)) for _, v, _, _ in written[:k - 1]]
    assert run.meta["files"][0]["skipped"]["count"] == 0


def test_corrupted_data_byte(scalar_file, tmp_path):
    path, written = scalar_file
    off, size = records(path)[12]
    data = bytearray(path.read_bytes())
    data[off + size - 6] ^= 0x40          # a byte of the float: the data checksum no longer matches
    bad = tmp_path / "events.out.tfevents.bad"
    bad.write_bytes(bytes(data))
    run = cnb.load(bad)
    expected = [float(np.float32(v)) for i, (_, v, _, _) in enumerate(written) if i != 11]
    assert run.scalars["value"].tolist() == expected
    sk = run.meta["files"][0]["skipped"]
    assert sk["count"] == 1 and sk["by_reason"] == {"bad checksum": 1}
    assert sk["examples"][0]["line"] == 13 and f"at byte {off}" in sk["examples"][0]["text"]
    assert 13 not in run.scalars["line"].tolist() and run.scalars["line"].max() == len(written) + 1


@pytest.mark.parametrize("byte, xor", [(0, 0x01), (5, 0xFF), (9, 0x10)])
def test_corrupted_length_resyncs(scalar_file, tmp_path, byte, xor):
    """A wrong length (small or huge) or a wrong length checksum: skip to the next valid record."""
    path, written = scalar_file
    off, size = records(path)[25]
    data = bytearray(path.read_bytes())
    data[off + byte] ^= xor
    bad = tmp_path / "events.out.tfevents.bad"
    bad.write_bytes(bytes(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # not mistaken for a truncated file
        run = cnb.load(bad)
    assert run.scalars["value"].tolist() == [float(np.float32(v)) for i, (_, v, _, _) in enumerate(written)
                                             if i != 24]
    sk = run.meta["files"][0]["skipped"]
    assert sk["count"] == 1 and sk["by_reason"] == {"bad checksum": 1}
    assert "length checksum wrong" in sk["examples"][0]["text"]
    assert any(f"{size} bytes from byte {off} skipped" in n for n in run.meta["notes"])


def test_empty_and_garbage_files(tmp_path):
    empty = tmp_path / "events.out.tfevents.1.host.0"
    empty.write_bytes(b"")
    with pytest.raises(UnreadableFileError, match="empty") as exc:
        cnb.load(empty)
    assert str(empty) in str(exc.value)
    garbage = tmp_path / "events.out.tfevents.2.host.0"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(UnreadableFileError, match="not a TensorBoard event file: no valid record in 5000 bytes") \
            as exc:
        cnb.load(garbage)
    assert str(garbage) in str(exc.value)
    anon = tmp_path / "blob.bin"
    anon.write_bytes(garbage.read_bytes())
    with pytest.raises(UnknownFormatError, match="binary data that no reader recognises"):
        cnb.load(anon)
    with pytest.raises(UnreadableFileError, match="nothing readable"):
        TensorBoardReader().read(_write(tmp_path / "short", b"\x10\x00\x00\x00\x00\x00\x00\x00"))


def test_all_checksums_wrong(scalar_file, tmp_path):
    path, _ = scalar_file
    (off, size), = records(path)[:1]
    data = bytearray(path.read_bytes()[:size])
    data[-1] ^= 1
    with pytest.raises(UnreadableFileError, match="all 1 records have a wrong checksum") as exc:
        cnb.load(_write(tmp_path / "events.out.tfevents.x", bytes(data)))
    assert "events.out.tfevents.x" in str(exc.value)


def _write(p, data):
    p.write_bytes(data)
    return p


def test_not_event_records(tmp_path):
    """A valid TFRecord file whose records are not Events (a tf.data file) is refused by name."""
    body = b"\x0a\x03abc"            # field 1 as bytes: not Event.wall_time
    rec = struct.pack("<Q", len(body))
    rec += struct.pack("<I", _tfrecord.mask(_tfrecord.crc32c(rec))) + body
    rec += struct.pack("<I", _tfrecord.mask(_tfrecord.crc32c(body)))
    p = _write(tmp_path / "data.tfrecord", rec * 3)
    assert TensorBoardReader().sniff(read_head(p), p) == 0.0
    with pytest.raises(UnreadableFileError, match="none of the 3 records is a TensorBoard event"):
        cnb.load(p, format="tensorboard")


# ------------------------------------------------------------------ sniffing and checksums
def test_sniff_by_content_and_name(scalar_file, tmp_path):
    path, _ = scalar_file
    renamed = _write(tmp_path / "whatever.bin", path.read_bytes())
    head = read_head(renamed)
    assert TensorBoardReader().sniff(head, renamed) == 1.0
    others = {name: r.sniff(head, renamed) for name, r in readers().items() if name != "tensorboard"}
    assert max(others.values()) == 0.0, others
    reader, score = sniff(renamed)
    assert reader.name == "tensorboard" and score == 1.0
    assert TensorBoardReader().sniff(head[:30], renamed) == 0.5     # valid header, record longer than the head
    assert TensorBoardReader().sniff(b"\x00" * 40, tmp_path / "events.out.tfevents.9") == 0.3
    assert TensorBoardReader().sniff(b"step,loss\n1,2\n", tmp_path / "m.csv") == 0.0


def test_pure_python_crc_fallback(scalar_file, monkeypatch):
    path, written = scalar_file
    rng = np.random.default_rng(1)
    for n in (0, 1, 7, 8, 100):
        b = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        expected = _tfrecord.crc32c(b)
        rows = np.frombuffer(b * 3, np.uint8).reshape(3, n)
        assert _tfrecord.crc32c_rows(rows).tolist() == [expected] * 3
        monkeypatch.setattr(_tfrecord, "_crc32c", None)
        assert _tfrecord.crc32c(b) == expected
        monkeypatch.undo()
    monkeypatch.setattr(_tfrecord, "_crc32c", None)
    assert cnb.load(path).scalars["value"].tolist() == [float(np.float32(v)) for _, v, _, _ in written]


def test_tag_kind():
    assert tag_kind("gradients/encoder.0.weight") == ("grad", "encoder.0.weight")
    assert tag_kind("Grads/fc") == ("grad", "fc") and tag_kind("fc.weight.grad") == ("grad", "fc.weight")
    assert tag_kind("weights/fc") == ("weight", "fc") and tag_kind("parameters/fc") == ("weight", "fc")
    assert tag_kind("activations/x") == ("activation", "x") and tag_kind("fc.weight") == (None, "fc.weight")
    assert tag_kind("gradients/") == (None, "gradients/")


# ------------------------------------------------------------------ real file
def test_corpus_yolo_tensorboard_agrees_with_results_csv(corpus):
    """Ultralytics logs each epoch's metrics at step epoch+1; train losses are a running mean written
    after every batch (55 per epoch), the CSV keeps the epoch's last; validation values are written
    once per epoch (the final validation adds two more ``metrics/*`` values at the last step). The
    CSV holds the same numbers to 5 significant digits, so they agree to half a unit in the 5th
    digit plus float32 rounding."""
    run = cnb.load(corpus("yolo-fire-tb"))
    csv = pd.read_csv(corpus("yolo-fire-csv", "results.csv"), skipinitialspace=True)
    csv.columns = [c.strip() for c in csv.columns]
    s = run.scalars.assign(raw_name=lambda d: d["raw_name"].astype(str))
    assert run.meta["files"][0]["skipped"]["count"] == 0 and s["segment"].eq(0).all()
    tags = set(s["raw_name"])
    assert tags == {c for c in csv.columns if c != "epoch" and not c.startswith("lr/")}
    assert s[s["raw_name"] == "train/box_loss"].groupby("step").size().eq(55).all()
    for tag in sorted(tags):
        g = s[s["raw_name"] == tag].groupby("step")["value"]
        per_epoch = (g.last() if tag.startswith("train/") else g.first()).to_numpy()
        assert len(per_epoch) == len(csv) == 25
        want = csv[tag].to_numpy()
        half_digit = 0.5 * 10.0 ** (np.floor(np.log10(np.abs(want))) - 4)
        assert (np.abs(per_epoch - want) <= half_digit + np.abs(want) * 2.0 ** -23).all(), tag
    assert s["phase"].astype(object).where(s["raw_name"].str.startswith("val/")).dropna().eq("val").all()
    assert s["wall_time"].between(1675348800, 1675350000).all()


def test_tensorboardx_add_scalars_folders_are_two_series(tmp_path):
    tbx = pytest.importorskip("tensorboardX")
    import collapse_nb as cnb

    w = tbx.SummaryWriter(str(tmp_path / "exp"))
    for s in range(20):
        w.add_scalars("loss", {"train": 1.0 / (s + 1), "val": 1.2 / (s + 1)}, s)    # loss/train/, loss/val/
    w.close()
    run = cnb.load(tmp_path / "exp")
    cat = run.series.set_index("phase")
    assert cat.loc["train", "raw_names"] == ("loss/train",) and cat.loc["val", "raw_names"] == ("loss/val",)
    assert cat.loc["train", "points"] == 20 == cat.loc["val", "points"]        # not 40 values in one series
    assert sum("written by add_scalars" in n for n in run.meta["notes"]) == 2


def test_two_files_disagreeing_on_a_series_are_said(tmp_path):
    import collapse_nb as cnb

    (tmp_path / "a.jsonl").write_text("".join(f'{{"step": {s}, "loss": {1.0 / (s + 1)}}}\n' for s in range(10)))
    (tmp_path / "b.jsonl").write_text("".join(f'{{"step": {s}, "loss": {2.0 / (s + 1)}}}\n' for s in range(10)))
    run = cnb.load(tmp_path)
    (note,) = [n for n in run.meta["notes"] if "never merged" in n]
    assert "at 10 of 10 shared steps" in note


# ------------------------------------------------------------------ the compiled (numba) engine
def _rich_events():
    """Every record shape the readers know, and ones they must leave to the general decoder."""
    V, T = summary_pb2.Summary.Value, tensor_pb2.TensorProto
    meta = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    other = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="pr_curves"))
    empty = tensor_shape_pb2.TensorShapeProto()
    hist = summary_pb2.HistogramProto(min=-1.0, max=2.0, num=3, sum=1.0, sum_squares=5.0,
                                      bucket_limit=[0.0, 1.0, 1.7976931348623157e308], bucket=[1, 1, 1])
    values = [V(tag="simple", simple_value=0.5), V(tag="é/ü" * 70, simple_value=-1.25),
              V(tag="fv", tensor=T(dtype=1, float_val=[0.75]), metadata=meta),
              V(tag="dv", tensor=T(dtype=2, double_val=[0.1], tensor_shape=empty)),
              V(tag="tc", tensor=T(dtype=1, tensor_content=np.float32(3.5).tobytes(), tensor_shape=empty)),
              V(tag="tc8", tensor=T(dtype=2, tensor_content=np.float64(0.3).tobytes()), metadata=meta),
              V(tag="epoch_loss", tensor=T(dtype=1, tensor_shape=empty,
                                           tensor_content=np.float32(np.nan).tobytes())),       # TF2 style
              V(tag="pr", tensor=T(dtype=1, float_val=[0.5]), metadata=other),
              V(tag="i64", tensor=T(dtype=9, int64_val=[-7]), metadata=meta),
              V(tag="gradients/fc.weight", histo=hist), V(tag="img", image=summary_pb2.Summary.Image(height=1)),
              V(tag="", simple_value=2.0), V(node_name="old_name", simple_value=4.0)]
    events = [event_pb2.Event(wall_time=WALL0, file_version="brain.Event:2")]
    for i, step in enumerate((0, 5, 300, 2 ** 40, -3, 7)):
        events += [event_pb2.Event(wall_time=WALL0 + i + k / 100, step=step, summary=summary_pb2.Summary(value=[v]))
                   for k, v in enumerate(values)]
    events += [event_pb2.Event(wall_time=WALL0, step=9, summary=summary_pb2.Summary(value=values[:2])),
               event_pb2.Event(step=10, summary=summary_pb2.Summary(value=values[:1])),
               event_pb2.Event(wall_time=WALL0, session_log=event_pb2.SessionLog(status=1))]
    events += [event_pb2.Event(wall_time=WALL0 + s, step=s, summary=summary_pb2.Summary(
        value=[V(tag=f"tag{s % 150}", simple_value=s / 7)])) for s in range(600)]     # the tag table grows
    return events


def _engines_agree(path):
    """Both engines read ``path`` the same way, down to the framing and the one-scalar decoding."""
    from collapse_nb.readers import _tb_fast
    from collapse_nb.loading import _normalised

    buf = path.read_bytes()
    fa, fb = _tfrecord.frame(buf), _tfrecord.frame(buf, _tb_fast)
    for name in ("starts", "lengths", "numbers"):
        np.testing.assert_array_equal(getattr(fa, name), getattr(fb, name))
    assert (fa.bad, fa.gaps, fa.truncated, fa.found) == (fb.bad, fb.gaps, fb.truncated, fb.found)
    sa, sb = _tfscalars.fast_scalars(buf, fa.starts, fa.lengths), _tb_fast.fast_scalars(buf, fa.starts, fa.lengths)
    for name in ("index", "step", "bare_tensor"):
        np.testing.assert_array_equal(getattr(sa, name), getattr(sb, name))
    for name in ("wall_time", "value"):          # bit for bit, NaNs included
        np.testing.assert_array_equal(getattr(sa, name).view(np.int64), getattr(sb, name).view(np.int64))
    assert [sa.tags[c] for c in sa.tag.tolist()] == [sb.tags[c] for c in sb.tag.tolist()]
    out = []
    for engine in ("numpy", "jit"):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                r = _normalised(TensorBoardReader(engine).read(path))
            out.append((r, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]))
        except UnreadableFileError as exc:
            out.append((str(exc), None))
    (a, wa), (b, wb) = out
    if isinstance(a, str) or isinstance(b, str):
        assert a == b
        return None
    pd.testing.assert_frame_equal(a.scalars, b.scalars)
    assert a.extra.keys() == b.extra.keys()
    for k in a.extra:
        pd.testing.assert_frame_equal(a.extra[k], b.extra[k])
    assert (a.notes, a.skipped.as_dict(), a.config, a.segments_found, wa) == \
        (b.notes, b.skipped.as_dict(), b.config, b.segments_found, wb)
    return a


def test_jit_engine_agrees_with_numpy_engine(tmp_path):
    pytest.importorskip("numba")
    path = pb_events(tmp_path, _rich_events())
    r = _engines_agree(path)
    s = r.scalars
    # per step: 7 one-scalar records, the int64 tensor, the derived grad norm, the empty tag, the node_name
    assert len(s) == 6 * 11 + 3 + 600 and s["raw_name"].nunique() == 11 + 150
    assert "image: 6" in " ".join(r.notes) and "pr_curves: 6" in " ".join(r.notes)
    assert r.extra["histogram_stats"].shape[0] == 6
    assert s.loc[s["raw_name"] == "epoch_loss", "value"].isna().all() and s["segment"].max() > 1
    fast = _tfscalars.fast_scalars(path.read_bytes(), *_frame_arrays(path))
    assert len(fast.index) == 6 * 7 + 600     # not: pr_curves, i64, the histogram, the image, no tag, node_name


def test_jit_engine_agrees_on_damaged_files(tmp_path):
    """Bad data and length checksums, a truncated end, zero padding, and random bytes in records whose
    checksums are then made right again (so that the decoders, not the framing, meet them)."""
    pytest.importorskip("numba")
    path = pb_events(tmp_path, _rich_events())
    data = path.read_bytes()
    recs = records(path)
    rng = np.random.default_rng(7)
    for trial in range(60):
        d = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            off, size = recs[int(rng.integers(len(recs)))]
            d[off + int(rng.integers(size))] ^= 1 << int(rng.integers(8))
        if trial % 3 == 0:
            d = d[:int(rng.integers(len(d)))]
        elif trial % 3 == 1:
            d += b"\x00" * int(rng.integers(1, 40))
        _engines_agree(_write(tmp_path / f"events.out.tfevents.damaged{trial}", bytes(d)))
    for trial in range(150):
        d = bytearray(data)
        for off, size in [recs[int(i)] for i in rng.integers(len(recs), size=5)]:
            body = bytearray(d[off + 12:off + size - 4])
            for _ in range(int(rng.integers(1, 3))):
                body[int(rng.integers(len(body)))] = int(rng.choice([0, 1, 2, 7, 9, 0x0A, 0x12, 0x15, 0x22, 0x2A,
                                                                     0x42, 0x4A, 0x7F, 0x80, 0xFF]))
            d[off + 12:off + size - 4] = body
            d[off + size - 4:off + size] = struct.pack("<I", _tfrecord.mask(_tfrecord.crc32c(bytes(body))))
        _engines_agree(_write(tmp_path / f"events.out.tfevents.fuzz{trial}", bytes(d)))


def test_jit_engine_on_crafted_one_scalar_records(tmp_path):
    """Records shaped almost like the one-scalar layout: the compiled and the numpy decoders take or
    leave each alike (a step varint of 10 bytes, metadata too short to hold the plugin name, ...)."""
    pytest.importorskip("numba")

    def rec(body):
        head = struct.pack("<Q", len(body))
        return (head + struct.pack("<I", _tfrecord.mask(_tfrecord.crc32c(head))) + body +
                struct.pack("<I", _tfrecord.mask(_tfrecord.crc32c(body))))

    def ld(key, payload):
        return bytes([key, len(payload)]) + payload

    wall = b"\x09" + struct.pack("<d", WALL0)
    tensor = ld(0x42, b"\x08\x01\x12\x00\x22\x04" + struct.pack("<f", 1.5))
    bodies = [wall + b"\x10" + b"\xff" * 9 + b"\x01" + ld(0x2A, ld(0x0A, ld(0x0A, b"a") + b"\x15" + b"\0\0\x80?")),
              wall + b"\x10" + b"\xff" * 10 + ld(0x2A, ld(0x0A, ld(0x0A, b"a") + b"\x15" + b"\0\0\x80?")),
              wall + ld(0x2A, ld(0x0A, ld(0x0A, b"b") + tensor + ld(0x4A, b"\x0a\x00"))),
              wall + ld(0x2A, ld(0x0A, ld(0x0A, b"c") + tensor + ld(0x4A, b"\x0a\x09\x0a\x07scalars"))),
              wall + ld(0x2A, ld(0x0A, ld(0x0A, b"d") + tensor + ld(0x4A, b"\x0a\x05\x0a\x07scalars"))),
              wall + ld(0x2A, ld(0x0A, ld(0x0A, b"e") + tensor + ld(0x4A, b"\x0a\x0b\x0a\x07scalars\x12\x00"))),
              wall + ld(0x2A, ld(0x0A, ld(0x0A, b"f") + ld(0x42, b"\x08\x02\x31" + struct.pack("<d", 0.1)))),
              wall + ld(0x2A, ld(0x0A, ld(0x0A, b"g") + ld(0x42, b"\x08\x01"))),
              wall + ld(0x2A, ld(0x0A, ld(0x0A, b"h\xff") + b"\x15" + b"\0\0\x80?")),
              wall + ld(0x2A, ld(0x0A, ld(0x0A, b"h\xfe") + b"\x15" + b"\0\0\x80?"))]
    path = _write(tmp_path / "events.out.tfevents.crafted", b"".join(rec(b) for b in bodies))
    _engines_agree(path)
    fast = _tfscalars.fast_scalars(path.read_bytes(), *_frame_arrays(path))
    assert fast.index.tolist() == [0, 3, 5, 6, 8, 9]
    assert fast.step[0] == -1 and [fast.tags[c] for c in fast.tag] == ["a", "c", "e", "f", "h\ufffd", "h\ufffd"]


def test_engine_choice(tmp_path, monkeypatch):
    from collapse_nb.readers import tb_events
    with pytest.raises(ValueError, match="unknown TensorBoard engine"):
        TensorBoardReader("fast")
    assert tb_events.kernels_for("auto", tb_events.JIT_MIN_BYTES - 1) is None
    assert tb_events.kernels_for("numpy", 10 ** 9) is None
    monkeypatch.setattr(tb_events, "jit_available", lambda: False)
    assert tb_events.kernels_for("auto", 10 ** 9) is None
    with pytest.raises(ValueError, match="needs numba"):
        tb_events.kernels_for("jit", 0)
    monkeypatch.undo()
    if tb_events.jit_available():
        assert tb_events.kernels_for("auto", tb_events.JIT_MIN_BYTES).__name__.endswith("_tb_fast")


def test_jit_tag_table_never_merges_tags_whose_hashes_collide(tmp_path, monkeypatch):
    """The compiled decoder's tag table compares bytes: with every hash equal (the kernel run as
    Python, its hash replaced), 150 tags stay 150 tags, numbered in order of first appearance."""
    pytest.importorskip("numba")
    from collapse_nb.readers import _tb_fast
    path = pb_events(tmp_path, _rich_events())
    buf = path.read_bytes()
    starts, lengths = _frame_arrays(path)
    want = _tb_fast.fast_scalars(buf, starts, lengths)
    monkeypatch.setattr(_tb_fast, "_hash", lambda u, s, n: np.uint64(7))
    monkeypatch.setattr(_tb_fast, "_scalars_kernel", _tb_fast._scalars_kernel.py_func)
    got = _tb_fast.fast_scalars(buf, starts, lengths)
    assert got.tags == want.tags and len(got.tags) == 7 + 150
    np.testing.assert_array_equal(got.tag, want.tag)
    np.testing.assert_array_equal(got.value.view(np.int64), want.value.view(np.int64))
    assert [want.tags[c] for c in pd.unique(want.tag)] == want.tags
