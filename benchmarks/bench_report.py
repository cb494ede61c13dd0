"""End-to-end time of ``collapse-nb report`` on a large diagnostic-block log, and where it goes.

Generates a log in the seed report's diagnostic-block format (``bench_text_parse.generate``:
optimizer blocks with per-parameter norms, batch headers, loss and prediction statistics),
then:

1. runs ``collapse-nb report LOG -o DIR`` in a fresh process and times it end to end (the
   figure that counts; target: under 10 s for 50 MB), with the split the command prints
   (load, diagnose, plots, writing);
2. repeats the work in this process, stage by stage, to say where the time goes: loading,
   building the derived tables, each check, each plot, building the document, rendering and
   writing.

    python benchmarks/bench_report.py --mb 50
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_text_parse import generate  # noqa: E402

TARGET_S = 10.0


def end_to_end(log: Path, out: Path) -> tuple[float, float, str]:
    """``(wall seconds, CPU seconds, stdout)`` of the command in a fresh process. The CPU time (user + system
    of the child) says what the command costs when the machine is shared and the wall time is inflated."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "collapse_nb.cli", "report", str(log), "-o", str(out)],
                         capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, res.stdout


def stages(log: Path, out: Path) -> list[tuple[str, float]]:
    import collapse_nb as cnb
    from collapse_nb.checks import default_checks
    from collapse_nb.diagnose import diagnose, root_causes
    from collapse_nb.report import Report
    from collapse_nb.report.document import build_document
    from collapse_nb.report.figures import PLOTS, render_figure

    rows: list[tuple[str, float]] = []

    def timed(name, fn):
        t = time.perf_counter()
        value = fn()
        rows.append((name, time.perf_counter() - t))
        return value

    run = timed("load (read + parse -> scalars)", lambda: cnb.load(log))
    for table in ("epochs", "outputs", "grads"):
        timed(f"  table run.{table}", lambda table=table: getattr(run, table))
    for check in default_checks():
        timed(f"  check {check.name}", lambda check=check: check(run))
    findings = timed("diagnose (all checks, tables cached)", lambda: diagnose(run))
    causes = timed("root_causes", lambda: root_causes(findings))
    figures = []
    for spec in PLOTS:
        if spec.when(run, findings):
            figures.append(timed(f"  plot {spec.key}", lambda spec=spec: render_figure(spec, run, findings)))
    doc = timed("document", lambda: build_document(run, findings, causes, figures))
    rep = Report(run=run, findings=findings, root_causes=causes, document=doc, figures=figures)
    timed("render html", lambda: rep.html)
    timed("render markdown", lambda: rep.markdown)
    timed("write (html + md + PNGs)", lambda: rep.save(out))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=50.0, help="size of the generated log (default 50 MB)")
    ap.add_argument("--keep", help="write the log here and keep it")
    ap.add_argument("--no-stages", action="store_true", help="only the end-to-end time")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(args.keep) if args.keep else Path(tmp) / "training_diagnostic.log"
        size = generate(log, args.mb)
        print(f"log: {log} ({size / 1e6:.1f} MB)")
        seconds, cpu, stdout = end_to_end(log, Path(tmp) / "e2e")
        split = re.search(r"\(([\d.]+) s load, ([\d.]+) s diagnose, ([\d.]+) s plots, ([\d.]+) s writing\)", stdout)
        verdict = stdout.strip().split("\n\n")[0].split(". ")[0]
        print(f"collapse-nb report, end to end (fresh process): {seconds:.2f} s "
              f"({'under' if seconds < TARGET_S else 'OVER'} the {TARGET_S:g} s target), {cpu:.2f} s CPU; "
              f"verdict: {verdict}.")
        load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"  machine: {os.cpu_count()} CPU(s), load average {load_avg:.1f} (a load above the CPU count "
              f"inflates the wall times)")
        if split:
            load, diag, plots, write = map(float, split.groups())
            rest = seconds - load - diag - plots - write
            print(f"  split: load {load:.2f} s, diagnose {diag:.2f} s, plots {plots:.2f} s, writing {write:.2f} s, "
                  f"other (interpreter, imports, document) {rest:.2f} s")
        if not args.no_stages:
            print("in this process, stage by stage:")
            for name, s in stages(log, Path(tmp) / "stages"):
                print(f"  {name:45} {s:7.2f} s")


if __name__ == "__main__":
    main()
