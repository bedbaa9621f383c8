"""Part 3, image-to-image translation (SDEdit): noise an image to strided index i_start, then denoise.

Three inputs, each at i_start in {10, 13, ..., 25} (small i_start = more noise = more freedom; with stride
10 over T = 300 these start at t = 199 down to t = 49, where the digits go from re-imagined to kept):
test digits and hand-drawn-like digits drawn by code (unconditional model, c = 0: "make it look like
MNIST"), and class-conditional edits that denoise a digit of one class towards another (CFG to the
target). Everything of one i_start is one batch: the unconditional rows get gamma = 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from experiments import figures
from experiments.core.config import _require
from experiments.core.section import Context, Section
from experiments.core.diffusion.tricks import sdedit_start
from experiments.errors import UserError
from experiments.core.metrics import psnr
from experiments.core.lab import DEPENDS, SamplingConfig, check_stride, load, parse_pairs
from experiments.core.strokes import DRAWINGS, draw

START = "start step i"      # the column of the strided index i the loop starts from (its key stays i_start)


@dataclass(frozen=True)
class SDEditConfig(SamplingConfig):
    i_starts: tuple[int, ...] = (10, 13, 16, 19, 22, 25)    # strided indices to start from (t = 199 ... 49)
    drawings: tuple[str, ...] = ("0", "1", "2", "3", "4", "7")  # digits drawn by code
    drawn_seeds: int = 20                                    # jittered copies of each drawing
    edits: tuple[str, ...] = ("3>8", "1>7", "4>9")          # class-conditional edits source>target
    shown: int = 3                                           # test digits in the figure
    # seeds = test digits for plain SDEdit and source digits per edit

    def validate(self) -> None:
        super().validate()
        _require(len(self.i_starts) > 0 and all(i >= 0 for i in self.i_starts), "i_starts must be >= 0")
        _require(all(d in DRAWINGS for d in self.drawings), f"drawings must be among {', '.join(DRAWINGS)}")
        _require(self.drawn_seeds >= 1, "drawn_seeds must be >= 1")
        parse_pairs(self.edits, ">", "edit")
        _require(1 <= self.shown <= self.seeds, "shown must be in 1..seeds")


def _sources(ctx: Context, pairs: list[tuple[int, int]], n: int) -> torch.Tensor:
    """n test digits of each edit's source class, pair-major: (len(pairs) n, 1, 28, 28)."""
    test = ctx.test_split(ctx.cfg.test_images)
    out = []
    for src, _ in pairs:
        found = test.images[test.labels == src][:n]
        if found.shape[0] < n:
            raise UserError(f"only {found.shape[0]} test digits of class {src} for {n} edit seeds: "
                            f"lower seeds or raise test_images")
        out.append(found)
    return torch.cat(out)


