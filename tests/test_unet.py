"""The UNet family: parameter counts pinned to the writeup's layer list, shapes, conditioning, ablation switches."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from experiments.core.config import UNetConfig
from experiments.core.models.unet import UNet, count_parameters

PINNED_D64 = {"none": 1_975_361, "time": 1_996_417, "class": 2_019_201}


def spec_parameter_count(d: int, conditioning: str) -> int:
    """The parameter count written out from the writeup's layer list (independent of the model code)."""
    def conv(i, o, k):            # Conv2d / ConvTranspose2d with bias
        return i * o * k * k + o

    def bn(c):
        return 2 * c

    def conv_bn(i, o, k=3):       # Conv(i,o), DownConv, UpConv, Unflatten: conv -> BN -> GELU
        return conv(i, o, k) + bn(o)

    def conv_block(i, o):
        return conv_bn(i, o) + conv_bn(o, o)

    def fc_block(i, o):
        return (i * o + o) + (o * o + o)

    total = (conv_block(1, d)                                   # e1
             + conv_bn(d, d) + conv_block(d, d)                 # DownBlock(D, D)
             + conv_bn(d, 2 * d) + conv_block(2 * d, 2 * d)     # DownBlock(D, 2D)
             + conv_bn(2 * d, 2 * d, 7)                         # Unflatten (AvgPool has none)
             + conv_bn(4 * d, d, 4) + conv_block(d, d)          # UpBlock(4D, D)
             + conv_bn(2 * d, d, 4) + conv_block(d, d)          # UpBlock(2D, D)
             + conv_block(2 * d, d)                             # ConvBlock(2D, D)
             + conv(d, 1, 3))                                   # output conv
    if conditioning in ("time", "class"):
        total += fc_block(1, 2 * d) + fc_block(1, d)
    if conditioning == "class":
        total += fc_block(10, 2 * d) + fc_block(10, d)
    return total


@pytest.mark.parametrize("conditioning", ["none", "time", "class"])
def test_parameter_count_pinned_at_d64(conditioning):
    model = UNet(UNetConfig(hidden=64, conditioning=conditioning))
    assert count_parameters(model) == PINNED_D64[conditioning]
    assert spec_parameter_count(64, conditioning) == PINNED_D64[conditioning]


@pytest.mark.parametrize("d", [1, 8, 24])
@pytest.mark.parametrize("conditioning", ["none", "time", "class"])
def test_parameter_count_follows_spec_for_any_width(d, conditioning):
    assert count_parameters(UNet(UNetConfig(hidden=d, conditioning=conditioning))) == \
        spec_parameter_count(d, conditioning)


@pytest.mark.parametrize("conditioning", ["none", "time", "class"])
@pytest.mark.parametrize("batch", [1, 3])
def test_output_shape_and_intermediate_resolutions(conditioning, batch):
    d = 8
    model = UNet(UNetConfig(hidden=d, conditioning=conditioning)).eval()
    x = torch.randn(batch, 1, 28, 28)
    t = torch.rand(batch)
    c = torch.nn.functional.one_hot(torch.arange(batch) % 10, 10).float()
    seen = {}
    for name in ("encode1", "encode2", "encode3", "unflatten", "decode1", "decode2", "decode3"):
        getattr(model, name).register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o.shape))
    with torch.no_grad():
        out = model(x, t, c)
    assert out.shape == (batch, 1, 28, 28)
    assert out.dtype == torch.float32
    assert seen == {
        "encode1": (batch, d, 28, 28), "encode2": (batch, d, 14, 14), "encode3": (batch, 2 * d, 7, 7),
        "unflatten": (batch, 2 * d, 7, 7), "decode1": (batch, d, 14, 14), "decode2": (batch, d, 28, 28),
        "decode3": (batch, d, 28, 28)}


def _model(conditioning: str) -> UNet:
    """A fresh model in train mode: batch statistics normalise away the tiny scale of untrained layers
    (in eval mode an untrained BN's running stats are (0, 1) and conditioning moves outputs by ~1e-6)."""
    torch.manual_seed(0)
    return UNet(UNetConfig(hidden=8, conditioning=conditioning)).train()


def test_class_conditioning_changes_output():
    model = _model("class")
    x, t = torch.randn(4, 1, 28, 28), torch.full((4,), 0.5)
    eye = torch.eye(10)
    with torch.no_grad():
        out3 = model(x, t, eye[[3, 3, 3, 3]])
        out8 = model(x, t, eye[[8, 8, 8, 8]])
        out_null = model(x, t, torch.zeros(4, 10))
        again = model(x, t, eye[[3, 3, 3, 3]])
    assert torch.equal(out3, again)                       # deterministic (no dropout)
    assert (out3 - out8).abs().max() > 1e-2               # the class vector reaches the output
    assert (out3 - out_null).abs().max() > 1e-2           # "no class" is a distinct input


