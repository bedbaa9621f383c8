"""The peer (diffusers), the ablations and fast sampling: wrapper maths, DDIM, variants, quick-run outputs."""
from __future__ import annotations

import json
import math

import pytest
import torch

from experiments.core import checkpoints
from experiments.pipeline import registry
from experiments.core.data import load_split
from experiments.core.diffusion.process import add_noise
from experiments.core.diffusion.sampling import ddim_step_fn, sample
from experiments.core.diffusion.schedule import make_schedule
from experiments.errors import UserError
from experiments.core.models.peer import (PeerConfig, PeerUNet, from_spec, from_peer, make_scheduler, peer_objective,
                                     peer_sample, peer_spec, to_peer)
from experiments.core.models.unet import UNet, count_parameters
from experiments.sections import ablations
from experiments.core.judging import spaced_timesteps
from experiments.sections.peer import check_budget
from experiments.core.models import peer as peer_model

TINY = PeerConfig(block_out_channels=(8, 16, 16), layers_per_block=1, norm_num_groups=4, num_train_timesteps=50)
BEYOND = ["peer", "ablations", "fast-sampling", "better-recipe"]


def manifest(quick_run, name: str) -> dict:
    return json.loads((quick_run.results / name / "manifest.json").read_text())


def metric(m: dict, name: str):
    return m["metrics"][name]["value"]


# ---- the peer wrapper ----------------------------------------------------------------------------

def test_to_peer_maps_shape_and_range():
    x = torch.rand(3, 1, 28, 28)
    x[0] = 0.0
    x[1] = 1.0
    y = to_peer(x)
    assert y.shape == (3, 1, 32, 32)
    assert torch.allclose(y[0], torch.full_like(y[0], -1.0)) and torch.allclose(y[1], torch.ones_like(y[1]))
    assert float(y.min()) >= -1 and float(y.max()) <= 1
    back = from_peer(y)
    assert back.shape == (3, 1, 28, 28)
    assert torch.allclose(back[0], torch.zeros_like(back[0]), atol=1e-6)
    assert torch.allclose(back[1], torch.ones_like(back[1]), atol=1e-6)


def test_peer_round_trip_keeps_digits(data_root):
    digits = load_split(data_root, train=False, limit=64).images
    back = from_peer(to_peer(digits))
    err = (back - digits).abs().mean().item()
    assert err < 0.03, f"28 -> 32 -> 28 resizing changes digits by {err:.3f} on average"
    # and the classifier-relevant content survives: correlation with the original stays high
    corr = torch.corrcoef(torch.stack([back.flatten(), digits.flatten()]))[0, 1].item()
    assert corr > 0.97


def test_peer_unet_contract_and_builder_roundtrip():
    torch.manual_seed(0)
    net = PeerUNet(TINY)
    x, t = torch.randn(2, 1, 32, 32), torch.tensor([0, 49])
    assert net(x, t).shape == (2, 1, 32, 32)
    spec = json.loads(json.dumps({"kind": "peer", "final_epoch": 1, **peer_spec(TINY)}))   # as model.json
    rebuilt = from_spec(spec)
    assert isinstance(rebuilt, PeerUNet) and rebuilt.cfg == TINY
    rebuilt.load_state_dict(net.state_dict())
    with torch.no_grad():
        assert torch.allclose(rebuilt(x, t), net(x, t))
    assert from_spec(spec).cfg.block_out_channels == (8, 16, 16)


def test_reference_peer_has_the_writeups_size():
    assert count_parameters(PeerUNet(PeerConfig())) == 1_707_009      # writeup-e's torchinfo summary


def test_peer_config_rejects_bad_groups():
    with pytest.raises(UserError, match="norm_num_groups"):
        PeerConfig(block_out_channels=(8, 16, 16), norm_num_groups=32).validate()


def test_diffusers_schedule_agrees_with_ours():
    sched = make_scheduler(PeerConfig())
    ours = make_schedule(1000, dtype=torch.float64)
    assert torch.allclose(sched.alphas_cumprod.double(), ours.alphas_cumprod, rtol=1e-5)
    x0, eps, t = torch.rand(4, 1, 32, 32), torch.randn(4, 1, 32, 32), torch.tensor([0, 10, 500, 999])
    assert torch.allclose(sched.add_noise(x0, eps, t), add_noise(x0, eps, t, ours.to("cpu")), atol=1e-5)


