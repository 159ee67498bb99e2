"""Training configuration: one dataclass, presets, and the rules that turn flags / files / presets into it.

Precedence: defaults < preset < config file (YAML or JSON) < command-line flags. The defaults reproduce the papers'
CIFAR settings (PAPERS.md): SGD lr 0.1, momentum 0.9, weight decay 5e-4, batch 128, 200 epochs with the learning rate
divided by 10 at 50 % and 75 % of training; the guided regularizer with the cosine error and lambda 7.5e-3.
"""

from __future__ import annotations

import json
import math
import re
import types
import typing
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
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


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
    normalize: str = "auto"  # "auto": on, except for the Srinivas & Fleuret regularizers (inputs in [0, 1], as in their code)
    augment: bool = True
    # regularizer: its declared parameters (lam, error, mu, sigma, tau, ...); missing ones take its defaults
    regularizer: str = "none"
    regularizer_params: dict[str, Any] = field(default_factory=dict)
    lam_warmup_epochs: float = 0.0  # the regularizer's lam ramps linearly from 0 over these first epochs
    init: str | None = None  # a checkpoint to fine-tune (same architecture and classes)
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
    threads: int | None = None  # torch CPU threads; None: the cores this process shares (see Trainer._threads)
    preset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["milestones"] = list(self.milestones) if self.milestones is not None else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        """A validated config from plain values (a config file, config.json, the app); values of the wrong type are a
        ConfigError naming the option, except numbers written as strings (PyYAML reads ``lr: 1e-3`` as a string)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"training options must be a mapping of name: value, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(map(str, data)) - known)
        if unknown:
            raise ConfigError(f"unknown training option {unknown[0]!r}")
        hints = typing.get_type_hints(cls)
        values = {name: _coerce_option(name, value, hints[name]) for name, value in data.items()}
        return cls(**values).validated()

    # Derived settings ------------------------------------------------------------------------------------------

    @property
    def resolved_activation(self) -> str:
        return REGULARIZERS[self.regularizer].recommended_activation if self.activation == "auto" else self.activation

    @property
    def resolved_normalize(self) -> bool:
        if self.normalize == "auto":
            return REGULARIZERS[self.regularizer].normalizes_inputs
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
        params = self._regularizer_params()
        checks = [
            (_DEVICE.fullmatch(self.device) is not None, f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}"),
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
            (self.lam_warmup_epochs >= 0, f"--lam-warmup-epochs must be >= 0, got {self.lam_warmup_epochs}"),
            (self.threads is None or self.threads >= 1, f"--threads must be at least 1, got {self.threads}"),
            (self.init is None or bool(self.init), "--init needs a checkpoint path"),
            (self.image_size is None or self.image_size >= 16, f"--image-size must be at least 16, got {self.image_size}"),
            (self.n_train is None or self.n_train >= 1, "--n-train must be positive"),
            (self.n_val is None or self.n_val >= 1, "--n-val must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if self.amp != "none" and REGULARIZERS[self.regularizer].differences_logits:
            raise ConfigError(
                f"--amp {self.amp} rounds the logits too coarsely for {self.regularizer}'s Hessian-trace estimate "
                f"2/sigma^2 (f(x+v) - f(x)); train it without --amp"
            )
        if self.amp == "fp16" and REGULARIZERS[self.regularizer].differentiates_gradients:
            raise ConfigError(
                "--amp fp16 underflows the input gradients a gradient regularizer differentiates; use --amp bf16"
            )
        if self.amp != "none" and params.get("batchnorm", "batch") != "batch":
            raise ConfigError(f"--batchnorm {params['batchnorm']} runs without autocast for now; train it without --amp")
        if self.lam_warmup_epochs > 0 and "lam" not in params:
            raise ConfigError(f"--lam-warmup-epochs needs a regularizer with a lam; {self.regularizer} has none")
        if self.init is not None and self.pretrained:
            raise ConfigError("--init and --pretrained both choose the starting weights; give one")
        if self.pretrained and not get_architecture(self.arch).has_pretrained:
            raise ConfigError(f"--pretrained needs a torchvision architecture; {self.arch} has no pretrained weights")
        if self.milestones is not None and any(m < 1 for m in self.milestones):
            raise ConfigError("--milestones must be positive epoch numbers")
        return replace(self, dataset=dataset, regularizer_params=params)

    def _regularizer_params(self) -> dict[str, Any]:
        """The regularizer's parameters, defaults filled in; a parameter of another regularizer (``--lam`` with the
        default ``none``) says which regularizer has it rather than that ``none`` does not."""
        declared = REGULARIZERS[self.regularizer].params
        for name in self.regularizer_params:
            if any(param.name == name for param in declared):
                continue
            owners = [key for key, spec in REGULARIZERS.items() if any(param.name == name for param in spec.params)]
            if owners:
                takes = ", ".join(param.name for param in declared) or "no parameters"
                raise ConfigError(f"--{name.replace('_', '-')} needs a regularizer that has it (e.g. --regularizer "
                                  f"{owners[0]}); {self.regularizer} takes {takes}")
        return resolve_params(declared, self.regularizer_params, owner=self.regularizer)


def _whole_number(value: Any) -> int:
    """``value`` as an int: an int, a float without fraction, or a string of either; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        return value
    number = float(value) if isinstance(value, (float, str)) else math.nan
    if not number.is_integer():
        raise ValueError(value)
    return int(number)


