"""The zoo: small, seeded training runs, healthy or broken on purpose, that really train on a CPU.

>>> import collapse_nb.zoo as zoo
>>> sorted(zoo.scenarios())[:2]
['chance_level', 'dead_branch']
>>> run_dir = zoo.generate("dead_branch", "runs/dead_branch", seed=0)     # doctest: +SKIP
>>> collapse_nb.load(run_dir).grads                                       # doctest: +SKIP

Each scenario trains a small model (MLP, CNN, tiny transformer, encoder/decoder) on
synthetic data in seconds and leaves a run directory holding what a real training
script leaves: ``capture.jsonl`` (the :class:`collapse_nb.capture.Recorder`'s log),
``training_diagnostic.log`` (the seed report's diagnostic blocks), ``tb/`` (TensorBoard
events: losses, lr, weight and gradient histograms), ``checkpoints/epoch_<e>.pt``,
``metrics.csv``, ``config.yaml`` (the intended configuration) and ``scenario.json``
(what was injected, the finding codes it should produce). The same seed gives the
same logged numbers. Needs ``torch`` (and ``tensorboard`` for the events).

From the command line: ``collapse-nb zoo [NAME ...] --out DIR [--seed N]`` or
``python -m collapse_nb.zoo ...``.

Layout: ``scenarios.py`` (the registry: one builder per scenario), ``trainer.py`` (the one
training loop, with the fault switches), ``models.py``, ``data.py``, ``writers.py``. Note that
``collapse_nb.zoo.scenarios`` is the function below; reach the registry module with
``from collapse_nb.zoo.scenarios import SCENARIOS``.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from .scenarios import SCENARIOS, intended_config, parameters

__all__ = ["scenarios", "generate", "parameters", "expected_findings"]

#: Bumped when scenario.json changes shape.
ZOO_VERSION = 1


def scenarios() -> dict[str, str]:
    """Every scenario's name and a one-line description of it."""
    return {name: s.description for name, s in SCENARIOS.items()}


def expected_findings(name: str) -> tuple[str, ...]:
    """The finding codes collapse_nb's checks are expected to report for a scenario."""
    return _scenario(name).expected


def _scenario(name: str):
    if not isinstance(name, str) or name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; scenarios are: {', '.join(SCENARIOS)}")
    return SCENARIOS[name]


def _clear_outputs(out: Path) -> None:
    """Remove what an earlier generation into ``out`` wrote that a new one would not overwrite."""
    for f in list((out / "tb").glob("events.out.tfevents.*")) + list((out / "checkpoints").glob("epoch_*.pt")):
        f.unlink()
    for d in (out / "tb", out / "checkpoints"):
        if d.is_dir() and not any(d.iterdir()):
            shutil.rmtree(d)


def generate(name: str, out_dir: str | Path, seed: int = 0, **overrides: Any) -> Path:
    """Train scenario ``name`` with ``seed`` and write its run directory ``out_dir``; returns it.

    ``overrides`` change the scenario's parameters (see :func:`parameters`), e.g.
    ``generate("lr_too_low", d, lr=1e-5)``. torch's global random state and thread
    count are restored afterwards.
    """
    scen = _scenario(name)
    allowed = parameters(name)
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise TypeError(f"scenario {name!r} has no parameter {', '.join(map(repr, unknown))}; it takes: "
                        + (", ".join(f"{k}={v!r}" for k, v in allowed.items()) or "nothing"))
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    import torch

    from .trainer import train
    from .writers import write_config, write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _clear_outputs(out)
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(1)
        try:
            setup = scen.build(**overrides)
            config = intended_config(setup, seed)
            write_config(out / "config.yaml", config)
            summary = train(setup.model, setup.data, setup.spec, out, config, seed=seed)
        finally:
            torch.set_num_threads(threads)
    write_json(out / "scenario.json", {
        "scenario": name, "description": scen.description, "seed": seed,
        "parameters": {**allowed, **overrides}, "injected": setup.injected,
        "expected_findings": list(scen.expected), "symptom": scen.symptom,
        "optimizer_steps": summary["steps"], "batches_per_epoch": summary["batches_per_epoch"],
        "notes": summary["notes"], "zoo_version": ZOO_VERSION, "torch": torch.__version__,
    })
    return out
