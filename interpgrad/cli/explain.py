"""``python -m interpgrad explain``: the saliency map of one image under one method, as an overlay PNG (and .npy).

    python -m interpgrad explain --checkpoint runs/demo --image cat.jpg --method gradcam --out cat_gradcam.png \\
        [--npy map.npy] [--raw-npy raw.npy] [--target 3 | --target cat] [--layer layer4] [--param name=value ...] [--signed]

``--npy`` is the map shown (at the model's input size), ``--raw-npy`` the method's raw attribution (signed, at its
native resolution: ``[C, H, W]`` at the input for gradient methods, ``[h, w]`` at the layer before the ReLU for CAMs).
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ConfigError

HELP = "explain a checkpoint's decision on one image: write the saliency overlay as PNG (and the maps as .npy)"


def _method_names() -> list[str]:
    from ..explain import methods

    return list(methods())


def _method_parameters() -> str:
    """Every method's declared parameters, with when each applies: the epilog of --help."""
    from ..explain import methods
    from . import param_line

    lines = ["method parameters (--param NAME=VALUE; a parameter that does not apply has no effect):"]
    for method in methods().values():
        if method.params:
            lines.append(f"  {method.name}")
            lines += [param_line(param) for param in method.params]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter  # the epilog keeps its lines
    parser.epilog = _method_parameters()
    parser.add_argument("--checkpoint", required=True, help="a .safetensors checkpoint or a run folder")
    parser.add_argument("--image", required=True, help="an image file (PNG, JPEG, TIFF, BMP, WebP...; 16-bit, RGBA)")
    parser.add_argument(
        "--method", required=True, choices=_method_names(), metavar="METHOD", help="attribution method: %(choices)s"
    )
    parser.add_argument("--out", required=True, help="the overlay PNG to write")
    parser.add_argument(
        "--npy", help="also write the map shown (float32 [H, W] at the model's input size, not normalised; signed with --signed)"
    )
    parser.add_argument(
        "--raw-npy", metavar="PATH",
        help="also write the raw attribution (float32, signed, at its native resolution: [C, H, W] at the input for "
        "gradient methods, [h, w] at the target layer before the ReLU for CAM methods)",
    )
    parser.add_argument("--target", help="class to explain: an index or a class name (default: the predicted class)")
    parser.add_argument("--layer", help="target layer of CAM methods, a dotted name such as layer4 (default: the model's)")
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE",
        help="a method parameter (repeatable; listed below)",
    )
    parser.add_argument("--cmap", help="matplotlib colormap (default: jet, or RdBu_r with --signed)")
    parser.add_argument("--alpha", type=float, default=0.5, help="opacity of the map over the image, 0..1 (default 0.5)")
    parser.add_argument("--signed", action="store_true", help="show the signed map (diverging colours), not its magnitude")
    parser.add_argument("--size", type=int, default=256, help="side of the written PNG in pixels (default 256)")


def parse_params(pairs: Sequence[str]) -> dict[str, str]:
    """``["steps=64", "base=guided_backprop"]`` -> ``{"steps": "64", ...}`` (values are checked by the method)."""
    params: dict[str, str] = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not name.strip():
            raise ConfigError(f"--param expects NAME=VALUE, got {pair!r}")
        params[name.strip()] = value.strip()
    return params


def _target_index(target: str | None, class_names: list[str]) -> int | None:
    if target is None:
        return None
    if target in class_names:
        return class_names.index(target)
    try:
        index = int(target)
    except ValueError:
        raise ConfigError(f"--target {target!r} is neither a class index nor a class name of this model") from None
    if not 0 <= index < len(class_names):
        count = len(class_names)
        raise ConfigError(f"--target {index} is out of range: the model has {count} classes (0..{count - 1})")
    return index


def _write(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as error:
        raise ConfigError(f"cannot write {path}: {error.strerror or error}") from None


def _npy_bytes(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, values)
    return buffer.getvalue()


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..data import load_image, prepare_image, resize_center_crop
    from ..explain import explain, get_method, reporting_progress
    from ..params import resolve_params
    from ..training.checkpoint import class_names_of, input_normalisation, load_checkpoint
    from ..viz import colorize, normalize_map, overlay, png_bytes

    if not 0.0 <= args.alpha <= 1.0:
        raise ConfigError(f"--alpha must be in [0, 1], got {args.alpha}")
    if not 16 <= args.size <= 8192:
        raise ConfigError(f"--size must be in 16..8192, got {args.size}")
    params = parse_params(args.param)
    resolve_params(get_method(args.method).params, params, owner=args.method, explicit=params)  # typed, so it must apply
    colorize(np.zeros((1, 1)), args.cmap, args.signed)  # an unknown colormap fails now, not after the computation
    rgb = load_image(args.image)
    model, metadata = load_checkpoint(args.checkpoint)
    image_size = int(metadata["model"]["image_size"])
    mean, std = input_normalisation(metadata)
    class_names = class_names_of(metadata)
    target = _target_index(args.target, class_names)

    x = prepare_image(rgb, image_size, mean, std)
    # Methods of many forward passes (SmoothGrad, Integrated Gradients, Score-CAM, ...) advance a bar on a terminal.
    with tqdm(total=100, desc=args.method, unit="%", disable=None, leave=False, file=sys.stderr) as bar:
        with reporting_progress(lambda fraction: bar.update(round(fraction * 100) - bar.n)):
            explanation = explain(model, x, args.method, target=target, layer=args.layer, **params)
    shown = explanation.signed_map[0] if args.signed else explanation.map[0]
    display = normalize_map(shown, mode="signed" if args.signed else "absolute")
    picture = overlay(resize_center_crop(rgb, args.size), display, alpha=args.alpha, cmap=args.cmap, signed=args.signed)
    _write(Path(args.out), png_bytes(picture))
    if args.npy:
        _write(Path(args.npy), _npy_bytes(shown.numpy().astype(np.float32)))
    if args.raw_npy:
        _write(Path(args.raw_npy), _npy_bytes(explanation.raw[0].numpy().astype(np.float32)))

    probabilities = explanation.probabilities[0]
    predicted = int(probabilities.argmax())
    explained = int(explanation.target[0])
    print(f"predicted: {class_names[predicted]} (class {predicted}, p={float(probabilities[predicted]):.3f})")
    print(f"explained: {class_names[explained]} (class {explained}, p={float(probabilities[explained]):.3f})")
    where = f" at layer {explanation.layer}" if explanation.layer else ""
    extra = [path for path in (args.npy, args.raw_npy) if path]
    print(f"wrote {args.out} ({args.method}{where})" + "".join(f" and {path}" for path in extra))
    return 0
