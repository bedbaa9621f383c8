"""The built site in a real browser (Debian's headless chromium): every page loads without console
errors or failed requests, every image decodes, the formulas are typeset, nothing leaves localhost."""
from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from experiments.pipeline import registry
from generator.cli import main
from generator.pages import section_path
from generator.preview import CHROMIUM, launch, serve_static

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")]


@pytest.fixture(scope="module")
def site(quick_run, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    results = root / "docs" / "results"
    shutil.copytree(quick_run.results, results)
    try:
        main(["--results", str(results), "--site-dir", str(root / "site")])
    except SystemExit as exc:               # only errors exit; success returns
        pytest.fail(f"build-site failed with exit code {exc.code}")
    return root / "site"


def pages() -> list[str]:
    return ["", "reproduce/", "performance/", "history/", "conclusions/"] + [
        section_path(s).removesuffix(".md") + "/" for s in registry.all_sections()]


def test_every_page_renders_in_chromium(site):
    sync_api = pytest.importorskip("playwright.sync_api")
    report: dict[str, list[str]] = {}
    with serve_static(site) as base, sync_api.sync_playwright() as p:
        browser = launch(p)
        try:
            context = browser.new_context()
            offsite: list[str] = []

            def only_localhost(route):
                if urlsplit(route.request.url).hostname != "127.0.0.1":
                    offsite.append(route.request.url)      # a CDN or web font would show up here
                    return route.abort()
                return route.continue_()

            context.route("**/*", only_localhost)
            for path in pages():
                page = context.new_page()
                problems: list[str] = []
                page.on("console", lambda msg, pr=problems: pr.append(f"console: {msg.text}")
                        if msg.type == "error" else None)
                page.on("pageerror", lambda exc, pr=problems: pr.append(f"page error: {exc}"))
                page.on("requestfailed", lambda req, pr=problems: pr.append(f"request failed: {req.url}"))
                page.on("response", lambda r, pr=problems: pr.append(f"HTTP {r.status}: {r.url}")
                        if r.status >= 400 else None)
                response = page.goto(base + path, wait_until="load")
                assert response is not None and response.ok, path
                # images in hidden content tabs load too (no lazy loading): wait for every one
                page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=20_000)
                images = page.evaluate("Array.from(document.images).map(i => [i.src, i.naturalWidth])")
                problems += [f"image not decoded: {src}" for src, width in images if width <= 0]
                formulas = page.locator(".arithmatex").count()
                if formulas:
                    page.wait_for_selector(".katex", timeout=10_000)
                    typeset = page.locator(".arithmatex .katex").count()
                    if typeset < formulas:
                        problems.append(f"{formulas - typeset} of {formulas} formulas not typeset")
                    if page.locator(".katex-error").count():
                        problems.append("KaTeX reported a parse error")
                if path == "" or path.startswith("part"):
                    assert images, f"{path or 'index'} shows no image"
                report[path or "index"] = problems
                page.close()
            assert not offsite, f"requests left localhost: {offsite[:3]}"
        finally:
            browser.close()
    bad = {page: problems for page, problems in report.items() if problems}
    assert not bad, bad
    assert len(report) == len(pages())


def test_formulas_on_the_index_and_the_diffusion_pages(site):
    """The pages that explain the maths carry formulas (so the typesetting check above is not vacuous)."""
    for path in ["index.html", "part2/time-conditioned/index.html", "part1/pure-noise/index.html"]:
        assert 'class="arithmatex"' in (site / path).read_text(), path


# what overflows: tables wider than the text column (shown open or closed), and the page itself
TABLES_WIDER_THAN_THE_COLUMN = """() => {
  const column = document.querySelector('.md-content__inner');
  const width = column.getBoundingClientRect().width;
  return Array.from(column.querySelectorAll('table'))
    .map(t => [(t.querySelector('th, td') || {}).textContent || '', Math.ceil(t.scrollWidth), Math.floor(width)])
    .filter(([, table, col]) => table > col + 1);
}"""


def overflow(site: Path, width: int, script: str) -> dict[str, object]:
    """Per page, what `script` reports at a viewport this wide (pages with nothing to report left out)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    found: dict[str, object] = {}
    with serve_static(site) as base, sync_api.sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            for path in pages():
                page.goto(base + path, wait_until="load")
                page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
                result = page.evaluate(script)
                if result:
                    found[path or "index"] = result
        finally:
            browser.close()
    return found


def test_at_laptop_width_every_table_fits_its_column(site):
    assert overflow(site, 1280, TABLES_WIDER_THAN_THE_COLUMN) == {}


def test_at_phone_width_no_page_is_wider_than_the_screen(site):
    """A wide table may scroll inside its own box, but the page never scrolls sideways."""
    wider = overflow(site, 390, "() => document.documentElement.scrollWidth > window.innerWidth ? "
                                "document.documentElement.scrollWidth : 0")
    assert wider == {}
