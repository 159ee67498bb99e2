"""``python -m interpgrad gad``: GAD, gradient artificial distancing (our reading of Mazini Rodrigues, Boutry & Najman
2024; PAPERS.md section 2).

    python -m interpgrad gad train --checkpoint checkpoints/shapes-resnet18-baseline --classes circle,square \\
        --out gad/circle-square                                     # 3 support models, the default settings
    python -m interpgrad gad train --checkpoint CKPT --one-vs-all star --alphas 2,4,6 --train head --out gad/star
    python -m interpgrad gad train --checkpoint CKPT --split 0,1,2/3,4 --out gad/split
    python -m interpgrad gad train --out gad/circle-square --resume   # continue after a stop, a kill or a crash
    python -m interpgrad gad explain --run gad/circle-square --image cat.png --out gad/explained
    python -m interpgrad gad explain --run gad/circle-square --dataset-sample --n 500 --out gad/study
        # overlays as PNG (at most --max-png of a sample), regions.csv (RC and RS per image) and summary.csv

Classes by name or index. Each subcommand is a function of its own, registered in ``SUBCOMMANDS``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError

HELP = ("GAD (our reading of the paper): train support models of a checkpoint into a GAD run folder; explain images "
        "with a run: GAD maps, convex-hull regions, RC and RS")


def _train_help(param: Any) -> str:
    return f"{param.help}; default {param.default if param.default != '' else 'none'}".replace("%", "%%")


def _add_train(parser: argparse.ArgumentParser) -> None:
    from ..gad.settings import TRAINING_PARAMS

    option = lambda *names, **kw: parser.add_argument(*names, default=argparse.SUPPRESS, **kw)  # noqa: E731
    option("--checkpoint", help="the original model: a .safetensors checkpoint or a run folder")
    strategy = parser.add_mutually_exclusive_group()
    strategy.add_argument("--classes", metavar="K,L", help="a pair of classes (names or indices)")
    strategy.add_argument("--one-vs-all", metavar="K", help="one class against every other class")
    strategy.add_argument("--split", metavar="A,B/C,D", help="two groups of classes")
    parser.add_argument("--out", help="the GAD run folder (created; must not hold another run unless --resume)")
    parser.add_argument("--resume", action="store_true", help="continue the GAD run in --out where it stopped")
    for param in TRAINING_PARAMS:
        if param.name == "schedule":  # --alphas chooses the given schedule
            continue
        kind = str if param.name == "alphas" else param.type
        option("--" + param.name.replace("_", "-"), type=kind, help=_train_help(param),
               metavar=param.name.upper() if not param.choices else "{" + ",".join(param.choices) + "}")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def _run_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..gad import SupportStopped, parse_strategy, train_gad
    from ..gad.settings import TRAINING_PARAMS
    from ..jobs import StopRequest

    if not args.out:
        raise ConfigError("--out (the GAD run folder) is required")
    names = {param.name for param in TRAINING_PARAMS}
    typed = {key: value for key, value in vars(args).items() if key in names}
    chosen = [args.classes, args.one_vs_all, args.split]
    strategy = parse_strategy(*chosen) if any(chosen) else None
    bar = tqdm(total=1, desc="gad train", unit="step", disable=None if args.progress else True, file=sys.stderr,
               dynamic_ncols=True)

    def progress(done: int, total: int, message: str) -> None:
        bar.total, bar.n = total, done
        bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    with StopRequest() as stop:
        try:
            run = train_gad(getattr(args, "checkpoint", None), strategy, args.out, resume=args.resume,
                            progress=progress, should_stop=lambda: stop.signal is not None,
                            log=lambda text: tqdm.write(text, file=sys.stdout), explicit=set(typed), **typed)
        except SupportStopped as stopped:
            print(f"interpgrad gad train: {stopped}", file=sys.stderr)
            return 0
        finally:
            bar.close()
    print(f"wrote {args.out}: {run.describe()}")
    return 0


def _add_explain(parser: argparse.ArgumentParser) -> None:
    from ..gad.combination import FUSIONS, gad_bases

    parser.add_argument("--run", required=True, help="a finished GAD run folder (python -m interpgrad gad train)")
    images = parser.add_mutually_exclusive_group(required=True)
    images.add_argument("--image", action="append", metavar="IMG", help="an image file (repeat for more)")
    images.add_argument("--dataset-sample", action="store_true",
                        help="the first --n images of the run's classes in --split of the original's dataset")
    parser.add_argument("--n", type=int, default=500, help="images of the dataset sample (default 500)")
    parser.add_argument("--split", choices=("train", "val"), default="val", help="split of the sample (default val)")
    parser.add_argument("--data-root", help="folder of CIFAR or of the image folder (default: the recorded one)")
    parser.add_argument("--out", required=True, help="output folder: PNGs, regions.csv, summary.csv")
    parser.add_argument("--base", choices=gad_bases(), default="integrated_gradients",
                        help="the gradient method whose maps are combined (default integrated_gradients)")
    parser.add_argument("--q", type=float, default=10.0, help="top q %% of each map (default 10)")
    parser.add_argument("--fusion", choices=FUSIONS, default="intersection", help="default intersection")
    parser.add_argument("--occlusion", choices=("black", "mean", "blur"), default="black",
                        help="what occluded hull pixels become (default black, in pixel space)")
    parser.add_argument("--min-size", type=int, default=4, help="smallest region in pixels (default 4)")
    parser.add_argument("--merge-distance", type=int, default=0,
                        help="merge components closer than this many pixels (default 0: none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random control regions (default 0)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch (default 32)")
    parser.add_argument("--max-png", type=int, default=16,
                        help="overlay PNGs written for a dataset sample (default 16; given images: all)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def _explain_images(args: argparse.Namespace, run: Any) -> tuple[Any, list[str], list[str]]:
    """(x, labels, names) of the given images or of the dataset sample."""
    import torch

    from ..data import load_image, prepare_image
    from ..gad import study_images
    from ..training.checkpoint import input_normalisation

    if args.dataset_sample:
        if args.n < 1:
            raise ConfigError(f"--n must be >= 1, got {args.n}")
        return study_images(run, args.split, args.n, args.data_root or None)
    mean, std = input_normalisation(run.metadata)
    size = int(run.metadata["model"]["image_size"])
    x = torch.cat([prepare_image(load_image(path), size, mean, std) for path in args.image])
    names = [Path(path).name for path in args.image]
    return x, [""] * len(names), names


def _overlay_png(path: Path, run: Any, x: Any, result: Any, index: int, row: Any, title: str) -> None:
    """One image's figure: the image, the original map, the GAD map (on the original's scale), the fused mask, and
    the hull overlays of the original's and of GAD's regions, with RC and RS under them."""
    import numpy as np
    import torch

    from ..regions import draw_regions, regions_of_maps
    from ..training.checkpoint import input_normalisation
    from ..viz import denormalize_image, enlarge, map_scale, normalize_map, overlay, save_grid

    size = 160
    mean, std = input_normalisation(run.metadata)
    image = enlarge(denormalize_image(x[index], mean, std), size)
    maps = torch.stack([result.original_map[index], result.gad_map[index]])
    scale = map_scale(maps[0])
    shown = [overlay(image, normalize_map(values, scale=scale), alpha=0.6) for values in maps]
    fused = result.fused[index].numpy()
    mask = enlarge(np.repeat(fused[..., None].astype(np.uint8) * 255, 3, axis=-1), size)
    regions = regions_of_maps(maps, result.q, None, row.min_size, row.merge_distance)
    hulls = [draw_regions(picture, found) for picture, found in zip(shown, regions)]
    captions = ["", result.base.replace("_", " "), f"fused top {result.q:g} % ({result.fusion})",
                f"{int(fused.sum())} pixels",
                f"{row.regions_original} regions, area {row.area_original:.3f}",
                f"{row.regions_gad} regions, area {row.area_gad:.3f}, RC {row.rc:.2f}, RS {row.rs_gad:.2f} "
                f"(removed {row.rs_removed:.2f}, random {row.rs_random:.2f})"]
    save_grid(path, [[image, *shown, mask, *hulls]], captions=[captions], title=title, panel_size=size,
              column_labels=["image", "original map", "GAD map", "fused mask", "original regions", "GAD regions"])


def _run_explain(args: argparse.Namespace) -> int:
    import time
    from types import SimpleNamespace

    from tqdm import tqdm

    from ..gad import gad_explanation, load_gad_run, region_study
    from ..regions import summarise_regions

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.max_png < 0:
        raise ConfigError(f"--max-png must be >= 0, got {args.max_png}")
    run = load_gad_run(args.run)
    if not run.complete:
        raise ConfigError(f"the GAD run in {args.run} is incomplete ({len(run.supports)} of {len(run.alphas)} support "
                          f"models); finish it: python -m interpgrad gad train --out {args.run} --resume")
    x, labels, names = _explain_images(args, run)
    if args.dataset_sample and len(x) < args.n:
        print(f"the {args.split} split holds {len(x)} images of {run.strategy.describe(run.class_names)}, fewer than "
              f"--n {args.n}: all of them are used")
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot write {out}: {error.strerror or error}") from None
    options = {"base": args.base, "q": args.q, "fusion": args.fusion}
    regions = {"min_size": args.min_size, "merge_distance": args.merge_distance, "occlusion": args.occlusion,
               "seed": args.seed}
    bar = tqdm(total=len(x), desc="gad explain", unit="image", disable=None if args.progress else True,
               file=sys.stderr, dynamic_ncols=True)

    def progress(done: int, total: int, message: str) -> None:
        bar.update(done - bar.n)

    started = time.perf_counter()
    try:
        table = region_study(run, x, labels, names=names, batch_size=args.batch_size, progress=progress, **options,
                             **regions)
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    table.to_csv(out / "regions.csv", index=False)
    summary = summarise_regions(table)
    summary.to_csv(out / "summary.csv", index=False)
    shown = len(x) if not args.dataset_sample else min(len(x), args.max_png)
    pictures = []
    for start in range(0, shown, args.batch_size):
        batch = x[start: min(start + args.batch_size, shown)]
        result = gad_explanation(run, batch, **options)
        for offset in range(len(batch)):
            index = start + offset
            row = SimpleNamespace(**table.iloc[index].to_dict(), min_size=args.min_size,
                                  merge_distance=args.merge_distance)
            predicted = run.class_names[int(result.target[offset])]
            label = f", label {labels[index]}" if labels[index] else ""
            path = out / f"{_safe(str(names[index]))}.png"
            _overlay_png(path, run, batch, result, offset, row,
                         f"{names[index]}{label}: explained {predicted}; {run.describe()}")
            pictures.append(path)
    print(f"{run.describe()}; {len(table)} images in {seconds:.0f} s ({args.base}, q {args.q:g} %, {args.fusion}, "
          f"occlusion {args.occlusion})")
    print(_summary_text(summary))
    print(f"wrote {out / 'regions.csv'}, {out / 'summary.csv'} and {len(pictures)} PNGs in {out}")
    return 0


def _safe(name: str) -> str:
    return "".join(char if char.isalnum() or char in "-_." else "_" for char in name) or "image"


def _summary_text(summary: Any) -> str:
    lines = []
    for row in summary.itertuples(index=False):
        excluded = f", {row.excluded} excluded" if row.excluded else ""
        interval = f"[{row.ci_low:.3f}, {row.ci_high:.3f}]"
        lines.append(f"  {row.quantity:<22} {row.mean:8.3f}  {interval}  n={row.n}{excluded}")
    return "mean [95% CI] over the images (the shares: images where occluding GAD's regions lowers the probability " \
           "more than occluding what GAD removed, and than random regions of GAD's area)\n" + "\n".join(lines)


# subcommand -> (help, add its arguments, run it)
SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "train": ("train the support models of a checkpoint under a strategy (pair, one-vs-all, split) into a GAD run",
              _add_train, _run_train),
    "explain": ("explain images with a GAD run: GAD maps, convex-hull overlays (PNG), regions.csv of RC and RS per "
                "image and summary.csv", _add_explain, _run_explain),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from . import add_subcommands

    add_subcommands(parser, "gad", SUBCOMMANDS)


def run(args: argparse.Namespace) -> int:
    from . import run_subcommand

    return run_subcommand(args, "gad", SUBCOMMANDS)
