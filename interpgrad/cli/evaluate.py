"""``python -m interpgrad evaluate``: score methods and models with metrics, with confidence intervals and paired
comparisons, into a folder of CSV, JSON and PNG files.

    python -m interpgrad evaluate --checkpoint checkpoints/shapes-resnet18-baseline \\
        --checkpoint checkpoints/shapes-resnet18-guided --methods gradient,gradcam,random,edge \\
        --metrics insertion,deletion,energy_pointing_game --dataset shapes --n 200 --out evaluations/mine
    python -m interpgrad evaluate --out evaluations/mine --resume      # continue after a stop, a kill or a crash
    python -m interpgrad evaluate --list                               # metrics, their parameters and the presets

List the baseline first (each model is compared with the ones before it) and the control methods last.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

from ..errors import ConfigError

HELP = "score methods and models with metrics (CIs, paired comparisons) into a folder of CSV, JSON and plots"



def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Every option defaults to "not given" (so --resume can tell what the user typed); defaults are evaluate()'s.
    option = lambda *names, **kw: parser.add_argument(*names, default=argparse.SUPPRESS, **kw)  # noqa: E731
    option("--checkpoint", dest="checkpoints", action="append", metavar="PATH",
           help="a checkpoint (.safetensors or run folder); repeat for several models, the baseline first")
    option("--methods", help="comma-separated attribution methods, or all (default gradient,guided_backprop,gradcam,random,edge)")
    option("--metrics", help="comma-separated metrics, or all (the metrics the dataset allows; default all)")
    option("--dataset", help="shapes (default; with masks), cifar10, cifar100, imagefolder")
    option("--data-root", help="folder of CIFAR or of an image folder")
    option("--split", choices=("val", "test", "train"), help="default val")
    option("--n", type=int, help="the first N images of the split (default 100)")
    parser.add_argument("--out", help="the evaluation folder (created; must not hold another evaluation unless --resume)")
    parser.add_argument("--resume", action="store_true", help="continue the evaluation in --out from what it had written")
    option("--preset", help="a named protocol applied before --param (see --list)")
    option("--param", dest="params", action="append", metavar="METRIC.NAME=VALUE", help="a metric parameter (repeatable)")
    option("--method-param", dest="method_params", action="append", metavar="METHOD.NAME=VALUE",
           help="an attribution method's parameter (repeatable)")
    option("--target", choices=("predicted", "label"),
           help="the class every map explains and every metric scores (default predicted, or the preset's)")
    option("--judge", metavar="PATH", help="a checkpoint that judges pixel perturbation instead of each model itself")
    option("--seed", type=int, help="seed of the bootstrap and of every random draw (default 0)")
    option("--batch-size", type=int, help="images per unit of work (default 32)")
    option("--max-batch", type=int, help="images per forward pass of the perturbation metrics (default 0: automatic)")
    option("--device", help="auto (GPU when present, default), cpu, cuda, cuda:N")
    option("--confidence", type=float, help="confidence level of the intervals (default 0.95)")
    option("--resamples", type=int, help="bootstrap resamples (default 2000)")
    parser.add_argument("--list", action="store_true", help="list the metrics, their parameters and the presets, and exit")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def parse_assignments(pairs: Sequence[str], flag: str) -> dict[str, dict[str, str]]:
    """``["insertion.step_rows=2"]`` -> ``{"insertion": {"step_rows": "2"}}`` (values are checked by the registry)."""
    result: dict[str, dict[str, str]] = {}
    for pair in pairs:
        owner_name, separator, value = pair.partition("=")
        owner, dot, name = owner_name.strip().partition(".")
        if not separator or not dot or not owner or not name:
            raise ConfigError(f"{flag} expects OWNER.NAME=VALUE (e.g. insertion.step_rows=2), got {pair!r}")
        result.setdefault(owner, {})[name.strip()] = value.strip()
    return result


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """What the user typed, in evaluate()'s terms."""
    skip = {"command", "out", "resume", "progress", "list"}
    options = {key: value for key, value in vars(args).items() if key not in skip}
    for key, flag in (("params", "--param"), ("method_params", "--method-param")):
        if key in options:
            options[key] = parse_assignments(options[key], flag)
    return options


