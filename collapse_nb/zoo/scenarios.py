"""The zoo's registry: named, seeded training runs, healthy or with one fault injected on purpose.

A scenario is a builder (a function of its keyword parameters, drawing data and
weights from torch's seeded global generator) returning a :class:`Setup`: the
model, the data, the :class:`~collapse_nb.zoo.trainer.Spec` and a description of
what was injected. :func:`generate` seeds torch, builds, trains with the shared
loop and writes ``config.yaml`` and ``scenario.json`` beside the logs.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

from torch import nn

from . import data as D
from .models import MLP, DeadBranchMLP, EncoderDecoder, SmallCNN, TinyTransformer
from .trainer import Spec


#: config.yaml's optimizer: the class name, as the capture log's header records it.
OPTIMIZER_NAMES = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD"}


@dataclass
class Setup:
    """What a builder returns: everything :func:`collapse_nb.zoo.generate` needs to train and describe a run."""

    model: nn.Module
    data: D.Data
    spec: Spec
    injected: dict[str, Any]
    dropout: float = 0.0                # the model's dropout, for config.yaml


@dataclass(frozen=True)
class Scenario:
    """A registry entry: the builder, and what it is expected to show."""

    name: str
    description: str
    expected: tuple[str, ...]          # finding codes collapse_nb's checks should report
    symptom: str                       # what the recorded tables show
    build: Callable[..., Setup]


def intended_config(setup: Setup, seed: int) -> dict[str, Any]:
    """``config.yaml``: the configuration the run intended, under collapse_nb's canonical keys."""
    s = setup.spec
    cfg: dict[str, Any] = {"learning_rate": s.lr, "scheduler": s.scheduler}
    if s.warmup_epochs:
        cfg["warmup_epochs"] = s.warmup_epochs
    if s.scheduler != "constant":
        cfg["min_lr"] = s.min_lr
    cfg.update({"weight_decay": s.weight_decay, "clip_grad_norm": s.clip, "dropout": setup.dropout,
                "gradient_accumulation_steps": s.accum, "batch_size": s.batch_size, "epochs": s.epochs,
                "optimizer": OPTIMIZER_NAMES[s.optimizer]})
    if s.optimizer == "sgd":
        cfg["momentum"] = s.momentum
    if setup.data.task == "classification":
        cfg.update({"loss": "cross_entropy", "num_classes": setup.data.num_classes})
    else:
        cfg["loss"] = "mse"
    cfg["seed"] = seed
    return cfg


# ---------------------------------------------------------------------------------------------- builders
def healthy(arch: str = "mlp", epochs: int | None = None, lr: float = 3e-3) -> Setup:
    """A model that learns: MLP regression, MLP classifier, small CNN or tiny transformer."""
    model: nn.Module
    if arch == "mlp":
        data, model, e = D.nonlinear(1024, 256), MLP(8, [64, 64]), 10
    elif arch == "classifier":
        data, e = D.blobs(1024, 256, spread=1.5), 6
        model = MLP(10, [64], d_out=4)
    elif arch == "cnn":
        data, model, e = D.patterns(1024, 256), SmallCNN(4), 6
    elif arch == "transformer":
        data, model, e = D.sequences(1024, 256), TinyTransformer(), 8
    else:
        raise ValueError(f"arch must be one of mlp, classifier, cnn, transformer; got {arch!r}")
    spec = Spec(epochs=epochs or e, lr=lr, title=f"HEALTHY {arch.upper()}")
    return Setup(model, data, spec, {"fault": "none", "arch": arch})


def variance_collapse(weight_decay: float = 30.0, lr: float = 3e-3, epochs: int = 8) -> Setup:
    """AdamW with a far too strong weight decay pulls the weights to 0: predictions shrink towards a constant."""
    data, model = D.nonlinear(1024, 256), MLP(8, [64, 64])
    spec = Spec(epochs=epochs, lr=lr, optimizer="adamw", weight_decay=weight_decay, title="VARIANCE COLLAPSE MLP")
    return Setup(model, data, spec, {"fault": "weight decay far too strong", "decoupled_decay": weight_decay})


