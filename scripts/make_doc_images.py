"""Save each notebook's key figure to docs/img/ for docs/notebooks.md.

    python scripts/make_doc_images.py          # executes every notebook (about a minute or two)

Each notebook has one cell tagged ``key-figure``; its first PNG output (drawn by the notebook's
own plot call, inline backend) is saved as ``docs/img/<notebook>.png``, scaled down when wider
than ``MAX_WIDTH`` pixels or larger than ``MAX_BYTES``. The notebooks on disk are not changed.
"""
from __future__ import annotations

import base64
import io
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "img"
MAX_WIDTH = 900
MAX_BYTES = 150_000


def key_figure_png(path: Path, cell_timeout: int = 300) -> bytes:
    """Execute ``path`` and return the PNG its ``key-figure`` cell drew."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=cell_timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in nb.cells:
        if "key-figure" in cell.metadata.get("tags", []):
            for out in cell.get("outputs", []):
                if "image/png" in out.get("data", {}):
                    return base64.b64decode(out["data"]["image/png"])
            raise RuntimeError(f"{path.name}: the key-figure cell drew no PNG")
    raise RuntimeError(f"{path.name}: no cell is tagged key-figure")


def shrink(png: bytes) -> bytes:
    """``png`` at most ``MAX_WIDTH`` wide and ``MAX_BYTES`` large (palette-quantised if needed)."""
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    width = MAX_WIDTH
    while True:
        if img.width > width:
            img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
        buf = io.BytesIO()
        img.quantize(colors=128).save(buf, format="PNG", optimize=True)
        if buf.tell() <= MAX_BYTES or width < 400:
            return buf.getvalue()
        width = int(width * 0.85)


def main(argv: list[str] | None = None) -> int:
    os.environ.pop("MPLBACKEND", None)          # the notebooks choose the inline backend
    names = argv if argv else sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
    OUT.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = REPO / "notebooks" / name
        data = shrink(key_figure_png(path))
        target = OUT / (path.stem + ".png")
        target.write_bytes(data)
        print(f"wrote {target.relative_to(REPO)} ({len(data) / 1000:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
