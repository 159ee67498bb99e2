"""Mechanics every attribution method shares, written once: batching under a memory bound, seeded noise, guarded
division, upsampling and the declared parameters several methods have in common."""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from ..params import Param

__all__ = [
    "BATCH_SIZE_PARAM",
    "CPU_MAX_ROWS",
    "CPU_VALUES_PER_FORWARD",
    "content_seed",
    "INPUT_VALUES_PER_FORWARD",
    "NOISE_PARAM",
    "SEED_PARAM",
    "noise_scale",
    "noisy_batches",
    "reporting_progress",
    "rows_per_forward",
    "safe_divide",
    "seeded_generator",
    "spans",
    "standard_normal_draws",
    "upsample",
]

INPUT_VALUES_PER_FORWARD = 1 << 22
"""Memory bound of the automatic batch size: about 4 million input values (16 MB of float32) per forward pass, i.e.
27 images of 3x224x224 or 1365 of 3x32x32. A model's activations scale with its input, so this bounds them too."""

CPU_MAX_ROWS = 128
CPU_VALUES_PER_FORWARD = 1 << 20
"""On a CPU, automatic forward passes hold at most this many input values (6 images of 3x224x224) and at most
``CPU_MAX_ROWS`` rows (128 images of 3x32x32)."""

BATCH_SIZE_PARAM = Param(
    "batch_size",
    int,
    0,
    "model inputs per forward pass (memory bound; at least one per image); 0 = automatic, ~4M input values a pass "
    "(on a CPU ~1M values and at most 128 inputs)",
    low=0,
    high=65536,
)
SEED_PARAM = Param(
    "seed", int, 0, "seed of the noise (a local generator; the global random state is untouched)", low=0, high=2**31 - 1
)
NOISE_PARAM = Param(
    "noise", float, 0.15, "noise standard deviation, a fraction of each image's range (max - min)", low=0.0, high=1.0
)


def rows_per_forward(
    batch_size: int, values_per_row: int, budget: int = INPUT_VALUES_PER_FORWARD, device: torch.device | None = None
) -> int:
    """``batch_size`` when positive, otherwise as many rows of ``values_per_row`` values as fit in ``budget`` (>= 1);
    on a CPU, as many as fit in ``CPU_VALUES_PER_FORWARD`` and at most ``CPU_MAX_ROWS``: there, passes that stay in
    cache run faster than huge ones (measured on 2 cores: Score-CAM of 32 images at 32 x 32 took 3.6 s in passes of
    1365 rows and 1.7 s in passes of 128, SmoothGrad and Integrated Gradients 2.1 -> 1.0 s and 3.7 -> 1.2 s; at
    224 x 224, forward passes of 8 images ran 13 % faster than of 27, ``benchmarks/metrics.py``)."""
    if batch_size > 0:
        return batch_size
    if device is not None and device.type == "cpu":
        return max(1, min(CPU_MAX_ROWS, min(budget, CPU_VALUES_PER_FORWARD) // max(1, values_per_row)))
    return max(1, budget // max(1, values_per_row))


class _Progress:
    """Where a batched method reports how far it is: a callback, and how deep in nested batch loops we are (only the
    outermost loop reports, so that SmoothGrad over Integrated Gradients counts noisy batches, not path steps)."""

    def __init__(self, callback: Callable[[float], None]) -> None:
        self.callback = callback
        self.depth = 0


_PROGRESS: ContextVar[_Progress | None] = ContextVar("interpgrad_progress", default=None)


@contextmanager
def reporting_progress(callback: Callable[[float], None]) -> Iterator[None]:
    """Within this block, methods that run in several forward passes (SmoothGrad, Integrated Gradients, Score-CAM,
    Ablation-CAM, ...) call ``callback(fraction_done)`` after each pass. Per thread (a context variable), so that
    concurrent sessions report to their own callbacks."""
    token = _PROGRESS.set(_Progress(callback))
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def spans(total: int, size: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of consecutive chunks of at most ``size`` covering ``range(total)``; reports the fraction
    done after each chunk when called within ``reporting_progress``."""
    progress = _PROGRESS.get()
    step = max(1, size)
    if progress is None or progress.depth > 0:
        for start in range(0, total, step):
            yield start, min(total, start + step)
        return
    progress.depth += 1
    try:
        for start in range(0, total, step):
            stop = min(total, start + step)
            yield start, stop
            progress.callback(stop / total)
    finally:
        progress.depth -= 1


def safe_divide(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """``numerator / denominator`` where the denominator is non-zero, 0 where it is zero (never NaN or inf from 0/0)."""
    nonzero = denominator != 0
    return torch.where(nonzero, numerator / torch.where(nonzero, denominator, torch.ones_like(denominator)), 0.0)


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Maps ``[B, h, w]`` resized to ``[B, *size]``: bilinear, ``align_corners=False`` (Captum's
    ``LayerAttribution.interpolate`` convention). Bilinear weights are non-negative, so non-negative maps stay so."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)


def content_seed(seed: int, values: torch.Tensor) -> int:
    """A 63-bit seed from ``seed`` and the values of a tensor (an image): the same image always gets the same draws,
    whatever batch it is in and whichever device holds it."""
    data = values.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
    digest = hashlib.blake2b(data, digest_size=8, key=int(seed).to_bytes(8, "little"))
    return int.from_bytes(digest.digest(), "little") >> 1


def seeded_generator(seed: int, device: torch.device) -> torch.Generator:
    """A generator of its own for one explanation, so that results depend on ``seed`` only (not on global state)."""
    return torch.Generator(device=device).manual_seed(seed)


def standard_normal_draws(
    generator: torch.Generator, count: int, shape: torch.Size, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """``count`` draws of N(0, I) shaped ``shape``, stacked ``[count, *shape]``, one generator call per draw.

    Drawing per sample makes the values independent of how samples are later chunked into forward passes. For a
    single image whose number of values is a multiple of 16, the stream equals the one Captum's ``NoiseTunnel`` draws
    after ``torch.manual_seed(seed)`` (the CPU normal sampler works in blocks of 16 values).
    """
    return torch.stack([torch.randn(shape, generator=generator, dtype=dtype, device=device) for _ in range(count)])


def noise_scale(x: torch.Tensor, fraction: float) -> torch.Tensor:
    """Per-image noise standard deviation ``fraction * (max(x_i) - min(x_i))``, shaped ``[B]`` (SmoothGrad,
    Smilkov et al. 2017: sigma relative to the input's range)."""
    flat = x.flatten(1)
    return fraction * (flat.amax(dim=1) - flat.amin(dim=1))


def noisy_batches(
    x: torch.Tensor, noise: float, seed: int, samples: int, per_batch: int
) -> Iterator[tuple[int, torch.Tensor]]:
    """The noisy copies ``x_i + sigma_i * eps_s`` (s < ``samples``) of SmoothGrad-style methods, ``per_batch`` samples
    at a time: ``(count, copies)`` with copies ``[B * count, C, H, W]`` image-major (all samples of image 0 first).

    ``sigma_i = noise * (max(x_i) - min(x_i))``; every image gets the same draws ``eps_s`` from a generator seeded
    with ``seed``, so an image's copies do not depend on the rest of its batch nor on ``per_batch``.
    """
    sigma = noise_scale(x, noise).view(-1, 1, 1, 1, 1)
    generator = seeded_generator(seed, x.device)
    for start, stop in spans(samples, per_batch):
        draws = standard_normal_draws(generator, stop - start, x.shape[1:], x.dtype, x.device)
        yield stop - start, (x.unsqueeze(1) + sigma * draws.unsqueeze(0)).flatten(0, 1)
