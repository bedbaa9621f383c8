"""The GPU fast path computes the same function as the plain code: checked on the CPU in float64."""
from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F

from experiments.core.config import UNetConfig
from experiments.core.models.inference import inference_model, load_inference_weights
from experiments.core.models.unet import UNet


def _trained_looking(cfg: UNetConfig, seed: int = 0) -> UNet:
    """A UNet in float64, eval mode, with BatchNorm statistics and affine parameters far from their init."""
    torch.manual_seed(seed)
    model = UNet(cfg).double()
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)):
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
            torch.nn.init.uniform_(module.bias, -0.3, 0.3)
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.mark.parametrize("conditioning", ["class", "time", "none"])
@pytest.mark.parametrize("norm,residual", [("batch", False), ("group", False), ("batch", True)])
def test_inference_model_computes_the_same_function(conditioning, norm, residual):
    """BatchNorm folded and the skip concatenations split: the same outputs, for one conditioning per
    image and for the two of classifier-free guidance (where the skip branch runs once per image)."""
    model = _trained_looking(UNetConfig(hidden=8, conditioning=conditioning, norm=norm, residual=residual))
    fast = inference_model(model)
    assert fast.split_skips and not model.split_skips
    x = torch.randn(6, 1, 28, 28, dtype=torch.float64)
    copies = (1, 2) if conditioning != "none" else (1,)
    for k in copies:
        t = torch.rand(k * 6, dtype=torch.float64)
        c = F.one_hot(torch.randint(0, 10, (k * 6,)), 10).double() if conditioning == "class" else None
        c = c * (torch.arange(k * 6) < 6)[:, None] if c is not None else None        # second copy: class dropped
        with torch.no_grad():
            want = model(x.repeat(k, 1, 1, 1), t, c)
            got = fast(x, t, c)
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_the_next_checkpoint_goes_into_the_sampling_network_in_place():
    """The evaluation samples every checkpoint with one (compiled) network: another model's weights, folded
    and split, are copied into its parameters, and it then computes that model's function."""
    cfg = UNetConfig(hidden=8, conditioning="class")
    first, second = _trained_looking(cfg, seed=0), _trained_looking(cfg, seed=1)
    fast = inference_model(first)
    storage = [p.data_ptr() for p in fast.parameters()]
    assert load_inference_weights(fast, second) is fast
    assert [p.data_ptr() for p in fast.parameters()] == storage              # in place: a compiled graph stays valid
    x, t = torch.randn(4, 1, 28, 28, dtype=torch.float64), torch.rand(8, dtype=torch.float64)
    c = F.one_hot(torch.arange(8) % 10, 10).double() * (torch.arange(8) < 4)[:, None]
    with torch.no_grad():
        torch.testing.assert_close(fast(x, t, c), second(x.repeat(2, 1, 1, 1), t, c), rtol=1e-10, atol=1e-10)


@pytest.fixture(scope="module")
def tiny_peer():
    pytest.importorskip("diffusers")
    from experiments.core.models.peer import PeerConfig, PeerUNet

    cfg = PeerConfig(block_out_channels=(8, 16, 16), layers_per_block=1, norm_num_groups=4, num_train_timesteps=20)
    torch.manual_seed(0)
    return cfg, PeerUNet(cfg).eval()


def test_peer_add_noise_equals_the_schedulers():
    pytest.importorskip("diffusers")
    from experiments.core.models.peer import PeerConfig, make_scheduler, peer_add_noise

    scheduler = make_scheduler(PeerConfig())
    x0, eps = torch.rand(16, 1, 32, 32) * 2 - 1, torch.randn(16, 1, 32, 32)
    t = torch.randint(0, 1000, (16,))
    assert torch.equal(peer_add_noise(scheduler, torch.device("cpu"))(x0, eps, t), scheduler.add_noise(x0, eps, t))


@pytest.mark.parametrize("spacing,steps", [("leading", 20), ("trailing", 4), ("leading", 3)])
def test_peer_fast_step_equals_scheduler_step(tiny_peer, spacing, steps):
    """The tensor form of DDPMScheduler.step (coefficient table + update) against `scheduler.step` itself:
    one step on the same noise, then a whole sampling run drawing noise from the same generator."""
    from experiments.core.models.peer import PeerSteps, _sample_batch, make_scheduler, peer_update

    cfg, net = tiny_peer
    scheduler = make_scheduler(cfg, spacing)
    table = PeerSteps.of(scheduler, steps)
    assert table.timesteps.tolist() == scheduler.timesteps.tolist()
    x, eps = torch.randn(3, 1, 32, 32), torch.randn(3, 1, 32, 32)
    for i, t in enumerate(scheduler.timesteps):
        want = scheduler.step(eps, t, x, generator=torch.Generator().manual_seed(i)).prev_sample
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(i)) if t > 0 else None
        assert torch.equal(peer_update(x, eps, table.coefficients[i], table.clip, noise), want)

    gen = torch.Generator().manual_seed(5)
    want = torch.randn(3, 1, 32, 32, generator=gen)
    with torch.no_grad():
        for t in scheduler.timesteps:
            want = scheduler.step(net(want, t), t, want, generator=gen).prev_sample
    got = _sample_batch(net, table, 3, 32, torch.device("cpu"), seed=5, graphed=False)
    assert torch.equal(got, want)


def test_peer_sample_splits_a_set_by_batch_seeds(tiny_peer):
    """A set drawn in parts (first_batch) is the same set: what spreading it over GPUs relies on."""
    from experiments.core.models.peer import peer_sample

    cfg, net = tiny_peer
    whole = peer_sample(net, cfg, 6, 3, "trailing", torch.device("cpu"), seed=1, batch=2)
    parts = [peer_sample(net, cfg, 2, 3, "trailing", torch.device("cpu"), seed=1, batch=2, first_batch=k) for k in range(3)]
    assert torch.equal(torch.cat(parts), whole)
