"""Fooled gradients: fine-tune a checkpoint so that its logit gradients show a chosen pattern while its accuracy
stays (Srinivas & Fleuret 2021's point that logit gradients need not reflect anything the classifier uses)::

    L = L_C + lam * mean_i (1 - cos(grad_x f_y(x_i), P))                       (error cosine, the default)
    L = L_C + lam * mean_i || grad_x f_y(x_i) - scale * P ||^2 / scale^2      (error mse; P: unit norm)

The training is the ``gradient_pattern`` regularizer of the ordinary trainer (double backpropagation; the gradient
pass uses batch norm's running statistics, so every image's gradient is its own and is the eval-mode gradient the
explanations show), started from the checkpoint with ``--init``: a normal run folder with progress, resume and a
checkpoint the rest of the app loads. ``fool`` only derives that run's options from the checkpoint;
``gradient_pattern_cosine`` measures the result.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..gradients import input_gradient
from ..training.checkpoint import checkpoint_path, input_normalisation, load_checkpoint
from .patterns import make_pattern

__all__ = ["fool", "fool_options", "gradient_pattern_cosine", "mean_logit_gradient_norm"]


def gradient_pattern_cosine(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | Sequence[int],
                            pattern: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """cos(grad_x f_y(x_i), P) per image ``[N]`` (float64): how much each true-class logit gradient looks like the
    pattern ``[C, H, W]``. ``model`` is used in eval mode; the gradient is with respect to what it takes (pixels for
    a ``PixelSpaceModel``)."""
    labels = torch.as_tensor(labels, dtype=torch.long)
    device = next(model.parameters()).device
    training = model.training
    model.eval()
    flat = pattern.flatten().double().to(device)
    try:
        values = []
        for first in range(0, len(images), batch_size):
            gradient = input_gradient(model, images[first:first + batch_size].to(device),
                                      labels[first:first + batch_size].to(device)).flatten(1).double()
            values.append((gradient @ flat / (gradient.norm(dim=1) * flat.norm()).clamp_min(1e-300)).cpu())
    finally:
        model.train(training)
    return torch.cat(values).numpy()


def mean_logit_gradient_norm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | Sequence[int]) -> float:
    """The mean L2 norm of grad_x f_y over ``images`` (with respect to what ``model`` takes), eval mode."""
    training = model.training
    model.eval()
    try:
        gradient = input_gradient(model, images, torch.as_tensor(labels, dtype=torch.long).to(images.device))
    finally:
        model.train(training)
    return float(gradient.flatten(1).norm(dim=1).mean())


def fool_options(
    checkpoint: str | os.PathLike[str],
    pattern: str,
    out: str | os.PathLike[str],
    *,
    lam: float = 1.0,
    scale: float | None = None,
    epochs: int = 3,
    lr: float = 1e-4,
    batch_size: int = 64,
    n_train: int | None = None,
    n_val: int | None = None,
    device: str = "auto",
    seed: int = 0,
    batchnorm: str = "per_sample",
    error: str = "cosine",
) -> dict[str, Any]:
    """The training options (``make_config``'s) that fine-tune ``checkpoint`` with the ``gradient_pattern``
    regularizer: its architecture, activation, dataset, image size and normalisation; Adam at a constant ``lr``, no
    weight decay. ``error``: ``cosine`` (default; only the gradient's direction lowers it) or ``mse`` (the gradient
    ``scale * P``; ``scale`` None: the checkpoint's own mean logit-gradient norm on 64 validation images, so the
    pattern asks for a gradient as large as the model's, pointing elsewhere). ``batchnorm``: how the gradient
    pass treats training-mode batch norm (the regularizer's parameter); ``per_sample`` by default, because with
    ``running`` the regularizer shapes the running-statistics network that the cross-entropy does not train, and the
    eval-mode accuracy falls (measured: the guided regularizer's ``running``/``loss`` fine-tune in
    studies/regularizer lost 65 points)."""
    make_pattern(pattern, 16)  # a bad pattern is refused before anything is loaded
    weights = checkpoint_path(checkpoint)
    model, metadata = load_checkpoint(weights)
    training = metadata.get("training") or {}
    config = metadata.get("model") or {}
    data = metadata.get("data") or {}
    dataset = training.get("dataset") or data.get("name")
    if not dataset:
        raise ConfigError(f"{weights} does not say which dataset it was trained on; fine-tune it with "
                          "python -m interpgrad train --init")
    mean, std = input_normalisation(metadata)
    normalized = any(m != 0 for m in mean) or any(s != 1 for s in std)
    image_size = int(config.get("image_size") or data.get("image_size") or 32)
    if error != "mse":
        scale = None  # only the mse error asks for a gradient norm
    elif scale is None:
        from ..metrics.datasets import evaluation_data
        from ..data.transforms import normalize, to_float_images

        sample = evaluation_data(dataset, "val", 64, image_size, training.get("data_root"))
        x = normalize(to_float_images(torch.from_numpy(np.array(sample.images))), mean, std)
        scale = mean_logit_gradient_norm(model, x, torch.from_numpy(np.array(sample.labels)))
    return {
        "out": str(out), "init": str(weights), "arch": config.get("arch"), "width": config.get("width", 1.0),
        "activation": config.get("activation", "relu"), "softplus_beta": config.get("softplus_beta", 10.0),
        "dataset": dataset, "data_root": training.get("data_root"), "image_size": image_size,
        "normalize": "true" if normalized else "false", "regularizer": "gradient_pattern",
        "regularizer_params": {"lam": lam, "pattern": pattern, "batchnorm": batchnorm, "error": error,
                               **({"scale": float(scale)} if scale is not None else {})},
        "epochs": epochs, "optimizer": "adam", "lr": lr, "weight_decay": 0.0, "schedule": "constant",
        "batch_size": batch_size, "n_train": n_train, "n_val": n_val, "device": device, "seed": seed,
    }


def fool(checkpoint: str | os.PathLike[str], pattern: str, out: str | os.PathLike[str], *, resume: bool = False,
         progress: bool = True, **options: Any) -> Path:
    """Fine-tune ``checkpoint`` so that its logit gradients show ``pattern`` (``fool_options``), into the run folder
    ``out``; returns the new checkpoint's path (``out/model.safetensors``)."""
    from ..training import make_config, train

    train(make_config(fool_options(checkpoint, pattern, out, **options)), resume=resume, progress=progress)
    return checkpoint_path(Path(out))
