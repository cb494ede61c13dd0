"""collapse_nb.progress: the library says what it is about to read; a listener that fails never stops the work."""
from __future__ import annotations

import collapse_nb as cnb
from collapse_nb import progress
from collapse_nb.cluster import triage_folder


def _folder(root):
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        (root / name / "log.jsonl").write_text("".join(f'{{"step": {s}, "loss": {1 / (s + 1)}}}\n' for s in range(20)))
        (root / name / "notes.txt").write_text("no numbers\n")
    return root


def test_events_of_a_folder_of_runs(tmp_path):
    root, seen = _folder(tmp_path / "runs"), []
    with progress.listening(lambda event, info: seen.append((event, dict(info)))):
        cnb.load_runs(root, cache=False)
    assert seen[0] == ("runs", {"n": 2, "where": "here"})
    assert [i["name"] for e, i in seen if e == "run"] == ["a", "b"]
    files = [i for e, i in seen if e == "file"]
    assert len(files) == 4 and all(i["size"] > 0 for i in files)
    assert [i["n"] for e, i in seen if e == "files"] == [2, 2]
    seen.clear()
    with progress.listening(lambda event, info: seen.append(event)):
        triage_folder(root, cache=False)
    assert seen.count("run") == 2


def test_a_failing_listener_and_no_listener(tmp_path):
    root = _folder(tmp_path / "runs")

    def broken(event, info):
        raise RuntimeError("display gone")

    with progress.listening(broken):
        assert len(cnb.load_runs(root, cache=False)) == 2
    progress.report("file", path="x")                                   # nobody listening: nothing happens
