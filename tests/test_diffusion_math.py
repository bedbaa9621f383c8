"""Diffusion maths against float64 closed forms written here, independently of the library code."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from experiments.core.diffusion.process import (add_noise, cfg_combine, ddim_step, ddpm_step, matched_start, predict_eps,
                                           predict_x0, strided_step, strided_timesteps)
from experiments.core.diffusion.sampling import (ddpm_step_fn, guided_estimate, model_estimate, sample,
                                            timestep_pairs)
from experiments.core.diffusion.schedule import make_schedule
from experiments.core.config import DiffusionConfig
from experiments.core.guidance import Guidance
from experiments.errors import UserError

T = 300


def np_schedule(T=T, start=1e-4, end=0.02):
    """betas, alphas, abar in float64 numpy, straight from the definitions."""
    betas = np.array([start + (end - start) * i / (T - 1) for i in range(T)], dtype=np.float64)
    alphas = 1.0 - betas
    abar = np.cumprod(alphas)
    return betas, alphas, abar


def np_abar(abar, t):
    """abar_t with abar_{-1} = 1 (the clean image)."""
    return 1.0 if t < 0 else abar[t]


@pytest.fixture(scope="module")
def sched64():
    return make_schedule(T, device="cpu", dtype=torch.float64)


@pytest.fixture()
def rng():
    return np.random.default_rng(0)


def test_schedule_matches_closed_form(sched64):
    betas, alphas, abar = np_schedule()
    assert sched64.T == T
    np.testing.assert_allclose(sched64.betas.numpy(), betas, rtol=0, atol=1e-15)
    np.testing.assert_allclose(sched64.alphas.numpy(), alphas, rtol=0, atol=1e-15)
    np.testing.assert_allclose(sched64.alphas_cumprod.numpy(), abar, rtol=1e-12)
    assert betas[0] == pytest.approx(1e-4) and betas[-1] == pytest.approx(0.02)
    assert sched64.abar(torch.tensor([-1])).item() == 1.0
    np.testing.assert_allclose(sched64.abar(torch.arange(T)).numpy(), abar, rtol=1e-12)
    # float32 is what training uses: abar is computed in float64 first, so only the cast's rounding remains
    sched32 = make_schedule(T)
    assert sched32.alphas_cumprod.dtype == torch.float32
    np.testing.assert_allclose(sched32.alphas_cumprod.numpy(), abar, rtol=1e-6)
    # sanity of the closed form itself: the last step is nearly pure noise
    assert abar[-1] < 0.05 and abar[0] == pytest.approx(1 - 1e-4)


def test_add_noise_matches_closed_form(sched64, rng):
    _, _, abar = np_schedule()
    x0 = rng.random((5, 1, 28, 28))
    eps = rng.standard_normal((5, 1, 28, 28))
    ts = np.array([0, 1, 149, 298, 299])
    expected = np.stack([np.sqrt(abar[t]) * x0[i] + np.sqrt(1 - abar[t]) * eps[i] for i, t in enumerate(ts)])
    got = add_noise(torch.from_numpy(x0), torch.from_numpy(eps), torch.from_numpy(ts), sched64)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_add_noise_float32_batch_broadcasts_per_sample():
    sched = make_schedule(T)
    x0 = torch.rand(3, 1, 28, 28)
    eps = torch.randn(3, 1, 28, 28)
    t = torch.tensor([0, 100, 299])
    out = add_noise(x0, eps, t, sched)
    for i in range(3):  # each row used its own t, not the first row's
        alone = add_noise(x0[i:i + 1], eps[i:i + 1], t[i:i + 1], sched)
        torch.testing.assert_close(out[i:i + 1], alone)


def test_predict_x0_and_eps_round_trip(sched64, rng):
    x0 = torch.from_numpy(rng.random((4, 1, 28, 28)))
    eps = torch.from_numpy(rng.standard_normal((4, 1, 28, 28)))
    t = torch.tensor([0, 10, 200, 299])
    x_t = add_noise(x0, eps, t, sched64)
    np.testing.assert_allclose(predict_x0(x_t, eps, t, sched64).numpy(), x0.numpy(), atol=1e-9)
    np.testing.assert_allclose(predict_eps(x_t, x0, t, sched64).numpy(), eps.numpy(), atol=1e-9)
    # closed form of x0_hat for an arbitrary (wrong) eps
    _, _, abar = np_schedule()
    other = rng.standard_normal((4, 1, 28, 28))
    expected = np.stack([(x_t[i].numpy() - np.sqrt(1 - abar[tt]) * other[i]) / np.sqrt(abar[tt])
                         for i, tt in enumerate(t.tolist())])
    np.testing.assert_allclose(predict_x0(x_t, torch.from_numpy(other), t, sched64).numpy(), expected, rtol=1e-12)


def gaussian_posterior_mean(x_t, x0, abar_t, abar_prev):
    """Mean of q(x_{t'} | x_t, x0) by Bayes (precision-weighted product of two Gaussians).

    q(x_{t'} | x0) = N(sqrt(abar_prev) x0, 1 - abar_prev); q(x_t | x_{t'}) = N(sqrt(a) x_{t'}, 1 - a),
    a = abar_t / abar_prev. A different route to the formula, so a typo in either shows.
    """
    a = abar_t / abar_prev
    prec_prior, prec_lik = 1.0 / (1.0 - abar_prev), a / (1.0 - a)
    mean = (np.sqrt(abar_prev) * x0 * prec_prior + np.sqrt(a) * x_t / (1.0 - a)) / (prec_prior + prec_lik)
    return mean


@pytest.mark.parametrize("t", [1, 2, 50, 299])
def test_ddpm_step_is_the_posterior_mean_plus_sqrt_beta_noise(sched64, rng, t):
    betas, alphas, abar = np_schedule()
    x0 = rng.random((2, 1, 28, 28))
    x_t = rng.standard_normal((2, 1, 28, 28))
    eps = (x_t - np.sqrt(abar[t]) * x0) / np.sqrt(1 - abar[t])   # the eps for which x0_hat = x0
    z = rng.standard_normal((2, 1, 28, 28))
    tt = torch.full((2,), t)
    # the formula, written out
    spec = (np.sqrt(abar[t - 1]) * betas[t] / (1 - abar[t]) * x0
            + np.sqrt(alphas[t]) * (1 - abar[t - 1]) / (1 - abar[t]) * x_t + np.sqrt(betas[t]) * z)
    got = ddpm_step(torch.from_numpy(x_t), torch.from_numpy(eps), tt, sched64, torch.from_numpy(z))
    np.testing.assert_allclose(got.numpy(), spec, rtol=1e-9, atol=1e-9)
    # and the same mean derived by Bayes
    bayes = gaussian_posterior_mean(x_t, x0, abar[t], abar[t - 1])
    no_noise = ddpm_step(torch.from_numpy(x_t), torch.from_numpy(eps), tt, sched64, None)
    np.testing.assert_allclose(no_noise.numpy(), bayes, rtol=1e-9, atol=1e-9)


def test_last_ddpm_step_returns_x0_hat(sched64, rng):
    """At t = 0 (t' = -1, abar = 1) the update is exactly x0_hat when no noise is added."""
    _, _, abar = np_schedule()
    x_t = rng.standard_normal((3, 1, 28, 28))
    eps = rng.standard_normal((3, 1, 28, 28))
    x0_hat = (x_t - np.sqrt(1 - abar[0]) * eps) / np.sqrt(abar[0])
    got = ddpm_step(torch.from_numpy(x_t), torch.from_numpy(eps), torch.zeros(3, dtype=torch.long), sched64, None)
    np.testing.assert_allclose(got.numpy(), x0_hat, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("t,t_prev", [(299, 289), (299, 0), (150, 120), (30, -1), (5, 4)])
def test_strided_step_matches_closed_form(sched64, rng, t, t_prev):
    _, _, abar = np_schedule()
    a_t, a_p = np_abar(abar, t), np_abar(abar, t_prev)
    alpha, beta = a_t / a_p, 1 - a_t / a_p
    x0_hat = rng.random((2, 1, 28, 28))
    x_t = rng.standard_normal((2, 1, 28, 28))
    z = rng.standard_normal((2, 1, 28, 28))
    spec = (np.sqrt(a_p) * beta / (1 - a_t) * x0_hat + np.sqrt(alpha) * (1 - a_p) / (1 - a_t) * x_t
            + np.sqrt(beta) * z)
    got = strided_step(torch.from_numpy(x_t), torch.from_numpy(x0_hat), torch.full((2,), t),
                       torch.full((2,), t_prev), sched64, torch.from_numpy(z))
    np.testing.assert_allclose(got.numpy(), spec, rtol=1e-9, atol=1e-9)
    if t_prev >= 0:
        mean = strided_step(torch.from_numpy(x_t), torch.from_numpy(x0_hat), torch.full((2,), t),
                            torch.full((2,), t_prev), sched64, None)
        np.testing.assert_allclose(mean.numpy(), gaussian_posterior_mean(x_t, x0_hat, a_t, a_p), rtol=1e-9, atol=1e-9)


def test_strided_step_at_stride_one_is_the_ddpm_step(sched64, rng):
    x_t = torch.from_numpy(rng.standard_normal((3, 1, 28, 28)))
    eps = torch.from_numpy(rng.standard_normal((3, 1, 28, 28)))
    z = torch.from_numpy(rng.standard_normal((3, 1, 28, 28)))
    t = torch.tensor([1, 77, 299])
    a = strided_step(x_t, predict_x0(x_t, eps, t, sched64), t, t - 1, sched64, z)
    b = ddpm_step(x_t, eps, t, sched64, z)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_ddim_eta0_is_deterministic_closed_form(sched64, rng):
    _, _, abar = np_schedule()
    t, t_prev = 250, 200
    x_t = rng.standard_normal((2, 1, 28, 28))
    eps = rng.standard_normal((2, 1, 28, 28))
    x0_hat = (x_t - np.sqrt(1 - abar[t]) * eps) / np.sqrt(abar[t])
    expected = np.sqrt(abar[t_prev]) * x0_hat + np.sqrt(1 - abar[t_prev]) * eps
    got = ddim_step(torch.from_numpy(x_t), torch.from_numpy(eps), torch.full((2,), t), torch.full((2,), t_prev),
                    sched64, eta=0.0, noise=torch.from_numpy(rng.standard_normal((2, 1, 28, 28))))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9, atol=1e-9)


def test_matched_start_closed_form(sched64, rng):
    """x_T = sqrt(abar) m + sqrt(abar v + 1 - abar) z, abar = abar_{T-1}, computed here in float64."""
    _, _, abar = np_schedule()
    a = abar[T - 1]
    mean, var = rng.uniform(0, 1, (1, 28, 28)), rng.uniform(0, 0.2, (1, 28, 28))
    z = rng.standard_normal((3, 1, 28, 28))
    expected = np.sqrt(a) * mean + np.sqrt(a * var + 1 - a) * z
    got = matched_start(torch.from_numpy(z), torch.from_numpy(mean), torch.from_numpy(var), sched64)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_matched_start_has_the_moments_of_the_forward_process(sched64):
    """For data with per-pixel mean m and variance v, q(x_{T-1}) has mean sqrt(abar) m and variance
    abar v + 1 - abar: the matched start agrees with noising real samples, pure noise does not."""
    gen = torch.Generator().manual_seed(0)
    n = 200_000
    m, v = torch.tensor([0.8, 0.1], dtype=torch.float64), torch.tensor([0.05, 0.01], dtype=torch.float64)
    x0 = m + v.sqrt() * torch.randn(n, 2, generator=gen, dtype=torch.float64)      # (n, 2) "pixels"
    t = torch.full((n,), T - 1)
    noised = add_noise(x0, torch.randn(n, 2, generator=gen, dtype=torch.float64), t, sched64)
    started = matched_start(torch.randn(n, 2, generator=gen, dtype=torch.float64), m, v, sched64)
    tol = 4 / n ** 0.5                                   # ~4 standard errors of a unit-variance mean
    torch.testing.assert_close(started.mean(0), noised.mean(0), atol=tol, rtol=0)
    torch.testing.assert_close(started.var(0), noised.var(0), atol=2 * tol, rtol=0)
    a = float(sched64.alphas_cumprod[T - 1])
    torch.testing.assert_close(started.mean(0), a ** 0.5 * m, atol=tol, rtol=0)
    assert (noised.mean(0) - 0).abs().max() > 10 * tol   # N(0, I) would miss the mean: sqrt(abar) m != 0


def test_interval_gamma_and_interval_guidance(rng):
    t = torch.tensor([0, 29, 30, 100, 150, 151, 299])
    got = Guidance(3.0, (30, 150)).scale_at(t).flatten().tolist()
    assert got == [1.0, 1.0, 3.0, 3.0, 3.0, 1.0, 1.0]
    assert Guidance(3.0).scale_at(t) == 3.0

    class Echo(torch.nn.Module):        # eps depends on the class input so cond and uncond differ
        def forward(self, x, t, c):
            x = x.repeat(len(c) // len(x), 1, 1, 1)   # the UNet's contract: one x for k conditionings
            return x * (1 + c.sum(1, keepdim=True).view(-1, 1, 1, 1)) + c.argmax(1).view(-1, 1, 1, 1).float()

    sched = make_schedule(T, device="cpu")
    x = torch.from_numpy(rng.standard_normal((7, 1, 4, 4))).float()
    labels = torch.arange(7) % 10
    guided = guided_estimate(Echo(), sched, labels, Guidance(3.0, (30, 150)))(x, t)
    eps_c = Echo()(x, t.float() / T, torch.nn.functional.one_hot(labels, 10).float())
    eps_u = Echo()(x, t.float() / T, torch.zeros(7, 10))
    gamma = torch.tensor([1.0, 1.0, 3.0, 3.0, 3.0, 1.0, 1.0]).view(-1, 1, 1, 1)
    torch.testing.assert_close(guided, eps_u + gamma * (eps_c - eps_u))
    torch.testing.assert_close(guided[[0, 1, 5, 6]], eps_c[[0, 1, 5, 6]])     # outside: plain conditional


@pytest.mark.parametrize("text, expected", [("5", Guidance(5.0)), ("3@30-150", Guidance(3.0, (30, 150))),
                                            ("1.5@0-299", Guidance(1.5, (0, 299))), (2, Guidance(2.0)),
                                            ({"scale": 3, "interval": [5, 9]}, Guidance(3.0, (5, 9)))])
def test_guidance_parses_its_one_spelling(text, expected):
    assert Guidance.parse(text) == expected
    assert Guidance.parse(str(expected)) == expected                 # what it prints, it reads back


@pytest.mark.parametrize("text", ["x", "3@", "3@150-30", "-1", "3@1-2-3", {"gamma": 3}])
def test_guidance_rejects_bad_values(text):
    with pytest.raises(UserError, match="guidance"):
        Guidance.parse(text)


def test_guidance_from_the_command_line_and_old_specs():
    """--set and YAML reach the typed value through the one parser; a spec saved with a number still loads."""
    from experiments.core.config import override
    from experiments.sections.evaluation import EvaluationConfig

    cfg = override(EvaluationConfig(), {"sweep": "0,1,3@30-150", "guidance": "1"})
    assert cfg.sweep == (Guidance(0.0), Guidance(1.0), Guidance(3.0, (30, 150))) and cfg.guidance == Guidance(1.0)
    assert override(DiffusionConfig(), {"guidance": {"scale": "2"}}).guidance == Guidance(2.0)
    assert DiffusionConfig(**{"guidance": 5.0}).guidance == Guidance(5.0)


@pytest.mark.parametrize("gamma", [0.0, 1.0, 5.0, 7.5])
def test_cfg_combination(rng, gamma):
    eps_u = rng.standard_normal((2, 1, 28, 28))
    eps_c = rng.standard_normal((2, 1, 28, 28))
    expected = (1 - gamma) * eps_u + gamma * eps_c     # an equivalent form of eps_u + gamma (eps_c - eps_u)
    got = cfg_combine(torch.from_numpy(eps_u), torch.from_numpy(eps_c), gamma)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)
    if gamma == 0.0:
        np.testing.assert_array_equal(got.numpy(), eps_u)
    if gamma == 1.0:
        np.testing.assert_allclose(got.numpy(), eps_c, atol=1e-15)


def test_strided_timesteps_and_pairs():
    assert strided_timesteps(300, 1) == list(range(299, -1, -1))
    steps = strided_timesteps(300, 30)
    assert steps[0] == 299 and all(a - b == 30 for a, b in zip(steps, steps[1:])) and 0 <= steps[-1] < 30
    assert strided_timesteps(300, 10, start=90)[:2] == [90, 80]
    assert timestep_pairs([5, 3, 1]) == [(5, 3), (3, 1), (1, -1)]


def test_sampler_with_an_oracle_recovers_the_data_point():
    """If the data is a single image and the estimate is the exact eps, DDPM sampling must end on it."""
    sched = make_schedule(50, device="cpu", dtype=torch.float64)
    target = torch.rand(1, 1, 28, 28, dtype=torch.float64)

    def oracle(x_t, t):
        return predict_eps(x_t, target.expand_as(x_t), t, sched)

    torch.manual_seed(0)
    x_T = torch.randn(3, 1, 28, 28, dtype=torch.float64)
    out = sample(x_T, list(range(49, -1, -1)), oracle, ddpm_step_fn(sched), record_every=10)
    # the loop casts eps to float32 (as the model gives it), hence 1e-6 rather than float64 precision;
    # a wrong coefficient anywhere leaves errors of order 1
    torch.testing.assert_close(out.x0, target.expand_as(out.x0), rtol=0, atol=1e-6)
    assert out.frame_steps == [39, 29, 19, 9, -1] and len(out.frames) == 5
    strided = sample(x_T, strided_timesteps(50, 7), oracle, ddpm_step_fn(sched))
    torch.testing.assert_close(strided.x0, target.expand_as(out.x0), rtol=0, atol=1e-6)


def test_model_estimate_passes_normalised_t_and_converts_x0_predictions():
    sched = make_schedule(10, device="cpu", dtype=torch.float64)
    seen = {}

    class Probe(torch.nn.Module):
        def forward(self, x, t, c):
            seen["t"] = t.clone()
            return torch.zeros_like(x)          # "x0 = 0"

    x_t = torch.randn(2, 1, 28, 28, dtype=torch.float64)
    t = torch.tensor([9, 4])
    eps = model_estimate(Probe(), sched, "x0")(x_t, t)
    torch.testing.assert_close(seen["t"], torch.tensor([0.9, 0.4]))
    abar = sched.alphas_cumprod[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(eps, x_t / (1 - abar).sqrt())
    assert torch.equal(model_estimate(Probe(), sched, "eps")(x_t, t), torch.zeros_like(x_t))


def test_clipped_ddpm_step_clamps_x0_hat_to_the_data_range(sched64, rng):
    """clip_x0 is the step from x0_hat clamped to [0, 1]; inside the range it changes nothing."""
    x = torch.from_numpy(rng.standard_normal((6, 1, 4, 4)))
    eps = torch.from_numpy(rng.standard_normal((6, 1, 4, 4))) * 3        # large eps: x0_hat leaves [0, 1]
    t, t_prev = torch.full((6,), 40), torch.full((6,), 39)
    noise = torch.from_numpy(rng.standard_normal((6, 1, 4, 4)))
    x0_hat = predict_x0(x, eps, t, sched64)
    assert ((x0_hat < 0) | (x0_hat > 1)).any()
    clipped = ddpm_step_fn(sched64, clip_x0=True)(x, eps, t, t_prev, noise)
    torch.testing.assert_close(clipped, strided_step(x, x0_hat.clamp(0, 1), t, t_prev, sched64, noise))
    assert not torch.allclose(clipped, ddpm_step_fn(sched64)(x, eps, t, t_prev, noise))
    inside = predict_eps(x, torch.full_like(x, 0.5), t, sched64)         # eps whose x0_hat is 0.5 everywhere
    torch.testing.assert_close(ddpm_step_fn(sched64, clip_x0=True)(x, inside, t, t_prev, noise),
                               ddpm_step_fn(sched64)(x, inside, t, t_prev, noise))
