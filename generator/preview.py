"""Look at a built site with a real browser: a localhost server and Debian's headless chromium.

Used by the browser test and by `build-site screenshot` (the README's picture of the site).
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from experiments.errors import UserError

CHROMIUM = "/usr/bin/chromium"
HERO_SETTLE_MS = 3_800   # the index's sampling GIF holds its first frame 1 s, then 29 x 80 ms to its last
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:   # keep test output clean
        pass


@contextlib.contextmanager
def serve_static(site_dir: Path) -> Iterator[str]:
    """Serve site_dir on a free localhost port in a thread; yields the base URL ('http://127.0.0.1:N/')."""
    handler = functools.partial(_QuietHandler, directory=str(site_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def launch(playwright: Any) -> Any:
    """Headless chromium from the system (no downloaded browser), with background traffic off."""
    if not Path(CHROMIUM).exists():
        raise UserError(f"{CHROMIUM} not found (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def screenshot(site_dir: Path, out: Path, width: int = 1280, height: int = 1600) -> Path:
    """A PNG of the site's index page in the light scheme, at the given viewport."""
    from playwright.sync_api import sync_playwright

    if not (Path(site_dir) / "index.html").exists():
        raise UserError(f"no built site in {site_dir} (run build-site first)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with serve_static(site_dir) as url, sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": width, "height": height}, color_scheme="light")
            page.goto(url, wait_until="load")
            page.wait_for_selector(".katex")          # the formulas are typeset before the picture
            page.wait_for_timeout(HERO_SETTLE_MS)     # the sampling animation shows digits, not its noise
            page.screenshot(path=str(out))
        finally:
            browser.close()
    return out
