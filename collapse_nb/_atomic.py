"""Files written whole or not at all: a temporary name beside the target, renamed into place when complete."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_target(path: Path) -> Iterator[str]:
    """A hidden temporary path in ``path``'s folder to write to; it replaces ``path`` when the block ends without an
    error, and is removed when it raises (readers of ``path`` never see half a file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_target`)."""
    with atomic_target(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
