"""``python -m interpgrad lab``: the gradient lab's experiments (Srinivas & Fleuret 2021) into a folder of CSV + PNG.

    python -m interpgrad lab samples --checkpoint checkpoints/shapes-softplus-baseline \\
        --checkpoint checkpoints/shapes-score-matching --out lab/samples          # one sample per class, 500 steps
    python -m interpgrad lab gan-test --checkpoint CKPT --checkpoint CKPT2 --judge checkpoints/shapes-judge --out lab/gan
    python -m interpgrad lab density --checkpoint CKPT --checkpoint CKPT2 --n 200 --out lab/density
    python -m interpgrad lab perturb --checkpoint CKPT --checkpoint CKPT2 --out lab/perturb       # each judges itself
    python -m interpgrad lab perturb --checkpoint CKPT --checkpoint CKPT2 --judge BASELINE --out lab/judged
    python -m interpgrad lab fool --checkpoint CKPT --pattern text:HI --out runs/fooled            # a training run

``--cache auto`` reads and fills the lab cache beside each checkpoint (what the Gradient lab page opens on).
Each subcommand is a function of its own, registered in ``SUBCOMMANDS``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError

HELP = ("the gradient lab (Srinivas & Fleuret 2021): class samples by gradient ascent, GAN-test, density-ratio "
        "profiles, pixel perturbation (CSV + PNG), and fine-tuning gradients to show a pattern")

_KEEP = "0,10,25,50,100,200,300,400,500"


def _common(parser: argparse.ArgumentParser, judge: str | None = None, out: str = "the output folder (created)") -> None:
    parser.add_argument("--checkpoint", dest="checkpoints", action="append", metavar="PATH", default=[],
                        help="a checkpoint (.safetensors or run folder); repeat for several models")
    if judge:
        parser.add_argument("--judge", metavar="PATH", help=judge)
    parser.add_argument("--out", help=out)
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw and of the bootstrap (default 0)")
    parser.add_argument("--device", default="auto", help="auto (GPU when present, default), cpu, cuda, cuda:N")
    parser.add_argument("--cache", default="none", metavar="none|auto|DIR",
                        help="none (default): compute; auto: read and fill lab/ beside each checkpoint; DIR: that folder")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def _sampling(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--classes", default="all", help="comma-separated class names or indices (default all)")
    parser.add_argument("--per-class", type=int, default=3,
                        help="samples per class (default 3: a GAN-test of 10 classes judges 30 samples)")
    parser.add_argument("--steps", type=int, default=500, help="ascent steps (default 500, the paper's)")
    parser.add_argument("--lr", type=float, default=0.1, help="step size (default 0.1)")
    parser.add_argument("--wd", type=float, default=0.01, help="pull towards grey, wd (x - 0.5) (default 0.01)")
    parser.add_argument("--noise", type=float, default=0.0,
                        help="Langevin noise: adds sqrt(2 lr) NOISE N(0, I) per step (default 0: the official sampler)")
    parser.add_argument("--batch-size", type=int, default=64, help="samples per batch (default 64)")


def _data(parser: argparse.ArgumentParser, n: int = 200) -> None:
    parser.add_argument("--dataset", default=None, help="dataset of the images (default: the first checkpoint's)")
    parser.add_argument("--data-root", help="folder of CIFAR or of an image folder")
    parser.add_argument("--split", default="val", choices=("val", "test", "train"), help="default val")
    parser.add_argument("--n", type=int, default=n, help=f"the first N images of the split (default {n})")


def _add_samples(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    _sampling(parser)
    parser.add_argument("--keep", default=_KEEP, help=f"steps whose images are kept in samples.csv (default {_KEEP})")


def _add_gan_test(parser: argparse.ArgumentParser) -> None:
    _common(parser, judge="the independent classifier that scores the samples (required)")
    _sampling(parser)
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")


def _add_density(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    _data(parser)
    parser.add_argument("--stds", help="comma-separated noise stds in pixel units (default 0 and 13 levels 1e-3..1)")
    parser.add_argument("--noise-samples", type=int, default=4, help="noise draws per image and level (default 4)")
    parser.add_argument("--clamp", action="store_true", help="clamp x + eta to [0, 1] (the paper does not)")


def _add_perturb(parser: argparse.ArgumentParser) -> None:
    _common(parser, judge="a model that judges every checkpoint's saliency (the paper's second experiment); "
                          "default: each checkpoint judges itself")
    _data(parser)
    parser.add_argument("--points", type=int, default=25, help="masking fractions, logspace(-2, 0, POINTS) (default 25)")
    parser.add_argument("--constant", type=float, default=0.5, help="value of removed pixels (default 0.5)")


def _add_fool(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", dest="checkpoints", action="append", metavar="PATH", default=[],
                        help="the checkpoint to fine-tune (one)")
    parser.add_argument("--pattern", default="text:HI", help="text:WORDS, shape:NAME, smooth:SEED or image:PATH "
                                                            "(default text:HI)")
    parser.add_argument("--out", help="the training run folder (created; a normal run the app loads)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--lam", type=float, default=1.0, help="weight of the error (default 1)")
    parser.add_argument("--error", default="cosine", choices=("cosine", "mse"),
                        help="cosine (default): 1 - cos(grad f_y, P); mse: ||grad f_y - scale P||^2 / scale^2, which a "
                        "fine-tune lowered by shrinking the gradient instead of turning it")
    parser.add_argument("--scale", type=float, help="with --error mse: norm of the target gradient (default: the "
                                                    "model's mean logit-gradient norm)")
    parser.add_argument("--epochs", type=int, default=3, help="default 3")
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default 1e-4)")
    parser.add_argument("--batchnorm", default="per_sample", choices=("per_sample", "running", "batch"),
                        help="how the gradient pass treats training-mode batch norm (default per_sample: the batch "
                        "statistics held constant; running trains the running-statistics network the cross-entropy "
                        "does not, and the accuracy falls)")
    parser.add_argument("--batch-size", type=int, default=64, help="default 64")
    parser.add_argument("--n-train", type=int, help="training images (default: the dataset's)")
    parser.add_argument("--n-val", type=int, help="validation images (default: the dataset's)")
    parser.add_argument("--n", type=int, default=200, help="validation images the pattern cosine is measured on "
                                                           "(default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


# ------------------------------------------------------------------------------------------------------------ helpers


def _bar(args: argparse.Namespace, description: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=1, desc=description, disable=None if args.progress else True, file=sys.stderr,
                dynamic_ncols=True)


def _progress(bar: Any) -> Callable[[int, int], None]:
    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return update


def _out(args: argparse.Namespace) -> Path:
    if not args.out:
        raise ConfigError("--out (the output folder) is required")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    return out


def _models(args: argparse.Namespace, device: Any) -> list[Any]:
    from ..lab import load_lab_model

    if not args.checkpoints:
        raise ConfigError("give at least one --checkpoint")
    models = [load_lab_model(path, device) for path in args.checkpoints]
    return models


def _labels(models: list[Any]) -> list[str]:
    """A distinct display name per model (the run's name; a number added to repeated names)."""
    names: list[str] = []
    for model in models:
        name, count = model.name, 2
        while name in names:
            name, count = f"{model.name} ({count})", count + 1
        names.append(name)
    return names


def _cache(args: argparse.Namespace) -> str | None:
    return None if args.cache == "none" else args.cache


def _device(args: argparse.Namespace) -> Any:
    from ..metrics.request import resolve_device

    return resolve_device(args.device)


def _numbers(text: str, flag: str, kind: type = float) -> list[Any]:
    try:
        return [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"{flag} expects comma-separated numbers, got {text!r}") from None


def _same_classes(models: list[Any], names: list[str]) -> None:
    first = models[0].class_names
    for model, name in zip(models[1:], names[1:]):
        if model.class_names != first:
            raise ConfigError(f"{name} has other classes than {names[0]}; the lab compares models of the same classes")


def _write_png(path: Path, figure: Any) -> None:
    from ..lab.plots import figure_png

    path.write_bytes(figure_png(figure))


def _images(args: argparse.Namespace, models: list[Any]) -> Any:
    from ..lab import lab_images

    training = models[0].metadata.get("training") or {}
    dataset = args.dataset or training.get("dataset") or (models[0].metadata.get("data") or {}).get("name")
    if not dataset:
        raise ConfigError("the checkpoint does not say its dataset; pass --dataset")
    return lab_images(dataset, args.n, args.split, models[0].image_size, args.data_root or training.get("data_root"))


# ------------------------------------------------------------------------------------------------------------ commands


def _run_samples(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..lab import cached_class_samples, class_indices
    from ..lab.plots import samples_figure

    out = _out(args)
    models = _models(args, _device(args))
    names = _labels(models)
    _same_classes(models, names)
    classes = class_indices(args.classes, models[0].class_names)
    keep = _numbers(args.keep, "--keep", int)
    results, rows = {}, []
    for model, name in zip(models, names):
        bar = _bar(args, f"samples {name}")
        try:
            result = cached_class_samples(model, classes, per_class=args.per_class, steps=args.steps, lr=args.lr,
                                          wd=args.wd, noise=args.noise, keep=keep, seed=args.seed,
                                          batch_size=args.batch_size, cache_dir=_cache(args), progress=_progress(bar))
        finally:
            bar.close()
        results[name] = result
        for k, step in enumerate(result.steps):
            for i in range(len(result.classes)):
                c = int(result.classes[i])
                rows.append({"model": name, "step": step, "sample": i, "class": c, "name": model.class_names[c],
                             "replicate": int(result.replicates[i]), "target_logit": float(result.target_logits[k, i])})
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out / "samples.csv", index=False)
    _write_png(out / "samples.png", samples_figure(results, models[0].class_names))
    for name, result in results.items():
        final = result.target_logits[-1].mean().item()
        print(f"  {name}: mean target logit {result.target_logits[0].mean().item():.3f} -> {final:.3f} "
              f"after {result.steps[-1]} steps")
    print(f"wrote {out / 'samples.csv'} and {out / 'samples.png'}")
    return 0


def _run_gan_test(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..lab import cached_class_samples, cached_gan_test, class_indices, load_lab_model
    from ..lab.plots import samples_figure

    out = _out(args)
    if not args.judge:
        raise ConfigError("--judge (the independent classifier that scores the samples) is required")
    device = _device(args)
    models = _models(args, device)
    judge = load_lab_model(args.judge, device)
    names = _labels(models)
    _same_classes(models, names)
    classes = class_indices(args.classes, models[0].class_names)
    sampling = {"per_class": args.per_class, "steps": args.steps, "lr": args.lr, "wd": args.wd, "noise": args.noise,
                "seed": args.seed}
    frames, samples = [], {}
    for model, name in zip(models, names):
        bar = _bar(args, f"gan-test {name}")
        try:
            result = cached_gan_test(model, judge, classes, resamples=args.resamples, batch_size=args.batch_size,
                                     cache_dir=_cache(args), progress=_progress(bar), **sampling)
            samples[name] = cached_class_samples(model, classes, batch_size=args.batch_size, cache_dir=_cache(args),
                                                 progress=_progress(bar), **sampling)
        finally:
            bar.close()
        overall = result.accuracy
        table = result.per_class.assign(model=name)
        total = pd.DataFrame([{"model": name, "class": -1, "name": "all", "n": overall.n, "accuracy": overall.mean,
                               "ci_low": overall.ci_low, "ci_high": overall.ci_high}])
        frames += [total, table]
        print(f"  {name}: GAN-test accuracy {100 * overall.mean:.1f} % [{100 * overall.ci_low:.1f}, "
              f"{100 * overall.ci_high:.1f}] over {overall.n} samples (judge {judge.name})")
    out.mkdir(parents=True, exist_ok=True)
    columns = ["model", "class", "name", "n", "accuracy", "ci_low", "ci_high"]
    pd.concat(frames)[columns].assign(judge=judge.name).to_csv(out / "gan_test.csv", index=False)
    _write_png(out / "samples.png", samples_figure(samples, models[0].class_names))
    print(f"wrote {out / 'gan_test.csv'} and {out / 'samples.png'}")
    return 0


def _run_density(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..lab import DEFAULT_STDS, cached_density_profile
    from ..lab.plots import density_figure

    out = _out(args)
    models = _models(args, _device(args))
    names = _labels(models)
    data = _images(args, models)
    stds = _numbers(args.stds, "--stds") if args.stds else list(DEFAULT_STDS)
    profiles = {}
    for model, name in zip(models, names):
        bar = _bar(args, f"density {name}")
        try:
            profiles[name] = cached_density_profile(model, data, stds=stds, noise_samples=args.noise_samples,
                                                    seed=args.seed, clamp=args.clamp, cache_dir=_cache(args),
                                                    progress=_progress(bar))
        finally:
            bar.close()
    out.mkdir(parents=True, exist_ok=True)
    table = pd.concat([profile.table.assign(model=name) for name, profile in profiles.items()])
    table.to_csv(out / "density.csv", index=False)
    _write_png(out / "density.png", density_figure(profiles))
    for name, profile in profiles.items():
        row = profile.table.iloc[(profile.table["std"] - 0.1).abs().argmin()]
        print(f"  {name}: mean f_y(x + eta) - f_y(x) at std {row['std']:.3g}: {row['mean']:.4g} "
              f"[{row['ci_low']:.4g}, {row['ci_high']:.4g}]")
    print(f"wrote {out / 'density.csv'} and {out / 'density.png'} ({len(data)} images of {data.description['dataset']})")
    return 0


def _run_perturb(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from ..lab import cached_perturbation, load_lab_model
    from ..lab.plots import perturbation_figure
    from ..metrics.faithfulness import masking_fractions

    out = _out(args)
    device = _device(args)
    models = _models(args, device)
    names = _labels(models)
    judge = load_lab_model(args.judge, device) if args.judge else None
    if judge is not None and len(judge.class_names) != len(models[0].class_names):
        raise ConfigError(f"the judge {judge.name} has {len(judge.class_names)} classes, {names[0]} "
                          f"{len(models[0].class_names)}")
    if args.points < 2:
        raise ConfigError(f"--points must be >= 2, got {args.points}")
    data = _images(args, models)
    fractions = [float(f) for f in masking_fractions(args.points)]
    curves = {}
    for model, name in zip(models, names):
        label = f"{judge.name} judged with {name}'s saliency" if judge is not None else name
        bar = _bar(args, f"perturb {name}")
        try:
            curves[label] = cached_perturbation(judge or model, data, saliency_model=model, fractions=fractions,
                                                constant=args.constant, seed=args.seed, cache_dir=_cache(args),
                                                progress=_progress(bar))
        finally:
            bar.close()
    out.mkdir(parents=True, exist_ok=True)
    table = pd.concat([result.table.assign(model=name, judge=(judge.name if judge else name), saliency=name)
                       for name, result in zip(names, curves.values())])
    table.to_csv(out / "perturbation.csv", index=False)
    title = f"pixel perturbation, judge {judge.name}" if judge else "pixel perturbation, each model judging itself"
    _write_png(out / "perturbation.png", perturbation_figure(curves, title))
    for label, result in curves.items():
        area = float(np.trapezoid(result.table["accuracy"], np.linspace(0, 1, len(result.table))))
        print(f"  {label}: area under the accuracy curve (log fractions) {area:.3f}")
    print(f"wrote {out / 'perturbation.csv'} and {out / 'perturbation.png'} ({len(data)} images)")
    return 0


def _run_fool(args: argparse.Namespace) -> int:
    from ..lab import fool, gradient_pattern_cosine, lab_images, load_lab_model, make_pattern

    if len(args.checkpoints) != 1:
        raise ConfigError("fool fine-tunes one --checkpoint")
    if not args.out:
        raise ConfigError("--out (the training run folder) is required")
    started = time.perf_counter()
    weights = fool(args.checkpoints[0], args.pattern, args.out, resume=args.resume, progress=args.progress,
                   lam=args.lam, scale=args.scale, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                   n_train=args.n_train, n_val=args.n_val, device=args.device, seed=args.seed,
                   batchnorm=args.batchnorm, error=args.error)
    original, fooled = load_lab_model(args.checkpoints[0]), load_lab_model(weights)
    training = original.metadata.get("training") or {}
    data = lab_images(training.get("dataset") or "shapes", args.n, "val", original.image_size, training.get("data_root"))
    pattern = make_pattern(args.pattern, original.image_size)
    for name, model in (("original", original), ("fooled", fooled)):
        cosine = gradient_pattern_cosine(model.model, data.images, data.labels, pattern).mean()
        with __import__("torch").no_grad():
            accuracy = (model.model(data.images).argmax(1) == data.labels).double().mean().item()
        print(f"  {name}: accuracy {100 * accuracy:.1f} %, mean cos(grad f_y, pattern) {cosine:.3f} "
              f"({len(data)} validation images)")
    print(f"wrote {weights} in {time.perf_counter() - started:.0f} s")
    return 0


# subcommand -> (help, add its arguments, run it)
SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "samples": ("class samples by gradient ascent on each class logit: samples.csv (target logit per kept step) and "
                "samples.png (rows: models, columns: classes)", _add_samples, _run_samples),
    "gan-test": ("GAN-test: an independent judge's accuracy on each model's class samples (per class and overall, "
                 "with bootstrap intervals): gan_test.csv and samples.png", _add_gan_test, _run_gan_test),
    "density": ("density-ratio profile: mean f_y(x + eta) - f_y(x) over images against the noise std: density.csv "
                "and density.png", _add_density, _run_density),
    "perturb": ("pixel perturbation: accuracy as the least salient pixels (channel std of the logit gradient) are "
                "replaced by 0.5: perturbation.csv and perturbation.png", _add_perturb, _run_perturb),
    "fool": ("fine-tune a checkpoint so that its logit gradients show a pattern while its accuracy stays (a training "
             "run with the gradient_pattern regularizer)", _add_fool, _run_fool),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from . import add_subcommands

    add_subcommands(parser, "lab", SUBCOMMANDS)


def run(args: argparse.Namespace) -> int:
    from . import run_subcommand

    return run_subcommand(args, "lab", SUBCOMMANDS)
