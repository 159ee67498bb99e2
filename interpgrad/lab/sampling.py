"""Class samples by gradient ascent on a target logit (Srinivas & Fleuret 2021, official code's "SGLD" sampler).

From x_0 ~ N(0.5, 0.2^2 I) clamped to [0, 1], with y the target class::

    x_{t+1} = clamp( x_t + lr (grad_x f_y(x_t) - wd (x_t - 0.5)) + sqrt(2 lr) * noise * eps_t , 0, 1 ),  eps_t ~ N(0, I)

``noise = 0`` (the default) is the official code's sampler: projected gradient ascent on f_y(x) - wd/2 ||x - 0.5||^2,
no noise despite its name. ``noise = 1`` is unadjusted Langevin dynamics for the density proportional to
exp(f_y(x) - wd/2 ||x - 0.5||^2) (projected onto [0, 1]); other values sample it at temperature noise^2.

Every sample (class c, replicate r) draws its start and its noise from its own generator (seed, c, r), and the model
is in eval mode (no batch statistics), so a batch of samples equals the same samples computed one at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..gradients import select_logits
from .randomness import generator_for, normal_like

__all__ = ["DEFAULT_KEEP", "ClassSamples", "class_samples"]

DEFAULT_KEEP = (0, 10, 25, 50, 100, 200, 300, 400, 500)
START_MEAN, START_STD = 0.5, 0.2

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ClassSamples:
    """Samples ``[N, C, H, W]`` in [0, 1] (after the last step), their target ``classes`` ``[N]`` and ``replicates``
    ``[N]`` (0..per_class-1; samples are ordered class by class), the kept ``steps``, the ``trajectory``
    ``[len(steps), N, C, H, W]`` (the images at those steps; step 0 is the start) and ``target_logits``
    ``[len(steps), N]`` (f_y at those steps). All on the CPU; ``settings`` records how they were made."""

    samples: torch.Tensor
    classes: torch.Tensor
    replicates: torch.Tensor
    steps: tuple[int, ...]
    trajectory: torch.Tensor
    target_logits: torch.Tensor
    settings: dict[str, Any] = field(default_factory=dict)


def _kept_steps(keep: Sequence[int], steps: int) -> tuple[int, ...]:
    kept = sorted({int(step) for step in keep if 0 <= int(step) <= steps} | {steps})
    return tuple(kept)


def _check(steps: int, lr: float, wd: float, noise: float, per_class: int, batch_size: int) -> None:
    problems = [(steps >= 0, f"steps must be >= 0, got {steps}"), (lr > 0 and math.isfinite(lr), f"lr must be positive, got {lr}"),
                (wd >= 0, f"wd must be >= 0, got {wd}"), (noise >= 0, f"noise must be >= 0, got {noise}"),
                (per_class >= 1, f"per_class must be >= 1, got {per_class}"),
                (batch_size >= 1, f"batch_size must be >= 1, got {batch_size}")]
    for ok, message in problems:
        if not ok:
            raise ConfigError(message)


def class_samples(
    model: nn.Module,
    classes: Sequence[int],
    *,
    per_class: int = 1,
    steps: int = 500,
    lr: float = 0.1,
    wd: float = 0.01,
    noise: float = 0.0,
    keep: Sequence[int] = DEFAULT_KEEP,
    seed: int = 0,
    image_size: int = 32,
    channels: int = 3,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> ClassSamples:
    """``per_class`` samples of every class in ``classes`` by gradient ascent on its logit (module docstring).

    ``model`` takes images in [0, 1] (a ``PixelSpaceModel``) and is put in eval mode for the call (its mode is
    restored). ``keep``: the steps whose images and target logits are kept (the last step always is). ``progress``:
    called with (steps done, steps in all) over all batches.
    """
    _check(steps, lr, wd, noise, per_class, batch_size)
    parameter = next(model.parameters())
    device, dtype = parameter.device, parameter.dtype if parameter.is_floating_point() else torch.float32
    targets = torch.tensor([int(c) for c in classes for _ in range(per_class)], dtype=torch.long)
    replicates = torch.tensor([r for _ in classes for r in range(per_class)], dtype=torch.long)
    kept = _kept_steps(keep, steps)
    shape = (channels, image_size, image_size)
    trajectory = torch.empty(len(kept), len(targets), *shape, dtype=dtype)
    logits = torch.empty(len(kept), len(targets), dtype=torch.float64)
    batches = range(0, len(targets), batch_size)
    done, total = 0, steps * len(batches)
    training = model.training
    model.eval()
    try:
        for first in batches:
            last = min(first + batch_size, len(targets))
            generators = [generator_for(seed, int(targets[i]), int(replicates[i])) for i in range(first, last)]
            y = targets[first:last].to(device)
            x = (START_MEAN + START_STD * normal_like(shape, generators, device, dtype)).clamp(0.0, 1.0)
            for step in range(steps + 1):
                x = x.detach().requires_grad_(True)
                with torch.enable_grad():
                    selected = select_logits(model(x), y)
                    (gradient,) = torch.autograd.grad(selected.sum(), x)
                if step in kept:
                    index = kept.index(step)
                    trajectory[index, first:last] = x.detach().cpu()
                    logits[index, first:last] = selected.detach().double().cpu()
                if step == steps:
                    break
                update = lr * (gradient - wd * (x.detach() - 0.5))
                if noise > 0:
                    update = update + math.sqrt(2.0 * lr) * noise * normal_like(shape, generators, device, dtype)
                x = (x.detach() + update).clamp(0.0, 1.0)
                done += 1
                if progress is not None:
                    progress(done, total)
    finally:
        model.train(training)
    settings = {"steps": steps, "lr": lr, "wd": wd, "noise": noise, "per_class": per_class, "seed": seed,
                "image_size": image_size, "start": f"N({START_MEAN}, {START_STD}^2) clamped to [0, 1]"}
    return ClassSamples(trajectory[-1].clone(), targets, replicates, kept, trajectory, logits, settings)
