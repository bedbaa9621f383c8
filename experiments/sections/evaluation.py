"""Evaluation: a number for every generative result (classifier-FID, class accuracy, memorisation).

Digits are sampled in large batches with the one sampling loop (`ddpm.generate`), judged on the
device by the classifier, and reduced to float64 statistics once per set. Sets are reused: a figure
that needs n digits reads the first n of a larger set drawn with the same seeds, so the final-epoch
point of each curve and the headline guidance of the sweep cost nothing extra. The time-conditioned
model's headline set (all T DDPM steps from N(0, I)) is also the reference that fast-sampling and
the peer compare with: it is sampled here only. One compiled network per model: the weights of
each checkpoint are loaded into it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from experiments.core import checkpoints
from experiments import figures
from experiments.core.config import DiffusionConfig, _require
from experiments.core.guidance import Guidance, guidances
from experiments.core.section import Context, Section
from experiments.core.diffusion.process import strided_timesteps
from experiments.core.metrics import Evaluator, memorisation, nearest_distances
from experiments.core.ddpm import prepare_for_sampling
from experiments.core.judging import Judged, draw, floor_fids
from experiments.core.models import unet as unet_model
from experiments.core.models import classifier as classifier_model

TIME, CLASS = "time-conditioned", "class-conditioned"


@dataclass(frozen=True)
class EvaluationConfig:
    test_images: int = 0                  # test digits behind the reference statistics (0 = all 10,000)
    samples: int = 10_000                 # generated digits behind each headline FID (and the floor's train digits)
    sweep_samples: int = 2_500            # digits per setting of the guidance sweep (<= samples): a curve, not a headline
    checkpoint_samples: int = 2_500       # digits per checkpoint of the FID-per-epoch curves (<= samples)
    batch: int = 2_500                    # digits per sampler call (CFG doubles the network batch)
    stride: int = 1                       # sampler stride: 1 = every DDPM step (reference), k = strided DDPM
    sweep: tuple[Guidance, ...] = guidances((0.0, 1.0, 2.0, 3.0, 5.0, 7.0, 10.0))
    guidance: Guidance = field(default_factory=Guidance)   # the headline guidance (must be in the sweep)
    target_accuracy: float = 0.99         # goal: class accuracy at the headline guidance
    target_fid_ratio: float = 3.0         # goal: class-conditioned FID <= ratio x floor
    shown: int = 20                       # digits per row in figures

    def validate(self) -> None:
        _require(self.samples >= 20, "samples must be >= 20 (FID needs a covariance)")
        _require(20 <= self.sweep_samples <= self.samples, "sweep_samples must be in 20..samples")
        _require(20 <= self.checkpoint_samples <= self.samples, "checkpoint_samples must be in 20..samples")
        _require(self.batch >= 1, "batch must be >= 1")
        _require(self.stride >= 1, "stride must be >= 1")
        _require(len(self.sweep) >= 1, "sweep needs at least one guidance setting")
        for guidance in self.sweep:
            guidance.validate()
            _require(guidance.interval is None, f"the sweep is over whole-trajectory guidance; {guidance} has an interval")
        _require(self.guidance in self.sweep, f"guidance {self.guidance} must be one of sweep")
        _require(0 < self.target_accuracy <= 1 and self.target_fid_ratio > 0, "targets must be positive")
        _require(self.shown >= 1, "shown must be >= 1")


def model_plan(ctx: Context, section: str) -> tuple[DiffusionConfig, list[int]]:
    """The dependency's diffusion config and the epochs it kept weights for (final epoch included)."""
    cfg = ctx.dependency(section)["config"]
    epochs = sorted({*cfg["train"]["checkpoint_epochs"], cfg["train"]["epochs"]})
    return DiffusionConfig(**cfg["diffusion"]), epochs


