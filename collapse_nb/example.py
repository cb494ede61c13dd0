"""The bundled example run (``collapse_nb/data/example_run``, shipped in the wheel; ``data/example_run`` in the
repository is a link to it): the zoo's ``seed_replica`` scenario.

A tiny encoder/decoder regression model really trained with PyTorch on synthetic
data, failing the way the seed report's model failed (see ``data/README.md``):

- gradient accumulation of 3 with the *reported* train loss summed over the
  micro-batches instead of averaged (val loss looks ~3x lower than train loss);
- a dead attention projection (its output is multiplied by zero, so its gradient is 0);
- a tiny-initialised output head and weight decay, so predictions stay far narrower than the targets.

Regenerate it with ``python -m collapse_nb.zoo seed_replica --out collapse_nb/data/example_run``
(or ``python -m collapse_nb.example``, which writes it there). The training code lives in
:mod:`collapse_nb.zoo`; this module only names the example and where it is, and
does not import torch until :data:`INJECTED` or :func:`make_example_run` is used.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

#: The zoo scenario the bundled example is.
SCENARIO = "seed_replica"


def make_example_run(out_dir: str | Path, seed: int = 0, **overrides: Any) -> Path:
    """Train the example model (zoo scenario ``seed_replica``) and write its run directory. Returns ``out_dir``."""
    from .zoo import generate

    return generate(SCENARIO, out_dir, seed=seed, **overrides)


def default_example_dir() -> Path:
    """The bundled example run: ``collapse_nb/data/example_run`` inside the package (package data, so an installed
    wheel has it too)."""
    return Path(__file__).resolve().parent / "data" / "example_run"


def __getattr__(name: str) -> Any:
    if name == "INJECTED":              # what was injected (needs torch: the zoo's scenario module)
        from .zoo.scenarios import SEED_REPLICA_INJECTED

        return SEED_REPLICA_INJECTED
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    print(make_example_run(sys.argv[1] if len(sys.argv) > 1 else default_example_dir()))
