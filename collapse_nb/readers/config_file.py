"""Run-configuration files (YAML or JSON) found beside the logs.

Lightning ``hparams.yaml``, Hugging Face ``training_args.json`` and model
``config.json``, a training ``config.yaml``, Ultralytics ``args.yaml``... A
config file holds no metrics: the reader returns an empty scalars table and
the file's settings, flattened to dotted keys, in ``ReadResult.config``
(canonical keys are picked centrally by :mod:`collapse_nb.config`)::

    optimizer:
      lr: 0.001            ->  {"optimizer.lr": 0.001, "warmup_epochs": 5}
    warmup_epochs: 5

YAML is read with a *safe* loader only. Lightning may write python object
tags (``!!python/object:argparse.Namespace``, ``!!python/tuple``); no object
is ever constructed: a tuple becomes a list, an object written as a mapping
becomes a dict of its fields plus ``__type__`` (``"<python/object:argparse.Namespace>"``),
and any other tagged value becomes such a placeholder string. Each is noted.

Sniffing: a YAML/JSON *mapping* whose keys look like hyper-parameters. JSON
lines, JSON arrays and Hugging Face trainer state (``log_history``) are
metrics, not configuration, and score 0.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from ..config import canonical_key, flatten
from ..errors import UnreadableFileError
from .base import ReadResult, Reader, SkipLog, SNIFF_BYTES, empty_scalars, looks_binary, read_text, register

CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
#: File names that are configuration whatever their keys.
CONFIG_NAMES = frozenset({"hparams.yaml", "hparams.yml", "training_args.json", "config.json", "config.yaml",
                          "config.yml", "args.yaml", "opt.yaml", "params.yaml", "hyperparameters.json",
                          "hyperparams.yaml", "hparams.json", "args.json", "cfg.yaml", "train_config.yaml",
                          "training_config.yaml", "adapter_config.json", "generation_config.json"})
#: Top-level keys that, holding a list of records, mark a metrics file written as JSON (HF trainer state...).
METRIC_MARKERS = frozenset({"log_history", "history", "metrics", "scalars"})
#: More flattened settings than this is no configuration file (and would take long to flatten).
MAX_SETTINGS = 1_000_000
_JSON_KEY = re.compile(r'"([^"\\]{1,100})"\s*:')
_YAML_KEY = re.compile(r"^\s*([A-Za-z_][\w.\-]{0,100})\s*:", re.M)


class _ConfigLoader(yaml.SafeLoader):
    """A safe loader that turns python/other tags into placeholders instead of failing or building objects."""

    def __init__(self, stream: Any):
        super().__init__(stream)
        self.tags: dict[str, int] = {}
        self.duplicates: list[str] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    self.duplicates.append(str(key_node.value))
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def _placeholder(tag: str) -> str:
    return "<" + tag.replace("tag:yaml.org,2002:", "").lstrip("!") + ">"


def _construct_tagged(loader: _ConfigLoader, tag_suffix: str, node: yaml.Node) -> Any:
    """Any tag the safe loader does not know: record it, build only plain data."""
    tag = node.tag
    loader.tags[tag] = loader.tags.get(tag, 0) + 1
    if tag.endswith("python/tuple") and isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        fields = loader.construct_mapping(node, deep=True)
        return {"__type__": _placeholder(tag), **{str(k): v for k, v in fields.items()}}
    return _placeholder(tag)


_ConfigLoader.add_multi_constructor("tag:yaml.org,2002:python/", _construct_tagged)
_ConfigLoader.add_multi_constructor("!", _construct_tagged)
_ConfigLoader.add_constructor(None, lambda loader, node: _construct_tagged(loader, "", node))


def load_yaml(text: str) -> tuple[Any, dict[str, int], list[str]]:
    """``(document, {tag: count}, duplicate keys)`` using :class:`_ConfigLoader` (safe)."""
    loader = _ConfigLoader(text)
    try:
        return loader.get_single_data(), loader.tags, loader.duplicates
    finally:
        loader.dispose()


def parse_config(text: str) -> tuple[Any, dict[str, int], list[str]]:
    """JSON when it looks like JSON, else YAML; raises ``ValueError``/``yaml.YAMLError`` when neither."""
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            return json.loads(stripped), {}, []
        except json.JSONDecodeError:
            pass  # YAML flow style, or JSON lines: let YAML decide
    return load_yaml(text)


def is_json_lines(text: str) -> bool:
    """Two or more lines that each start a JSON object: a metrics log."""
    starts = [ln.lstrip()[:1] for ln in text.splitlines()[:20] if ln.strip()]
    return len(starts) >= 2 and starts[0] == starts[1] == "{"


def _one_record(text: str) -> bool:
    """A single compact JSON line whose values are all numbers (a JSON-lines log with one record so far)."""
    body = text.strip()
    if "\n" in body or not body.startswith("{"):
        return False
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    return isinstance(doc, dict) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                         for v in doc.values())


def metric_keys(doc: dict) -> list[str]:
    """Top-level keys holding a list of logged records (``log_history`` of HF trainer state, ...)."""
    return [k for k in sorted(METRIC_MARKERS & set(map(str, doc)))
            if k == "log_history" or (isinstance(doc[k], list) and doc[k] and isinstance(doc[k][0], dict))]


def _too_big(obj: Any, limit: int = MAX_SETTINGS) -> bool:
    """True when flattening ``obj`` would give more than ``limit`` keys (YAML aliases can nest a
    few lines into billions of settings); counts without flattening, and stops early."""
    stack, n = [obj], 0
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            stack.extend(o.values())
        else:
            n += 1
            if n > limit:
                return True
    return False


def _recognised(keys: list[str]) -> int:
    return sum(canonical_key(k) is not None for k in keys)


@register
class ConfigFileReader(Reader):
    name = "config"
    description = "Run configuration in YAML or JSON (hparams.yaml, training_args.json, config.yaml)"
    is_config = True

    def sniff(self, head: bytes, path: Path) -> float:
        if not head.strip() or looks_binary(head):
            return 0.0
        path = Path(path)
        suffix, known = path.suffix.lower(), path.name.lower() in CONFIG_NAMES
        if suffix in (".csv", ".tsv", ".jsonl", ".ndjson", ".ckpt", ".pt", ".pth"):
            return 0.0
        text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
        if is_json_lines(text):
            return 0.0
        keys = self._keys(text, truncated=len(head) >= SNIFF_BYTES)
        if keys is None:
            return 0.0
        hits = _recognised(keys)
        if known:
            return 0.8 if hits else 0.5
        if _one_record(text):
            return 0.2 if hits else 0.0   # one compact line of numbers: more likely a first metrics record
        if suffix in CONFIG_SUFFIXES:
            return 0.7 if hits >= 2 else 0.65 if hits == 1 else 0.0
        return 0.45 if hits >= 2 and hits >= 0.1 * len(keys) else 0.0

    @staticmethod
    def _keys(text: str, truncated: bool) -> list[str] | None:
        """Flattened keys of a config document; ``None`` for no mapping, metrics, or repeated keys (logs)."""
        try:
            doc, _, dups = parse_config(text)
        except (ValueError, yaml.YAMLError):
            if not truncated or '"log_history"' in text:
                return None
            pattern = _JSON_KEY if text.lstrip().startswith("{") else _YAML_KEY
            return pattern.findall(text) or None  # a big config cut off by the sniff window
        if not isinstance(doc, dict) or not doc or dups or metric_keys(doc) or _too_big(doc, 100_000):
            return None
        return list(flatten(doc))

    def read(self, path: Path) -> ReadResult:
        path = Path(path)
        skipped = SkipLog()
        text = read_text(path, skipped).lstrip("\ufeff")
        try:
            doc, tags, dups = parse_config(text)
        except (ValueError, yaml.YAMLError) as exc:
            where = getattr(exc, "problem_mark", None)
            at = f" at line {where.line + 1}" if where is not None else ""
            raise UnreadableFileError(path, f"not valid YAML or JSON{at}: {str(exc).splitlines()[0]}") from exc
        if doc is None:
            raise UnreadableFileError(path, "file holds no configuration (empty document)")
        if not isinstance(doc, dict):
            what = {"str": "plain text", "list": "list"}.get(type(doc).__name__, type(doc).__name__)
            raise UnreadableFileError(path, f"a config file must hold a mapping of settings, not {what}")
        if _too_big(doc):
            raise UnreadableFileError(path, f"more than {MAX_SETTINGS:,} settings once YAML aliases are "
                                            "expanded: not a configuration file")
        notes = []
        for marker in metric_keys(doc):
            doc = {k: v for k, v in doc.items() if k != marker}
            notes.append(f"{marker!r} holds logged metrics, not configuration: not read as config")
        for tag, n in sorted(tags.items()):
            notes.append(f"{n} value(s) tagged {_placeholder(tag)} kept as plain data, no object constructed")
        for key in sorted(set(dups)):
            notes.append(f"key {key!r} is set more than once; the last value is kept")
        config = flatten(doc)
        return ReadResult(source=str(path), format=self.name, scalars=empty_scalars(), config=config,
                          skipped=skipped, notes=notes)


__all__ = ["ConfigFileReader", "load_yaml", "parse_config", "is_json_lines"]