def load_net(ctx: Context, section: str, epoch: int, nets: dict[str, torch.nn.Module]) -> torch.nn.Module:
    """The section's weights at `epoch`, ready to sample, in the one sampling network kept per section."""
    model, _ = checkpoints.load(ctx, section, unet_model.from_spec, epoch)
    nets[section] = prepare_for_sampling(ctx, model, into=nets.get(section))
    return nets[section]


def run(ctx: Context) -> None:
    cfg: EvaluationConfig = ctx.cfg
    out = ctx.out
    classifier, _ = checkpoints.load(ctx, "classifier", classifier_model.from_spec)
    test = ctx.test_split(cfg.test_images)
    train = ctx.train_split(0)
    ev = Evaluator.build(classifier, test.images)

    counts = {min(n, len(train)) for n in (cfg.samples, cfg.sweep_samples, cfg.checkpoint_samples)}
    floor = floor_fids(ev, train.images, counts)
    floor_at = lambda n: floor[min(n, len(train))]                       # noqa: E731
    fid_floor = floor_at(cfg.samples)

    # ---- time-conditioned: FID per checkpoint; the final epoch's full set is the headline -------------
    t_dcfg, t_epochs = model_plan(ctx, TIME)
    per_epoch: dict[str, dict[int, float]] = {TIME: {}, CLASS: {}}
    acc_per_epoch: dict[int, float] = {}
    nets: dict[str, torch.nn.Module] = {}
    for epoch in t_epochs:
        final = epoch == t_epochs[-1]
        judged = draw(ctx, ev, load_net(ctx, TIME, epoch, nets), t_dcfg,
                      cfg.samples if final else cfg.checkpoint_samples, None, cfg.batch, cfg.stride)
        per_epoch[TIME][epoch] = judged.fid(ev, cfg.checkpoint_samples)
        if final:
            time_set = judged

    # ---- class-conditioned: checkpoints at the headline gamma, then the sweep on the final weights ------
    c_dcfg, c_epochs = model_plan(ctx, CLASS)
    for epoch in c_epochs[:-1]:
        judged = draw(ctx, ev, load_net(ctx, CLASS, epoch, nets), c_dcfg, cfg.checkpoint_samples, cfg.guidance,
                      cfg.batch, cfg.stride)
        per_epoch[CLASS][epoch] = judged.fid(ev, cfg.checkpoint_samples)
        acc_per_epoch[epoch] = judged.accuracy(cfg.checkpoint_samples)
    final_net = load_net(ctx, CLASS, c_epochs[-1], nets)
    sweep: dict[Guidance, Judged] = {}
    for guidance in cfg.sweep:
        n = cfg.samples if guidance == cfg.guidance else cfg.sweep_samples
        sweep[guidance] = draw(ctx, ev, final_net, c_dcfg, n, guidance, cfg.batch, cfg.stride)
    class_set = sweep[cfg.guidance]
    per_epoch[CLASS][c_epochs[-1]] = class_set.fid(ev, cfg.checkpoint_samples)
    acc_per_epoch[c_epochs[-1]] = class_set.accuracy(cfg.checkpoint_samples)

    # ---- headline numbers and targets ---------------------------------------------------------------
    fid_time = time_set.fid(ev, cfg.samples)
    fid_class = class_set.fid(ev, cfg.samples)
    acc_class = class_set.accuracy(cfg.samples)
    n_gen = len(class_set.images)
    out.add_metric("fid_floor", fid_floor, f"FID floor: {min(cfg.samples, len(train)):,} training digits vs test", ".3f")
    out.add_metric("fid_time_conditioned", fid_time, f"FID, time-conditioned ({n_gen:,} digits)", ".3f")
    out.add_metric("fid_class_conditioned", fid_class, f"FID, class-conditioned, {cfg.guidance.describe()} "
                   f"({n_gen:,} digits)", ".3f")
    out.add_metric("class_accuracy_class_conditioned", acc_class, f"Class accuracy, {cfg.guidance.describe()}", ".2%")
    out.add_metric("fid_ratio_time_conditioned", fid_time / fid_floor, "Time-conditioned FID / floor", ".2f")
    out.add_metric("fid_ratio_class_conditioned", fid_class / fid_floor, "Class-conditioned FID / floor", ".2f")
    out.add_metric("target_accuracy_margin", acc_class - cfg.target_accuracy,
                   f"Class accuracy minus the {cfg.target_accuracy:.0%} target", "+.2%")
    out.add_metric("target_fid_margin", cfg.target_fid_ratio * fid_floor - fid_class,
                   f"{cfg.target_fid_ratio:g} × floor minus class-conditioned FID", "+.3f")
    out.add_metric("test_images", len(test), "Test digits behind the reference statistics", ",d")
    out.add_metric("generated_samples", n_gen, "Generated digits per headline FID", ",d")
    out.add_metric("wall_time_conditioned_s", time_set.wall_s, f"Sampling time of the time-conditioned set "
                   f"({len(time_set.images):,} digits, {len(strided_timesteps(t_dcfg.T, cfg.stride))} steps, batches of "
                   f"{cfg.batch:,}; s)", ".2f")
    sampled = [time_set, class_set, *sweep.values()]
    out.add_metric("sampling_img_per_s", sum(len(j.images) for j in sampled) / sum(j.wall_s for j in sampled),
                   f"Sampling throughput ({len(strided_timesteps(t_dcfg.T, cfg.stride))} steps, digits/s)", ",.0f")

    record_headline(ctx, fid_floor, {TIME: (time_set, fid_time), CLASS: (class_set, fid_class)}, acc_class)
    record_sweep(ctx, ev, sweep, floor_at(cfg.sweep_samples))
    record_epochs(ctx, per_epoch, acc_per_epoch, floor_at(cfg.checkpoint_samples))
    record_memorisation(ctx, test.images, train.images, time_set.images, class_set.images)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def record_headline(ctx: Context, fid_floor: float, sets: dict[str, tuple[Judged, float]], acc: float) -> None:
    """The headline table, the goals with margins, and the judged headline samples."""
    cfg: EvaluationConfig = ctx.cfg
    out = ctx.out
    rows = [["training digits (floor)", min(cfg.samples, len(ctx.train_split(0))), round(fid_floor, 3), 1.0, "—"]]
    for name, (judged, fid) in sets.items():
        accuracy = _pct(judged.accuracy(len(judged.images))) if judged.labels is not None else "—"
        rows.append([name if judged.labels is None else f"{name}, {cfg.guidance.describe()}", len(judged.images),
                     round(fid, 3), round(fid / fid_floor, 2), accuracy])
    out.add_table("headline", "Classifier-FID against the test split", ["digits from", "digits", "FID",
                  "FID / floor", "class accuracy"], rows)
    fid_class = sets[CLASS][1]
    limit = cfg.target_fid_ratio * fid_floor
    targets = [
        [f"class accuracy at {cfg.guidance.describe()} ≥ {cfg.target_accuracy:.0%}", _pct(acc),
         f"{100 * (acc - cfg.target_accuracy):+.2f} points", "pass" if acc >= cfg.target_accuracy else "fail"],
        [f"class-conditioned FID ≤ {cfg.target_fid_ratio:g} × floor = {limit:.3f}", f"{fid_class:.3f}",
         f"{limit - fid_class:+.3f} ({fid_class / fid_floor:.2f} × floor)", "pass" if fid_class <= limit else "fail"]]
    out.add_table("targets", "Targets", ["target", "measured", "margin", "result"], targets)

    time_set, class_set = sets[TIME][0], sets[CLASS][0]
    k = min(cfg.shown, len(time_set.images))
    figures.save_labelled_grid(out.path("time_samples.png"), [time_set.images[:k]], ["classifier says"],
                               [str(int(c)) for c in time_set.predicted[:k].tolist()])
    out.add_figure("time_samples.png", "Time-conditioned samples, as the classifier reads them",
                   alt="Time-conditioned samples with the classifier's predicted digit")
    wrong = (class_set.predicted != class_set.labels).nonzero().flatten()[:cfg.shown].tolist()
    if wrong:
        figures.save_labelled_grid(out.path("class_errors.png"), [class_set.images[wrong]], ["asked → read"],
                                   [f"{int(class_set.labels[i])}→{int(class_set.predicted[i])}" for i in wrong])
        out.add_figure("class_errors.png", f"Class-conditioned samples the classifier reads otherwise (γ = "
                       f"{cfg.guidance.scale:g})",
                       alt="Class-conditioned samples misread by the classifier, with asked and read classes")


