"""Helpers for the report tests: an HTML tag/attribute collector and runs written as real files."""
from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

#: Tags the report's HTML may contain.
ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "main", "header", "h1", "h2", "h3", "h4", "h5",
                "h6", "p", "span", "nav", "a", "section", "div", "dl", "dt", "dd", "table", "caption", "thead",
                "tbody", "tr", "th", "td", "ul", "ol", "li", "strong", "figure", "img", "figcaption", "footer",
                "details", "summary"}

EVIL_PARAM = "<script>alert(1)</script>"
EVIL_METRIC = "<img src=x onerror=alert(1)>"


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text, of an HTML page."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def names(self) -> set[str]:
        return {t for t, _ in self.tags}

    def attrs(self, tag: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag]

    def all_text(self) -> str:
        return "".join(self.text)


def assert_inert_html(page: str) -> Tags:
    """The page holds only the report's own tags, no event handler, no script, no remote reference."""
    t = Tags(page)
    assert t.names() <= ALLOWED_TAGS, f"unexpected tags: {t.names() - ALLOWED_TAGS}"
    for tag, attrs in t.tags:
        assert not any(k.lower().startswith("on") for k in attrs), (tag, attrs)
        for k in ("src", "href"):
            v = (attrs.get(k) or "").strip().lower()
            assert not v.startswith(("http:", "https:", "//", "javascript:")), (tag, attrs)
    for img in t.attrs("img"):
        assert (img.get("src") or "").startswith("data:image/png;base64,"), img
    for a in t.attrs("a"):
        assert (a.get("href") or "").startswith("#"), a
    return t


def write_evil_run(folder: Path) -> Path:
    """A JSON-lines run whose file name is a tag, with two dead parameters: a script tag and a name with a pipe."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{EVIL_METRIC}.jsonl"
    rows = []
    for s in range(1, 9):
        rows.append({"step": s, "loss": 1.0 / s, EVIL_METRIC: 0.5 + s, f"grad_norm/{EVIL_PARAM}": 0.0,
                     f"weight_norm/{EVIL_PARAM}": 2.0, "grad_norm/dead|pipe.weight": 0.0,
                     "weight_norm/dead|pipe.weight": 1.0, "grad_norm/live.weight": 0.1 * s,
                     "weight_norm/live.weight": 1.0, "grad_norm/live2.weight": 0.2 * s,
                     "weight_norm/live2.weight": 1.5})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_loss_csv(path: Path, n: int = 4) -> Path:
    """The least a run can be: one CSV with a loss column."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("step,loss\n" + "".join(f"{i},{2.0 / i:.4f}\n" for i in range(1, n + 1)))
    return path
