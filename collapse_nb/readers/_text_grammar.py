"""The grammar of free-form training logs, one line at a time.

No regex here knows a particular project. A log line is read as:

1. an optional *prefix*: a timestamp, a level (``INFO``), a logger name, in the
   shapes Python ``logging``, glog and tab-separated loggers write;
2. *context tokens*: ``Epoch 3/10``, ``BATCH 10/520``, ``step=1/15000``, ``iter 200:``,
   ``[step=1,epoch=0]``; they set the epoch / batch / step the following lines belong to;
3. *values*: ``key=value``, ``key: value``, ``key value`` (in comma-separated
   lists, as nanoGPT writes), and ``subject a/b: x / y`` pairs; thousands separators,
   units (``ms``, ``%``) and ``nan``/``inf`` are understood;
4. what is left: a phase word (``TRAINING MODE``, ``Running validation``) or a
   section title (``--- OPTIMIZER STEP DIAGNOSTICS ---``), else plain text.

:func:`parse_line` returns a :class:`Parsed` with all of that. It is the
reference implementation: the vectorised fast path in ``_text_fast`` handles the
commonest line shape (one ``key: number`` per line) and must agree with it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..names import PHASE_WORDS

NUM = (r"[-+]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
       r"|[-+]?(?:nan|NaN|NAN|inf|Inf|INF|infinity|Infinity)")
_NUM_RE = re.compile(rf"^(?:{NUM})$")
#: What may follow a number for it to still be a number: a unit, then a boundary.
_AFTER = r"(?P<unit>%|[a-zA-Zµ]{1,4}(?:/[a-zA-Z]{1,3})?)?(?=[\s,;|)\]}]|$)"

_TS = r"\[?\d{4}[-/]\d\d[-/]\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?\]?"
_LEVEL = r"(?:DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL|TRACE)"
_PREFIX = re.compile(
    # 2024-01-01 12:00:00,123 ... INFO -
    rf"^(?:(?P<ts>{_TS})(?:[^\n]{{0,100}}?\b{_LEVEL}\b(?P<sep>\s*[\]:|\-]+\s*|\s+))?"
    rf"|{_LEVEL}:[\w.<>]+:"                                                         # INFO:root:
    r"|[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+\s+\S+:\d+\]\s?"      # glog: I1212 11:03:17.693 9724 f.py:80]
    rf"|\[?{_LEVEL}\]?[:\s]\s*)")
# a logger name right after the level ("__main__: "), but not a metric key ("loss: 0.5")
_LOGGER = re.compile(r"^\s*(?:[\w<>]+(?:\.[\w<>]+)*)(?::\d+)?\s*(?::|\s-)\s+(?![-+]?[\d.])")

_CTX_WORDS = {"epoch": "epoch", "epochs": "epoch", "ep": "epoch", "batch": "batch", "step": "step",
              "global_step": "step", "iter": "step", "iters": "step", "iteration": "step", "it": "step",
              "globalstep": "step", "update": "step", "updates": "step"}
_CTX = re.compile(
    r"(?<![\w/.\-])(?P<word>epoch|epochs|ep|batch|global_step|globalstep|step|iteration|iters|iter|it)"
    r"(?:\s*[=:#]\s*|\s+|\[)(?P<num>\d{1,3}(?:,\d{3})+(?!\d)|\d+(?:\.\d+)?)\]?"     # "step 1,000" too
    r"(?:\s*/\s*(?P<total>\d{1,3}(?:,\d{3})+(?!\d)|\d+))?\]?(?:\s*:(?!\s*[-+]?\d))?",
    re.IGNORECASE)
_CTX_AFTER = re.compile(r"(?<![\w.])(?P<num>\d+)\s*/\s*\d+\s+(?P<word>batches|batch|steps|step|iters|iter)\b",
                        re.IGNORECASE)
_CTX_AFTER_WORDS = {"batches": "batch", "batch": "batch", "steps": "step", "step": "step", "iters": "step",
                    "iter": "step"}
_PAIR_SPLIT = re.compile(r"^(?P<subj>.*?)(?P<k1>[A-Za-z_]\w*)\s*/\s*(?P<k2>[A-Za-z_]\w*)\s*[:=]\s*"
                         rf"(?P<v1>{NUM})\s*/\s*(?P<v2>{NUM})\s*$")
_KV = re.compile(
    rf"(?P<key>[A-Za-z_][\w./\-\[\]]*?(?:\s+\([^)]*\))?)\s*(?P<sep>[=:])\s*(?P<val>{NUM}){_AFTER}")
_KV_WORDS = re.compile(
    rf"(?P<key>[A-Za-z_][\w./\-]*(?:\s+[A-Za-z_][\w./\-]*){{0,4}}(?:\s+\([^)]*\))?)\s*:\s*(?P<val>{NUM}){_AFTER}")
#: A phase word right before a key (``Train Loss=``, ``valid loss=``), not glued to another word.
_PHASE_BEFORE = re.compile(r"(?:^|(?<=[\s,;|(\[]))(?P<word>train|training|val|valid|validation|eval|test|dev)"
                           r"\s*:?\s+$", re.IGNORECASE)          # "Val Loss=", "Val: loss="
_SIMPLE = re.compile(rf"^\s*(?P<key>[A-Za-z_][^:=|,;]*?)\s*[:=]\s*(?P<val>{NUM}){_AFTER}\s*$")
_SPACE_KV = re.compile(rf"^\s*(?P<key>[A-Za-z_][\w./\-]*(?:\s+[A-Za-z_][\w./\-]*){{0,3}})\s+(?P<val>{NUM}){_AFTER}\s*$")
_SECTION = re.compile(r"^\s*(?:-{3,}|={3,}|#{2,}|\*{3,}|~{3,})\s*(?P<title>[A-Za-z][^=#*~]*?)"
                      r"\s*(?:-{3,}|={3,}|#{2,}|\*{3,}|~{3,})\s*$")
_SEPARATOR = re.compile(r"^[\s=\-*#~_+.^|<>]*$")
_SUBJECT = re.compile(r"^(?P<ind>[ \t]*)(?P<name>[A-Za-z_][\w.\-/\[\]]*)\s*:\s*$")
_TEXT_VALUE = re.compile(r"^\s*(?P<key>[A-Za-z_][\w.\-/ ]{0,60}?)\s*[:=]\s*(?P<val>\S.{0,200})$")
_STAT_WORDS = {"mean", "std", "min", "max", "var", "median", "norm", "avg", "sum", "count", "rms"}
_TRACEBACK_START = "Traceback (most recent call last):"


@dataclass
class Parsed:
    """What one line says. ``context`` maps ``epoch``/``batch``/``step`` to numbers."""

    values: list[tuple[str, float]] = field(default_factory=list)
    context: dict[str, float] = field(default_factory=dict)
    phase: str | None = None
    section: str | None = None
    subject: str | None = None
    text_values: list[tuple[str, str]] = field(default_factory=list)
    timestamp: str | None = None
    kind: str = "text"          # values | context | section | subject | blank | text | traceback


def to_number(s: str) -> float:
    return float(s.replace(",", ""))


def strip_prefix(line: str) -> tuple[str, str | None]:
    """Remove a logging prefix; return ``(message, timestamp or None)``."""
    m = _PREFIX.match(line)
    if not m or not m.group(0):
        return line, None
    rest = line[m.end():]
    ts = m.group("ts")
    if ts is not None and m.group(0).rstrip().endswith(ts.rstrip()):
        # timestamp without a level word: drop a "host logger:" style remainder only if tab separated
        if "\t" in rest:
            rest = rest.rsplit("\t", 1)[-1]
        return rest.lstrip(" -|"), ts.strip("[]")
    lm = _LOGGER.match(rest) if m.group("sep") == " " else None
    if lm:
        rest = rest[lm.end():]
    return rest, (ts.strip("[]") if ts else None)


def phase_of(text: str) -> str | None:
    """A phase named by free text: 'TRAINING MODE' -> train, 'Running validation' -> val."""
    for word in re.findall(r"[A-Za-z]+", text):
        p = PHASE_WORDS.get(word.lower())
        if p and word.lower() not in ("dev", "trn"):
            return p
    return None


def parse_line(raw: str) -> Parsed:
    """Parse one log line (without its newline). See the module docstring."""
    line = raw.rstrip("\r\n")
    if not line.strip() or _SEPARATOR.match(line):
        return Parsed(kind="blank")
    sm = _SUBJECT.match(line)
    if sm:
        return Parsed(kind="subject", subject=sm["name"])
    sec = _SECTION.match(line)
    if sec:
        return Parsed(kind="section", section=sec["title"].strip(), phase=phase_of(sec["title"]))
    msg, ts = strip_prefix(line)
    out = Parsed(timestamp=ts)
    if not msg.strip() or _SEPARATOR.match(msg):
        out.kind = "blank"
        return out
    if _FRAME.search(msg):        # a traceback's frame, also when ranks' tracebacks interleave: never a metric
        return out
    # a/b: x / y  ("y_pred_for_loss mean/std: 0.74 / 0.55")
    pm = _PAIR_SPLIT.match(msg)
    if pm:
        subj = pm["subj"].strip()
        for k, v in ((pm["k1"], pm["v1"]), (pm["k2"], pm["v2"])):
            out.values.append(((f"{subj} {k}" if subj else k), to_number(v)))
        out.kind = "values"
        return out
    # one "key: number" (the key may hold spaces and remarks: "raw_loss (full batch loss): 1.13")
    sm = _SIMPLE.match(msg)
    if sm and not _CTX.search(sm["key"]):
        out.values.append((sm["key"].strip(), to_number(sm["val"])))
        out.kind = "values"
        return out
    # context tokens, removed from the message once read
    rest = msg
    spans = []
    for cm in _CTX.finditer(msg):
        field_ = _CTX_WORDS[cm["word"].lower()]
        if field_ in out.context:
            continue
        out.context[field_] = to_number(cm["num"])
        spans.append(cm.span())
    # "200/ 2983 batches" (PyTorch's word_language_model and fairseq-style lines): the word after the count
    if "batch" not in out.context or "step" not in out.context:
        for cm in _CTX_AFTER.finditer(msg):
            field_ = _CTX_AFTER_WORDS[cm["word"].lower()]
            if field_ in out.context or any(a <= cm.start() < b for a, b in spans):
                continue
            out.context[field_] = to_number(cm["num"])
            spans.append(cm.span())
    for a, b in sorted(spans, reverse=True):
        rest = rest[:a] + " | " + rest[b:]
    # key=value / key: value pairs; a '|'-segment without values is the subject of the next one
    found_any = False
    leftover, subject = [], ""
    for segment in re.split(r"\s*\|\s*|;\s+", rest):
        if not segment.strip():
            continue
        got = _values_in(segment, subject)
        if got:
            found_any = True
            out.values.extend(got)
            subject = ""
            continue
        if not _NUM_RE.search(segment):
            tv = _TEXT_VALUE.match(segment)
            if tv and not re.search(r"\d", tv["key"]):
                out.text_values.append((tv["key"].strip(), tv["val"].strip()))
                continue
        leftover.append(segment)
        subject = segment.split("]")[-1].strip(" ,:-[](){}")
    if found_any:
        out.kind = "values"
    elif out.context:
        out.kind = "context"
    elif out.text_values:
        out.kind = "text_values"
    text = " ".join(leftover)
    if out.context or (out.kind == "text" and len(text) < 60):
        out.phase = phase_of(text)
    return out


def _values_in(segment: str, subject: str = "") -> list[tuple[str, float]]:
    """Numeric values in one '|'-free segment of a message.

    Generic statistic keys (``mean``, ``std``) are prefixed with their subject, the
    text before them ("Model outputs stats | mean=.. std=.." -> "Model outputs stats mean").
    """
    matches = list(_KV.finditer(segment))
    colon_words = list(_KV_WORDS.finditer(segment)) if ":" in segment else []
    if colon_words and (not matches or all(m["sep"] == ":" for m in matches)):
        matches = colon_words
    if matches:
        first = matches[0].start()
        subject = segment[:first].split("]")[-1].strip(" ,:-[](){}") or subject
        out = []
        for m in matches:
            key = m["key"].strip()
            if key.lower() in _STAT_WORDS and subject and not re.search(r"\d", subject):
                key = f"{subject} {key}"
            else:
                # "Train Loss=0.07, Val Loss=0.08": the phase is the key's own word, just before it
                pw = _PHASE_BEFORE.search(segment, 0, m.start("key"))
                if pw and " " not in key:
                    key = f"{pw['word']} {key}"
            out.append((key, to_number(m["val"])))
        return out
    out = []
    for part in segment.split(","):
        sm = _SPACE_KV.match(part)
        if sm:
            out.append((sm["key"].strip(), to_number(sm["val"])))
    return out


def indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


#: A Python traceback frame, ``File "train.py", line 276, in <module>``, anywhere in a line (interleaved
#: output of several ranks splices them into other lines).
_FRAME = re.compile(r'File "[^"]*", line \d+')


def is_traceback_start(line: str) -> bool:
    return line.rstrip().endswith(_TRACEBACK_START)


#: The line a Python traceback ends on: ``ValueError: bad``, ``KeyboardInterrupt``,
#: ``torch.OutOfMemoryError: CUDA out of memory``; the class name's last part ends like an exception's.
_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Interrupt|Exit|Iteration|Warning|"
                             r"Failure|Fault|Timeout)(?::.*)?$")


def is_exception_line(line: str) -> bool:
    """True for the line that ends a traceback (see :data:`_EXCEPTION_LINE`). Any other unindented line after
    a traceback's frames ends it without one (a killed writer) and is read as a line of its own."""
    return bool(_EXCEPTION_LINE.match(line.strip()))
