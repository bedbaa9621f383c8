"""The model: the UNets of Parts 1 and 2 traced block by block, so the page's diagram cannot drift.

Nothing is trained and nothing is read from other sections, so it runs anywhere in a second. Each
network is built from this section's copy of its section's network configuration (a test checks that
the copies match in every profile) and run once on a small CPU batch while forward hooks and a
torch-function mode watch it: every top-level block with
its layers, output shape and parameter count, and every operation between blocks (the skip
concatenations, and where the time and class embeddings multiply or add into the decoder) as a graph.
The site draws the diagram from that graph.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from experiments.core.config import UNetConfig, _require
from experiments.core.models.unet import NUM_CLASSES, UNet, count_parameters
from experiments.core.section import Context, Section

# config field -> (the section whose network it is, a name for readers)
NETWORKS = {"denoiser": ("single-step-denoiser", "unconditional UNet (Part 1)"),
            "time": ("time-conditioned", "time-conditioned UNet (Part 2)"),
            "classes": ("class-conditioned", "class-conditioned UNet (Part 2)")}
# what enters each network besides x_t (the class-conditioned UNet also takes t)
CONDITIONED_ON = {"none": "none", "time": "time", "class": "time + class"}
DRAWN = "class-conditioned"          # the network the diagram shows: the one where both t and c enter
# operations between blocks that change the data flow; everything else (views, casts) passes a tensor on
OPERATIONS = {"cat": "concatenate", "__mul__": "multiply", "mul": "multiply", "__add__": "add", "add": "add"}


@dataclass(frozen=True)
class ModelConfig:
    denoiser: UNetConfig = field(default_factory=lambda: UNetConfig(hidden=128, conditioning="none"))
    time: UNetConfig = field(default_factory=lambda: UNetConfig(hidden=64, conditioning="time"))
    classes: UNetConfig = field(default_factory=lambda: UNetConfig(hidden=64, conditioning="class"))
    batch: int = 2            # images in the traced batch (any size: shapes are recorded without it)

    def validate(self) -> None:
        _require(self.batch >= 1, "batch must be >= 1")


def layer_names(module: nn.Module) -> list[str]:
    """The leaf layers of a block in order: 'conv 3×3', 'conv 3×3 /2', 'up-conv 4×4 ×2', 'BatchNorm', ..."""
    out = []
    for leaf in module.modules():
        if list(leaf.children()):
            continue
        if isinstance(leaf, nn.ConvTranspose2d):
            k, s = leaf.kernel_size[0], leaf.stride[0]
            out.append(f"up-conv {k}×{k} ×{s}")
        elif isinstance(leaf, nn.Conv2d):
            k, s = leaf.kernel_size[0], leaf.stride[0]
            out.append(f"conv {k}×{k}" + (f" /{s}" if s > 1 else ""))
        elif isinstance(leaf, nn.Linear):
            out.append(f"linear {leaf.in_features}→{leaf.out_features}")
        elif isinstance(leaf, nn.AvgPool2d):
            k = leaf.kernel_size if isinstance(leaf.kernel_size, int) else leaf.kernel_size[0]
            out.append(f"avg-pool {k}×{k}")
        elif not isinstance(leaf, nn.Identity):
            out.append(type(leaf).__name__.replace("2d", ""))
    return out


class _Tracer(TorchFunctionMode):
    """Records the operations between top-level blocks (depth 0) as graph nodes, by tensor identity."""

    def __init__(self) -> None:
        super().__init__()
        self.nodes: list[dict[str, Any]] = []
        self.producer: dict[int, int] = {}      # id(tensor) -> node index
        self.alive: list[torch.Tensor] = []     # keeps traced tensors alive so their ids stay unique
        self.depth = 0

    def add(self, node: dict[str, Any], output: torch.Tensor) -> int:
        self.nodes.append(node)
        self.producer[id(output)] = len(self.nodes) - 1
        self.alive.append(output)
        return len(self.nodes) - 1

    def sources(self, values: Any) -> list[int]:
        flat = values if isinstance(values, (list, tuple)) else [values]
        out = []
        for v in flat:
            if isinstance(v, (list, tuple)):
                out += self.sources(v)
            elif isinstance(v, torch.Tensor) and id(v) in self.producer:
                out.append(self.producer[id(v)])
        return out

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if self.depth == 0 and isinstance(result, torch.Tensor):
            srcs = self.sources(list(args) + list((kwargs or {}).values()))
            name = getattr(func, "__name__", "")
            if name in OPERATIONS and len(srcs) >= 2:
                self.add({"kind": "op", "name": OPERATIONS[name], "inputs": srcs,
                          "shape": list(result.shape[1:])}, result)
            elif len(srcs) == 1:                  # a view, cast or broadcast: the same data flows on
                self.producer[id(result)] = srcs[0]
                self.alive.append(result)
        return result


def trace(model: UNet, batch: int) -> dict[str, Any]:
    """The network as a graph: inputs, top-level blocks and the operations between them, in the order
    they ran, each with its output shape (without the batch) and the nodes it read."""
    tracer = _Tracer()
    blocks = dict(model.named_children())
    handles = []

    def before(module: nn.Module, args: tuple) -> None:
        tracer.depth += 1

    def after(name: str):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            tracer.depth -= 1
            if tracer.depth == 0:
                tracer.add({"kind": "block", "name": name, "type": type(module).__name__,
                            "layers": layer_names(module), "parameters": count_parameters(module),
                            "inputs": tracer.sources(list(args)), "shape": list(output.shape[1:])}, output)
        return hook

    for name, block in blocks.items():
        handles.append(block.register_forward_pre_hook(before))
        handles.append(block.register_forward_hook(after(name)))
    x = torch.rand(batch, 1, 28, 28)
    t = torch.rand(batch)
    c = nn.functional.one_hot(torch.arange(batch) % NUM_CLASSES, NUM_CLASSES).float()
    inputs = {"x": x, "t": t, "c": c}
    cond = model.cfg.conditioning
    used = ["x"] + (["t"] if cond in ("time", "class") else []) + (["c"] if cond == "class" else [])
    try:
        with torch.no_grad(), tracer:
            for name in used:
                tracer.add({"kind": "input", "name": name, "inputs": [], "shape": list(inputs[name].shape[1:])},
                           inputs[name])
            out = model(x, t if "t" in used else None, c if "c" in used else None)
    finally:
        for h in handles:
            h.remove()
    return {"nodes": tracer.nodes, "output": tracer.producer[id(out)], "parameters": count_parameters(model),
            "hidden": model.cfg.hidden, "conditioning": cond, "norm": model.cfg.norm}


def run(ctx: Context) -> None:
    cfg: ModelConfig = ctx.cfg
    rows, graphs = [], {}
    for key, (section, label) in NETWORKS.items():
        unet = UNet(getattr(cfg, key)).eval()
        graph = trace(unet, cfg.batch)
        graphs[section] = graph
        blocks = [n for n in graph["nodes"] if n["kind"] == "block"]
        rows.append([label, unet.cfg.hidden, CONDITIONED_ON[unet.cfg.conditioning], len(blocks), graph["parameters"]])
        ctx.out.add_metric(f"parameters_{section.replace('-', '_')}", graph["parameters"],
                           f"Parameters, {label}", ",d")
    ctx.out.add_series("architecture.json", "the traced networks", {"drawn": DRAWN, "networks": graphs})
    ctx.out.add_table("networks", "The three UNets",
                      {"network": "network", "hidden": "width D", "conditioning": "conditioning",
                       "blocks": "top-level blocks", "parameters": "parameters"}, rows)
    drawn = graphs[DRAWN]
    ctx.out.add_table("blocks", "Blocks of the class-conditioned UNet",
                      {"block": "block", "layers": "layers", "shape": "output (C × H × W)",
                       "parameters": "parameters"},
                      [[n["name"], ", ".join(n["layers"]), " × ".join(map(str, n["shape"])), n["parameters"]]
                       for n in drawn["nodes"] if n["kind"] == "block"])


QUICK = ModelConfig(denoiser=UNetConfig(hidden=8, conditioning="none"), time=UNetConfig(hidden=8, conditioning="time"),
                    classes=UNetConfig(hidden=8, conditioning="class"))

SECTION = Section(
    name="model", title="The model", part="model",
    summary="Traces the UNets block by block: shapes, skip connections, where time and class enter, parameters.",
    profiles={"full": ModelConfig(), "quick": QUICK}, run=run)