def record_sweep(ctx: Context, ev: Evaluator, sweep: dict[Guidance, Judged], floor: float) -> None:
    """FID and class accuracy against gamma: plot, table, series and one row of digits per gamma."""
    cfg: EvaluationConfig = ctx.cfg
    out, n = ctx.out, cfg.sweep_samples
    gammas = [guidance.scale for guidance in sweep]
    fids = [judged.fid(ev, n) for judged in sweep.values()]
    accs = [judged.accuracy(n) for judged in sweep.values()]
    figures.save_line_plot(out.path("guidance.png"), gammas, {"classifier-FID": fids}, "guidance scale γ",
                           "classifier-FID", "The guidance trade-off", hline=(floor, "floor (training digits)"),
                           second={"ylabel": "class accuracy", "series": {"class accuracy": accs}})
    out.add_figure("guidance.png", "FID and class accuracy against guidance",
                   alt="Line plot of classifier-FID and class accuracy against the guidance scale", kind="plot")
    out.add_table("guidance", "The guidance trade-off", ["γ", "FID", "FID / floor", "class accuracy"],
                  [[g, round(f, 3), round(f / floor, 2), _pct(a)] for g, f, a in zip(gammas, fids, accs)])
    out.add_series("guidance.json", "FID and class accuracy per gamma",
                   {"gamma": gammas, "fid": fids, "class_accuracy": accs, "floor": floor, "samples": n})
    rows = []
    for judged in sweep.values():    # one of each digit: labels cycle 0..9, so the first ten are 0..9
        rows.append(judged.images[:10])
    figures.save_labelled_grid(out.path("guidance_samples.png"), rows,
                               [f"γ={g:g}\nFID {f:.2f}\n{_pct(a)}" for g, f, a in zip(gammas, fids, accs)],
                               [str(d) for d in range(10)])
    out.add_figure("guidance_samples.png", "Digits along the sweep, with their numbers", alt="One sample per digit for each guidance scale")


