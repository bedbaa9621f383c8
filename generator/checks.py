"""A checker over a built site: every image and internal link resolves (anchors included) and every
<img> has alt text. MkDocs validates Markdown links; this also covers what templates and themes emit.

It also refuses active content that no page of the writeup has: script, frames, objects or forms
inside a page's content, event-handler attributes and script URLs anywhere. Values from results files
are escaped when rendered (generator/render.py); this is the second line, so that a trick through
Markdown (an attribute list, a link) fails the build instead of reaching the published site."""
from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

# (tag, attribute) pairs that point at another file
LINK_ATTRS = {("a", "href"), ("img", "src"), ("link", "href"), ("script", "src"), ("source", "src")}
# never inside a page's content (the theme's own scripts sit outside <article>)
ACTIVE_TAGS = {"script", "iframe", "frame", "frameset", "object", "embed", "applet", "form", "base", "meta",
               "link", "style", "template", "portal"}
URL_ATTRS = {"href", "src", "action", "formaction", "data", "poster", "background", "xlink:href", "srcset"}
SCRIPT_SCHEMES = ("javascript:", "vbscript:", "data:text", "data:application")
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class PageScan:
    ids: set[str] = field(default_factory=set)
    refs: list[tuple[str, str]] = field(default_factory=list)      # (tag, url)
    images_without_alt: list[str] = field(default_factory=list)
    active: list[str] = field(default_factory=list)                 # what a page must not contain


def _script_url(value: str) -> bool:
    squeezed = "".join(value.split()).lower()           # browsers ignore whitespace inside the scheme
    return squeezed.startswith(SCRIPT_SCHEMES)


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scan = PageScan()
        self.open: list[str] = []                        # elements open now (void ones never are)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.open:
            index = len(self.open) - 1 - self.open[::-1].index(tag)
            del self.open[index:]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v for k, v in attrs}
        if tag in ACTIVE_TAGS and "article" in self.open:
            self.scan.active.append(f"<{tag}> inside the page content")
        for key, value in attrs:
            if key.startswith("on") or key == "srcdoc":
                self.scan.active.append(f"<{tag}> has a {key} attribute")
            elif key in URL_ATTRS and value and _script_url(value):
                self.scan.active.append(f"<{tag}> {key} is a script URL ({value[:40]!r})")
        if tag not in VOID_TAGS:
            self.open.append(tag)
        for key in ("id", "name"):
            if values.get(key):
                self.scan.ids.add(values[key])
        for t, attr in LINK_ATTRS:
            if tag == t and values.get(attr):
                self.scan.refs.append((tag, values[attr]))
        if tag == "img" and not (values.get("alt") or "").strip():
            self.scan.images_without_alt.append(values.get("src") or "?")


def scan(path: Path) -> PageScan:
    parser = _Parser()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return parser.scan


def _target(site: Path, page: Path, url: str) -> tuple[Path, str] | None:
    """The file an internal URL points at (and its fragment); None for external URLs."""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or url.startswith(("mailto:", "javascript:", "data:")):
        return None
    path = unquote(parts.path)
    if not path:
        return page, parts.fragment
    base = site if path.startswith("/") else page.parent
    target = Path(base, *PurePosixPath(path.lstrip("/")).parts)
    if path.endswith("/") or target.is_dir():
        target = target / "index.html"
    return target, parts.fragment


def check_site(site: Path) -> list[str]:
    """Problems found in the built site, one line each (empty when all is well)."""
    site = Path(site).resolve()
    pages = sorted(site.rglob("*.html"))
    scans = {p: scan(p) for p in pages}
    problems: list[str] = []
    for page, result in scans.items():
        rel = page.relative_to(site)
        for src in result.images_without_alt:
            problems.append(f"{rel}: <img src={src!r}> has no alt text")
        for what in result.active:
            problems.append(f"{rel}: {what} (results are text; pages carry no script)")
        for tag, url in result.refs:
            found = _target(site, page, url)
            if found is None:
                continue
            target, fragment = found
            try:
                target.resolve().relative_to(site)
            except ValueError:
                problems.append(f"{rel}: <{tag}> {url} points outside the site")
                continue
            if not target.is_file():
                problems.append(f"{rel}: <{tag}> {url} does not resolve")
            elif fragment and target.suffix == ".html":
                ids = scans[target.resolve()].ids if target.resolve() in scans else scan(target).ids
                if unquote(fragment) not in ids:
                    problems.append(f"{rel}: <{tag}> {url} has no anchor #{fragment}")
    if not pages:
        problems.append(f"{site}: no HTML pages")
    return problems