def _finite_number(value: Any) -> float:
    """``value`` as a finite float: an int, a float or a string such as "1e-3"; ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(value)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(value)
    return number


def _exact(kind: type) -> Any:
    def convert(value: Any) -> Any:
        if not isinstance(value, kind):
            raise ValueError(value)
        return value

    return convert


def _milestone_list(value: Any) -> tuple[int, ...]:
    """Epoch numbers from a list or from "100,150" (the flag's form)."""
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)):
        raise ValueError(value)
    return tuple(_whole_number(item) for item in value)


def _parameter_mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise ValueError(value)
    return dict(value)


# field type -> (converter, what the error message says is expected)
_CONVERTERS: dict[Any, tuple[Any, str]] = {
    bool: (_exact(bool), "true or false"),
    int: (_whole_number, "a whole number"),
    float: (_finite_number, "a finite number"),
    str: (_exact(str), "a string"),
    dict: (_parameter_mapping, "a mapping of parameter names to values"),
    tuple: (_milestone_list, "a list of epoch numbers"),
}


def _field_kind(hint: Any) -> tuple[type, bool]:
    """(plain type, optional) of a field annotation: (int, True) for ``int | None``, (dict, False) for
    ``dict[str, Any]``, (tuple, True) for ``tuple[int, ...] | None``."""
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        arguments = [argument for argument in typing.get_args(hint) if argument is not type(None)]
        optional, hint = len(arguments) < len(typing.get_args(hint)), arguments[0]
    return typing.get_origin(hint) or hint, optional


def _coerce_option(name: str, value: Any, hint: Any) -> Any:
    """``value`` as the type TrainConfig declares for option ``name`` (``hint``), or a ConfigError naming both."""
    kind, optional = _field_kind(hint)
    if value is None and optional:
        return None
    convert, expected = _CONVERTERS[kind]
    try:
        return convert(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"option {name} must be {expected}{' or null' if optional else ''}, got {value!r}") from None


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
    # The guided regularizer as the paper writes it (its defaults: cosine, lam 7.5e-3, batch statistics, the loss).
    "paper": {"regularizer": "guided",
              "regularizer_params": dict(REGULARIZERS["guided"].presets["paper"])},
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
    if not isinstance(data, dict) or not all(isinstance(key, str) for key in data):
        raise ConfigError(f"{path.name} must hold a mapping of option names to values")
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
        params = _coerce_option("regularizer_params", layer.pop("regularizer_params", None) or {}, dict)
        if layer.get("regularizer", merged.get("regularizer")) != merged.get("regularizer"):
            merged.pop("regularizer_params", None)  # another regularizer: the earlier one's parameters do not apply
        merged.update(layer)
        if params:
            merged["regularizer_params"] = {**merged.get("regularizer_params", {}), **params}
    return TrainConfig.from_dict(merged)
