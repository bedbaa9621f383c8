"""What the better-recipe page and the run history derive from the section's runs (current and archived).

Each run trained some models (its `training` table) and sampled each at gamma = 1 from N(0, I) on the
grid (its `grid` table): the model's own quality, before guidance or sampler tricks. Runs are compared
on that number, and the page says when the longest training was not the best one. Runs that trained the
same recipe and drew the same headline setting again show how far a retraining moves the headline. Sampler
settings, recorded as labels ('γ = 1.5 for t in [0, 80], class-matched start, x0 clipped'), are put in words
here. Templates only lay these out.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from generator.labels import recipe_label, switches
from generator.reader import SectionRun

UNGUIDED = {"guidance": "γ = 1", "sampler": "N(0, I) start"}     # the grid point that judges the model itself


@dataclass(frozen=True)
class Model:
    name: str            # the recipe in words
    steps: int           # optimizer steps
    loss: float          # final training loss
    fid: float | None    # grid FID at gamma = 1 from N(0, I); None if the run did not sample it


@dataclass(frozen=True)
class Run:
    label: str           # date and device
    commit: str          # short commit of the code that made it
    current: bool        # the run the better-recipe page shows
    models: tuple[Model, ...]
    headline: str        # '<model>, <setting>: FID x = r × floor at a%' ('' if the run has none)
    memorisation: float | None   # the headline samples' nearest-training-digit distance / the test digits'


def describe_run(run: SectionRun) -> str:
    """'2026-11-25, NVIDIA H100 80GB HBM3': which run a number comes from."""
    return f"{run.date}, {run.device}"


def models(run: SectionRun) -> tuple[Model, ...]:
    """The run's models in training order, each with its unguided grid FID."""
    training, grid = run.table("training"), run.table("grid")
    if training is None:
        return ()
    out = []
    for row in training.rows:
        point = grid.first(model=row["variant"], **UNGUIDED) if grid is not None else None
        out.append(Model(recipe_label(row["variant"]), row["optimizer_steps"], row["final_loss"],
                         point["fid"] if point else None))
    return tuple(out)


# ---- sampler settings in words ------------------------------------------------------------------------
_GUIDANCE = re.compile(r"γ = (?P<scale>\d+(?:\.\d+)?)(?: for t in \[(?P<lo>\d+), (?P<hi>\d+)\])?")
_STARTS = {"N(0, I) start": "noise", "class-matched start": "matched"}
_CLIP = "x0 clipped"


@dataclass(frozen=True)
class Setting:
    """How a set of digits was drawn: the guidance scale (as recorded), the timesteps it guides (None: every
    step), where x_T came from ('noise': N(0, I), 'matched': class-matched noise) and whether x0_hat was
    clipped."""

    scale: str
    interval: tuple[int, int] | None = None
    start: str = "noise"
    clip: bool = False

    @property
    def guidance(self) -> str:
        """'γ = 1.5 only for t ≤ 80', 'γ = 2 at every step', 'γ = 1 (no guidance)': a table cell."""
        if self.interval is not None:
            lo, hi = self.interval
            return f"γ = {self.scale} only for " + (f"t ≤ {hi}" if lo == 0 else f"{lo} ≤ t ≤ {hi}")
        value = float(self.scale)
        return f"γ = {self.scale} " + ("(no guidance)" if value == 1 else "(unconditional)" if value == 0
                                       else "at every step")

    @property
    def start_words(self) -> str:
        """'N(0, I)', 'class-matched noise, x̂₀ clipped': a table cell."""
        return ("class-matched noise" if self.start == "matched" else "N(0, I)") + (", x̂₀ clipped" if self.clip else "")

    @property
    def prose(self) -> str:
        """'guidance γ = 1.5 only for t ≤ 80, starting from class-matched noise, clipping the predicted x̂₀'."""
        if self.interval is None and float(self.scale) in (0, 1):
            text = ("no guidance" if float(self.scale) == 1 else "no class (unconditional)") + f" (γ = {self.scale})"
        else:
            text = f"guidance {self.guidance}"
        if self.start == "matched":
            text += ", starting from class-matched noise"
        return text + (", clipping the predicted x̂₀" if self.clip else "")