def test_spacings_as_the_page_describes():
    leading, trailing = make_scheduler(TINY, "leading"), make_scheduler(TINY, "trailing")
    leading.set_timesteps(1)
    trailing.set_timesteps(1)
    assert leading.timesteps.tolist() == [0] and trailing.timesteps.tolist() == [49]
    with pytest.raises(UserError):
        make_scheduler(TINY, "sideways")


def test_peer_objective_and_sampler():
    torch.manual_seed(0)
    net = PeerUNet(TINY)
    loss = peer_objective(make_scheduler(TINY), torch.device("cpu"))(net, to_peer(torch.rand(4, 1, 28, 28)),
                                                                      torch.zeros(4))
    assert loss.ndim == 0 and math.isfinite(loss.item()) and loss.item() > 0
    net.eval()
    a = peer_sample(net, TINY, 5, 3, "trailing", torch.device("cpu"), seed=1, batch=2)
    b = peer_sample(net, TINY, 5, 3, "trailing", torch.device("cpu"), seed=1, batch=2)
    assert a.shape == (5, 1, 28, 28) and torch.equal(a, b)
    with pytest.raises(UserError):
        peer_sample(net, TINY, 2, 51, "trailing", torch.device("cpu"), seed=1)


def test_peer_trains_without_cudnn_attention():
    """cuDNN's attention autotunes on first use (a cold start's seconds): the peer's loss runs its network
    with it switched off, and leaves the switch as it found it."""
    seen = []

    def network(x, t):
        seen.append(torch.backends.cuda.cudnn_sdp_enabled())
        return x

    assert torch.backends.cuda.cudnn_sdp_enabled()
    loss = peer_objective(make_scheduler(TINY), torch.device("cpu"))(network, torch.zeros(2, 1, 32, 32), None)
    assert seen == [False] and loss.item() > 0
    assert torch.backends.cuda.cudnn_sdp_enabled()


def test_peer_trains_uncompiled(monkeypatch, tmp_path, data_root):
    """The peer's training step is not compiled even where the section compiles its sampler."""
    from experiments.core.section import Context
    from experiments.sections import peer as peer_section

    made = {}

    class Stop(Exception):
        pass

    def trainer(*args, **kwargs):
        made.update(kwargs)
        raise Stop

    monkeypatch.setattr(peer_section, "Trainer", trainer)
    ctx = Context(section=registry.get("peer"), cfg=peer_section.QUICK, profile="quick", device=torch.device("cpu"),
                  seed=0, work_root=tmp_path, data_root=data_root, out=None, read_result=None, compile=True)
    with pytest.raises(Stop):
        peer_section.train_peer(ctx, peer_section.QUICK)
    assert made["compile"] is False


def test_bf16_peer_wrapper_matches_the_peer():
    """The GPU sampling wrapper: a 0-dim timestep becomes a (B,) tensor, bf16 in, float32 out, the same
    eps as the fp32 peer up to bf16 rounding (the compiler is exercised on the GPU, not here)."""
    from experiments.core.models.peer import FastPeer

    torch.manual_seed(0)
    net = PeerUNet(TINY).eval()
    x, t = torch.randn(3, 1, 32, 32), torch.tensor(7)
    with torch.no_grad():
        want = net(x, t)
        got = FastPeer(PeerUNet(TINY).eval().requires_grad_(False), compile=False)
        got.net.load_state_dict({k: v.to(torch.bfloat16) for k, v in net.state_dict().items()})
        eps = got(x, t)
    assert eps.dtype == torch.float32 and eps.shape == want.shape
    assert (eps - want).abs().max() < 0.05 * want.abs().max()
    assert not torch.equal(eps, want)                  # it did run in bf16


# ---- timesteps and DDIM --------------------------------------------------------------------------

def test_spaced_timesteps():
    assert spaced_timesteps(300, 300) == list(range(299, -1, -1))
    assert spaced_timesteps(300, 1) == [299]
    for n in (2, 3, 7, 10, 50, 100):
        ts = spaced_timesteps(300, n)
        assert len(ts) == n and ts[0] == 299 and all(a > b >= 0 for a, b in zip(ts, ts[1:]))
    with pytest.raises(ValueError):
        spaced_timesteps(10, 11)


