"""``python -m interpgrad gad``: GAD, gradient artificial distancing (our reading of Mazini Rodrigues, Boutry & Najman
2024; PAPERS.md section 2).

    python -m interpgrad gad train --checkpoint checkpoints/shapes-resnet18-baseline --classes circle,square \\
        --out gad/circle-square                                     # 3 support models, the default settings
    python -m interpgrad gad train --checkpoint CKPT --one-vs-all star --alphas 2,4,6 --train head --out gad/star
    python -m interpgrad gad train --checkpoint CKPT --split 0,1,2/3,4 --out gad/split
    python -m interpgrad gad train --out gad/circle-square --resume   # continue after a stop, a kill or a crash

Classes by name or index. Each subcommand is a function of its own, registered in ``SUBCOMMANDS``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from ..errors import ConfigError

HELP = "GAD (our reading of the paper): train support models of a checkpoint into a GAD run folder"


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


# subcommand -> (help, add its arguments, run it)
SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "train": ("train the support models of a checkpoint under a strategy (pair, one-vs-all, split) into a GAD run",
              _add_train, _run_train),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from . import OneLineParser

    subparsers = parser.add_subparsers(dest="gad_command", metavar="SUBCOMMAND", parser_class=OneLineParser)
    for name, (text, add, _) in SUBCOMMANDS.items():
        add(subparsers.add_parser(name, help=text, description=text, prog=f"interpgrad gad {name}"))


def run(args: argparse.Namespace) -> int:
    if args.gad_command is None:
        raise ConfigError(f"choose a subcommand: {', '.join(SUBCOMMANDS)} (python -m interpgrad gad --help)")
    return SUBCOMMANDS[args.gad_command][2](args)