def parse_setting(guidance: str, sampler: str = "") -> Setting | None:
    """A recorded setting ('γ = 1.5 for t in [0, 80], class-matched start, x0 clipped', or a grid row's
    guidance and sampler cells); None when it holds anything these words do not cover."""
    text = ", ".join(part for part in (str(guidance).strip(), str(sampler).strip()) if part)
    match = _GUIDANCE.match(text)
    if match is None:
        return None
    rest = text[match.end():]
    starts = [key for key in _STARTS if key in rest]
    for known in (*starts, _CLIP):
        rest = rest.replace(known, "")
    if rest.replace(",", "").strip() or len(starts) > 1:
        return None
    interval = None if match["lo"] is None else (int(match["lo"]), int(match["hi"]))
    return Setting(match["scale"], interval, _STARTS[starts[0]] if starts else "noise", _CLIP in text)


def setting_words(guidance: str, sampler: str = "") -> str:
    """A recorded setting as a phrase for a sentence (the recorded text when it cannot be read)."""
    setting = parse_setting(guidance, sampler)
    return setting.prose if setting else ", ".join(p for p in (str(guidance), str(sampler)) if p)


def guidance_cell(guidance: str) -> str:
    setting = parse_setting(guidance)
    return setting.guidance if setting else str(guidance)


def start_cell(sampler: str) -> str:
    setting = parse_setting("γ = 1", sampler)
    return setting.start_words if setting else str(sampler)


def differences(setting: str, guidance: str, sampler: str = "") -> list[str]:
    """How a recorded setting differs from a grid point: 'its guidance', 'its class-matched start', 'clipping'."""
    a, b = parse_setting(setting), parse_setting(guidance, sampler)
    if a is None or b is None:
        return ["its sampler"]
    start = "its class-matched start" if a.start == "matched" else "its N(0, I) start"
    return [name for name, differs in (("its guidance", (a.scale, a.interval) != (b.scale, b.interval)),
                                       (start, a.start != b.start),
                                       ("clipping" if a.clip else "no clipping", a.clip != b.clip)) if differs]


def headline(run: SectionRun) -> str:
    if run.value("fid_headline") is None:
        return ""
    variant = run.value("headline_variant")
    model = f"{recipe_label(str(variant))}, sampled with " if variant is not None else ""
    return (f"{model}{setting_words(run.value('headline_setting'))}: FID {run.value('fid_headline'):.2f} = "
            f"{run.value('fid_ratio_headline'):.2f} × floor at {100 * run.value('accuracy_headline'):.2f} %")


def runs(current: SectionRun, archived: list[SectionRun]) -> list[Run]:
    """The archived runs, oldest first, then the current one."""
    return [Run(describe_run(r), r.git_commit[:7], r is current, models(r), headline(r),
                r.value("memorisation_ratio_headline")) for r in [*archived, current]]


@dataclass(frozen=True)
class Overtrained:
    longest: Model        # the model with the most optimizer steps ...
    best: Model           # ... and the one with the lowest unguided FID, when they differ
    lowest_loss: bool     # whether the longest also ended with the lowest training loss
    train_images: int | None   # digits in the training split (None: unknown)
    passes: int | None    # how often the longest run showed each training digit (None: split size unknown)


def overtrained(current: SectionRun, train_images: int | None) -> Overtrained | None:
    """The longest-trained model when another model reached a lower FID, else None."""
    judged = [m for m in models(current) if m.fid is not None]
    if len(judged) < 2:
        return None
    longest, best = max(judged, key=lambda m: m.steps), min(judged, key=lambda m: m.fid)
    if longest.steps == best.steps:
        return None
    batch = current.config["base"]["train"]["batch_size"]
    return Overtrained(longest, best, longest.loss == min(m.loss for m in judged), train_images or None,
                       round(longest.steps * batch / train_images) if train_images else None)


# ---- the same recipe and headline setting in other runs --------------------------------------------------
# the settings that make a trained model (what the bookkeeping keys, e.g. checkpoint epochs, do not change)
MODEL_KEYS = {"data": ("train_images",), "unet": None,
              "train": ("epochs", "batch_size", "lr", "lr_final_ratio", "ema_decay", "reference_images"),
              "diffusion": ("T", "beta_start", "beta_end", "p_uncond", "predict", "t_per")}


def _switch_value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def _short(variant: str) -> frozenset[tuple[str, str]] | str:
    """'unet.norm=group train.epochs=80' and 'norm=group epochs=80' both as {(norm, group), (epochs, 80)};
    a variant that is not switches as its text."""
    return frozenset(switches(str(variant)).items()) or str(variant).strip()


