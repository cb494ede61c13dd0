"""collapse_nb.capture.Recorder: never changes training, records what a direct computation gives."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import warnings

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import collapse_nb as cnb  # noqa: E402
from collapse_nb.capture import FORMAT_NAME, Recorder  # noqa: E402
from collapse_nb.capture import recorder as recorder_mod  # noqa: E402
from collapse_nb.capture.stats import Fetch  # noqa: E402


class Net(nn.Module):
    """A small regression net with a detached (dead) branch and a branch multiplied by zero."""

    def __init__(self, d_in: int = 6, d: int = 16):
        super().__init__()
        self.fc1 = nn.Linear(d_in, d)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(0.2)
        self.fc2 = nn.Linear(d, 1)
        self.dead = nn.Linear(d_in, 1)      # output detached: its parameters never get a gradient
        self.zero = nn.Linear(d_in, 1)      # output times 0: gradient exactly 0

    def forward(self, x):
        h = self.drop(self.act(self.fc1(x)))
        return (self.fc2(h) + self.dead(x).detach() * 0.1 + self.zero(x) * 0.0).squeeze(-1)


def make(seed: int = 0, opt: str = "adamw"):
    torch.manual_seed(seed)
    model = Net()
    if opt == "adamw":
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.05, betas=(0.8, 0.99))
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return model, optimizer


def batches(n: int = 12, bs: int = 16, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        x = torch.randn(bs, 6, generator=g)
        out.append((x, x[:, 0] * 2.0 - x[:, 1] + 0.1 * torch.randn(bs, generator=g)))
    return out


def train(model, optimizer, data, rec=None, accum: int = 1, scaler=None, clip: float | None = None,
          amp_dtype=None, unscale_first: bool = False, bare_step: bool = False, per_epoch: int = 6):
    """A plain loop (optionally with accumulation, AMP and clipping); returns the losses it reported."""
    torch.manual_seed(123)    # dropout draws from the global generator: same draws with and without a recorder
    losses = []
    for i, (x, y) in enumerate(data):
        with torch.autocast("cpu", dtype=amp_dtype, enabled=amp_dtype is not None):
            pred = model(x)
            loss = nn.functional.mse_loss(pred.float(), y) / accum
        if rec is not None:
            rec.log_outputs(pred, y)
            rec.log(loss=loss * accum, epoch=i // per_epoch, batch=i % per_epoch)
        losses.append(float(loss.detach()) * accum)
        (scaler.scale(loss) if scaler is not None else loss).backward()
        if (i + 1) % accum:
            continue
        if scaler is not None and (unscale_first or clip is not None) and not bare_step:
            scaler.unscale_(optimizer)
        if clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            if rec is not None:
                rec.set_clip_norm(norm)
        if scaler is not None and not bare_step:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad()
    return losses


def records(path, kind=None):
    out = [json.loads(line) for line in open(path) if line.strip()]
    return [r for r in out if kind is None or r.get("type") == kind]


def assert_identical(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def assert_same_optimizer_state(oa, ob):
    for sa, sb in zip(oa.state.values(), ob.state.values()):
        for k in sa:
            if isinstance(sa[k], torch.Tensor):
                assert torch.equal(sa[k], sb[k]), k


class Probe:
    """A plain reference: per-parameter norms computed one by one in float64 around every optimizer step.

    Its hooks are registered after the recorder's, so they see the same gradients and weights.
    """

    def __init__(self, model, optimizer, scaler=None):
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self.optimizer = optimizer
        self.steps: list[dict] = []
        self.acts: dict[str, float] = {}
        optimizer.register_step_pre_hook(self.pre)
        optimizer.register_step_post_hook(self.post)
        model.act.register_forward_hook(self.act_hook)

    def act_hook(self, m, i, out):
        if torch.is_grad_enabled():
            self.acts = {"frac_zero": (out == 0).double().mean().item(), "mean": out.double().mean().item(),
                         "std": out.double().std().item()}

    def pre(self, opt, args, kwargs):
        self.before = [p.detach().clone() for p in self.params]
        self.grads = [None if p.grad is None else p.grad.double().norm().item() for p in self.params]
        self.acts_at_step = dict(self.acts)

    def post(self, opt, args, kwargs):
        self.steps.append({
            "grad": self.grads,
            "weight": [p.double().norm().item() for p in self.params],
            "update": [(p.double() - b.double()).norm().item() for p, b in zip(self.params, self.before)],
            "acts": self.acts_at_step,
        })


# ------------------------------------------------------------------ never changes the result
@pytest.mark.parametrize("activations", [False, True])
def test_bit_identical_plain_loop(tmp_path, activations):
    data = batches()
    m0, o0 = make()
    train(m0, o0, data)
    m1, o1 = make()
    with Recorder(m1, o1, tmp_path / "c.jsonl", every=2, activations=activations) as rec:
        train(m1, o1, data, rec=rec, clip=1.0)
    m2, o2 = make()
    train(m2, o2, data, clip=1.0)
    assert_identical(m1, m2)
    assert_same_optimizer_state(o1, o2)
    assert len(records(tmp_path / "c.jsonl", "step")) == 6
    # and the recorder really did something: without clipping, the first loop differs from the clipped one
    m3, o3 = make()
    with Recorder(m3, o3, tmp_path / "d.jsonl", every=1, activations=activations):
        train(m3, o3, data)
    assert_identical(m0, m3)
    assert_same_optimizer_state(o0, o3)


def test_bit_identical_gradient_accumulation(tmp_path):
    data = batches(12)
    m0, o0 = make(opt="sgd")
    train(m0, o0, data, accum=3)
    m1, o1 = make(opt="sgd")
    with Recorder(m1, o1, tmp_path / "c.jsonl", every=1, activations=True) as rec:
        train(m1, o1, data, rec=rec, accum=3)
    assert_identical(m0, m1)
    assert_same_optimizer_state(o0, o1)
    steps = records(tmp_path / "c.jsonl", "step")
    assert [r["step"] for r in steps] == [0, 1, 2, 3]
    assert [r["micro_batches"] for r in steps] == [3, 3, 3, 3]
    # the scalars are what the loop passed on the last micro-batch before the step
    assert [r["batch"] for r in steps] == [2, 5, 2, 5]


def _scaler(init_scale=2.0 ** 10):
    return torch.amp.GradScaler("cpu", init_scale=init_scale, growth_interval=2)


@pytest.mark.parametrize("unscale_first", [False, True])
def test_bit_identical_amp_grad_scaler(tmp_path, unscale_first):
    """torch 2.13 runs GradScaler on CPU; fp16 autocast with a large initial scale also exercises skipped steps."""
    data = batches(10)
    m0, o0 = make()
    s0 = _scaler(2.0 ** 24)
    train(m0, o0, data, scaler=s0, amp_dtype=torch.float16, unscale_first=unscale_first)
    m1, o1 = make()
    s1 = _scaler(2.0 ** 24)
    with Recorder(m1, o1, tmp_path / "c.jsonl", every=1, scaler=s1, activations=True) as rec:
        train(m1, o1, data, rec=rec, scaler=s1, amp_dtype=torch.float16, unscale_first=unscale_first)
    assert_identical(m0, m1)
    assert_same_optimizer_state(o0, o1)
    assert s0.get_scale() == s1.get_scale()
    steps = records(tmp_path / "c.jsonl", "step")
    assert steps and all(r["loss_scale"] > 0 for r in steps)
    # steps the scaler skipped (inf gradients) never call optimizer.step(): their micro-batches add up
    assert sum(r["micro_batches"] for r in steps) == len(data)


def test_amp_norms_are_unscaled(tmp_path):
    """Recorded gradient norms are of the unscaled gradients, whether the loop unscaled them or not."""
    data = batches(6)
    for mode in ("scaler_step", "unscale_first", "bare_step"):
        model, opt = make()
        scaler = _scaler(2.0 ** 6)
        rec = Recorder(model, opt, tmp_path / f"{mode}.jsonl", every=1, scaler=scaler, mode="w")
        probe = Probe(model, opt)
        train(model, opt, data, rec=rec, scaler=scaler, amp_dtype=torch.bfloat16,
              unscale_first=mode == "unscale_first", bare_step=mode == "bare_step")
        rec.close()
        steps = records(tmp_path / f"{mode}.jsonl", "step")
        assert len(steps) == len(probe.steps) == 6
        for r, ref in zip(steps, probe.steps):
            scale = r["loss_scale"]
            expect = [0.0 if g is None else g for g in ref["grad"]]
            if mode == "bare_step":       # grads still scaled at the step: the recorder divides
                assert r["grads_unscaled_by_recorder"] is True
                expect = [g / scale for g in expect]
            else:
                assert r["grads_unscaled_by_recorder"] is False
            assert r["grad_norm"] == pytest.approx(expect, rel=1e-5, abs=1e-12)


@pytest.fixture(scope="module")
def compile_ok():
    """torch.compile needs a working C++ toolchain on CPU; a first compile takes ~15 s here."""
    try:
        t = time.perf_counter()
        f = torch.compile(nn.Linear(2, 2))
        f(torch.randn(1, 2))
        return time.perf_counter() - t
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"torch.compile does not work on this machine: {type(exc).__name__}: {exc}")


@pytest.mark.parametrize("activations", [False, True])
def test_bit_identical_torch_compile(tmp_path, compile_ok, activations):
    # dynamo caches compiled code per function and, by default, does not guard on module hooks
    # (torch._dynamo.config.skip_nnmodule_hook_guards): start from an empty cache so the hooks are traced
    torch._dynamo.reset()
    data = batches(6)
    m0, o0 = make()
    c0 = torch.compile(m0)
    train(c0, o0, data)
    torch._dynamo.reset()
    m1, o1 = make()
    c1 = torch.compile(m1)
    with Recorder(c1, o1, tmp_path / "c.jsonl", every=2, activations=activations) as rec:
        train(c1, o1, data, rec=rec)
    assert_identical(m0, m1)
    assert_same_optimizer_state(o0, o1)
    header = records(tmp_path / "c.jsonl", "header")[0]
    names = [p["name"] for p in header["params"]]
    assert names[:2] == ["fc1.weight", "fc1.bias"] and not any("_orig_mod" in n for n in names)
    steps = records(tmp_path / "c.jsonl", "step")
    assert [r["step"] for r in steps] == [0, 2, 4]
    if activations:
        assert header["modules"] == ["fc1", "act", "fc2", "dead", "zero"]
        assert all(r["act_frac_zero"][1] is not None for r in steps)


# ------------------------------------------------------------------ values
def test_norms_equal_direct_computation(tmp_path):
    data = batches(8)
    model, opt = make()
    rec = Recorder(model, opt, tmp_path / "c.jsonl", every=1, activations=True)
    probe = Probe(model, opt)
    losses = train(model, opt, data, rec=rec, clip=0.5)
    rec.close()
    header = records(tmp_path / "c.jsonl", "header")[0]
    names = [p["name"] for p in header["params"]]
    assert names == [n for n, _ in model.named_parameters()]
    steps = records(tmp_path / "c.jsonl", "step")
    assert len(steps) == len(probe.steps) == 8
    i_dead = names.index("dead.weight")
    for r, ref, loss in zip(steps, probe.steps, losses):
        grad = [0.0 if g is None else g for g in ref["grad"]]
        assert r["grad_norm"] == pytest.approx(grad, rel=1e-5, abs=1e-12)
        assert r["weight_norm"] == pytest.approx(ref["weight"], rel=1e-5)
        assert r["update_norm"] == pytest.approx(ref["update"], rel=1e-4, abs=1e-9)
        assert r["total_grad_norm"] == pytest.approx(math.sqrt(sum(g * g for g in grad)), rel=1e-5)
        assert r["clip_total_norm"] >= r["total_grad_norm"] - 1e-6 and r["total_grad_norm"] <= 0.5 + 1e-5
        assert r["scalars"]["loss"] == pytest.approx(loss, rel=1e-6)
        assert r["lr"] == [1e-2]
        # dead branch: no gradient at all -> 0 with a flag; times-zero branch: exactly 0
        assert r["grad_norm"][i_dead] == 0.0 and i_dead in r["no_grad"]
        assert r["grad_norm"][names.index("zero.weight")] == 0.0
        assert names.index("zero.weight") not in r["no_grad"]
        # ReLU output statistics
        act = header["modules"].index("act")
        assert r["act_frac_zero"][act] == pytest.approx(ref["acts"]["frac_zero"], abs=1e-9)
        assert r["act_mean"][act] == pytest.approx(ref["acts"]["mean"], rel=1e-5)
        assert r["act_std"][act] == pytest.approx(ref["acts"]["std"], rel=1e-5)
        assert 0.0 < r["act_frac_zero"][act] < 1.0


def test_output_stats_are_the_last_call(tmp_path):
    model, opt = make()
    rec = Recorder(model, opt, tmp_path / "c.jsonl", every=1)
    pred = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True) * 1.0
    target = torch.tensor([0.0, 0.0, 2.0, 2.0])
    rec.log_outputs(torch.zeros(4), torch.zeros(4))
    rec.log_outputs(pred, target)
    assert rec._outputs is not None and rec._outputs.grad_fn is None      # never holds the graph
    opt.step()
    rec.close()
    out = records(tmp_path / "c.jsonl", "step")[0]["outputs"]
    assert out["pred_mean"] == pytest.approx(2.5)
    assert out["pred_std"] == pytest.approx(torch.tensor([1.0, 2, 3, 4]).std().item())
    assert out["target_mean"] == pytest.approx(1.0)
    assert out["target_std"] == pytest.approx(torch.tensor([0.0, 0, 2, 2]).std().item())


def test_every_is_respected_and_costs_nothing_between(tmp_path, monkeypatch):
    fetches = []
    real = Fetch.values
    monkeypatch.setattr(Fetch, "values", lambda self: fetches.append(1) or real(self))
    norms = []
    real_norm = recorder_mod.foreach_norms
    monkeypatch.setattr(recorder_mod, "foreach_norms", lambda ts: norms.append(1) or real_norm(ts))
    data = batches(23)
    model, opt = make()
    with Recorder(model, opt, tmp_path / "c.jsonl", every=5, activations=True) as rec:
        train(model, opt, data, rec=rec)
        assert rec.step == 23 and rec.recorded == 5
    steps = records(tmp_path / "c.jsonl", "step")
    assert [r["step"] for r in steps] == [0, 5, 10, 15, 20]
    assert [r["batch"] + 6 * r["epoch"] for r in steps] == [0, 5, 10, 15, 20]
    assert len(fetches) == 5                       # one host transfer per recorded step, none otherwise
    assert len(norms) == 5 * 3                     # grads, weights, updates: one grouped foreach each
    end = records(tmp_path / "c.jsonl", "end")[0]
    assert end == {**end, "step": 23, "recorded": 5}


def test_start_step_and_no_update_norm(tmp_path):
    model, opt = make()
    with Recorder(model, opt, tmp_path / "c.jsonl", every=4, start_step=6, update_norm=False) as rec:
        train(model, opt, batches(7), rec=rec)
    steps = records(tmp_path / "c.jsonl", "step")
    assert [r["step"] for r in steps] == [8, 12]
    assert all("update_norm" not in r for r in steps)


def test_tensor_lr_and_param_groups(tmp_path):
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.Adam([{"params": model.fc1.parameters(), "lr": torch.tensor(0.01)},
                            {"params": model.fc2.parameters(), "lr": 0.001}], lr=0.5)
    with Recorder(model, opt, tmp_path / "c.jsonl", every=1) as rec:
        for x, y in batches(2):
            loss = nn.functional.mse_loss(model(x), y)
            rec.log(loss=loss)
            loss.backward()
            opt.step()
            opt.zero_grad()
    header = records(tmp_path / "c.jsonl", "header")[0]
    assert [p["name"] for p in header["params"]] == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert [g["lr"] for g in header["optimizer"]["param_groups"]] == [pytest.approx(0.01), 0.001]
    steps = records(tmp_path / "c.jsonl", "step")
    assert [r["lr"] for r in steps] == [[pytest.approx(0.01), 0.001]] * 2


def test_model_none_and_unnamed_params(tmp_path):
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([w], lr=0.1)
    with Recorder(None, opt, tmp_path / "c.jsonl", every=1) as rec:
        (w * 2).sum().backward()
        opt.step()
        rec.log(loss=1.5)      # after the step: goes with the next one (not taken here)
    header = records(tmp_path / "c.jsonl", "header")[0]
    assert header["params"][0]["name"] == "group0.param0"
    step = records(tmp_path / "c.jsonl", "step")[0]
    assert step["grad_norm"] == [pytest.approx(2 * math.sqrt(3))]
    assert step["update_norm"] == [pytest.approx(0.2 * math.sqrt(3), rel=1e-6)]
    assert "scalars" not in step


def test_val_rows_written_at_once_and_train_rows_dropped_between_recorded_steps(tmp_path):
    model, opt = make()
    rec = Recorder(model, opt, tmp_path / "c.jsonl", every=2, flush_every=1)
    opt.step()                                       # step 0 recorded, now step 1 is not
    rec.log(loss=torch.tensor(3.0, requires_grad=True))      # dropped: step 1 is not recorded
    rec.log(val_loss=torch.tensor(0.25), acc=0.5, phase="val", epoch=0)
    rec.log_outputs(torch.ones(3), torch.zeros(3), phase="val", epoch=0)
    rec.log(train_loss_epoch=1.25, epoch=0, immediate=True)
    logs = records(tmp_path / "c.jsonl", "log")
    assert logs[0]["scalars"] == {"val_loss": 0.25, "acc": 0.5} and logs[0]["phase"] == "val"
    assert logs[0]["step"] == 1 and logs[0]["epoch"] == 0
    assert logs[1]["outputs"]["pred_mean"] == 1.0 and logs[1]["outputs"]["target_std"] == 0.0
    assert logs[2]["phase"] == "train" and logs[2]["scalars"] == {"train_loss_epoch": 1.25}
    opt.step()
    rec.close()
    assert "scalars" not in records(tmp_path / "c.jsonl", "step")[0]


def test_argument_validation(tmp_path):
    model, opt = make()
    with pytest.raises(ValueError, match="every must be an int >= 1, got 0"):
        Recorder(model, opt, tmp_path / "c.jsonl", every=0)
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer, got list"):
        Recorder(model, [], tmp_path / "c.jsonl")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module or None, got str"):
        Recorder("model", opt, tmp_path / "c.jsonl")
    with pytest.raises(ValueError, match="no module named 'nope'"):
        Recorder(model, opt, tmp_path / "c.jsonl", activations=["nope"])
    with pytest.raises(TypeError, match="activations must be"):
        Recorder(model, opt, tmp_path / "c.jsonl", activations="fc1")
    with pytest.raises(ValueError, match="mode must be 'a' or 'w'"):
        Recorder(model, opt, tmp_path / "c.jsonl", mode="x")
    rec = Recorder(model, opt, tmp_path / "c.jsonl", every=1)
    with pytest.raises(ValueError, match="phase must be one of train, val, test, got 'eval'"):
        rec.log(loss=1.0, phase="eval")
    with pytest.raises(ValueError, match="one-element tensor, got a tensor of shape \\(3,\\)"):
        rec.log(loss=torch.ones(3))
    with pytest.raises(TypeError, match="'name' must be a number"):
        rec.log(name="resnet")
    rec.close()
    rec.close()                                       # twice is fine
    rec.log(loss=1.0)                                 # training values after close: nothing to attach them to
    with pytest.raises(ValueError, match="the recorder is closed"):
        rec.log(val_loss=1.0, phase="val")
    assert not opt._optimizer_step_pre_hooks and not opt._optimizer_step_post_hooks


def test_hooks_removed_on_close_and_selected_modules(tmp_path):
    model, opt = make()
    rec = Recorder(model, opt, tmp_path / "c.jsonl", activations=["fc1", "act"])
    assert records(tmp_path / "c.jsonl", "header")[0]["modules"] == ["fc1", "act"]
    assert model.fc1._forward_hooks and model.act._forward_hooks and not model.fc2._forward_hooks
    rec.close()
    assert not model.fc1._forward_hooks and not model.act._forward_hooks
    rec2 = Recorder(model, opt, tmp_path / "d.jsonl", activations=lambda n, m: isinstance(m, nn.ReLU))
    assert records(tmp_path / "d.jsonl", "header")[0]["modules"] == ["act"]
    rec2.close()


def test_exception_in_loop_keeps_every_record(tmp_path):
    model, opt = make()
    with pytest.raises(RuntimeError, match="boom"):
        with Recorder(model, opt, tmp_path / "c.jsonl", every=1, flush_every=1000) as rec:
            train(model, opt, batches(5), rec=rec)
            raise RuntimeError("boom")
    recs = records(tmp_path / "c.jsonl")
    assert [r["type"] for r in recs] == ["header"] + ["step"] * 5 + ["end"]
    assert recs[-1]["error"] == "RuntimeError: boom"


def test_a_failing_record_never_breaks_training(tmp_path, monkeypatch):
    model, opt = make()
    rec = Recorder(model, opt, tmp_path / "c.jsonl", every=1)
    monkeypatch.setattr(Recorder, "_capture_after", lambda self, pre: 1 / 0)
    with pytest.warns(RuntimeWarning, match="could not record step 0"):
        train(model, opt, batches(3), rec=rec)
    assert rec.step == 3
    rec.close()


def test_header_metadata_optimizer_and_scaler(tmp_path):
    model, opt = make()
    scaler = _scaler()
    meta = {"gradient_accumulation_steps": 3, "batch_size": 16, "run": "x", "when": time.gmtime(0)}
    with Recorder(model, opt, tmp_path / "c.jsonl", every=7, scaler=scaler, metadata=meta):
        pass
    h = records(tmp_path / "c.jsonl", "header")[0]
    assert h["format"] == FORMAT_NAME and h["version"] == 1 and h["every"] == 7
    assert h["optimizer"]["class"] == "AdamW"
    assert h["optimizer"]["param_groups"][0]["betas"] == [0.8, 0.99]
    assert h["optimizer"]["param_groups"][0]["weight_decay"] == 0.05
    assert h["scaler"]["enabled"] is True and h["scaler"]["init_scale"] == 1024.0
    assert h["metadata"]["gradient_accumulation_steps"] == 3 and h["metadata"]["run"] == "x"
    assert h["params"][0] == {"name": "fc1.weight", "shape": [16, 6], "dtype": "float32", "numel": 96,
                              "group": 0, "requires_grad": True}
    # the header is the first line and starts with the format name (what the reader sniffs)
    assert open(tmp_path / "c.jsonl").read().startswith('{"format":"collapse-capture"')


def test_killed_process_leaves_a_loadable_file(tmp_path):
    """SIGKILL mid-run: no end record, possibly a half line; the file still loads."""
    script = f"""