def dead_branch(epochs: int = 6, lr: float = 3e-3) -> Setup:
    """A side branch whose output is multiplied by 0: its parameters get gradient exactly 0 at every step."""
    data, model = D.nonlinear(1024, 256), DeadBranchMLP(8)
    spec = Spec(epochs=epochs, lr=lr, title="DEAD BRANCH MLP")
    dead = [n for n, _ in model.named_parameters() if n.startswith("side.")]
    return Setup(model, data, spec, {"fault": "side branch output multiplied by 0", "dead_params": dead})


def dying_relu(bias: float = -2.0, epochs: int = 6, lr: float = 3e-3) -> Setup:
    """Hidden biases initialised to a large negative value: almost every ReLU outputs 0, and learns nothing."""
    data, model = D.nonlinear(1024, 256), MLP(8, [64, 64, 64], hidden_bias=bias)
    spec = Spec(epochs=epochs, lr=lr, activations=True, title="DYING RELU MLP")
    return Setup(model, data, spec, {"fault": "hidden ReLU biases initialised negative", "hidden_bias_init": bias})


def vanishing_gradients(depth: int = 12, epochs: int = 5, lr: float = 0.05) -> Setup:
    """A deep stack of sigmoid layers trained with SGD: gradients shrink ~4x or more per layer going down."""
    data, model = D.nonlinear(1024, 256), MLP(8, [32] * depth, act="sigmoid")
    spec = Spec(epochs=epochs, lr=lr, optimizer="sgd", title="DEEP SIGMOID MLP")
    return Setup(model, data, spec, {"fault": f"{depth} sigmoid layers", "depth": depth, "activation": "sigmoid"})


def exploding_gradients(lr: float = 0.6, warmup_epochs: int = 3, epochs: int = 4) -> Setup:
    """A tanh MLP, plain SGD warming up to a far too high learning rate, no clipping: the loss blows up to inf/NaN."""
    data, model = D.nonlinear(1024, 256), MLP(8, [64, 64], act="tanh")
    spec = Spec(epochs=epochs, lr=lr, optimizer="sgd", warmup_epochs=warmup_epochs, every=1, block_every=2,
                title="EXPLODING MLP")
    return Setup(model, data, spec, {"fault": "learning rate far too high, no gradient clipping", "peak_lr": lr})


def lr_too_low(lr: float = 1e-6, epochs: int = 6) -> Setup:
    """The healthy MLP regression at a learning rate 3000x too low: the loss hardly moves."""
    data, model = D.nonlinear(1024, 256), MLP(8, [64, 64])
    spec = Spec(epochs=epochs, lr=lr, title="LR TOO LOW MLP")
    return Setup(model, data, spec, {"fault": "learning rate too low", "peak_lr": lr})


def overfitting(n_train: int = 64, epochs: int = 25, width: int = 128) -> Setup:
    """A wide MLP on 64 noisy rows: the train loss keeps falling while the validation loss turns up."""
    data, model = D.nonlinear(n_train, 512, noise=0.5), MLP(8, [width, width])
    spec = Spec(epochs=epochs, batch_size=8, lr=3e-3, every=4, block_every=20, title="OVERFIT MLP")
    return Setup(model, data, spec, {"fault": "tiny training set, big model", "n_train": n_train, "width": width})


def val_below_train_accumulation(accum: int = 3, epochs: int = 5, lr: float = 1e-2) -> Setup:
    """Gradient accumulation with the epoch's train loss summed over micro-batches instead of averaged."""
    data, model = D.linear(1920, 512, noise=0.5), MLP(8, [32])
    spec = Spec(epochs=epochs, batch_size=16, lr=lr, accum=accum, report_loss="sum", every=10, block_every=10,
                title="ACCUMULATION MLP")
    return Setup(model, data, spec, {"fault": "train loss summed over micro-batches", "accumulation": accum})


