"""Support models: copies of the original trained by MSE regression to its distanced logits (our reading of GAD,
Mazini Rodrigues, Boutry & Najman 2024, arXiv 2401.14434; PAPERS.md section 2).

What is trained (``TRAINED_PARTS``), found generically on any CNN classifier by one forward pass with hooks:

- ``head``: the last ``nn.Linear`` (ResNet ``fc``, MobileNet-V2 / VGG ``classifier[-1]``). The rest is frozen and in
  eval mode, so the head's inputs are computed once and the head is trained on them (exactly the same regression,
  much faster); checked on the first images, else the whole model runs at every step.
- ``last_stage``: the layers with parameters whose output is at the network's last feature-map resolution (ResNet:
  ``layer4``; VGG: the last convolution block; MobileNet-V2: the blocks after the last stride-2 convolution) and every
  layer with parameters after them (the head, VGG's fully connected layers).
- ``all``: every parameter.

The support stays in eval mode while it trains: batch norm uses the original's running statistics and does not
update them (the regression targets were computed in eval mode, and drifting statistics would change every logit,
not only the distanced ones), and dropout is off. Adam, MSE over every logit (those of the classes that take no part
included: their target is the original's, which keeps them in place). The targets of each batch are computed from the
frozen original on that very batch, so with alpha = 0 the loss and its gradient are exactly zero and the support stays
equal to the original.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data.transforms import normalize, to_float_images
from ..errors import ConfigError, InterpgradError, Remedy
from .distancing import distanced_logits
from .strategies import Strategy

__all__ = [
    "TRAINED_PARTS",
    "StrategyImages",
    "SupportReport",
    "SupportStopped",
    "agreement",
    "head_module",
    "logits_of",
    "report_support",
    "train_support",
    "trained_modules",
]

TRAINED_PARTS = ("head", "last_stage", "all")
Progress = Callable[[int, float], None]  # (steps done in this support, loss of the last step)


class SupportStopped(InterpgradError):
    """Raised between two steps when a stop was asked for: the support being trained is dropped, the finished ones
    are kept, and the run resumes with that support."""

    def __init__(self, index: int) -> None:
        super().__init__(f"stopped while training support model {index}", Remedy("resume"))
        self.index = index


@dataclass(frozen=True)
class StrategyImages:
    """The images of a strategy: uint8 ``[N, H, W, 3]`` pixels, labels and sides (0 = side a, 1 = side b), with the
    normalisation of the model they are fed to."""

    pixels: torch.Tensor
    labels: torch.Tensor
    sides: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def inputs(self, indices: torch.Tensor | slice, device: torch.device) -> torch.Tensor:
        """The images at ``indices`` as a normalised float batch ``[B, 3, H, W]`` on ``device``."""
        return normalize(to_float_images(self.pixels[indices]), self.mean, self.std).to(device)


@dataclass
class SupportReport:
    """How one support model came out. ``train_mse_before`` / ``train_mse_after``: the regression error (MSE over
    every logit of the training images) of the original and of the trained support; ``epoch_mse``: the mean loss of
    each epoch's steps; ``val_mse``: the support's error on the held-out images; ``agreement``: the share of held-out
    images on which the support decides as the original does, among the strategy's classes (a pair: which of its two
    classes wins); ``agreement_all_classes``: the same over every class."""

    index: int
    alpha: float
    train_mse_before: float
    train_mse_after: float
    epoch_mse: list[float]
    val_mse_before: float
    val_mse: float
    agreement: float
    agreement_all_classes: float
    n_train: int
    n_val: int
    trained: str
    trained_parameters: int
    seconds: float
    device: str = ""
    trained_modules: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SupportReport":
        known = cls.__dataclass_fields__
        return cls(**{key: value for key, value in data.items() if key in known})

    def describe(self) -> str:
        """``support 2 (alpha 3.1): MSE 4.80 -> 0.12, agreement 99.5% on 200 held-out images, 41 s``."""
        return (f"support {self.index} (alpha {self.alpha:.3g}): MSE {self.train_mse_before:.3g} -> "
                f"{self.train_mse_after:.3g}, agreement {self.agreement:.1%} on {self.n_val} held-out images, "
                f"{self.seconds:.0f} s")


# ---------------------------------------------------------------------------------------------------- what is trained


def head_module(model: nn.Module) -> tuple[str, nn.Linear]:
    """The dotted name and module of the classifier's head: its last ``nn.Linear``."""
    linears = [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ConfigError("the model has no nn.Linear head; train 'all' instead of 'head' or 'last_stage'")
    return linears[-1]


def _executed_layers(model: nn.Module, example: torch.Tensor) -> list[tuple[str, torch.Size]]:
    """(name, output shape) of every module holding parameters of its own, in the order a forward pass runs them."""
    order: list[tuple[str, torch.Size]] = []
    handles = []
    for name, module in model.named_modules():
        if any(True for _ in module.parameters(recurse=False)):
            def record(module: nn.Module, inputs: Any, output: Any, name: str = name) -> None:
                if isinstance(output, torch.Tensor):
                    order.append((name, output.shape))
            handles.append(module.register_forward_hook(record))
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return order


def trained_modules(model: nn.Module, part: str, example: torch.Tensor) -> list[str]:
    """The dotted names of the modules whose parameters ``part`` trains (``[""]``, the model itself, for ``all``);
    ``example`` is one input batch (the last stage is found by a forward pass)."""
    if part not in TRAINED_PARTS:
        raise ConfigError(f"unknown part to train {part!r}; choose one of {', '.join(TRAINED_PARTS)}")
    if part == "all":
        return [""]
    if part == "head":
        return [head_module(model)[0]]
    executed = _executed_layers(model, example)
    spatial = [index for index, (_, shape) in enumerate(executed) if len(shape) == 4]
    if not spatial:
        raise ConfigError("the model has no layer with a feature map before its head; train 'head' or 'all'")
    last_size = executed[spatial[-1]][1][-2:]
    chosen = [name for index, (name, shape) in enumerate(executed)
              if index > spatial[-1] or (len(shape) == 4 and shape[-2:] == last_size)]
    return list(dict.fromkeys(chosen))  # a module run twice is listed once


def _trainable(model: nn.Module, names: Sequence[str]) -> list[nn.Parameter]:
    """Freeze every parameter of ``model`` but the own parameters of the modules ``names`` (``""``: every parameter);
    return those, without duplicates."""
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    chosen: dict[int, nn.Parameter] = {}
    for name in names:
        owned = model.get_submodule(name).parameters(recurse=False) if name else model.parameters()
        chosen.update((id(parameter), parameter) for parameter in owned)
    for parameter in chosen.values():
        parameter.requires_grad_(True)
    return list(chosen.values())


# ---------------------------------------------------------------------------------------------------- logits


def logits_of(model: nn.Module, images: StrategyImages, device: torch.device, batch_size: int = 128) -> torch.Tensor:
    """The model's logits on every image, ``[N, C]`` on the CPU (eval mode, no graph)."""
    outputs = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            outputs.append(model(images.inputs(slice(start, start + batch_size), device)).float().cpu())
    return torch.cat(outputs) if outputs else torch.empty(0)


def agreement(original: torch.Tensor, support: torch.Tensor, classes: Sequence[int] | None = None) -> float:
    """The share of rows whose decision (argmax) is the same in both logit tables, among ``classes`` (None: all)."""
    if original.shape[0] == 0:
        return float("nan")
    if classes is not None:
        original, support = original[:, list(classes)], support[:, list(classes)]
    return float((original.argmax(dim=1) == support.argmax(dim=1)).double().mean())


class _Features:
    """The head's inputs for every training image, computed once with the frozen trunk (``head`` training)."""

    def __init__(self, model: nn.Module, head: nn.Module, images: StrategyImages, device: torch.device,
                 batch_size: int) -> None:
        captured: list[torch.Tensor] = []
        outputs: list[torch.Tensor] = []
        handle = head.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0].detach()))
        try:
            with torch.no_grad():
                for start in range(0, len(images), batch_size):
                    outputs.append(model(images.inputs(slice(start, start + batch_size), device)))
        finally:
            handle.remove()
        self.values = torch.cat(captured) if len(captured) == len(outputs) else None
        if self.values is not None:  # the head's output must be the model's: nothing after it
            with torch.no_grad():
                same = torch.allclose(head(self.values[: outputs[0].shape[0]]), outputs[0], rtol=1e-4, atol=1e-5)
            self.values = self.values if same else None


