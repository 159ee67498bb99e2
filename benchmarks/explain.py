"""Latency of every attribution method, side by side with Captum's implementation of the same method.

    python benchmarks/explain.py                       # both models, batches 1 and 16, every method
    python benchmarks/explain.py --models cifar --batches 1 --methods gradient,gradcam

Models (random weights; speed does not depend on training): the shipped size, a CIFAR-style ResNet-18 of width 0.25 at
32x32, and torchvision's ResNet-18 at 224x224. For each (model, batch, method): the median of several interleaved runs
(shuffled order within each round) of ``interpgrad.explain`` (everything included: parameter checks, model-state
snapshot and restore, display maps) and of Captum's class configured identically
(``interpgrad.reference.captum_attribute``; SmoothGrad as one batched ``NoiseTunnel`` call with the same samples per
forward pass). Ratio = ours / Captum (< 1: ours is faster). A cell whose first run takes longer than
``--skip-above`` seconds is skipped and says so.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import warnings
from dataclasses import dataclass
from typing import Callable

import torch
import torchvision
from torch import nn

import interpgrad
from interpgrad.explain import methods, resolve_layer
from interpgrad.reference import captum_attribute, has_reference


@dataclass
class Setup:
    key: str
    label: str
    build: Callable[[], nn.Module]
    image_size: int


SETUPS = {
    "cifar": Setup("cifar", "CIFAR ResNet-18 w0.25, 32x32", lambda: interpgrad.build_model("resnet18", width=0.25), 32),
    "imagenet": Setup("imagenet", "torchvision ResNet-18, 224x224", lambda: torchvision.models.resnet18(), 224),
}


DEVICE = torch.device("cpu")


def _seconds(function: Callable[[], object]) -> float:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)
    start = time.perf_counter()
    function()
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)
    return time.perf_counter() - start


def _interleaved_medians(functions: list[Callable[[], object]], repeats: int) -> list[float]:
    """Median seconds of each function over ``repeats`` rounds; every round runs each function once, in a shuffled
    order (seeded), so that drift of the machine and the order within a round favour none of them."""
    order = random.Random(0)
    times: list[list[float]] = [[] for _ in functions]
    for _ in range(repeats):
        for index in order.sample(range(len(functions)), len(functions)):
            times[index].append(_seconds(functions[index]))
    return [statistics.median(values) for values in times]


def _cell(model: nn.Module, x: torch.Tensor, name: str, options: argparse.Namespace) -> tuple[str, str, str]:
    target = (torch.arange(x.shape[0]) % 10).to(x.device)
    params = methods()[name].resolve({})
    layer = resolve_layer(model, None)[0] if methods()[name].uses_layer else None
    functions: list[Callable[[], object]] = [lambda: interpgrad.explain(model, x, name, target=target)]
    if has_reference(name):
        functions.append(lambda: captum_attribute(model, x, name, target, layer, params, noise_per_image=False))
    first = [_seconds(function) for function in functions]  # warm-up, and the estimate of one round
    if sum(first) > options.skip_above:
        return f"skipped (~{first[0]:.0f} s)", "", ""
    repeats = max(options.min_repeats, min(options.max_repeats, int(options.budget / max(sum(first), 1e-6))))
    medians = _interleaved_medians(functions, repeats)
    ours = f"{medians[0] * 1e3:.1f}"
    if len(medians) == 1:
        return ours, "—", "—"
    return ours, f"{medians[1] * 1e3:.1f}", f"{medians[0] / medians[1]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="cifar,imagenet", help="comma-separated: cifar, imagenet")
    parser.add_argument("--batches", default="1,16", help="comma-separated batch sizes")
    every = ",".join(name for name, method in methods().items() if not method.requires)  # not gad: it needs a run
    parser.add_argument("--methods", default=every, help="comma-separated method names")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds of measurement per cell (default 20)")
    parser.add_argument("--min-repeats", type=int, default=3, help="runs per cell at least (default 3)")
    parser.add_argument("--max-repeats", type=int, default=25, help="runs per cell at most (default 25)")
    parser.add_argument("--skip-above", type=float, default=100.0, help="skip cells whose first run takes longer (s)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = parser.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)  # Captum's notes about requires_grad and ReLU hooks
    names = [name.strip() for name in args.methods.split(",") if name.strip()]
    where = torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {where}; times in ms (median of interleaved runs)")
    print()
    print("| model | batch | method | ours ms | Captum ms | ours / Captum |")
    print("|---|---:|---|---:|---:|---:|")
    for key in args.models.split(","):
        setup = SETUPS[key.strip()]
        torch.manual_seed(0)
        model = setup.build().eval().to(DEVICE)
        for batch in (int(value) for value in args.batches.split(",")):
            x = torch.randn(batch, 3, setup.image_size, setup.image_size).to(DEVICE)
            for name in names:
                ours, captum, ratio = _cell(model, x, name, args)
                print(f"| {setup.label} | {batch} | {name} | {ours} | {captum} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