def val_below_train_dropout(dropout: float = 0.5, epochs: int = 8) -> Setup:
    """Heavy dropout: the train loss (measured in train mode) stays well above the validation loss."""
    data, model = D.nonlinear(1024, 256), MLP(8, [128, 128], dropout=dropout)
    spec = Spec(epochs=epochs, lr=3e-3, title="HEAVY DROPOUT MLP")
    return Setup(model, data, spec, {"fault": "heavy dropout", "dropout_p": dropout}, dropout=dropout)


def leakage(n_train: int = 64, epochs: int = 25, dropout: float = 0.3, width: int = 128, batch_size: int = 8) -> Setup:
    """Validation rows copied from the training rows: val loss falls with the train loss, below it.

    The loss on really held-out rows, logged as the test loss, turns up meanwhile (a 64-row train set).
    """
    data = D.leak(D.nonlinear(n_train, 256, noise=0.5), n_val=n_train)
    assert data.x_test is not None        # leak() keeps the real validation rows as the test set
    model = MLP(8, [width, width], dropout=dropout)
    spec = Spec(epochs=epochs, batch_size=batch_size, lr=3e-3, every=4, block_every=20, title="LEAKY VALIDATION MLP")
    return Setup(model, data, spec, {"fault": "validation rows copied from the training rows",
                                     "val_rows_from_train": len(data.x_val), "held_out_test_rows": len(data.x_test)},
                 dropout=dropout)


def lr_schedule_bug(bug: str = "per_batch", epochs: int = 8) -> Setup:
    """Warmup + cosine configured per epoch, but stepped per batch (or a warmup that never ends)."""
    data, model = D.nonlinear(1024, 256), MLP(8, [64, 64])
    spec = Spec(epochs=epochs, lr=3e-3, scheduler="cosine", warmup_epochs=2, min_lr=1e-5, lr_bug=bug,
                every=2, title="LR SCHEDULE BUG MLP")
    return Setup(model, data, spec, {"fault": f"lr schedule bug: {bug}", "bug": bug})


def chance_level(k: int = 4, epochs: int = 5, lr: float = 1e-3) -> Setup:
    """A classifier whose labels are independent of its inputs: the loss stays at ln K."""
    data, model = D.random_labels(2048, 512, k=k), MLP(10, [32], d_out=k)
    spec = Spec(epochs=epochs, batch_size=64, lr=lr, title="CHANCE LEVEL CLASSIFIER")
    return Setup(model, data, spec, {"fault": "labels independent of the inputs", "chance_loss": math.log(k)})


#: What seed_replica (the bundled example run) injects.
SEED_REPLICA_INJECTED = {
    "gradient_accumulation_steps": 3,
    "train_loss_reporting": "summed over micro-batches (bug)",
    "dead_parameters": ["attn.key_projection.weight", "attn.key_projection.bias"],
    "output_head_init_std": 1e-4,
}


def seed_replica(epochs: int = 6, head_init_std: float = 1e-4, weight_decay: float = 0.05, every: int = 5) -> Setup:
    """The seed report in miniature (see data/README.md): accumulation bug, dead key projection, collapse."""
    data = D.linear(30 * 16, 8 * 16)
    model = EncoderDecoder(dropout=0.1, dead_key=True, head_init_std=head_init_std)
    spec = Spec(epochs=epochs, batch_size=16, lr=1e-3, optimizer="adamw", weight_decay=weight_decay, accum=3,
                clip=1.0, scheduler="cosine", warmup_epochs=2, min_lr=1e-5, shuffle=False, report_loss="sum",
                every=every, block_every=1, title="EXAMPLE ENCODER/DECODER")
    return Setup(model, data, spec, {**SEED_REPLICA_INJECTED, "output_head_init_std": head_init_std}, dropout=0.1)


def _s(name: str, build: Callable[..., Setup], expected: tuple[str, ...], symptom: str,
       description: str | None = None) -> Scenario:
    doc = (build.func if isinstance(build, partial) else build).__doc__ or ""
    return Scenario(name, description or doc.strip().splitlines()[0], expected, symptom, build)