def train_support(
    original: nn.Module,
    train: StrategyImages,
    strategy: Strategy,
    alpha: float,
    *,
    mode: str = "other",
    part: str = "last_stage",
    epochs: int = 10,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    index: int = 1,
) -> tuple[nn.Module, dict[str, Any]]:
    """A copy of ``original`` trained by MSE regression to ``distanced_logits(original(x), ...)`` on ``train`` (the
    original is left untouched). Returns the support (eval mode, on ``device``) and what the report needs of the
    training: the MSE per epoch, the trained modules and parameter count, the seconds taken.

    The data order of each epoch comes from a generator seeded by ``seed`` (nothing global is drawn), so a support
    trained again gives the same model. ``progress(step, loss)`` after every step; ``should_stop()`` is polled between
    steps and raises SupportStopped."""
    started = time.perf_counter()
    device = torch.device(device)
    reference = copy.deepcopy(original).to(device).eval()
    if device.type == "cpu":  # channels-last convolutions run faster on a CPU (as in the trainer and the evaluation)
        reference = reference.to(memory_format=torch.channels_last)
    for parameter in reference.parameters():
        parameter.requires_grad_(False)
    support = copy.deepcopy(reference)
    modules = trained_modules(support, part, train.inputs(slice(0, 1), device))
    parameters = _trainable(support, modules)
    optimizer = torch.optim.Adam(parameters, lr=lr)

    features = None
    if part == "head":
        head_reference, head_support = head_module(reference)[1], head_module(support)[1]
        features = _Features(reference, head_reference, train, device, max(batch_size, 128)).values

    def pair(indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the support's logits, the distanced targets) of a batch."""
        if features is not None:
            inputs = features[indices.to(features.device)]
            forward_reference, forward_support = head_reference, head_support
        else:
            inputs = train.inputs(indices, device)
            forward_reference, forward_support = reference, support
        with torch.no_grad():
            target = distanced_logits(forward_reference(inputs), train.sides[indices], strategy, alpha, mode)
        return forward_support(inputs), target

    generator = torch.Generator().manual_seed(int(seed))
    epoch_mse: list[float] = []
    step = 0
    support.eval()
    for _ in range(epochs):
        order = torch.randperm(len(train), generator=generator)
        total, count = 0.0, 0
        for start in range(0, len(train), batch_size):
            if should_stop is not None and should_stop():
                raise SupportStopped(index)
            indices = order[start:start + batch_size]
            prediction, target = pair(indices)
            loss = F.mse_loss(prediction, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise ConfigError(f"support model {index}: the regression diverged (loss {value}); use a lower lr")
            total, count, step = total + value * len(indices), count + len(indices), step + 1
            if progress is not None:
                progress(step, value)
        epoch_mse.append(total / max(1, count))
    for parameter in support.parameters():  # as a loaded checkpoint's
        parameter.requires_grad_(True)
    support = support.to(memory_format=torch.contiguous_format).eval()
    return support, {"epoch_mse": epoch_mse, "trained_modules": [] if part == "all" else modules,
                     "trained_parameters": sum(p.numel() for p in parameters),
                     "seconds": time.perf_counter() - started}


def report_support(
    index: int,
    alpha: float,
    support: nn.Module,
    training: Mapping[str, Any],
    strategy: Strategy,
    mode: str,
    part: str,
    train: StrategyImages,
    train_logits: torch.Tensor,
    val: StrategyImages,
    val_logits: torch.Tensor,
    device: torch.device,
) -> SupportReport:
    """The report of a trained support: its regression error on the training images (the original's, before, and
    its own, after), on the held-out ones, and the agreement of its decisions with the original's there
    (``train_logits`` / ``val_logits``: the original's)."""
    train_targets = distanced_logits(train_logits, train.sides, strategy, alpha, mode)
    val_targets = distanced_logits(val_logits, val.sides, strategy, alpha, mode)
    support_val = logits_of(support, val, device)
    return SupportReport(
        index=index,
        alpha=float(alpha),
        train_mse_before=float(F.mse_loss(train_logits, train_targets)),
        train_mse_after=float(F.mse_loss(logits_of(support, train, device), train_targets)),
        epoch_mse=[float(value) for value in training["epoch_mse"]],
        val_mse_before=float(F.mse_loss(val_logits, val_targets)) if len(val) else float("nan"),
        val_mse=float(F.mse_loss(support_val, val_targets)) if len(val) else float("nan"),
        agreement=agreement(val_logits, support_val, strategy.classes),
        agreement_all_classes=agreement(val_logits, support_val),
        n_train=len(train),
        n_val=len(val),
        trained=part,
        trained_parameters=int(training["trained_parameters"]),
        seconds=float(training["seconds"]),
        device=str(device),
        trained_modules=list(training["trained_modules"]),
    )
