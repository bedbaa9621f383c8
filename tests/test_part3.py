"""Part 3: the tricks as hooks of the one sampling loop, and every Part 3 section in the quick profile."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from experiments.pipeline import registry
from experiments.core.config import UNetConfig, override, validate
from experiments.core.diffusion.process import strided_timesteps
from experiments.core.diffusion.sampling import ddpm_step_fn, guided_estimate, model_estimate, sample
from experiments.core.diffusion.schedule import make_schedule
from experiments.core.diffusion.tricks import (anagram_estimate, flip, gaussian_kernel, highpass, hybrid_estimate,
                                          inpaint_projection, lowpass, sdedit_start)
from experiments.errors import UserError
from experiments.core.models.unet import UNet
from experiments.core.strokes import DRAWINGS, draw

PART3 = ["forward-process", "classical-vs-learned", "iterative-denoising", "cfg", "sdedit", "inpainting",
         "visual-anagrams", "hybrid-images"]


@pytest.fixture(scope="module")
def net() -> UNet:
    """A random class-conditioned UNet in eval mode (BatchNorm statistics fixed: rows independent)."""
    torch.manual_seed(0)
    model = UNet(UNetConfig(hidden=8, conditioning="class")).eval()
    with torch.no_grad():   # non-trivial running statistics, so eval-mode BN is not the identity
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model


@pytest.fixture(scope="module")
def sched():
    return make_schedule(20)


def test_inpainting_keeps_the_known_region_exactly(net, sched):
    torch.manual_seed(1)
    x_orig = torch.rand(4, 1, 28, 28)
    mask = torch.zeros(4, 1, 28, 28, dtype=torch.bool)
    mask[..., 5:17, 3:20] = True
    labels = torch.tensor([0, 3, 7, 9])
    steps = strided_timesteps(sched.T, 3)
    out = sample(torch.randn(4, 1, 28, 28), steps, guided_estimate(net, sched, labels, 3.0), ddpm_step_fn(sched),
                 project=inpaint_projection(x_orig, mask, sched)).x0
    assert torch.equal(out[~mask], x_orig[~mask])                      # bit for bit at t = 0
    assert (out[mask] - x_orig[mask]).abs().mean() > 0.05              # the hole really was regenerated
    # at an intermediate t the known region is the original noised to t, not the original itself
    mid = inpaint_projection(x_orig, mask, sched)(torch.zeros_like(x_orig), torch.full((4,), 10))
    assert not torch.equal(mid[~mask], x_orig[~mask])
    assert torch.equal(mid[mask], torch.zeros_like(mid[mask]))
    with pytest.raises(UserError):
        inpaint_projection(x_orig, mask.float(), sched)


def test_anagram_estimate_is_symmetric_under_swapping_class_and_orientation(net, sched):
    torch.manual_seed(2)
    x = torch.randn(3, 1, 28, 28)
    t = torch.tensor([15, 15, 15])
    c1, c2 = torch.tensor([6, 1, 2]), torch.tensor([9, 7, 5])
    eps = anagram_estimate(net, sched, c1, c2, 4.0)(x, t)
    swapped = anagram_estimate(net, sched, c2, c1, 4.0)(flip(x), t)
    torch.testing.assert_close(eps, flip(swapped), atol=1e-5, rtol=1e-5)
    # and it is the average of the two separately computed guided estimates
    e1 = guided_estimate(net, sched, c1, 4.0)(x, t)
    e2 = flip(guided_estimate(net, sched, c2, 4.0)(flip(x), t))
    torch.testing.assert_close(eps, (e1 + e2) / 2, atol=1e-5, rtol=1e-5)
    assert (e1 - e2).abs().max() > 1e-3                                # the two readings do differ
    assert torch.equal(flip(flip(x)), x) and torch.equal(flip(flip(x, "vertical"), "vertical"), x)
    assert torch.equal(flip(x)[0, 0, 0, 0], x[0, 0, -1, -1])           # a 180-degree turn
    with pytest.raises(UserError):
        anagram_estimate(net, sched, c1, c2, 4.0, flip_kind="sideways")


def test_strided_loop_at_stride_one_is_the_ddpm_sampler(net):
    """The strided loop at stride 1 against the DDPM formula, written out here in float64."""
    T = 12
    sched = make_schedule(T, dtype=torch.float64)
    betas = np.linspace(1e-4, 0.02, T)
    alphas, abar = 1 - betas, np.cumprod(1 - betas)
    assert strided_timesteps(T, 1) == list(range(T - 1, -1, -1))
    net64 = UNet(UNetConfig(hidden=8, conditioning="class")).double().eval()
    c = torch.nn.functional.one_hot(torch.tensor([1, 4]), 10).double()
    estimate = model_estimate(net64, sched, "eps", c)
    x_T = torch.randn(2, 1, 28, 28, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    got = sample(x_T, strided_timesteps(T, 1), estimate, ddpm_step_fn(sched),
                 generator=torch.Generator().manual_seed(4)).x0

    gen = torch.Generator().manual_seed(4)
    x = x_T.clone()
    with torch.no_grad():
        for t in range(T - 1, -1, -1):
            z = torch.randn(x.shape, generator=gen, dtype=torch.float64)
            eps = net64(x, torch.full((2,), t / T, dtype=torch.float64), c)
            ab_prev = abar[t - 1] if t > 0 else 1.0
            x0_hat = (x - math.sqrt(1 - abar[t]) * eps) / math.sqrt(abar[t])
            x = (math.sqrt(ab_prev) * betas[t] / (1 - abar[t]) * x0_hat
                 + math.sqrt(alphas[t]) * (1 - ab_prev) / (1 - abar[t]) * x
                 + (math.sqrt(betas[t]) * z if t > 0 else 0))
    torch.testing.assert_close(got, x, atol=1e-9, rtol=1e-9)


def test_hybrid_lowpass_plus_highpass_is_the_identity(net, sched):
    torch.manual_seed(5)
    e = torch.randn(3, 1, 28, 28)
    k = gaussian_kernel(1.0)
    assert k.numel() == 7 and abs(float(k.sum()) - 1) < 1e-6
    torch.testing.assert_close(lowpass(e, k) + highpass(e, k), e, atol=1e-6, rtol=0)
    assert lowpass(e, k).std() < 0.6 * e.std()                         # it does remove high frequencies
    flat = torch.full((1, 1, 28, 28), 0.3)
    torch.testing.assert_close(lowpass(flat, k), flat)                 # constants pass (reflected borders)
    # with c1 = c2 the hybrid estimate is the plain guided estimate
    x, t, c = torch.randn(3, 1, 28, 28), torch.tensor([7, 7, 7]), torch.tensor([2, 5, 8])
    torch.testing.assert_close(hybrid_estimate(net, sched, c, c, 3.0, 1.0)(x, t),
                               guided_estimate(net, sched, c, 3.0)(x, t), atol=1e-5, rtol=1e-5)
    # with c1 != c2 the low band follows c1 and the high band c2
    c2 = torch.tensor([7, 0, 1])
    mixed = hybrid_estimate(net, sched, c, c2, 3.0, 1.0)(x, t)
    e1, e2 = guided_estimate(net, sched, c, 3.0)(x, t), guided_estimate(net, sched, c2, 3.0)(x, t)
    torch.testing.assert_close(mixed, lowpass(e1, k) + highpass(e2, k), atol=1e-5, rtol=1e-5)
    with pytest.raises(UserError):
        gaussian_kernel(0.0)


def test_sdedit_start_noises_to_the_strided_index(sched):
    steps = strided_timesteps(sched.T, 3)                               # [19, 16, ..., 1]
    x0 = torch.rand(2, 1, 28, 28)
    x_t, rest = sdedit_start(x0, steps, 2, sched, torch.Generator().manual_seed(0))
    assert rest == steps[2:] and rest[0] == 13
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    ab = float(sched.abar(torch.tensor(13)))
    torch.testing.assert_close(x_t, math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps)
    with pytest.raises(UserError, match="i_start"):
        sdedit_start(x0, steps, len(steps), sched)


def test_drawn_digits_are_ink_on_black():
    images, labels = draw(list(DRAWINGS), 3, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert images.shape == (3 * len(DRAWINGS), 1, 28, 28)
    assert labels.tolist() == [lab for lab, _ in DRAWINGS.values() for _ in range(3)]
    assert images.min() >= 0 and images.max() <= 1
    ink = images.flatten(1).sum(1)
    assert (ink > 20).all() and (ink < 250).all()                      # strokes, not blank, not filled
    border = torch.ones(28, 28, dtype=torch.bool)
    border[1:-1, 1:-1] = False
    assert images[:, :, border].sum() == 0                             # drawn inside the frame
    assert not torch.equal(images[0], images[1])                       # copies are jittered
    same, _ = draw(["7"], 2, torch.Generator().manual_seed(0), torch.device("cpu"), jitter=0.0)
    assert torch.equal(same[0], same[1])
    with pytest.raises(UserError):
        draw(["x"], 1, torch.Generator(), torch.device("cpu"))


@pytest.mark.parametrize("name,key,value", [
    ("visual-anagrams", "pairs", "6-9"), ("hybrid-images", "pairs", "1/x"), ("sdedit", "edits", "3/8"),
    ("inpainting", "masks", "circle"), ("cfg", "stride", "0"), ("hybrid-images", "blur_sigma", "9"),
])
def test_bad_config_is_a_one_line_error(name, key, value):
    cfg = registry.config_for(registry.get(name), "quick")
    with pytest.raises(UserError) as err:
        validate(override(cfg, {key: value}))
    assert "\n" not in str(err.value)


# ---- the sections, from the session's quick run -------------------------------------------------------
def _manifest(quick_run, name: str) -> dict:
    path = quick_run.results / name / "manifest.json"
    assert path.exists(), f"{name} wrote no manifest"
    return json.loads(path.read_text())


def _value(m: dict, key: str) -> float:
    return m["metrics"][key]["value"]


@pytest.mark.parametrize("name", PART3)
def test_section_outputs(quick_run, name):
    m = _manifest(quick_run, name)
    section = registry.get(name)
    assert m["part"] == "part3" and m["profile"] == "quick"
    assert set(section.depends_on) == {"class-conditioned", "classifier"}
    assert m["figures"] and m["tables"] and m["metrics"]
    for fig in m["figures"]:
        path = quick_run.results / name / fig["file"]
        assert path.exists() and path.stat().st_size > 200, fig["file"]
    for metric in m["metrics"].values():
        assert metric["value"] is not None and math.isfinite(metric["value"])
        if metric["fmt"].endswith("%"):
            assert 0 <= metric["value"] <= 1
    for table in m["tables"]:
        assert all(len(row) == len(table["columns"]) for row in table["rows"])


def test_section_numbers(quick_run):
    fwd = _manifest(quick_run, "forward-process")
    assert _value(fwd, "noise_std_error") < 0.1                        # recovered noise has unit std
    assert _value(fwd, "T") == registry.config_for(registry.get("class-conditioned"), "quick").diffusion.T
    inpaint = _manifest(quick_run, "inpainting")
    assert _value(inpaint, "max_change_outside") == 0.0
    cvl = _manifest(quick_run, "classical-vs-learned")
    assert any(k.startswith("psnr_blur_t") for k in cvl["metrics"])
    sd = _manifest(quick_run, "sdedit")
    cfg = registry.config_for(registry.get("sdedit"), "quick")
    psnrs = [_value(sd, f"psnr_test_i{i}") for i in cfg.i_starts]
    assert psnrs[-1] > psnrs[0]                       # less noise added -> closer to the input
    assert {t["key"] for t in sd["tables"]} == {"test_digits", "drawn", "edits"}
    for name, key in [("visual-anagrams", "both"), ("hybrid-images", "both"), ("cfg", "accuracy_gamma5")]:
        assert 0 <= _value(_manifest(quick_run, name), key) <= 1


def test_every_flip_and_conditioning_has_words_for_the_tables():
    """The tables name flips and conditionings in words: a new flip or conditioning needs its words too."""
    from experiments.core.diffusion.tricks import FLIPS
    from experiments.sections.model import CONDITIONED_ON
    from experiments.sections.visual_anagrams import FLIP_WORDS

    assert set(FLIP_WORDS) == set(FLIPS)
    for conditioning in ("none", "time", "class"):
        validate(UNetConfig(conditioning=conditioning))
        assert CONDITIONED_ON[conditioning]
    with pytest.raises(UserError):
        validate(UNetConfig(conditioning="text"))
