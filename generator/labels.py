"""Reader-facing names for recipes that runs recorded as config switches.

Runs record a model variant as the switches that make it ('norm=group ema_decay=0.999 epochs=80
predict=x0', or with full keys 'unet.norm=group ...'); a page names it in words ('GroupNorm + EMA,
80 epochs, predicting x0'). Unknown switches are shown as they are, so nothing is hidden.
"""
from __future__ import annotations

import re

REFERENCE_NAMES = {"reference": "reference recipe", "reference (evaluation)": "reference recipe"}
NORMS = {"group": "GroupNorm", "batch": "BatchNorm"}
DEFAULT_EMA = "0.999"        # the decay the better recipe uses; other decays are named


def switches(variant: str) -> dict[str, str]:
    """'unet.norm=group train.epochs=80' (or 'norm=group epochs=80') -> {'norm': 'group', 'epochs': '80'};
    {} when any part is not a switch."""
    out = {}
    for part in variant.split():
        key, eq, value = part.partition("=")
        if not eq:
            return {}
        out[key.split(".")[-1]] = value
    return out


def recipe_label(variant: str) -> str:
    """'norm=group ema_decay=0.999 epochs=80 predict=x0' -> 'GroupNorm + EMA, 80 epochs, predicting x0'."""
    text = variant.strip()
    head, comma, rest = text.partition(", ")
    if comma and "=" in head and " = " not in head:       # '<switches>, γ = 1.5 for t in [0, 80], ...'
        return f"{recipe_label(head)}, {rest}"
    if text in REFERENCE_NAMES:
        return REFERENCE_NAMES[text]
    recorded = switches(text)
    if not recorded:
        return text
    head, tail = [], []
    for key, value in recorded.items():
        if key == "norm":
            head.append(NORMS.get(value, f"{value} norm"))
        elif key == "ema_decay":
            head.append("EMA" if value == DEFAULT_EMA else f"EMA {value}")
        elif key == "epochs":
            tail.append(f"{value} epochs")
        elif key == "predict":
            tail.append(f"predicting {value.replace('x0', 'x₀').replace('eps', 'ε')}")
        elif key == "dropout":
            tail.append(f"dropout {value}")
        elif key == "hidden":
            tail.append(f"width D = {value}")
        elif key == "residual" and value == "true":
            head.append("residual blocks")
        elif key == "final_kernel":
            tail.append(f"{value}×{value} output convolution")
        elif key == "t_per":
            tail.append(f"one t per {value}")
        else:
            tail.append(f"{key} {value}")
    return ", ".join([" + ".join(head)] + tail if head else tail)


def one_notation(name: str) -> str:
    """A recipe named one way in every run of a table: runs that recorded switches are named 'EMA' for the
    default decay and 'predicting x₀', runs that recorded words 'EMA 0.999' and 'predicting x0'."""
    name = re.sub(r"\bEMA\b(?! \d)", f"EMA {DEFAULT_EMA}", name)
    return re.sub(r"\bx0\b", "x₀", name)