def run(ctx: Context) -> None:
    cfg: SDEditConfig = ctx.cfg
    lab = load(ctx)
    steps = check_stride(lab, cfg.stride, max(cfg.i_starts) + 1)
    pairs = parse_pairs(cfg.edits, ">", "edit")
    test = ctx.test_split(cfg.test_images)
    n, dev = min(cfg.seeds, len(test)), lab.device
    digits, digit_labels = test.images[:n], test.labels[:n]
    drawn, drawn_labels = draw(list(cfg.drawings), cfg.drawn_seeds, ctx.generator(7), dev)
    sources = _sources(ctx, pairs, n)
    targets = torch.tensor([t for _, t in pairs], device=dev).repeat_interleave(n)
    x_in = torch.cat([digits, drawn, sources])                                       # one batch per i_start
    parts = [n, drawn.shape[0], sources.shape[0]]
    labels = torch.cat([digit_labels, drawn_labels, targets])
    gamma = torch.cat([torch.zeros(parts[0] + parts[1], device=dev), torch.full((parts[2],), cfg.guidance.scale, device=dev)])
    estimate = lab.guided(labels, gamma.view(-1, 1, 1, 1))

    results = []
    for j, i in enumerate(cfg.i_starts):
        x_t, remaining = sdedit_start(x_in, steps, i, lab.sched, ctx.generator(100 + j))
        results.append(lab.run(x_t, remaining, estimate, seed_offset=j).x0)
    res = torch.stack(results)                                                       # (I, B, 1, 28, 28)
    I = len(cfg.i_starts)
    flat = res.flatten(0, 1)
    probs = lab.probabilities(flat).view(I, -1, 10)
    pred = probs.argmax(2)
    quality = psnr(flat, x_in.repeat(I, 1, 1, 1)).view(I, -1)                        # (I, B)
    change = (flat.clamp(0, 1) - x_in.repeat(I, 1, 1, 1)).abs().flatten(1).mean(1).view(I, -1)
    hit = (pred == labels).float()                                                   # own digit / target
    d_sl, w_sl, e_sl = slice(0, parts[0]), slice(parts[0], parts[0] + parts[1]), slice(parts[0] + parts[1], None)
    drawn_in = lab.probabilities(drawn)
    summary = torch.stack([
        quality[:, d_sl].mean(1), change[:, d_sl].mean(1), hit[:, d_sl].mean(1),
        quality[:, w_sl].mean(1), hit[:, w_sl].mean(1), probs[:, w_sl].max(2).values.mean(1),
        quality[:, e_sl].mean(1)]).T.tolist()                                        # (I, 7)
    per_edit = hit[:, e_sl].view(I, len(pairs), n).mean(2).tolist()                  # (I, pairs)
    drawn_read = float((drawn_in.argmax(1) == drawn_labels).float().mean())
    drawn_conf = float(drawn_in.max(1).values.mean())

    out = ctx.out
    t_of = [steps[i] for i in cfg.i_starts]
    cols = [f"i = {i}\nt = {t}" for i, t in zip(cfg.i_starts, t_of)] + ["input"]

    def grid(file: str, rows_idx: list[int], row_labels: list[str], title: str, alt: str) -> None:
        rows = [torch.cat([res[:, b], x_in[b:b + 1]]) for b in rows_idx]
        figures.save_labelled_grid(out.path(file), rows, row_labels, cols)
        out.add_figure(file, title, alt=alt)

    grid("sdedit_test.png", list(range(cfg.shown)), figures.example_labels(cfg.shown),
         "SDEdit on test digits", "Test digits re-imagined by SDEdit from several noise levels")
    first_copy = [parts[0] + k * cfg.drawn_seeds for k in range(len(cfg.drawings))]
    grid("sdedit_drawn.png", first_copy, [f"drawn {d}" for d in cfg.drawings], "SDEdit on digits drawn by code",
         "Code-drawn digits turned into MNIST-like digits by SDEdit")
    first_edit = [parts[0] + parts[1] + k * n for k in range(len(pairs))]
    grid("edits.png", first_edit, [f"{s} → {t}" for s, t in pairs], "Class-conditional edits",
         "Test digits edited into another digit class")

    # against the starting step t, as the page speaks of it (the strided index i only says where in the list)
    figures.save_line_plot(out.path("psnr_vs_istart.png"), t_of,
                           {"test digits": [r[0] for r in summary], "drawn digits": [r[3] for r in summary],
                            "edits": [r[6] for r in summary]}, "starting step t (larger = more noise added)",
                           "PSNR to the input (dB)", "How close SDEdit stays to its input",
                           second={"ylabel": "read as the target", "series": {
                               f"edit {s}→{t}": [row[k] for row in per_edit] for k, (s, t) in enumerate(pairs)}})
    out.add_figure("psnr_vs_istart.png", "Staying close vs changing", kind="plot",
                   alt="PSNR to the input and edit success against the starting step")

    out.add_table("test_digits", f"SDEdit on {n} test digits",
                  {"i_start": START, "t": "t", "psnr_to_input_db": "PSNR to input (dB)",
                   "mean_change": "mean |change|", "read_as_its_own_digit": "read as its own digit"},
                  [[i, t, round(r[0], 2), round(r[1], 4), round(r[2], 4)]
                   for i, t, r in zip(cfg.i_starts, t_of, summary)])
    out.add_table("drawn", f"SDEdit on {parts[1]} code-drawn digits ({cfg.drawn_seeds} jittered copies of "
                  f"{', '.join(cfg.drawings)})",
                  {"i_start": START, "t": "t", "psnr_to_input_db": "PSNR to input (dB)",
                   "read_as_the_drawn_digit": "read as the drawn digit", "classifier_confidence": "classifier confidence"},
                  [["input", "", "", round(drawn_read, 4), round(drawn_conf, 4)]] +
                  [[i, t, round(r[3], 2), round(r[4], 4), round(r[5], 4)]
                   for i, t, r in zip(cfg.i_starts, t_of, summary)])
    edit_keys = {f"{s}_to_{t}_read_as_{t}": f"{s}→{t} read as {t}" for s, t in pairs}
    out.add_table("edits", f"Class-conditional edits, {n} source digits each ({cfg.guidance.describe()})",
                  {"i_start": START, "t": "t", **edit_keys, "psnr_to_input_db": "PSNR to input (dB)"},
                  [[i, t] + [round(v, 4) for v in pe] + [round(r[6], 2)]
                   for i, t, pe, r in zip(cfg.i_starts, t_of, per_edit, summary)])
    for k, (i, r) in enumerate(zip(cfg.i_starts, summary)):
        out.add_metric(f"psnr_test_i{i}", r[0], f"PSNR to the test digit, {START} = {i} (dB)", ".2f")
        out.add_metric(f"edit_success_i{i}", sum(per_edit[k]) / len(pairs),
                       f"Edits read as the target, {START} = {i}", ".1%")
    out.add_metric("test_digits", n, "Test digits per start step", "d")


FULL = SDEditConfig()
QUICK = SDEditConfig(seeds=2, test_images=256, stride=5, i_starts=(3, 5, 7, 9), drawings=("0", "7"), drawn_seeds=1,
                     edits=("3>8",), shown=1)

SECTION = Section(
    name="sdedit", title="Image-to-image translation (SDEdit)", part="part3",
    summary="Noises test digits, code-drawn digits and class edits to several levels and denoises them back.",
    profiles={"full": FULL, "quick": QUICK}, run=run, depends_on=DEPENDS)
