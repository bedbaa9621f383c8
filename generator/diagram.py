"""The UNet diagram of the model page, drawn as SVG from the graph the model section traced.

Layout of the classic UNet figure, derived from the graph alone: encoder blocks (up to the block with
the smallest output) go down the left column, one row per resolution; decoder blocks go up the right
column, each in the row of the resolution it reads, so every skip connection is a horizontal arrow
into the decoder block it is concatenated to. Where the time and class embeddings multiply or add into
the decoder's path, a circle sits on the vertical arrow with the embedding block beside it.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from markupsafe import Markup

from experiments.pipeline.results import load_results_json

BOX_W, BOX_H = 168, 50
EMB_W, EMB_H = 150, 32
ROW = 190                      # vertical distance between resolutions
X_ENC, X_DEC = 100, 430        # box centres of the encoder and decoder columns
NEXT_DEC = 215                 # a second decoder block at the same resolution sits this far right
TOP = 70
SYMBOL = {"multiply": "×", "add": "+"}
INPUT_NAMES = {"x": "x", "t": "t / T", "c": "class c"}


@dataclass
class Box:
    name: str
    x: float
    y: float
    title: str
    subtitle: str
    kind: str = "block"


@dataclass
class Drawing:
    boxes: list[Box] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)       # SVG elements drawn under the boxes
    marks: list[str] = field(default_factory=list)       # SVG elements drawn over them


def _shape(shape: list[int]) -> str:
    return " × ".join(str(s) for s in shape) if shape else "scalar"


def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)


class Graph:
    """The traced network: blocks, operations and inputs by index, with helpers to follow the data."""

    def __init__(self, data: dict):
        self.nodes: list[dict] = data["nodes"]
        self.output: int = data["output"]

    def spatial(self, i: int) -> bool:
        return len(self.nodes[i]["shape"]) == 3

    def chain(self, i: int) -> tuple[int, list[tuple[str, int]]]:
        """Follow multiplies and adds back to the block they modify: (that block, [(op, embedding)])."""
        node = self.nodes[i]
        if node["kind"] == "op" and node["name"] in SYMBOL:
            embeds = [j for j in node["inputs"] if not self.spatial(j)]
            main = [j for j in node["inputs"] if self.spatial(j)]
            if len(main) == 1 and embeds:
                base, mods = self.chain(main[0])
                return base, mods + [(node["name"], embeds[0])]
        return i, []

    def feeds(self, block: int) -> tuple[tuple[int, list], list[int]]:
        """A block's main input (block, modifications) and the blocks concatenated to it (skips)."""
        [source] = self.nodes[block]["inputs"][:1] or [None]
        node = self.nodes[source]
        if node["kind"] == "op" and node["name"] == "concatenate":
            first, *rest = node["inputs"]
            return self.chain(first), [self.chain(j)[0] for j in rest]
        return self.chain(source), []

    def in_size(self, block: int) -> int:
        return self.nodes[self.nodes[block]["inputs"][0]]["shape"][-1]


def layout(data: dict) -> Drawing:
    g = Graph(data)
    blocks = [i for i, n in enumerate(g.nodes) if n["kind"] == "block" and g.spatial(i)]
    bottom = min(blocks, key=lambda i: (g.nodes[i]["shape"][-1], -i))
    encoder = [i for i in blocks if i <= bottom]
    decoder = [i for i in blocks if i > bottom]
    sizes = sorted({g.nodes[i]["shape"][-1] for i in encoder}, reverse=True)
    row = {size: k for k, size in enumerate(sizes)}
    place: dict[int, tuple[float, float]] = {}
    for i in encoder:
        place[i] = (X_ENC, TOP + ROW * row[g.nodes[i]["shape"][-1]] + 40)
    used: dict[int, int] = {}
    for i in decoder:
        r = row.get(g.in_size(i), len(sizes) - 1)
        place[i] = (X_DEC + NEXT_DEC * used.get(r, 0), TOP + ROW * r + 40)
        used[r] = used.get(r, 0) + 1
    d = Drawing()
    for i in blocks:
        n = g.nodes[i]
        kind = n["type"] if n["type"] != "Sequential" else n["layers"][0]
        d.boxes.append(Box(n["name"], *place[i], f"{n['name']} · {kind}", f"→ {_shape(n['shape'])}"))
    first = blocks[0]
    fx, fy = place[first]
    x_in = next((k for k in g.nodes[first]["inputs"]), None)
    if x_in is not None:
        d.marks.append(_label(fx, fy - BOX_H / 2 - 38, f"{INPUT_NAMES.get(g.nodes[x_in]['name'], g.nodes[x_in]['name'])}"
                              f" ({_shape(g.nodes[x_in]['shape'])})", anchor="middle"))
        d.lines.append(_arrow([(fx, fy - BOX_H / 2 - 30), (fx, fy - BOX_H / 2)]))
    for i in blocks[1:]:
        (src, mods), skips = g.feeds(i)
        x, y = place[i]
        sx, sy = place.get(src, (x, y))
        if src in encoder and i in encoder:                # down the encoder column
            d.lines.append(_arrow([(sx, sy + BOX_H / 2), (x, y - BOX_H / 2)]))
        elif src in encoder:                               # the bottleneck turns into the decoder
            d.lines.append(_arrow([(sx + BOX_W / 2, sy), (x - BOX_W / 2, y)]))
        elif abs(sy - y) < 1:                              # along a row of the decoder
            d.lines.append(_arrow([(sx + BOX_W / 2, sy), (x - BOX_W / 2, y)]))
        else:                                              # up the decoder column, through the embeddings
            y0, y1 = sy - BOX_H / 2, y + BOX_H / 2
            d.lines.append(_arrow([(sx, y0), (x, y1)]))
            for k, (op, emb) in enumerate(mods):
                cy = y0 - (y0 - y1) * (k + 1) / (len(mods) + 1)
                _embedding(d, g, emb, op, x, cy)
        for skip in skips:
            kx, ky = place[skip]
            d.lines.append(_arrow([(kx + BOX_W / 2, ky), (x - BOX_W / 2, y)], dashed=True))
            d.marks.append(_label((kx + x) / 2, ky - 8, f"skip {_shape(g.nodes[skip]['shape'])}",
                                  anchor="middle", cls="skip"))
    ox, oy = place[g.output] if g.output in place else place[blocks[-1]]
    d.lines.append(_arrow([(ox, oy + BOX_H / 2), (ox, oy + BOX_H / 2 + 34)]))
    d.marks.append(_label(ox, oy + BOX_H / 2 + 52, f"output ({_shape(g.nodes[g.output]['shape'])})", anchor="middle"))
    return d


