"""Training-step overhead of the gradient regularizers: time and peak memory, each against a plain step.

Same model, same batch, same optimizer; the variants' steps are interleaved in one process (so a slow moment of the
machine hits all of them alike) and the median of many steps is compared. Peak memory is measured in a fresh process
per variant: on CUDA the peak of allocated tensor memory, on a CPU the growth of the peak resident set (VmHWM, reset
before the steps) over the resident set before them, with glibc told to return freed memory so that it follows the
live tensors.

    python benchmarks/train_step.py                       # CIFAR ResNet-18, width 0.5 (32 base channels), batch 32
    python benchmarks/train_step.py --device cuda --batch 128 --width 1
    python benchmarks/train_step.py --variants guided,guided_per_sample,guided_running --threads 1 --no-memory

Targets (DESIGN.md): guided step <= 2.4x the time and <= 2.5x the peak memory of a plain step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import interpgrad  # noqa: E402
from interpgrad.regularizers import REGULARIZERS  # noqa: E402
from interpgrad.runtime import keep_freed_memory  # noqa: E402

VARIANTS = {
    "plain": ("none", {}),
    "guided": ("guided", {"error": "cosine", "lam": 7.5e-3}),
    "guided_torch_double_backward": ("guided", {"error": "cosine", "lam": 7.5e-3}),
    # The batch-norm modes of the guided regularizer (issue 9): compare each with "guided" (batchnorm=batch).
    "guided_per_sample": ("guided", {"error": "cosine", "lam": 7.5e-3, "batchnorm": "per_sample"}),
    "guided_running": ("guided", {"error": "cosine", "lam": 7.5e-3, "batchnorm": "running"}),
    "guided_logit": ("guided", {"error": "cosine", "lam": 7.5e-3, "gradient_of": "logit"}),
    "score_matching": ("score_matching", {}),
    "gradient_norm": ("gradient_norm", {}),
    "anti_score_matching": ("anti_score_matching", {}),
}


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Step:
    """One variant: its own copy of the model (same initial weights) and optimizer, stepping on a fixed batch."""

    def __init__(self, variant: str, args: argparse.Namespace, device: torch.device) -> None:
        name, params = VARIANTS[variant]
        activation = REGULARIZERS[name].recommended_activation if args.activation == "auto" else args.activation
        torch.manual_seed(0)
        self.model = interpgrad.build_model(args.arch, num_classes=10, width=args.width, activation=activation)
        self.model.to(device).train()
        memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
        self.model.to(memory_format=memory_format)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-3, momentum=0.9)
        self.regularizer = interpgrad.build_regularizer(name, **params)
        # The same loss through PyTorch's own double backward, to show what interpgrad.double_backprop saves.
        self.regularizer.cheap_double_backward = variant != "guided_torch_double_backward"
        generator = torch.Generator().manual_seed(1)
        self.x = torch.randn(args.batch, 3, args.image_size, args.image_size, generator=generator).to(device)
        self.x = self.x.contiguous(memory_format=memory_format)
        self.y = torch.randint(0, 10, (args.batch,), generator=generator).to(device)
        self.device = device

    def __call__(self) -> float:
        _synchronize(self.device)
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        self.regularizer(self.model, self.x, self.y).total.backward()
        self.optimizer.step()
        _synchronize(self.device)
        return time.perf_counter() - start


def measure_memory(variant: str, args: argparse.Namespace) -> float:
    """Peak memory of the training step in MiB (run in a fresh process)."""
    device = _device(args.device)
    step = Step(variant, args, device)
    if device.type == "cuda":
        step()
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    step()
    before = _status_mib("VmRSS")
    with open("/proc/self/clear_refs", "w") as file:  # reset the peak resident set (VmHWM) to the current one
        file.write("5")
    for _ in range(3):
        step()
    return _status_mib("VmHWM") - before


def _status_mib(field: str) -> float:
    """A memory field of /proc/self/status (kB) in MiB."""
    with open("/proc/self/status") as file:
        for line in file:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_in_subprocess(variant: str, argv: list[str]) -> float:
    environment = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "0", "MALLOC_MMAP_THRESHOLD_": "65536"}
    command = [sys.executable, __file__, *argv, "--no-keep-freed-memory", "--memory-of", variant]
    output = subprocess.run(command, capture_output=True, text=True, check=True, env=environment).stdout
    return float(json.loads(output.strip().splitlines()[-1])["peak_mib"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--width", type=float, default=0.5, help="width multiplier (0.5 = 32 base channels)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--activation", default="auto", help="auto: each regularizer's recommended activation")
    parser.add_argument("--variants", default="plain,guided,guided_torch_double_backward,score_matching", help=f"from {', '.join(VARIANTS)}")
    parser.add_argument("--steps", type=int, default=15, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                        help="channels-last memory format for model and batch (the trainer's default)")
    parser.add_argument("--keep-freed-memory", action=argparse.BooleanOptionalAction, default=True,
                        help="glibc keeps freed memory for reuse (the trainer's setting on a CPU)")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.keep_freed_memory and _device(args.device).type == "cpu":
        keep_freed_memory()
    if args.memory_of:
        print(json.dumps({"peak_mib": measure_memory(args.memory_of, args)}))
        return

    device = _device(args.device)
    variants = [v.strip() for v in args.variants.split(",")]
    if "plain" not in variants:
        variants.insert(0, "plain")
    steps = {variant: Step(variant, args, device) for variant in variants}
    for step in steps.values():
        for _ in range(args.warmup):
            step()
    times: dict[str, list[float]] = {variant: [] for variant in variants}
    for _ in range(args.steps):
        for variant, step in steps.items():
            times[variant].append(step())
    forwarded = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--no-memory"]
    memory = {} if args.no_memory else {variant: memory_in_subprocess(variant, forwarded) for variant in variants}

    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    layout = "channels-last" if args.channels_last else "NCHW"
    if args.keep_freed_memory and device.type == "cpu":
        layout += ", malloc keeps freed memory"
    print(f"{args.arch} width {args.width}, batch {args.batch}, {args.image_size}x{args.image_size}, {layout}, {device_name}, "
          f"torch {torch.__version__}, median of {args.steps} interleaved steps")
    plain_time = statistics.median(times["plain"])
    print(f"{'variant':<22}{'step ms':>10}{'time ratio':>12}{'peak MiB':>10}{'memory ratio':>14}")
    for variant in variants:
        median = statistics.median(times[variant])
        paired = statistics.median(t / p for t, p in zip(times[variant], times["plain"]))
        peak = memory.get(variant)
        memory_text = f"{peak:>10.1f}{peak / memory['plain']:>13.2f}x" if peak is not None else ""
        print(f"{variant:<22}{median * 1e3:>10.1f}{median / plain_time:>11.2f}x{memory_text}   (paired {paired:.2f}x)")


if __name__ == "__main__":
    main()