def resume_options(out: str, given: dict[str, Any]) -> dict[str, Any]:
    """The saved options of the evaluation in ``out``, with what the user typed over them: ``evaluate`` refuses the
    resume when that changes what is measured (only --device and --max-batch may change)."""
    from ..metrics import EvaluationDir

    saved = EvaluationDir(out).read_config()
    if saved is None:
        raise ConfigError(f"there is no evaluation to resume in {out} (no config.json)")
    options = {key: value for key, value in saved.items() if key not in ("created_at", "measures")}
    return {**options, **given}


def _list() -> int:
    from ..metrics import PRESETS, metrics
    from . import param_line

    for metric in metrics().values():
        print(f"{metric.name} ({metric.category}, {metric.direction} is better){' — needs masks' if metric.needs_masks else ''}")
        print(f"    {metric.description}")
        for param in metric.params:
            print(param_line(param, prefix=f"--param {metric.name}."))
    print("presets:")
    for name, preset in PRESETS.items():
        print(f"  --preset {name}: {preset['description']}")
    return 0


def refuse_params_without_effect(typed: dict[str, Any], preset: str | None) -> None:
    """A ConfigError when a --param or --method-param the user typed has no effect: its parameter does not apply
    under the other values (the preset's included), e.g. insertion.blur_sigma with substrate=zeros."""
    from ..explain import get_method
    from ..metrics import get_metric
    from ..metrics.presets import apply_preset
    from ..params import resolve_params

    merged, _ = apply_preset(preset, typed.get("params"), None)
    for name, values in typed.get("params", {}).items():
        resolve_params(get_metric(name).params, merged[name], owner=name, explicit=values)
    for name, values in typed.get("method_params", {}).items():
        resolve_params(get_method(name).params, values, owner=name, explicit=values)


def run(args: argparse.Namespace) -> int:
    if args.list:
        return _list()
    from tqdm import tqdm

    from ..jobs import StopRequest
    from ..metrics import Stopped, evaluate

    if not args.out:
        raise ConfigError("--out (the evaluation folder) is required")
    given = _options(args)
    if args.resume:
        options = resume_options(args.out, given)
    else:
        options = dict(given)
        if "checkpoints" not in options:
            raise ConfigError("give at least one --checkpoint")
        options.setdefault("methods", "gradient,guided_backprop,gradcam,random,edge")
        options.setdefault("metrics", "all")
    refuse_params_without_effect(given, options.get("preset"))
    models = options.pop("checkpoints")
    methods, metrics = options.pop("methods"), options.pop("metrics")
    if metrics == "all" or metrics == ["all"]:
        metrics = _applicable_metrics(options.get("dataset", "shapes"))
    bar = tqdm(total=1, desc="evaluate", unit="unit", disable=None if args.progress else True, file=sys.stderr,
               dynamic_ncols=True)

    def progress(done: int, total: int, message: str) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    with StopRequest() as stop:
        try:
            result = evaluate(models, methods, metrics, out=args.out, resume=args.resume, progress=progress,
                              should_stop=lambda: stop.signal is not None, **options)
        except Stopped as stopped:
            bar.close()
            print(f"interpgrad evaluate: {stopped}", file=sys.stderr)
            return 0
        finally:
            bar.close()
    summary = result.summary
    print(f"wrote {args.out}: {len(result.results)} values, {len(summary)} summary rows, "
          f"{len(result.comparisons)} model comparisons, in {result.protocol['seconds']:.1f} s")
    for verdict, count in result.comparisons["verdict"].value_counts().items():
        print(f"  model comparisons {verdict}: {count}")
    for problem in result.protocol.get("problems", []):
        print(f"  skipped {problem['model']} / {problem['method']}{' / ' + problem['metric'] if problem['metric'] else ''}: "
              f"{problem['reason']}")
    return 0


def _applicable_metrics(dataset: str) -> list[str]:
    """Every metric the dataset allows (the localisation metrics need ground-truth masks: shapes has them)."""
    from ..data import has_masks
    from ..metrics import metrics

    with_masks = has_masks(dataset)
    return [name for name, metric in metrics().items() if with_masks or not metric.needs_masks]
