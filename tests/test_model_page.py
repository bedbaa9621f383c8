"""The model page is drawn from the network itself: the trace, its agreement with the sections' networks,
and the diagram drawn from the trace."""
from __future__ import annotations

import json

import pytest

from experiments.core.config import UNetConfig
from experiments.core.models.unet import UNet, count_parameters
from experiments.pipeline import registry
from experiments.sections.model import NETWORKS, trace
from generator.diagram import Graph, layout, svg


@pytest.fixture(scope="module")
def graph() -> dict:
    return trace(UNet(UNetConfig(hidden=8, conditioning="class")), batch=3)


def test_the_trace_holds_every_block_with_its_shape_and_parameters(graph):
    blocks = {n["name"]: n for n in graph["nodes"] if n["kind"] == "block"}
    assert list(blocks) == ["encode1", "encode2", "encode3", "flatten", "unflatten", "time1", "time2", "class1",
                            "decode1", "class2", "decode2", "decode3", "head"]      # in the order they ran
    assert blocks["encode3"]["shape"] == [16, 7, 7] and blocks["flatten"]["shape"] == [16, 1, 1]
    assert blocks["head"]["shape"] == [1, 28, 28] and blocks["time1"]["shape"] == [16]
    assert sum(b["parameters"] for b in blocks.values()) == graph["parameters"] == \
        count_parameters(UNet(UNetConfig(hidden=8, conditioning="class")))
    assert blocks["encode2"]["layers"][0] == "conv 3×3 /2" and blocks["decode1"]["layers"][0] == "up-conv 4×4 ×2"


def test_the_trace_finds_the_skips_and_where_time_and_class_enter(graph):
    g = Graph(graph)
    names = [n["name"] for n in graph["nodes"]]
    (main, mods), skips = g.feeds(names.index("decode1"))
    assert names[main] == "unflatten" and [names[s] for s in skips] == ["encode3"]
    assert [(op, names[e]) for op, e in mods] == [("multiply", "class1"), ("add", "time1")]
    (main, mods), skips = g.feeds(names.index("decode3"))
    assert names[main] == "decode2" and [names[s] for s in skips] == ["encode1"] and mods == []
    inputs = {n["name"]: n["inputs"] for n in graph["nodes"] if n["kind"] == "block"}
    assert [names[i] for i in inputs["time2"]] == ["t"] and [names[i] for i in inputs["class2"]] == ["c"]


def test_an_unconditional_unet_has_no_embeddings():
    plain = trace(UNet(UNetConfig(hidden=8, conditioning="none")), batch=2)
    kinds = {n["name"] for n in plain["nodes"]}
    assert "t" not in kinds and "time1" not in kinds and not any(n["name"] in ("multiply", "add") for n in plain["nodes"])


@pytest.mark.parametrize("profile", registry.PROFILES)
def test_the_traced_networks_are_the_sections_networks(profile):
    mine = registry.config_for(registry.get("model"), profile)
    for field, (section, _) in NETWORKS.items():
        assert getattr(mine, field) == registry.config_for(registry.get(section), profile).unet, (profile, section)


def test_the_diagram_is_drawn_from_the_trace(graph):
    drawing = svg(graph, "UNet")
    for name in ("encode1", "encode2", "encode3", "flatten", "unflatten", "decode1", "decode2", "decode3", "head",
                 "time1", "time2", "class1", "class2"):
        assert f">{name} ·" in drawing, name
    assert drawing.count(">skip ") == 3 and drawing.count(">×<") == 2 and drawing.count(">+<") == 2
    boxes = layout(graph).boxes
    rows = {b.name: b.y for b in boxes}
    # each skip is horizontal: the decoder block sits in the row of the encoder block it reads
    assert rows["decode1"] == rows["encode3"] and rows["decode2"] == rows["encode2"] and rows["decode3"] == rows["encode1"]


def test_the_model_section_records_the_trace(quick_run):
    m = json.loads((quick_run.results / "model" / "manifest.json").read_text())
    data = json.loads((quick_run.results / "model" / "architecture.json").read_text())
    assert set(data["networks"]) == {section for section, _ in NETWORKS.values()} and data["drawn"] == "class-conditioned"
    assert m["metrics"]["parameters_class_conditioned"]["value"] == data["networks"]["class-conditioned"]["parameters"]
    networks = next(t for t in m["tables"] if t["key"] == "networks")
    assert networks["keys"] == ["network", "hidden", "conditioning", "blocks", "parameters"]