def _embedding(d: Drawing, g: Graph, emb: int, op: str, x: float, y: float) -> None:
    """A circle with × or + on the decoder's path, its embedding block to the right, its input beyond."""
    node = g.nodes[emb]
    d.marks.append(f'<circle class="op" cx="{x}" cy="{y:.1f}" r="11"/>'
                   f'<text class="op" x="{x}" y="{y + 5:.1f}" text-anchor="middle">{SYMBOL[op]}</text>')
    ex = x + 40 + EMB_W / 2
    d.lines.append(_arrow([(ex - EMB_W / 2, y), (x + 11, y)]))
    d.boxes.append(Box(node["name"], ex, y, f"{node['name']} · {node['type']}", f"→ {_shape(node['shape'])}",
                       kind="embedding"))
    source = next(iter(node["inputs"]), None)
    if source is not None:
        name = g.nodes[source]["name"]
        d.lines.append(_arrow([(ex + EMB_W / 2 + 30, y), (ex + EMB_W / 2, y)]))
        d.marks.append(_label(ex + EMB_W / 2 + 34, y + 5, INPUT_NAMES.get(name, name)))


def _arrow(points: list[tuple[float, float]], dashed: bool = False) -> str:
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    cls = "edge dashed" if dashed else "edge"
    return f'<polyline class="{cls}" points="{path}" marker-end="url(#unet-arrow)"/>'


def _label(x: float, y: float, text: str, anchor: str = "start", cls: str = "label") -> str:
    return f'<text class="{cls}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{_esc(text)}</text>'


def _box(b: Box) -> str:
    w, h = (BOX_W, BOX_H) if b.kind == "block" else (EMB_W, EMB_H)
    x0, y0 = b.x - w / 2, b.y - h / 2
    return (f'<g class="{b.kind}"><rect x="{x0:.1f}" y="{y0:.1f}" width="{w}" height="{h}" rx="6"/>'
            f'<text class="name" x="{b.x:.1f}" y="{y0 + (18 if b.kind == "block" else 14):.1f}" text-anchor="middle">'
            f'{_esc(b.title)}</text><text class="shape" x="{b.x:.1f}" y="{y0 + h - (11 if b.kind == "block" else 7):.1f}" '
            f'text-anchor="middle">{_esc(b.subtitle)}</text></g>')


def svg(data: dict, title: str) -> str:
    """The diagram as one line of inline SVG (it scales with the page; text stays selectable)."""
    d = layout(data)
    right = max(b.x + (BOX_W if b.kind == "block" else EMB_W) / 2 + (120 if b.kind == "embedding" else 10)
                for b in d.boxes)
    bottom = max(b.y for b in d.boxes) + BOX_H
    marker = ('<defs><marker id="unet-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
              'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker></defs>')
    body = "".join(d.lines) + "".join(_box(b) for b in d.boxes) + "".join(d.marks)
    return (f'<svg class="unet-diagram" viewBox="0 0 {right:.0f} {bottom:.0f}" role="img" '
            f'aria-label="{_esc(title)}" xmlns="http://www.w3.org/2000/svg"><title>{_esc(title)}</title>'
            f'{marker}{body}</svg>')


def from_results(results_root: Path) -> dict | None:
    """The drawn network's graph and its SVG from the model section's results (None when absent)."""
    data = load_results_json(Path(results_root) / "model" / "architecture.json")
    if not data or data.get("drawn") not in (data.get("networks") or {}):
        return None
    graph = data["networks"][data["drawn"]]
    # markup built here, every text in it escaped by _esc: the page takes it as it is
    return {"svg": Markup(svg(graph, f"The {data['drawn']} UNet, block by block")), "graph": graph,
            "name": data["drawn"]}
