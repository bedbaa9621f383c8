"""Code fingerprints: which project modules a section's results depend on, and a hash of each.

A section depends on the modules it imports inside this project, transitively (its import closure),
the way Make's generated prerequisites or DVC's per-stage `deps` work. The pipeline (this package),
the command line and the site generator are never imported by a section or by the core library (a
test enforces the layering), so they fall outside every closure by construction.

Each module is hashed on its syntax tree with docstrings removed: comments, blank lines and
formatting never change a fingerprint; any change to what the code does does. Figure drawing
(`experiments.figures`) is fingerprinted on its own: a change there only needs figures redrawn.
"""
from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE = "experiments"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]          # .../experiments
DRAWING = ("experiments.figures",)                           # fingerprinted apart: redrawn, not rerun


def module_file(module: str) -> Path | None:
    """The file of a project module (`experiments.core.ddpm`), None when it is not one."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_ROOT.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path) -> str:
    rel = Path(path).resolve().relative_to(PACKAGE_ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def section_module(module_file: str | Path) -> str:
    """The module name of a section's file: `.../sections/noising.py` -> `experiments.sections.noising`."""
    return f"{PACKAGE}.sections.{Path(module_file).stem}"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, this_module: str, is_package: bool) -> set[str]:
    """Project modules a module imports (anywhere in it), except under `if TYPE_CHECKING:`."""
    found: set[str] = set()
    package = this_module if is_package else this_module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            found.add(source)
            found.update(f"{source}.{alias.name}" for alias in node.names)   # `from pkg import module`
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {m for m in found if m.split(".")[0] == PACKAGE and module_file(m) is not None}


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _canonical(node: object) -> str:
    """A text form of a syntax tree that every Python since 3.8 gives alike: fields that are None or
    empty are left out, because new versions add such fields (3.12's `type_params`) and `ast.dump`
    shows them, which would make results made on one Python look stale on another."""
    if isinstance(node, ast.AST):
        fields = [(name, getattr(node, name, None)) for name in node._fields]
        shown = [f"{name}={_canonical(value)}" for name, value in fields if value is not None and value != []]
        return f"{type(node).__name__}({', '.join(shown)})"
    if isinstance(node, list):
        return "[" + ", ".join(_canonical(item) for item in node) + "]"
    return repr(node)


@functools.lru_cache(maxsize=None)
def _parse(path: Path, mtime_ns: int) -> tuple[str, frozenset[str]]:
    """(hash of the normalised syntax tree, project modules imported) of one file."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    name = module_name(path)
    imported = frozenset(_imports(tree, name, path.name == "__init__.py"))
    normalised = _canonical(_strip_docstrings(tree))
    return hashlib.sha256(normalised.encode()).hexdigest()[:16], imported


def imported_modules(path: Path) -> frozenset[str]:
    """The project modules a file imports at run time (not those only named for type checking)."""
    path = Path(path)
    return _parse(path, path.stat().st_mtime_ns)[1]


def _parsed(module: str) -> tuple[str, frozenset[str]]:
    path = module_file(module)
    return _parse(path, path.stat().st_mtime_ns)


def _with_parents(module: str) -> list[str]:
    """Importing a.b.c runs a/__init__ and a/b/__init__ first."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def closure(roots: list[str], exclude: tuple[str, ...] = ()) -> list[str]:
    """Every project module the roots import, transitively (roots included), sorted; modules in
    `exclude` are left out together with what only they import."""
    seen: set[str] = set()
    stack = [m for root in roots for m in _with_parents(root)]
    while stack:
        module = stack.pop()
        if module in seen or module in exclude or module_file(module) is None:
            continue
        seen.add(module)
        for imported in _parsed(module)[1]:
            stack.extend(_with_parents(imported))
    return sorted(seen)


def relative_path(module: str) -> str:
    """`experiments.core.ddpm` -> `experiments/core/ddpm.py` (what pages and `--status` show)."""
    return module_file(module).relative_to(PACKAGE_ROOT.parent).as_posix()


def code_fingerprint(section_module: str) -> dict[str, str]:
    """{module file: hash} of what a section computes with: its import closure without the drawing code."""
    return {relative_path(m): _parsed(m)[0] for m in closure([section_module], exclude=DRAWING)}


def drawing_fingerprint(section_module: str) -> dict[str, str]:
    """{module file: hash} of the drawing code a section's figures come from (empty if it draws none)."""
    used = [m for m in DRAWING if m in closure([section_module])]
    return {relative_path(m): _parsed(m)[0] for m in closure(used)} if used else {}


def changed(recorded: dict[str, str], current: dict[str, str]) -> list[str]:
    """Module files whose hash differs, that appeared, or that disappeared (sorted)."""
    return sorted(f for f in set(recorded) | set(current) if recorded.get(f) != current.get(f))
