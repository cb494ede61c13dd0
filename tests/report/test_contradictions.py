"""No sentence of a report contradicts another: reports of zoo scenarios and corpus runs, read against a list of
contradictions a reader has met (issue 13). The corpus runs are skipped when ../shared/corpus is absent."""
from __future__ import annotations

import re
import warnings

import pytest

import collapse_nb as cnb
from collapse_nb.report import report

from .. import zoo as _zoo      # the shared session fixture of the zoo tests (their module skips without torch)

zoo_run = _zoo.zoo_run

#: Words a title may not end on: a sentence cut in the middle ("7 parameter(s) have a median").
DANGLING = {"a", "an", "the", "of", "have", "has", "median", "below", "above", "and", "or", "than"}
RUN_WORDS = ("broken", "suspicious", "working")


def _section(md: str, title: str) -> str:
    parts = md.split(f"\n## {title}", 1)
    return parts[1].split("\n## ", 1)[0] if len(parts) == 2 else ""


def contradictions(rep) -> list[str]:
    """Every contradiction found in ``rep`` (a Report), in words."""
    md, out = rep.markdown, []
    oks = [f for f in rep.findings if f.severity == "ok"]
    for f in oks:
        if re.search(r"\bexplains? about \d+%", f.summary):
            out.append(f"an ok finding says it explains a percentage: {f.code}: {f.summary}")
    for f in rep.findings:
        t = f.title
        if t.count("(") != t.count(")"):
            out.append(f"unbalanced title: {t}")
        last = re.sub(r"[^\w]+$", "", t).rsplit(" ", 1)[-1].lower()
        if last in DANGLING:
            out.append(f"title cut mid-sentence: {t}")
    regression = any("loss_over_var" in f.details for f in rep.findings)
    if regression:
        for f in rep.findings:
            if f.check == "chance_level_loss" and re.search(r"logits|class count|classes", " ".join(f.actions)):
                out.append(f"classification actions on a regression run: {f.actions}")
    if "no training objective recognised" in rep.verdict and "Loss is finite throughout" in md:
        out.append("'no training objective' beside 'Loss is finite throughout'")
    table = _section(md, "Findings")
    for word in RUN_WORDS:
        if re.search(rf"^\| \S+ {word} \|", table, re.M) or re.search(rf"^### \S+ {word} ", md, re.M):
            out.append(f"a finding labelled with a run's status word: {word}")
    sus = _section(md, "Suspects (root causes, ranked)")
    rows = [r for r in sus.splitlines() if r.startswith("| ") and not r.startswith("| #")]
    col = [r.rsplit("|", 2)[-2].strip() for r in rows]
    nums = [int(c[:-1]) for c in col if re.fullmatch(r"\d+%", c)]
    if "Part of the failure" in sus:
        if not (col and col[-1] == "100%" and sum(nums[:-1]) == 100):
            out.append(f"the parts of the failure do not add up to 100%: {col}")
    elif nums:
        out.append(f"percentages in the suspects without a total: {col}")
    for p in re.findall(r"\((\d+)% of the observed failure\)", rep.verdict):
        if f"{p}%" not in col:
            out.append(f"the verdict's {p}% is not in the suspects table {col}")
    for r in rows:
        if "✅ ok" in r:
            out.append(f"an ok finding among the suspects: {r}")
        cells = [c.strip() for c in r.strip("|").split("|")]
        if len(cells) >= 5 and cells[3] == "likely cause" and cells[4] == "-":
            out.append(f"a likely cause that explains nothing: {r}")
    return out


def test_the_contradiction_list_catches_each_kind():
    """The checker itself: each pattern fires on a report that has it."""
    from types import SimpleNamespace

    from collapse_nb.findings import Finding

    bad = [Finding("loss_below_target_variance", "ok", "Loss below the target variance", summary="the model "
                   "explains about 18% of it", check="chance_level_loss", details={"loss_over_var": 0.82}),
           Finding("vanishing_gradients", "warning", "Vanishing gradients: 7 parameter(s) have a median",
                   check="vanishing_gradients"),
           Finding("chance_level_loss", "warning", "Loss at the level of predicting the mean",
                   check="chance_level_loss",
                   actions=["Check the loss receives logits, with the right class count."],
                   details={"loss_over_var": 1.0})]
    md = ("\n## Findings\n\n| ✅ working | x | y |\n\n## Suspects (root causes, ranked)\n\n"
          "| # | a | b | c | d | Share |\n"
          "| 1 | t | ⚠️ warning | likely cause | - | 68% |\n| 2 | u | ⚠️ warning | likely cause | x | 24% |\n\n"
          "## Problems in detail\n\nLoss is finite throughout\n")
    rep = SimpleNamespace(markdown=md, findings=bad, verdict="Not assessed: no training objective recognised. "
                                                         "Most likely cause: x (68% of the observed failure).")
    found = " / ".join(contradictions(rep))
    for what in ("explains a percentage", "title cut mid-sentence", "classification actions", "no training objective",
                 "run's status word", "percentages in the suspects without a total", "likely cause that explains"):
        assert what in found, what


@pytest.mark.parametrize("name", ["seed_replica", "variance_collapse", "dead_branch", "chance_level", "healthy_mlp",
                                  "val_below_train_accumulation", "vanishing_gradients", "lr_too_low"])
def test_zoo_reports_do_not_contradict_themselves(zoo_run, name):
    _, run = zoo_run(name)
    rep = report(run, plots=False)
    assert contradictions(rep) == []


@pytest.mark.parametrize("parts", [("tsl-diag-f7a0244",), ("deepspeed-8rank-dpo",), ("yolo-fire-tb",),
                                   ("ckpt-opal",), ("pix2pix-d-collapse",), ("keras-glove-lstm-overfit",),
                                   ("hf-phi4-lora-gradnorm-spike",)])
def test_corpus_reports_do_not_contradict_themselves(corpus, parts):
    path = corpus(*parts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = cnb.load_runs(path)
    for name, run in runs.items():
        assert contradictions(report(run, findings=runs.findings(name), plots=False)) == [], name
