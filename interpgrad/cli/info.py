"""``python -m interpgrad info [CHECKPOINT]``: what interpgrad offers, or what a checkpoint holds."""

from __future__ import annotations

import argparse
import json

HELP = "list architectures, regularizers, attribution methods and metrics, or show a checkpoint's metadata"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", nargs="?", help="a .safetensors checkpoint or a run folder")


def run(args: argparse.Namespace) -> int:
    if args.checkpoint:
        from ..training import read_checkpoint_metadata

        print(json.dumps(read_checkpoint_metadata(args.checkpoint), indent=2))
        return 0
    from ..models import architectures
    from ..regularizers import REGULARIZERS
    from . import param_setting

    print("architectures:")
    for arch in architectures().values():
        print(f"  {arch.name:<26} {arch.family:<9} CAM layer {arch.target_layer:<12} {arch.description}")
    print("regularizers:")
    for name, regularizer in REGULARIZERS.items():
        settings = ", ".join(param_setting(param) for param in regularizer.params)
        print(f"  {name:<26} {regularizer.description} {('(' + settings + ')') if settings else ''}")
    try:
        from ..explain import methods
    except ImportError:
        return 0
    print("attribution methods (python -m interpgrad explain --help for their parameters):")
    for method in methods().values():
        print(f"  {method.name:<26} {method.family:<9} {method.description}")
        if method.params:
            print(f"  {'':<26} {', '.join(param_setting(param) for param in method.params)}")
    from ..metrics import metrics

    print("metrics (python -m interpgrad evaluate --list for their parameters):")
    for metric in metrics().values():
        print(f"  {metric.name:<26} {metric.category:<13} {metric.arrow} {metric.description}")
    return 0
