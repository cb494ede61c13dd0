"""Run a notebook in a real JupyterLab, driven by a headless Chromium, and screenshot the result.

    python scripts/check_jupyterlab.py            # notebooks/00_quickstart.ipynb -> a new temporary folder
    python scripts/check_jupyterlab.py --update-docs   # ... -> docs/img/quickstart_jupyterlab.png (the docs' image)
    python scripts/check_jupyterlab.py --notebook notebooks/02_gradient_flow.ipynb --out /tmp/shot.png

The screenshot goes to a new temporary folder (its path is printed) unless ``--out FILE`` or ``--update-docs``
says where, so running the check does not change the checkout.

What it does: copies the notebook into a temporary folder (JupyterLab's autosave never touches
the committed one), starts ``jupyter lab`` on 127.0.0.1 at a free port with a random token and
no browser, opens the notebook with playwright in the system Chromium (``chromium`` on the
PATH; playwright's own browser download is not needed), runs Run > Run All Cells, waits until
every code cell has run (bounded), checks that no cell raised and that widgets and figures were
rendered, saves a screenshot, and stops the server and its kernel. Only localhost is contacted.

Needs: ``jupyterlab``, ``playwright`` (the Python package) and a ``chromium`` executable
(Debian: ``apt-get install chromium``). Exit status 0 when the check passed.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_doc_images import shrink  # noqa: E402

#: JupyterLab user settings for a quiet, fully rendered notebook (no news toast, every cell in the DOM).
SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_server(url: str, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer at {url.split('?')[0]} within {timeout:.0f} s")


def start_lab(root: Path, work: Path, port: int, token: str) -> subprocess.Popen:
    settings = work / "settings"
    for rel, values in SETTINGS.items():
        f = settings / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(values))
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(work / "ws"),
           "JUPYTER_RUNTIME_DIR": str(work / "runtime"), "JUPYTER_CONFIG_DIR": str(work / "config")}
    env.pop("MPLBACKEND", None)                    # the notebook chooses the inline backend
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--ServerApp.open_browser=False", "--LabApp.news_url=", "--ServerApp.log_level=WARN"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")                 # containers often run as root
    log = open(work / "server.log", "w")
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_lab(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (it shuts its kernels down), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass


CELL_STATE_JS = """() => {
  const cells = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')];
  const prompts = cells.map(c => (c.querySelector('.jp-InputArea-prompt') || {}).innerText || '');
  const outputs = [...document.querySelectorAll('.jp-Notebook .jp-OutputArea-output')];
  return {
    cells: cells.length,
    done: prompts.filter(p => /\\[\\d+\\]/.test(p)).length,
    running: prompts.filter(p => p.includes('*')).length,
    errors: outputs.filter(o => o.innerText.includes('Traceback (most recent call last)')).length,
    images: document.querySelectorAll('.jp-Notebook .jp-RenderedImage img').length,
    widgets: document.querySelectorAll(
      '.jp-Notebook .jupyter-widgets.widget-container, .jp-Notebook .widget-html').length,
  };
}"""


def accept_dialog(page) -> bool:
    """Press the accept button of an open JupyterLab dialog, if there is one."""
    dialog = page.locator(".jp-Dialog .jp-mod-accept")
    if dialog.count():
        dialog.first.click()
        page.wait_for_timeout(1000)
        return True
    return False


def run_in_browser(base: str, notebook: str, token: str, out: Path, timeout: float, width: int, height: int,
                   scroll_to: str = ".cnb-findings") -> dict:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise FileNotFoundError("no chromium executable on the PATH (Debian: apt-get install chromium)")
    deadline = time.monotonic() + timeout
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(60_000)
            page.goto(f"{base}/lab/tree/{notebook}?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-CodeCell")
            page.wait_for_timeout(3000)
            accept_dialog(page)                             # "Select Kernel" may be asked: take the preferred one
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000)
            accept_dialog(page)
            if page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").count():
                page.keyboard.press("Control+b")           # close the file browser: more room for the notebook
            page.click(".lm-MenuBar-itemLabel:text-is('Run')")
            page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
            state = page.evaluate(CELL_STATE_JS)
            while time.monotonic() < deadline:
                state = page.evaluate(CELL_STATE_JS)
                if state["errors"] or (state["done"] == state["cells"] and not state["running"]):
                    break
                time.sleep(1)
            else:
                failed = out.with_name(out.stem + ".failed.png")
                failed.write_bytes(page.screenshot())
                raise TimeoutError(f"the notebook did not finish within {timeout:.0f} s: {state}; see {failed}")
            page.wait_for_timeout(1500)                     # let widget views finish rendering
            state = page.evaluate(CELL_STATE_JS)
            page.evaluate("""(sel) => { const el = document.querySelector('.jp-Notebook ' + sel);
                                         if (el) el.closest('.jp-Cell').scrollIntoView({block: 'start'}); }""",
                          scroll_to)
            page.wait_for_timeout(500)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(shrink(page.screenshot()))
            return state
        finally:
            browser.close()


DOCS_IMG = REPO / "docs" / "img"


def screenshot_path(notebook: Path, out: Path | None = None, update_docs: bool = False) -> Path:
    """``out``; with ``update_docs``, ``docs/img/<name>_jupyterlab.png`` (``quickstart`` for 00_quickstart); else the
    same name in a new temporary folder (kept, so the screenshot can be looked at)."""
    if out is not None:
        return out
    stem = notebook.stem.split("_", 1)[-1] if notebook.stem[:2].isdigit() else notebook.stem
    name = f"{stem}_jupyterlab.png"
    return DOCS_IMG / name if update_docs else Path(tempfile.mkdtemp(prefix="cnb_jupyterlab_")) / name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notebook", type=Path, default=REPO / "notebooks" / "00_quickstart.ipynb")
    ap.add_argument("--out", type=Path, default=None,
                    help="where to write the screenshot (default: <notebook>_jupyterlab.png in a new temporary "
                         "folder, printed at the end)")
    ap.add_argument("--update-docs", action="store_true",
                    help=f"write the screenshot into {DOCS_IMG.relative_to(REPO)}/ (the image the docs show: "
                         f"quickstart_jupyterlab.png for the quickstart)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds for the notebook to run (default 300)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=1900)
    ap.add_argument("--scroll-to", default=".cnb-findings",
                    help="CSS selector of the output whose cell is scrolled to the top (default: the findings panel)")
    args = ap.parse_args(argv)
    if args.out is not None and args.update_docs:
        ap.error("give --out FILE or --update-docs, not both")
    args.out = screenshot_path(args.notebook, args.out, args.update_docs)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cnb_lab_") as tmp:
        work, root = Path(tmp), Path(tmp) / "root"
        root.mkdir()
        shutil.copy(args.notebook, root / args.notebook.name)
        port, token = free_port(), secrets.token_hex(16)
        base = f"http://127.0.0.1:{port}"
        proc = start_lab(root, work, port, token)
        try:
            wait_for_server(f"{base}/api/status?token={token}", 90, proc)
            state = run_in_browser(base, args.notebook.name, token, args.out, args.timeout, args.width, args.height,
                                   args.scroll_to)
        except Exception:
            log = (work / "server.log").read_text()[-3000:] if (work / "server.log").exists() else ""
            print(f"JupyterLab check failed; server log tail:\n{log}", file=sys.stderr)
            raise
        finally:
            stop_lab(proc)
    print(f"{args.notebook.name}: {state['done']}/{state['cells']} code cells ran, {state['errors']} error(s), "
          f"{state['images']} figure(s), {state['widgets']} widget container(s); {time.monotonic() - t0:.0f} s")
    print(f"screenshot: {args.out} ({args.out.stat().st_size / 1000:.0f} KB)")
    ok = state["errors"] == 0 and state["done"] == state["cells"] and state["images"] >= 2 and state["widgets"] >= 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