import os, signal, sys, torch
sys.path.insert(0, {str(os.getcwd())!r})
from collapse_nb.capture import Recorder
torch.manual_seed(0)
m = torch.nn.Linear(4, 1); opt = torch.optim.SGD(m.parameters(), lr=0.1)
rec = Recorder(m, opt, {str(tmp_path / 'k.jsonl')!r}, every=1, flush_every=1)
for i in range(5):
    loss = m(torch.randn(8, 4)).pow(2).mean(); rec.log(loss=loss, epoch=0, batch=i)
    loss.backward(); opt.step(); opt.zero_grad()
rec._writer._file.write('{{"type":"step","step":5,"grad_norm":[0.1,')
rec._writer._file.flush()
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    run = cnb.load(tmp_path / "k.jsonl")
    skipped = run.meta["files"][0]["skipped"]
    assert skipped["count"] == 1 and "truncated last line" in skipped["examples"][0]["reason"]
    assert run.grads["step"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert any("no end record" in n for n in run.meta["notes"])


def test_atexit_flushes_an_unclosed_recorder(tmp_path):
    script = f"""
import sys, torch
sys.path.insert(0, {str(os.getcwd())!r})
from collapse_nb.capture import Recorder
m = torch.nn.Linear(4, 1); opt = torch.optim.SGD(m.parameters(), lr=0.1)
rec = Recorder(m, opt, {str(tmp_path / 'a.jsonl')!r}, every=1, flush_every=1000)
for i in range(3):
    m(torch.randn(8, 4)).sum().backward(); opt.step(); opt.zero_grad()
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    assert [r["type"] for r in records(tmp_path / "a.jsonl")] == ["header", "step", "step", "step", "end"]


def test_appending_a_second_session_makes_a_segment(tmp_path):
    path = tmp_path / "c.jsonl"
    for start in (0, 4):
        model, opt = make()
        with Recorder(model, opt, path, every=2, start_step=start) as rec:
            train(model, opt, batches(4), rec=rec)
    run = cnb.load(path)
    assert run.meta["restarts"] and sorted(run.scalars["segment"].unique()) == [0, 1]
    g = run.grads[run.grads["param"] == "fc1.weight"]
    assert g["segment"].tolist() == [0, 0, 1, 1] and g["step"].tolist() == [0, 2, 4, 6]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Recorder(make()[0], make()[1], path, mode="w").close()
    assert len(records(path, "header")) == 1
