"""What a built page must not say: words about how the work was organised, script and environment-variable
names, config strings used as names, and 40-character commit hashes outside the collapsed provenance block.

Used by tests/test_site_words.py on a site built from quick-profile results and on the committed results.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

# words about how the work was organised: never on a page, code included
ORGANISATION = [r"\bissues?\b", r"\bthe spec\b", r"\bspec's\b", r"\btasks?\b", r"\bsessions?\b", r"\bleases?\b",
                r"\bthe tests check\b", r"\bticket\b"]
# names from the code used in prose: script files, environment variables, config switches ('unet.norm=group',
# 'norm=group ema_decay=0.999')
CODE_NAMES = [r"\b[\w-]+\.(?:sh|py)\b", r"\bFUNDIFF_[A-Z_]+\b", r"\b(?:unet|train|diffusion|data)\.[a-z_]+=",
              r"\b[a-z_]{3,}=[0-9a-z.]+\b"]
HASH = re.compile(r"\b[0-9a-f]{40}\b")
# pages whose code blocks are commands to type (the reproduce page): names are the point there
COMMAND_PAGES = ("reproduce/index.html",)


@dataclass
class PageText:
    prose: list[str] = field(default_factory=list)         # visible text outside code and provenance
    code: list[str] = field(default_factory=list)          # <code>/<pre> outside provenance
    outside_provenance_html: list[str] = field(default_factory=list)


class _Splitter(HTMLParser):
    SKIP = {"script", "style"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out = PageText()
        self.stack: list[tuple[str, bool, bool]] = []     # (tag, provenance, code)

    def _state(self) -> tuple[bool, bool, bool]:
        prov = any(p for _, p, _ in self.stack)
        code = any(c for _, _, c in self.stack)
        skip = any(t in self.SKIP for t, _, _ in self.stack)
        return prov, code, skip

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        # the collapsed provenance block and the stale-results note are about the machinery, not the writeup
        prov = bool({"provenance", "stale"} & set((values.get("class") or "").split()))
        if tag not in ("br", "img", "hr", "input", "meta", "link", "source", "col", "wbr"):
            self.stack.append((tag, prov, tag in ("code", "pre")))
        if not self._state()[0]:
            self.out.outside_provenance_html.append(" ".join(f"{k}={v}" for k, v in attrs if v))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        prov, code, skip = self._state()
        if skip or prov:
            return
        (self.out.code if code else self.out.prose).append(data)
        self.out.outside_provenance_html.append(data)


def split(html: str) -> PageText:
    parser = _Splitter()
    parser.feed(html)
    return parser.out


def problems(page: Path, rel: str) -> list[str]:
    """The internal words and stray hashes of one built page, as 'page: what'."""
    text = split(page.read_text(encoding="utf-8"))
    prose, code = " ".join(text.prose), " ".join(text.code)
    found = []
    for pattern in ORGANISATION:
        for hit in re.findall(pattern, prose + " " + code, flags=re.IGNORECASE):
            found.append(f"{rel}: says {hit!r}")
    checked = prose if rel in COMMAND_PAGES else prose + " " + code
    for pattern in CODE_NAMES:
        for hit in re.findall(pattern, checked):
            found.append(f"{rel}: names {hit!r}")
    for hit in HASH.findall(" ".join(text.outside_provenance_html)):
        found.append(f"{rel}: shows the hash {hit} outside the provenance block")
    return found


def site_problems(site: Path) -> list[str]:
    """Every problem of every page of a built site."""
    out = []
    for page in sorted(Path(site).rglob("*.html")):
        rel = str(page.relative_to(site))
        if rel.startswith(("assets/", "search/")) or rel == "404.html":
            continue
        out += problems(page, rel)
    return out
