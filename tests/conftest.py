"""Shared fixtures: the real-log corpus (skipped when ../shared is absent), a fixed seed, Agg backend."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
# the read cache (collapse_nb/cache.py) is off in tests, so a test that changes a reader still reads every file;
# tests/test_cache.py turns it on with a folder of its own
os.environ["COLLAPSE_NB_CACHE"] = "0"

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)


def corpus_file(*parts: str) -> Path:
    """A file of the shared real-log corpus; the test is skipped if it is not there."""
    p = CORPUS.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"corpus file {p} not available (../shared/corpus is absent)")
    return p


@pytest.fixture
def corpus():
    return corpus_file
