"""build-site: turns section results into the writeup website (Jinja pages, then MkDocs Material)."""
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = PROJECT_ROOT / "templates"     # Jinja templates of every page
STATIC_DOCS = PROJECT_ROOT / "docs"            # hand-written assets (KaTeX, CSS, JS) copied into each build
MKDOCS_YML = PROJECT_ROOT / "mkdocs.yml"       # theme, extensions, validation; the build adds the nav