def record_epochs(ctx: Context, per_epoch: dict[str, dict[int, float]], acc: dict[int, float], floor: float) -> None:
    """FID per checkpoint for both models (the curve of quality against training)."""
    cfg: EvaluationConfig = ctx.cfg
    out = ctx.out
    epochs = sorted(set(per_epoch[TIME]) | set(per_epoch[CLASS]))
    series = {name: [per_epoch[name].get(e, float("nan")) for e in epochs] for name in (TIME, CLASS)}
    figures.save_line_plot(out.path("fid_per_epoch.png"), epochs,
                           {TIME: series[TIME], f"{CLASS} ({cfg.guidance.describe()})": series[CLASS]}, "epoch",
                           "classifier-FID", "Quality against training", log_y=True,
                           hline=(floor, "floor (training digits)"))
    out.add_figure("fid_per_epoch.png", "FID per checkpoint", alt="Classifier-FID against training epoch for both models",
                   kind="plot")
    rows = [[e, round(series[TIME][i], 3), round(series[CLASS][i], 3),
             _pct(acc[e]) if e in acc else "—"] for i, e in enumerate(epochs)]
    out.add_table("fid_per_epoch", "FID per checkpoint", ["epoch", f"FID {TIME}", f"FID {CLASS}",
                  f"class accuracy ({cfg.guidance.describe()})"], rows)
    out.add_series("fid_per_epoch.json", "FID per checkpoint", {"epoch": epochs, **series, "class_accuracy":
                   [acc.get(e) for e in epochs], "floor": floor, "samples": cfg.checkpoint_samples})