def _gaussian_eps(sched, mu: float, s: float):
    """The exact eps-prediction for data x0 ~ N(mu, s^2) per pixel (s = 0: a point mass)."""

    def estimate(x, t):
        a = sched.abar(t).view(-1, 1, 1, 1)
        return (1 - a).sqrt() * (x - a.sqrt() * mu) / (a * s * s + 1 - a)

    return estimate


def test_ddim_eta0_is_deterministic():
    sched = make_schedule(50, dtype=torch.float64)
    x_T = torch.randn(4, 1, 6, 6, dtype=torch.float64)
    est = _gaussian_eps(sched, 0.3, 0.5)
    runs = [sample(x_T, spaced_timesteps(50, 10), est, ddim_step_fn(sched, 0.0),
                   generator=torch.Generator().manual_seed(seed)).x0 for seed in (1, 2)]
    assert torch.equal(runs[0], runs[1])
    noisy = [sample(x_T, spaced_timesteps(50, 10), est, ddim_step_fn(sched, 1.0),
                    generator=torch.Generator().manual_seed(seed)).x0 for seed in (1, 2)]
    assert not torch.allclose(noisy[0], noisy[1])          # eta > 0 does use the noise


def test_ddim_recovers_a_point_mass_exactly():
    sched = make_schedule(300, dtype=torch.float64)
    x_T = torch.randn(8, 1, 4, 4, dtype=torch.float64)
    for n in (1, 7, 300):
        out = sample(x_T, spaced_timesteps(300, n), _gaussian_eps(sched, 0.4, 0.0), ddim_step_fn(sched)).x0
        assert torch.allclose(out, torch.full_like(out, 0.4), atol=1e-9)