def test_time_conditioning_changes_output_and_unconditional_ignores_it():
    x = torch.randn(2, 1, 28, 28)
    timed, plain = _model("time"), _model("none")
    with torch.no_grad():
        assert (timed(x, torch.zeros(2)) - timed(x, torch.ones(2))).abs().max() > 1e-2
        assert torch.equal(plain(x, torch.zeros(2)), plain(x, torch.ones(2)))
        assert torch.equal(plain(x), plain(x, torch.ones(2), torch.eye(10)[:2]))
    assert not hasattr(plain, "time1") and not hasattr(plain, "class1")
    assert hasattr(timed, "time1") and not hasattr(timed, "class1")


def test_residual_ablation_adds_projected_skips():
    d = 64
    base = count_parameters(UNet(UNetConfig(hidden=d, conditioning="class")))
    res = UNet(UNetConfig(hidden=d, conditioning="class", residual=True))
    # 1x1 projections where channels change: encode1 (1 -> D) and decode3 (2D -> D); identity elsewhere
    assert count_parameters(res) - base == (1 * d + d) + (2 * d * d + d)
    assert isinstance(res.encode1.skip, nn.Conv2d) and isinstance(res.decode3.skip, nn.Conv2d)
    assert isinstance(res.encode2[1].skip, nn.Identity)
    plain = UNet(UNetConfig(hidden=d, conditioning="class"))
    assert plain.encode1.skip is None


def test_norm_ablation_swaps_batchnorm_for_groupnorm():
    group = UNet(UNetConfig(hidden=16, conditioning="time", norm="group"))
    batch = UNet(UNetConfig(hidden=16, conditioning="time"))
    kinds = lambda m: {type(x) for x in m.modules()}  # noqa: E731
    assert nn.GroupNorm in kinds(group) and nn.BatchNorm2d not in kinds(group)
    assert nn.BatchNorm2d in kinds(batch) and nn.GroupNorm not in kinds(batch)
    assert count_parameters(group) == count_parameters(batch)   # both have a scale and shift per channel
    with torch.no_grad():
        assert group.eval()(torch.randn(2, 1, 28, 28), torch.rand(2)).shape == (2, 1, 28, 28)


def test_dropout_regulariser_sits_inside_every_conv_block_and_only_acts_in_training():
    cfg = UNetConfig(hidden=16, conditioning="class", norm="group")
    torch.manual_seed(0)
    plain = UNet(cfg)
    dropped = UNet(UNetConfig(hidden=16, conditioning="class", norm="group", dropout=0.3))
    assert [type(m) for m in plain.modules()].count(nn.Dropout) == 0
    assert [type(m) for m in dropped.modules()].count(nn.Dropout) == 6          # one per ConvBlock
    assert plain.state_dict().keys() == dropped.state_dict().keys()             # checkpoints interchangeable
    dropped.load_state_dict(plain.state_dict())
    x, t, c = torch.randn(4, 1, 28, 28), torch.rand(4), torch.eye(10)[:4]
    with torch.no_grad():
        assert torch.equal(dropped.eval()(x, t, c), plain.eval()(x, t, c))      # sampling: no dropout
        dropped.train()
        assert not torch.allclose(dropped(x, t, c), dropped(x, t, c))           # training: fresh masks


@pytest.mark.parametrize("bad", [-0.1, 1.0])
def test_dropout_out_of_range_is_refused(bad):
    from experiments.core.config import validate
    from experiments.errors import UserError

    with pytest.raises(UserError, match="unet.dropout must be in"):
        validate(UNetConfig(dropout=bad))


def test_final_kernel_ablation():
    d = 64
    k1 = UNet(UNetConfig(hidden=d, conditioning="class", final_kernel=1))
    assert k1.head.kernel_size == (1, 1)
    assert count_parameters(k1) == PINNED_D64["class"] - d * (9 - 1)
    with torch.no_grad():
        assert k1.eval()(torch.randn(1, 1, 28, 28), torch.rand(1), torch.eye(10)[:1]).shape == (1, 1, 28, 28)


@pytest.mark.parametrize("conditioning", ["time", "class"])
@pytest.mark.parametrize("train", [False, True])
def test_shared_encoder_matches_repeated_images(conditioning, train):
    """k conditionings of one x (as CFG asks) give the output of x repeated k times: the encoder
    sees only x, so it may run once. BatchNorm's batch statistics do not change under repetition."""
    torch.manual_seed(0)
    model = UNet(UNetConfig(hidden=8, conditioning=conditioning)).train(train)
    x = torch.rand(3, 1, 28, 28)
    t = torch.rand(6)
    c = torch.nn.functional.one_hot(torch.tensor([1, 4, 7, 0, 0, 0]), 10).float()
    c = c if conditioning == "class" else None
    torch.testing.assert_close(model(x, t, c), model(x.repeat(2, 1, 1, 1), t, c), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="not a multiple"):
        model(torch.rand(4, 1, 28, 28), t, c)
