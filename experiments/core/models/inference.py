"""Inference-time rewrites of a trained UNet that change its speed, not its function.

- BatchNorm (eval mode) folded into the preceding conv / transposed conv: one kernel instead of two.
- bf16 weights and channels_last activations: tensor-core kernels without per-layer casts.
- optionally torch.compile, which fuses the remaining elementwise work (GELU, FiLM products).
"""
from __future__ import annotations

import copy

import torch
from torch import nn


@torch.no_grad()
def _fold(conv: nn.Module, bn: nn.BatchNorm2d) -> None:
    """conv <- bn(conv(.)): w' = w * g / sqrt(var + eps) per output channel, b' = (b - mean) * s + beta."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)                    # (C_out,)
    if isinstance(conv, nn.ConvTranspose2d):                                   # weight (C_in, C_out, k, k)
        conv.weight.mul_(scale.view(1, -1, 1, 1))
    else:                                                                      # weight (C_out, C_in, k, k)
        conv.weight.mul_(scale.view(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of `model` (eval mode) with every Conv -> BatchNorm pair inside a Sequential folded."""
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (_, first), (name, second) in zip(children, children[1:]):
            if isinstance(first, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(second, nn.BatchNorm2d):
                _fold(first, second)
                setattr(module, name, nn.Identity())
    return model


def fast_inference_model(model: nn.Module, device: torch.device, compile: bool = False) -> nn.Module:
    """Folded, bf16, channels_last (and compiled) copy of `model` for sampling on a GPU."""
    if device.type != "cuda":
        return model.eval()
    fast = fold_batchnorm(model).to(device=device, dtype=torch.bfloat16, memory_format=torch.channels_last)
    return torch.compile(fast, dynamic=False) if compile else fast
