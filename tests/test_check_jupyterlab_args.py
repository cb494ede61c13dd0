"""scripts/check_jupyterlab.py writes its screenshot to a temporary folder unless told where (the checkout stays
clean); ``--update-docs`` writes the docs' image. (The browser run itself: tests/notebooks/test_jupyterlab.py.)"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import check_jupyterlab  # noqa: E402


def test_the_screenshot_goes_to_a_temporary_folder_by_default():
    quickstart = REPO / "notebooks" / "00_quickstart.ipynb"
    shot = check_jupyterlab.screenshot_path(quickstart)
    assert shot.name == "quickstart_jupyterlab.png" and shot.parent.is_dir()
    assert not shot.resolve().is_relative_to(REPO.resolve())
    assert check_jupyterlab.screenshot_path(quickstart, update_docs=True) == REPO / "docs" / "img" / shot.name
    assert check_jupyterlab.screenshot_path(quickstart, out=Path("x.png")) == Path("x.png")
    shot.parent.rmdir()


def test_out_and_update_docs_together_are_refused(capsys):
    with pytest.raises(SystemExit) as e:
        check_jupyterlab.main(["--out", "x.png", "--update-docs"])
    assert e.value.code == 2 and "not both" in capsys.readouterr().err