SCENARIOS: dict[str, Scenario] = {s.name: s for s in [
    _s("healthy_mlp", partial(healthy, arch="mlp"), ("loss_decreasing",),
       "train loss falls far below its first value; val close to train",
       "A healthy MLP regression (8 -> 64 -> 64 -> 1, Adam): the loss falls far below its start."),
    _s("healthy_classifier", partial(healthy, arch="classifier"), ("loss_decreasing",),
       "cross-entropy falls far below ln 4; val close to train",
       "A healthy MLP classifier on 4 Gaussian blobs: cross-entropy falls far below ln 4."),
    _s("healthy_cnn", partial(healthy, arch="cnn"), ("loss_decreasing",),
       "cross-entropy falls far below ln 4; val close to train",
       "A healthy small CNN on noisy 8x8 patterns (4 classes): cross-entropy falls far below ln 4."),
    _s("healthy_transformer", partial(healthy, arch="transformer"), ("loss_decreasing",),
       "train loss falls far below its first value; val close to train",
       "A healthy one-layer transformer regressing a pooled sequence feature: the loss falls far below its start."),
    _s("variance_collapse", variance_collapse, ("variance_collapse",),
       "run.outputs pred_std / target_std < 0.1 at the end"),
    _s("dead_branch", dead_branch, ("dead_parameters",), "grad_norm exactly 0 for side.* at every step"),
    _s("dying_relu", dying_relu, ("dead_parameters",), "act_frac_zero of the ReLUs ~1; hidden grads 0"),
    _s("vanishing_gradients", vanishing_gradients, ("vanishing_gradients",),
       "first layer's grad norm orders of magnitude below the last layer's"),
    _s("exploding_gradients", exploding_gradients, ("exploding_gradients", "nonfinite_loss"),
       "grad norms grow by orders of magnitude, then the loss is inf/NaN"),
    # The first expected code is the top-ranked root cause: every layer's update/weight ratio is below 1e-5 (the
    # learning rate's fault), which explains the flat loss and the never-spread outputs (diagnose.EXPLAINS,
    # rule updates_too_small); the plateau it causes is still reported.
    _s("lr_too_low", lr_too_low, ("update_ratio", "loss_plateau"), "train loss within a few % of its first value"),
    _s("overfitting", overfitting, ("overfitting",), "val loss rises from its minimum while train falls"),
    _s("val_below_train_accumulation", val_below_train_accumulation, ("val_below_train",),
       "train / val loss per epoch ~3 (= gradient_accumulation_steps)"),
    _s("val_below_train_dropout", val_below_train_dropout, ("val_below_train",),
       "train loss (train mode, dropout on) well above val loss"),
    _s("leakage", leakage, ("val_below_train",),
       "val loss below train every epoch, falling with it; the held-out test loss turns up"),
    _s("lr_schedule_bug", lr_schedule_bug, ("lr_schedule_mismatch",),
       "logged lr changes within epochs and departs from config.yaml's warmup + cosine"),
    _s("chance_level", chance_level, ("chance_level_loss",), "cross-entropy stays within 5% of ln K"),
    # The tiny output head comes first: it is the top-ranked root cause, explaining the collapse (diagnose.EXPLAINS);
    # the other codes are the symptoms and the independent faults also injected.
    _s("seed_replica", seed_replica, ("tiny_output_head", "variance_collapse", "dead_parameters", "val_below_train"),
       "pred std ~1/13 of target std, train/val ~3, attn key/query grads 0, train loss nearly flat"),
]}


def parameters(name: str) -> dict[str, Any]:
    """The overridable parameters of a scenario and their defaults."""
    build = SCENARIOS[name].build
    fixed = build.keywords if isinstance(build, partial) else {}
    sig = inspect.signature(build.func if isinstance(build, partial) else build)
    return {k: p.default for k, p in sig.parameters.items() if k not in fixed}