def record_memorisation(ctx: Context, test: torch.Tensor, train: torch.Tensor, time_samples: torch.Tensor,
                        class_samples: torch.Tensor) -> None:
    """Nearest-training-digit distances of samples vs test digits: numbers, histogram, table, closest pairs."""
    cfg: EvaluationConfig = ctx.cfg
    out = ctx.out
    class_key = f"{CLASS} samples ({cfg.guidance.describe()})"
    near = {"test digits": nearest_distances(test, train).cpu(),
            f"{TIME} samples": nearest_distances(time_samples, train).cpu(),
            class_key: nearest_distances(class_samples, train).cpu()}
    test_median, gen_median = float(near["test digits"].median()), float(near[class_key].median())
    ratio, close, share = memorisation(near[class_key], near["test digits"])
    out.add_metric("nearest_train_median_test", test_median, "Median distance, test digit to nearest training digit",
                   ".3f")
    out.add_metric("nearest_train_median_samples", gen_median,
                   "Median distance, class-conditioned sample to nearest training digit", ".3f")
    out.add_metric("memorisation_ratio", ratio,
                   "Sample / test median nearest-training distance (≈1 or more: no copying)", ".2f")
    out.add_metric("samples_closer_than_test_p1", share,
                   "Class-conditioned samples nearer a training digit than 99% of test digits are", ".2%")
    figures.save_histograms(out.path("memorisation.png"), {k: v.numpy() for k, v in near.items()},
                            "L2 distance to the nearest training digit (pixels in [0, 1])",
                            "How far is each digit from the training set?")
    out.add_figure("memorisation.png", "Distance to the nearest training digit",
                   alt="Histograms of nearest-training-digit distances for test digits and samples", kind="plot")
    rows = [[k, len(v), round(float(v.median()), 3), round(float(v.quantile(0.05)), 3),
             _pct(float((v < close).float().mean()))] for k, v in near.items()]
    out.add_table("memorisation", "Nearest training digit", ["digits", "count", "median", "5th percentile",
                  f"share nearer than 99 % of test digits ({close:.3f})"], rows)
    bins = torch.linspace(0, max(float(v.max()) for v in near.values()), 41)
    out.add_series("memorisation.json", "Histogram of nearest-training distances",
                   {"bins": bins.tolist(), **{k: torch.histogram(v.float(), bins).hist.tolist()
                                               for k, v in near.items()}})
    k = min(cfg.shown, len(class_samples))
    closest = class_samples[near[class_key].argsort()[:k].to(class_samples.device)]        # (k, 1, 28, 28)
    d2 = torch.cdist(closest.flatten(1), train.flatten(1))                                 # (k, N_train)
    partner = train[d2.argmin(1)]
    figures.save_labelled_grid(out.path("closest_pairs.png"), [closest, partner],
                               ["sample", "nearest\ntraining"], [f"{float(d):.2f}" for d in d2.min(1).values])
    out.add_figure("closest_pairs.png", "The samples closest to the training set", alt="Closest generated samples above their nearest training digits")


FULL = EvaluationConfig()
QUICK = EvaluationConfig(test_images=500, samples=100, sweep_samples=50, checkpoint_samples=50, batch=50,
                         sweep=guidances((0.0, 5.0, 10.0)), shown=10)

SECTION = Section(
    name="evaluation", title="Evaluation: a number for every result", part="evaluation",
    summary="Classifier-FID against a floor, class accuracy, the guidance trade-off, quality per epoch and "
            "memorisation of both diffusion models.",
    profiles={"full": FULL, "quick": QUICK}, run=run, depends_on=("classifier", TIME, CLASS),
    compiles=True)      # 55,000 digits over 300 steps: compiled sampling saves more than its compiles cost
