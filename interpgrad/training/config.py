"""Training configuration: one dataclass, presets, and the rules that turn flags / files / presets into it.

Precedence: defaults < preset < config file (YAML or JSON) < command-line flags. The defaults reproduce the papers'
CIFAR settings (PAPERS.md): SGD lr 0.1, momentum 0.9, weight decay 5e-4, batch 128, 200 epochs with the learning rate
divided by 10 at 50 % and 75 % of training; the guided regularizer with the cosine error and lambda 7.5e-3.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from ..data import DATASETS, canonical_dataset_name
from ..errors import ConfigError
from ..models import ACTIVATIONS, get_architecture
from ..regularizers import REGULARIZERS
from ..params import resolve_params

__all__ = ["OPTIMIZERS", "PRESETS", "SCHEDULES", "AMP_MODES", "TrainConfig", "load_config_file", "make_config"]

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("multistep", "cosine", "constant")
AMP_MODES = ("none", "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; saved as ``config.json`` in the run folder."""

    out: str = ""
    # model
    arch: str = "resnet18"
    width: float = 1.0
    activation: str = "auto"  # "auto": the regularizer's recommendation (Softplus for score matching)
    softplus_beta: float = 10.0
    pretrained: bool = False
    # data
    dataset: str = "shapes"
    data_root: str | None = None
    download: bool = False
    image_size: int | None = None  # None: the dataset's size (32 for shapes and CIFAR, 64 for image folders)
    n_train: int | None = None
    n_val: int | None = None
    normalize: str = "auto"  # "auto": on, except for the score-matching family (inputs in [0, 1], as in its code)
    augment: bool = True
    # regularizer: its declared parameters (lam, error, mu, sigma, tau, ...); missing ones take its defaults
    regularizer: str = "none"
    regularizer_params: dict[str, Any] = field(default_factory=dict)
    # optimisation
    epochs: int = 200
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "multistep"
    milestones: tuple[int, ...] | None = None  # multistep epochs; None: 50 % and 75 % of the epochs
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    grad_accumulation: int = 1
    clip_grad_norm: float | None = None
    # runtime
    seed: int = 0
    device: str = "auto"
    amp: str = "none"
    workers: int = 0
    channels_last: bool = True
    alignment_samples: int = 512  # validation images for the standard/guided gradient cosine (0: skip)
    preset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["milestones"] = list(self.milestones) if self.milestones is not None else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown training option {unknown[0]!r}")
        values = dict(data)
        if values.get("milestones") is not None:
            values["milestones"] = tuple(int(m) for m in values["milestones"])
        return cls(**values).validated()

    # Derived settings ------------------------------------------------------------------------------------------

    @property
    def resolved_activation(self) -> str:
        return REGULARIZERS[self.regularizer].recommended_activation if self.activation == "auto" else self.activation

    @property
    def resolved_normalize(self) -> bool:
        if self.normalize == "auto":
            return self.regularizer not in ("score_matching", "anti_score_matching")
        return self.normalize == "true"

    @property
    def resolved_milestones(self) -> tuple[int, ...]:
        if self.milestones is not None:
            return self.milestones
        return tuple(sorted({max(1, round(self.epochs * 0.5)), max(1, round(self.epochs * 0.75))}))

    def validated(self) -> "TrainConfig":
        """This config with names normalised, or a ConfigError naming the first invalid option."""
        get_architecture(self.arch)
        dataset = canonical_dataset_name(self.dataset)
        if self.regularizer not in REGULARIZERS:
            raise ConfigError(f"unknown regularizer {self.regularizer!r}; choose one of {', '.join(REGULARIZERS)}")
        params = resolve_params(REGULARIZERS[self.regularizer].params, self.regularizer_params, owner=self.regularizer)
        checks = [
            (self.width > 0, f"--width must be positive, got {self.width}"),
            (self.activation in ("auto", *ACTIVATIONS), f"--activation must be auto or one of {', '.join(ACTIVATIONS)}"),
            (self.softplus_beta > 0, f"--softplus-beta must be positive, got {self.softplus_beta}"),
            (self.normalize in ("auto", "true", "false"), "--normalize must be auto, true or false"),
            (self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}"),
            (self.batch_size >= 2, f"--batch-size must be at least 2 (batch norm needs 2 samples), got {self.batch_size}"),
            (self.optimizer in OPTIMIZERS, f"--optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.lr > 0, f"--lr must be positive, got {self.lr}"),
            (0 <= self.momentum < 1, f"--momentum must be in [0, 1), got {self.momentum}"),
            (self.weight_decay >= 0, f"--weight-decay must be >= 0, got {self.weight_decay}"),
            (self.schedule in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)}"),
            (0 < self.gamma <= 1, f"--gamma must be in (0, 1], got {self.gamma}"),
            (self.warmup_epochs >= 0, f"--warmup-epochs must be >= 0, got {self.warmup_epochs}"),
            (self.grad_accumulation >= 1, f"--grad-accumulation must be at least 1, got {self.grad_accumulation}"),
            (self.clip_grad_norm is None or self.clip_grad_norm > 0, "--clip-grad-norm must be positive"),
            (self.amp in AMP_MODES, f"--amp must be one of {', '.join(AMP_MODES)}"),
            (self.workers >= 0, f"--workers must be >= 0, got {self.workers}"),
            (self.alignment_samples >= 0, "--alignment-samples must be >= 0"),
            (self.image_size is None or self.image_size >= 16, f"--image-size must be at least 16, got {self.image_size}"),
            (self.n_train is None or self.n_train >= 1, "--n-train must be positive"),
            (self.n_val is None or self.n_val >= 1, "--n-val must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if self.amp == "fp16" and REGULARIZERS[self.regularizer].differentiates_gradients:
            raise ConfigError(
                "--amp fp16 underflows the input gradients a gradient regularizer differentiates; use --amp bf16"
            )
        if self.pretrained and not get_architecture(self.arch).has_pretrained:
            raise ConfigError(f"--pretrained needs a torchvision architecture; {self.arch} has no pretrained weights")
        if self.milestones is not None and any(m < 1 for m in self.milestones):
            raise ConfigError("--milestones must be positive epoch numbers")
        return replace(self, dataset=dataset, regularizer_params=params)


PRESETS: dict[str, dict[str, Any]] = {
    # Torres Figueroa et al. 2024: CIFAR-100, ResNet-18, the guided regularizer's best setting.
    "paper-cifar100": {"arch": "resnet18", "dataset": "cifar100", "regularizer": "guided",
                       "regularizer_params": {"error": "cosine", "lam": 7.5e-3}},
    "paper-cifar100-mobilenet": {"arch": "mobilenet_v2", "dataset": "cifar100", "regularizer": "guided",
                                 "regularizer_params": {"error": "cosine", "lam": 7.5e-3}},
    # Srinivas & Fleuret 2021 (official code): Softplus(10) networks, inputs in [0, 1].
    "score-matching-cifar100": {"arch": "resnet18", "dataset": "cifar100", "regularizer": "score_matching"},
    "anti-score-matching-cifar100": {"arch": "resnet18", "dataset": "cifar100", "regularizer": "anti_score_matching"},
    "gradient-norm-cifar100": {"arch": "resnet18", "dataset": "cifar100", "regularizer": "gradient_norm"},
    # A small model on the synthetic shapes, minutes on a laptop CPU (the shipped starter checkpoints).
    "shapes-cpu": {"arch": "resnet18", "width": 0.25, "dataset": "shapes", "epochs": 12, "batch_size": 64,
                   "lr": 0.05, "schedule": "cosine", "warmup_epochs": 0.5, "alignment_samples": 256},
}


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Options from a YAML or JSON file (keys as in TrainConfig or as flag names with dashes)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as error:  # JSON or YAML syntax
        raise ConfigError(f"cannot parse {path.name}: {error}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path.name} must hold a mapping of options")
    return {key.replace("-", "_"): value for key, value in data.items()}


def make_config(
    options: Mapping[str, Any] | None = None, *, preset: str | None = None, config_file: str | Path | None = None
) -> TrainConfig:
    """Defaults < preset < config file < ``options`` (e.g. the flags a user gave), validated."""
    merged: dict[str, Any] = {}
    preset = preset or (options or {}).get("preset")
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        merged.update(PRESETS[preset], preset=preset)
    for layer in (load_config_file(config_file) if config_file else {}, dict(options or {})):
        params = layer.pop("regularizer_params", None) or {}
        if layer.get("regularizer", merged.get("regularizer")) != merged.get("regularizer"):
            merged.pop("regularizer_params", None)  # another regularizer: the earlier one's parameters do not apply
        merged.update(layer)
        if params:
            merged["regularizer_params"] = {**merged.get("regularizer_params", {}), **params}
    return TrainConfig.from_dict(merged)