def test_ddim_all_steps_matches_the_probability_flow_closed_form():
    """For x0 ~ N(mu, s^2) the ODE maps x_T to mu + s (x_T - sqrt(abar_T) mu) / sqrt(abar_T s^2 + 1 - abar_T)."""
    T, mu, s = 300, 0.3, 0.5
    sched = make_schedule(T, dtype=torch.float64)
    x_T = torch.randn(64, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a_T = sched.alphas_cumprod[-1]
    closed = mu + s * (x_T - a_T.sqrt() * mu) / (a_T * s * s + 1 - a_T).sqrt()
    err = {n: (sample(x_T, spaced_timesteps(T, n), _gaussian_eps(sched, mu, s), ddim_step_fn(sched)).x0 - closed)
           .abs().max().item() for n in (5, T)}
    assert err[T] < 0.02
    assert err[5] > 10 * err[T]               # the discretisation error shrinks with the steps


# ---- ablations -----------------------------------------------------------------------------------

def test_each_ablation_variant_changes_exactly_its_switch():
    from experiments.core.variants import changes

    cfg = ablations.FULL
    assert cfg.variants[0].name == ablations.REFERENCE and cfg.variants[0].config == cfg.base
    for variant in cfg.variants[1:]:
        diff = changes(cfg.base, variant.config)
        assert len(diff) == 1, f"{variant.name} changes {diff}"
        (key, value), = diff.items()
        # the metric names of earlier runs: the switch written as block_field_value
        assert variant.name == f"{key}_{value}".replace(".", "_").lower()


def test_ablation_variants_differ_in_parameters_where_they_should():
    configs = {v.name: v.config for v in ablations.FULL.variants}
    params = {name: count_parameters(UNet(c.unet)) for name, c in configs.items()}
    ref = params[ablations.REFERENCE]
    assert params["unet_residual_true"] > ref           # 1x1 skip convs where the width changes
    assert params["unet_final_kernel_1"] == ref - 8 * 64  # 64 x (3x3 - 1x1) weights fewer
    assert params["unet_norm_group"] == ref             # same affine parameters per channel
    assert configs["train_ema_decay_0_999"].train.ema_decay == 0.999


def test_sections_compile_only_where_they_say_so(monkeypatch, tmp_path):
    """Short jobs run uncompiled (a first compile costs more than they save); the long ones compile,
    unless FUNDIFF_COMPILE=0; the section's context gets the decision and its manifest records it."""
    import dataclasses

    from experiments.pipeline import runner

    monkeypatch.delenv(runner.COMPILE_ENV, raising=False)
    assert {s.name for s in registry.all_sections() if runner.compiles(s)} == {
        "evaluation", "better-recipe", "peer", "fast-sampling", "ablations"}
    monkeypatch.setenv(runner.COMPILE_ENV, "0")
    assert not any(runner.compiles(s) for s in registry.all_sections())
    monkeypatch.delenv(runner.COMPILE_ENV)

    seen = []
    for compiles in (True, False):
        section = dataclasses.replace(registry.get("noising"), run=lambda ctx: seen.append(ctx.compile),
                                      compiles=compiles)
        opts = runner.RunOptions(profile="quick", device="cpu", results_root=tmp_path / str(compiles),
                                 work_root=tmp_path / "work", show_progress=False)
        folder = runner.run_one(section, opts, torch.device("cpu"), None)
        assert json.loads((folder / "manifest.json").read_text())["compiled"] is False    # never on the CPU
    assert seen == [True, False]


def _variants(*changes):
    from experiments.core.variants import Variant, switch

    base = ablations.FULL.base
    return tuple(Variant(name, name, switch(base, **blocks)) for name, blocks in changes)


@pytest.mark.parametrize("variants, message", [
    (_variants(("reference", {}), ("group", {"unet": {"norm": "batch"}})), "changes nothing"),
    (_variants(("group", {"unet": {"norm": "group"}})), "must include"),
    (_variants(("reference", {}), ("k5", {"unet": {"final_kernel": 5}})), "final_kernel"),
    (_variants(("reference", {}), ("reference", {"unet": {"norm": "group"}})), "distinct"),
    (_variants(("reference", {}), ("Group Norm", {"unet": {"norm": "group"}})), "lowercase"),
])
def test_bad_ablation_variants_are_user_errors(variants, message):
    import dataclasses
    with pytest.raises(UserError, match=message):
        dataclasses.replace(ablations.FULL, variants=variants).validate()


def test_peer_budget_must_match_ours():
    class Stub:
        def dependency(self, name):
            return {"metrics": {"steps": {"value": 9380}}, "config": {"data": {"train_images": 0}}}

    full = registry.config_for(registry.get("peer"), "full")
    assert check_budget(Stub(), full)["metrics"]["steps"]["value"] == full.train.total_steps
    import dataclasses
    short = dataclasses.replace(full, train=dataclasses.replace(full.train, epochs=5))
    with pytest.raises(UserError, match="budget"):
        check_budget(Stub(), short)


# ---- the quick run -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", BEYOND)
def test_sections_ran_in_quick(quick_run, name):
    m = manifest(quick_run, name)
    assert m["part"] == ("evaluation" if name == "better-recipe" else "beyond") and m["profile"] == "quick"
    for fig in m["figures"]:
        assert (quick_run.results / name / fig["file"]).stat().st_size > 0


def test_peer_quick_outputs(quick_run):
    m, ours = manifest(quick_run, "peer"), manifest(quick_run, "time-conditioned")
    assert metric(m, "steps") == metric(ours, "steps")                       # the same optimizer budget
    assert math.isfinite(metric(m, "fid_peer"))
    assert "fid_ours" not in m["metrics"]           # our 300-step FID is the evaluation's: sampled once, there
    model, spec = checkpoints.load_model(quick_run.work / "quick", "peer", "quick", torch.device("cpu"),
                                         peer_model.from_spec)
    assert spec["kind"] == "peer" and isinstance(model, PeerUNet)
    side = next(t for t in m["tables"] if t["key"] == "side_by_side")
    rows = {r[0]: r[1:] for r in side["rows"]}
    assert rows["parameters"] == [metric(ours, "parameters"), count_parameters(model)]
    assert rows["optimizer steps"][0] == rows["optimizer steps"][1]
    sweep = next(t for t in m["tables"] if t["key"] == "sweep")
    cfg = registry.config_for(registry.get("peer"), "quick")
    assert [r[0] for r in sweep["rows"]] == sorted(cfg.sweep_steps)
    assert len(sweep["columns"]) == 1 + 2 + len(cfg.sweep_spacings)
    assert all(f"fid_peer_steps_{k}" in m["metrics"] for k in cfg.sweep_steps)


def test_ablations_quick_outputs(quick_run):
    m = manifest(quick_run, "ablations")
    cfg = registry.config_for(registry.get("ablations"), "quick")
    names = [v.name for v in cfg.variants]
    table = m["tables"][0]
    assert len(table["rows"]) == len(cfg.variants)
    assert sum("✓" in r[0] for r in table["rows"]) == 1                      # the reference row, marked
    assert [v["name"] for v in m["config"]["variants"]] == names             # the typed variants, recorded
    col = table["columns"].index("parameters")
    assert len({r[col] for r in table["rows"]}) >= 3                          # residual / 1x1 head differ
    ratio = table["columns"].index("FID / reference")
    assert table["rows"][names.index("reference")][ratio] == 1.0
    assert all(math.isfinite(r[table["columns"].index("FID")]) for r in table["rows"])
    loss = {v: r[table["columns"].index("final loss")] for v, r in zip(names, table["rows"])}
    fid = {v: r[table["columns"].index("FID")] for v, r in zip(names, table["rows"])}
    ema = next(v for v in names if v.startswith("train_ema_decay"))
    # EMA leaves the training trajectory (same seed) alone and changes only the weights that sample
    assert loss[ema] == loss["reference"] and fid[ema] != fid["reference"]
    others = [loss[v] for v in names if v != ema]
    assert len(set(others)) == len(others)                                    # each trained its own way


def test_fast_sampling_quick_outputs(quick_run):
    m, evaluation = manifest(quick_run, "fast-sampling"), manifest(quick_run, "evaluation")
    assert isinstance(metric(m, "target_met"), bool)
    assert math.isfinite(metric(m, "fid_ddim_50")) and "fid_ddpm" not in m["metrics"]   # the evaluation's number
    table = next(t for t in m["tables"] if t["key"] == "samplers")
    rows, col = table["rows"], {name: i for i, name in enumerate(table["columns"])}
    T = metric(m, "T")
    reference = metric(evaluation, "fid_time_conditioned")
    assert rows[0][0].startswith("DDPM") and rows[0][col["FID"]] == round(reference, 3)
    # the strided sampler with every step is the DDPM sampler: sampled here from the evaluation's starting
    # noise, it gives the evaluation's digits, so the number read from the evaluation is this set's own
    strided_all = next(r for r in rows if r[0] == "strided DDPM" and r[col["steps"]] == T)
    assert strided_all[col["FID"]] == pytest.approx(reference, abs=1e-3)
    # every DDIM step count from both starts, and both starts of the full DDPM sampler
    steps = m["config"]["ddim_steps"]
    for start in ("pure noise", "moment-matched"):
        assert sorted(r[col["steps"]] for r in rows if r[0] == "DDIM" and r[col["starts from"]] == start) == steps
        assert any(r[0].startswith("DDPM") and r[col["starts from"]] == start for r in rows)
    assert metric(m, "fid_ddim_50_matched") != metric(m, "fid_ddim_50")          # a different start, other digits
    assert 0 < metric(m, "abar_last") < 1 and 0 < metric(m, "data_ink") < 1
    assert all(0 <= r[col["mean pixel"]] <= 1 for r in rows)
    assert isinstance(metric(m, "target_met_same_start"), bool)


def test_better_recipe_quick_outputs(quick_run):
    from experiments.sections import better_recipe

    m = manifest(quick_run, "better-recipe")
    cfg = better_recipe.QUICK
    tables = {t["key"]: t for t in m["tables"]}
    grid = tables["grid"]
    assert len(grid["rows"]) == len(cfg.grid) and all(r[0] == cfg.recipe.label for r in grid["rows"])
    assert m["config"]["recipe"]["name"] == cfg.recipe.name                  # the recipe, recorded as a dict
    assert m["config"]["recipe"]["config"]["unet"]["norm"] == "group"
    assert metric(m, "fid_unguided") == metric(m, f"fid_{better_recipe.UNGUIDED.name}")
    # the headline is the configured setting, drawn on fresh noise: not one of the grid's numbers
    assert metric(m, "headline_setting") == cfg.headline.describe()
    assert metric(m, "headline_variant") == cfg.recipe.label
    assert round(metric(m, "fid_headline"), 3) not in {r[3] for r in grid["rows"]}
    # the headline is the mean of independent fresh draws; their spread is what the starting noise alone does
    draws = [metric(m, f"fid_headline_draw{k}") for k in (1, 2)]
    assert cfg.headline_draws == 2 and draws[0] != draws[1]
    assert metric(m, "fid_headline") == pytest.approx(sum(draws) / 2)
    assert metric(m, "fid_headline_spread") == pytest.approx(max(draws) - min(draws))
    assert all(math.isfinite(r[3]) and r[3] >= 0 for r in grid["rows"])
    assert tables["training"]["rows"] == [[cfg.recipe.label, 3, metric(m, "steps"), round(metric(m, "final_loss"), 5),
                                           tables["training"]["rows"][0][4]]]
    # each FID is divided by the floor of the classifier (and test digits) that measured it
    assert metric(m, "fid_floor") > 0
    assert metric(m, "fid_ratio_headline") == pytest.approx(metric(m, "fid_headline") / metric(m, "fid_floor"))
    assert 0 <= metric(m, "accuracy_headline") <= 1 and metric(m, "memorisation_ratio_headline") > 0
    assert 0 <= metric(m, "samples_closer_than_test_p1_headline") <= 1
    assert m["depends_on"] == ["classifier"]           # the reference's numbers are joined on the page
    assert (quick_run.results / "better-recipe" / "fid_vs_gamma.png").stat().st_size > 0


def test_better_recipe_config_rejects_an_interval_past_T():
    import dataclasses

    from experiments.core.guidance import Guidance
    from experiments.errors import UserError
    from experiments.sections import better_recipe

    late = better_recipe.Sampler(Guidance(3.0, (5, 300)))
    with pytest.raises(UserError, match="below T"):
        dataclasses.replace(better_recipe.QUICK, headline=late).validate()
    with pytest.raises(UserError, match="start"):
        dataclasses.replace(better_recipe.QUICK, headline=better_recipe.Sampler(start="warm")).validate()
    with pytest.raises(UserError, match="plain conditional"):
        dataclasses.replace(better_recipe.QUICK, grid=(late,)).validate()


def test_a_grid_can_be_written_out_in_a_config_file():
    from experiments.core.config import override, validate
    from experiments.core.guidance import Guidance
    from experiments.errors import UserError
    from experiments.sections import ablations, better_recipe

    grid = [{"guidance": {"scale": 1.0}}, {"guidance": {"scale": 2.0, "interval": [0, 20]}, "start": "matched"}]
    cfg = validate(override(better_recipe.QUICK, {"grid": grid}))
    assert cfg.grid == (better_recipe.UNGUIDED, better_recipe.Sampler(Guidance(2.0, (0, 20)), "matched"))
    with pytest.raises(UserError, match="did you mean grid.guidance.scale"):
        override(better_recipe.QUICK, {"grid": [{"guidance": {"scal": 1.0}}]})
    with pytest.raises(UserError, match="cannot be given as a mapping"):
        override(ablations.QUICK, {"variants": [{"name": "x"}]})


@pytest.mark.parametrize("name", BEYOND)
def test_pages_render_from_the_quick_run(quick_run, name):
    """Each page reads the quick run's numbers through the reader: formulas, numbers, no empty values."""
    from experiments.pipeline import registry as reg
    from experiments.pipeline.staleness import statuses
    from generator import TEMPLATES_DIR
    from generator.inputs import load_results
    from generator.pages import Pages
    from generator.render import Renderer

    results = load_results(quick_run.results, [s.name for s in reg.all_sections()])
    pages = Pages(Renderer(TEMPLATES_DIR), results, statuses(results.manifests), "results")
    text = pages.section_page(reg.get(name))
    assert "$" in text and "quick profile" in text and "None" not in text
    assert "<details class=\"provenance\"" in text and manifest(quick_run, name)["git_commit"] in text


def test_running_one_section_reuses_available_dependencies(quick_run):
    from experiments.pipeline.runner import RunOptions, plan

    opts = RunOptions(profile="quick", results_root=quick_run.results, work_root=quick_run.work)
    assert [s.name for s in plan(["fast-sampling"], opts)] == ["fast-sampling"]     # no retraining upstream
    with pytest.raises(UserError, match="missing results"):
        plan(["fast-sampling"], RunOptions(profile="quick", results_root=quick_run.root / "empty",
                                           work_root=quick_run.work))


def test_plan_checks_only_the_direct_dependencies(quick_run, tmp_path):
    """better-recipe reads the classifier's weights and the evaluation's results, not the weights the
    evaluation read: a work folder without the class-conditioned model must not block it."""
    import shutil

    from experiments.pipeline.runner import RunOptions, plan

    work = tmp_path / "work"
    shutil.copytree(quick_run.work, work)
    shutil.rmtree(work / "quick" / "class-conditioned")
    opts = RunOptions(profile="quick", results_root=quick_run.results, work_root=work)
    assert [s.name for s in plan(["better-recipe"], opts)] == ["better-recipe"]
    shutil.rmtree(work / "quick" / "classifier")           # a direct dependency's weights: reported
    with pytest.raises(UserError, match="weights missing: rerun classifier first"):
        plan(["better-recipe"], opts)
    # a missing dependency that must run brings the checks of its own dependencies with it
    again = RunOptions(profile="quick", results_root=quick_run.results, work_root=work, run_missing=True)
    names = [s.name for s in plan(["evaluation"], again)]
    assert sorted(names[:-1]) == ["class-conditioned", "classifier"] and names[-1] == "evaluation"


def test_manifests_record_the_weights_they_trained_and_loaded(quick_run):
    better, classifier = manifest(quick_run, "better-recipe"), manifest(quick_run, "classifier")
    assert classifier["weights_fingerprint"] and len(classifier["weights_fingerprint"]) == 16
    assert better["loaded_weights"] == {"classifier": classifier["weights_fingerprint"]}
    assert manifest(quick_run, "noising")["weights_fingerprint"] is None


def test_class_moments_are_each_class_own_mean_and_variance():
    from experiments.core.ddpm import class_moments

    images = torch.rand(40, 1, 28, 28)
    labels = torch.arange(40) % 10
    mean, var = class_moments(images, labels)
    assert mean.shape == var.shape == (10, 1, 28, 28)
    torch.testing.assert_close(mean[3], images[labels == 3].mean(0))
    torch.testing.assert_close(var[7], images[labels == 7].var(0, unbiased=False))


def _cpus(count: int) -> list[torch.device]:
    return [torch.device("cpu")] * count


def test_ablation_samples_are_the_same_in_one_process_or_spread(tmp_path):
    """Each variant is sampled from its saved final weights, here or in a worker for a spare GPU: the
    digits are those of the trained model, wherever they are drawn."""
    import functools

    from experiments.core.checkpoints import checkpoint_path, save_atomic
    from experiments.core.ddpm import prepare_for_sampling
    from experiments.core.judging import sample_set
    from experiments.core.section import Context

    variants = ablations.QUICK.variants[:3]
    models = {}
    for i, variant in enumerate(variants):
        torch.manual_seed(i)
        models[variant.name] = UNet(variant.config.unet).eval()
        save_atomic({"epoch": variant.config.train.epochs, "model": models[variant.name].state_dict(), "ema": None},
                    checkpoint_path(tmp_path / "ablations" / variant.name, variant.config.train.epochs))

    def context(spares: int) -> Context:
        return Context(section=registry.get("ablations"), cfg=ablations.QUICK, profile="quick",
                       device=torch.device("cpu"), seed=5, work_root=tmp_path, data_root=None, out=None,
                       read_result=None, spare_devices=functools.partial(_cpus, spares))

    jobs = [(v, 6, 4) for v in variants]
    alone = ablations.spread(context(0), ablations.draw_variant, jobs)
    together = ablations.spread(context(1), ablations.draw_variant, jobs)          # a real worker process
    for variant, a, b in zip(variants, alone, together):
        expected = sample_set(context(0), prepare_for_sampling(context(0), models[variant.name]),
                              variant.config.diffusion, 6, 4)
        assert a.shape == (6, 1, 28, 28) and torch.equal(a, b) and torch.equal(a, expected)
    assert not torch.equal(alone[0], alone[1])                # different weights, different digits