def headline_model(run: SectionRun) -> dict | None:
    """The settings of the model behind the run's headline: the recipe it trained, or (runs that trained
    several variants) the base configuration with the headline variant's switches applied."""
    cfg = run.config
    if isinstance(cfg.get("recipe"), dict) and isinstance(cfg["recipe"].get("config"), dict):
        return cfg["recipe"]["config"]
    variant, base = run.value("headline_variant"), cfg.get("base")
    if variant is None or not isinstance(base, dict):
        return None
    chosen = next((v for v in cfg.get("variants") or [] if _short(v) == _short(variant)), None)
    if chosen is None:
        return None
    model = {group: dict(values) if isinstance(values, dict) else values for group, values in base.items()}
    for part in str(chosen).split():
        key, _, value = part.partition("=")
        group, _, name = key.rpartition(".")
        if not isinstance(model.get(group), dict):
            return None
        model[group][name] = _switch_value(value)
    return model


def same_model(a: dict | None, b: dict | None) -> bool:
    """Whether two model settings train the same model: equal in every MODEL_KEYS value both record."""
    if a is None or b is None:
        return False
    for group, keys in MODEL_KEYS.items():
        ga, gb = a.get(group), b.get(group)
        if not isinstance(ga, dict) or not isinstance(gb, dict):
            return False
        shared = (ga.keys() & gb.keys()) if keys is None else [k for k in keys if k in ga and k in gb]
        if any(ga[k] != gb[k] for k in shared):
            return False
    return True


@dataclass(frozen=True)
class Repeat:
    label: str           # date and device
    current: bool
    fid: float
    ratio: float         # FID / the floor of the run that measured it
    accuracy: float
    met: bool            # both goals of the current run


@dataclass(frozen=True)
class Repeats:
    """The headline of every run that trained the current recipe and drew the current headline setting."""

    runs: tuple[Repeat, ...]      # earlier runs oldest first, then this one
    target_ratio: float
    target_accuracy: float

    @property
    def earlier(self) -> tuple[Repeat, ...]:
        return tuple(r for r in self.runs if not r.current)

    @property
    def lowest(self) -> Repeat:
        return min(self.runs, key=lambda r: r.ratio)

    @property
    def highest(self) -> Repeat:
        return max(self.runs, key=lambda r: r.ratio)

    @property
    def straddles(self) -> bool:
        """Whether the FID goal lies between the runs: some meet it, some do not."""
        return self.lowest.ratio <= self.target_ratio < self.highest.ratio


def repeats(current: SectionRun, archived: list[SectionRun]) -> Repeats | None:
    """This run's headline beside those of the archived runs (same profile and seed) that trained the same
    model and drew the same headline setting; None when no archived run did."""
    target_ratio, target_acc = current.config.get("target_fid_ratio"), current.config.get("target_accuracy")
    setting, model = current.value("headline_setting"), headline_model(current)
    if None in (target_ratio, target_acc, setting, model, current.value("fid_headline")):
        return None

    def repeat(run: SectionRun) -> Repeat:
        ratio, acc = run.value("fid_ratio_headline"), run.value("accuracy_headline")
        return Repeat(describe_run(run), run is current, run.value("fid_headline"), ratio, acc,
                      ratio <= target_ratio and acc >= target_acc)

    earlier = [run for run in archived if run.run_id != current.run_id and run.profile == current.profile
               and run.seed == current.seed and run.value("headline_setting") == setting
               and None not in (run.value("fid_headline"), run.value("fid_ratio_headline"),
                                run.value("accuracy_headline"))
               and same_model(headline_model(run), model)]
    if not earlier:
        return None
    return Repeats(tuple(repeat(r) for r in [*earlier, current]), target_ratio, target_acc)


def page_context(run: SectionRun, archived: list[SectionRun], summary: dict | None) -> dict:
    """What the better-recipe template reads beyond its run: the models, the overtraining note, how many
    archived runs the run history holds, the earlier runs of the same headline and settings in words."""
    return {"models": models(run), "overtrained": overtrained(run, (summary or {}).get("train_images")),
            "archived_runs": len(archived), "repeats": repeats(run, archived), "setting_words": setting_words,
            "guidance_cell": guidance_cell, "start_cell": start_cell, "differences": differences}
