"""``python -m interpgrad train``: train a baseline or gradient-regularized classifier into a run folder.

    python -m interpgrad train --arch resnet18 --width 0.25 --dataset shapes --regularizer guided --error cosine \\
        --lam 7.5e-3 --epochs 2 --out runs/guided
    python -m interpgrad train --out runs/guided --resume             # continue after a stop or a crash
    python -m interpgrad train --preset paper-cifar100 --data-root ~/data --out runs/paper
    torchrun --nproc_per_node 2 -m interpgrad train ... --out runs/ddp  # DistributedDataParallel
"""

from __future__ import annotations

import argparse
from typing import Any

from ..data import DATASETS
from ..errors import ConfigError
from ..models import architectures
from ..params import resolve_params
from ..regularizers import ERROR_FUNCTIONS, REGULARIZERS
from ..training.config import AMP_MODES, OPTIMIZERS, PRESETS, SCHEDULES, TrainConfig, make_config
from ..training.run import RunDir
from ..training.trainer import Trainer

HELP = "train a classifier (baseline or gradient-regularized) into a run folder"

# Flags whose values go into the regularizer's declared parameters.
_REGULARIZER_FLAGS = ("lam", "error", "histogram_normalization", "batchnorm", "gradient_of", "mu", "sigma", "tau", "samples")
# Options a resumed run may change.
_CHANGEABLE_ON_RESUME = {"epochs", "device", "workers", "alignment_samples", "threads", "out"}


def _milestones(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected epoch numbers like 100,150, got {text!r}") from None


def _key_value(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected name=value, got {text!r}")
    name, value = text.split("=", 1)
    return name.strip(), value.strip()


def _declared_help(name: str, text: str | None = None) -> str:
    """The help of a regularizer flag: ``text`` (default: each declaring regularizer's own help) and, from the
    declarations, when the parameter applies."""
    declared = [(key, param) for key, regularizer in REGULARIZERS.items() for param in regularizer.params
                if param.name == name]
    if text is None:
        text = "; ".join(f"{key}{', ' + param.when.describe() if param.when else ''}: {param.help}"
                         for key, param in declared)
    else:
        conditions = [f"{key}: {param.when.describe()}" for key, param in declared if param.when]
        text += f" ({'; '.join(conditions)})" if conditions else ""
    return text.replace("%", "%%")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Every option defaults to "not given", so presets and config files are only overridden by what the user typed.
    option = lambda *names, **kw: parser.add_argument(*names, default=argparse.SUPPRESS, **kw)  # noqa: E731
    option("--out", help="the run folder (created; must not hold another run unless --resume)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from where it stopped")
    option("--config", dest="config_file", metavar="FILE", help="options from a YAML or JSON file")
    option("--preset", choices=sorted(PRESETS), help="a named set of options (flags given override it)")
    option("--arch", choices=sorted(architectures()), help="architecture (default resnet18)")
    option("--width", type=float, help="width multiplier of CIFAR-style models (default 1)")
    option("--activation", choices=("auto", "relu", "softplus"), help="auto: Softplus for score matching")
    option("--softplus-beta", type=float)
    option("--pretrained", action="store_true", help="ImageNet weights from the local torch cache (torchvision archs)")
    option("--init", metavar="CHECKPOINT", help="fine-tune this checkpoint (same architecture and classes; its path "
                                                "and sha256 go into the run's metadata; the paper fine-tunes with "
                                                "Adam, lr 1e-5, 5 epochs)")
    option("--dataset", choices=DATASETS, help="default shapes (synthetic, with ground-truth masks)")
    option("--data-root", help="folder of CIFAR (containing cifar-10-batches-py) or of an image folder")
    option("--download", action="store_true", help="download CIFAR into --data-root first")
    option("--image-size", type=int)
    option("--n-train", type=int, help="use only this many training images")
    option("--n-val", type=int, help="use only this many validation images")
    option("--normalize", choices=("auto", "true", "false"), help="auto: off for score matching, anti-score-matching and gradient norm (their code uses [0, 1] inputs)")
    option("--no-augment", dest="augment", action="store_false", help="no random crop / flip")
    option("--regularizer", choices=sorted(REGULARIZERS), help="default none")
    option("--lam", type=float, help=_declared_help("lam", "regularization weight (default: the regularizer's paper value)"))
    option("--error", choices=sorted(ERROR_FUNCTIONS), help=_declared_help("error", "guided: error function (default cosine)"))
    option("--histogram-normalization", choices=("each", "product"), help=_declared_help("histogram_normalization"))
    for name in ("batchnorm", "gradient_of"):  # flags built from the guided regularizer's declarations
        (param,) = [param for param in REGULARIZERS["guided"].params if param.name == name]
        option("--" + name.replace("_", "-"), choices=param.choices,
               help=_declared_help(name, f"guided: {param.help} (default {param.default})"))
    option("--lam-warmup-epochs", type=float, help="lam ramps linearly from 0 over these first epochs (default 0)")
    option("--mu", type=float, help=_declared_help("mu", "score matching: weight of h^2"))
    option("--sigma", type=float, help=_declared_help("sigma", "score matching: noise of the Hessian-trace estimate"))
    option("--tau", type=float, help=_declared_help("tau", "anti-score-matching: clamp of the Hessian trace"))
    option("--samples", type=int, help=_declared_help("samples", "score matching: noise samples per image"))
    option("--reg-param", action="append", type=_key_value, metavar="NAME=VALUE", help="any other regularizer parameter")
    option("--epochs", type=int, help="default 200")
    option("--batch-size", type=int, help="global batch size (default 128)")
    option("--optimizer", choices=OPTIMIZERS)
    option("--lr", type=float, help="default 0.1")
    option("--momentum", type=float)
    option("--weight-decay", type=float, help="default 5e-4")
    option("--schedule", choices=SCHEDULES, help="default multistep (x gamma at 50%% and 75%% of the epochs)")
    option("--milestones", type=_milestones, help="multistep epochs, e.g. 100,150")
    option("--gamma", type=float)
    option("--warmup-epochs", type=float)
    option("--grad-accumulation", type=int, help="micro-batches per optimizer step")
    option("--clip-grad-norm", type=float)
    option("--seed", type=int)
    option("--device", help="auto (GPU when present), cpu, cuda, cuda:N")
    option("--amp", choices=AMP_MODES, help="autocast: bf16 (not with score matching) or fp16 (no regularizer)")
    option("--workers", type=int, help="processes decoding image-folder images")
    option("--no-channels-last", dest="channels_last", action="store_false")
    option("--alignment-samples", type=int, help="validation images for the gradient cosine (default 512)")
    option("--threads", type=int, help="torch CPU threads (default: the cores this process may use, divided by the "
                                       "processes of a torchrun on this machine; the app's launcher divides them "
                                       "among its running runs)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """The options the user gave, in TrainConfig's terms."""
    given = {key: value for key, value in vars(args).items() if key not in ("command", "resume", "progress", "config_file")}
    params = dict(given.pop("reg_param", []))
    for name in _REGULARIZER_FLAGS:
        if name in given:
            params[name] = given.pop(name)
    if params:
        given["regularizer_params"] = params
    return given


def resume_config(out: str, options: dict[str, Any]) -> TrainConfig:
    """The saved configuration of the run in ``out``, with the few options a resumed run may change."""
    saved = RunDir(out).read_config()
    if saved is None:
        raise ConfigError(f"there is no run to resume in {out} (no config.json)")
    saved.pop("interpgrad_version", None)
    saved.pop("created_at", None)
    saved.pop("init_checkpoint", None)
    config = TrainConfig.from_dict(saved)
    changes = {key: value for key, value in options.items() if key in _CHANGEABLE_ON_RESUME}
    for key, value in options.items():
        if key in _CHANGEABLE_ON_RESUME or key == "preset":
            continue
        current = config.to_dict().get(key)
        if key == "regularizer_params":
            current = {name: config.regularizer_params.get(name) for name in value}
        if _normalised(value) != _normalised(current):
            raise ConfigError(
                f"{out} was trained with {key}={current!r}; resume with the same settings (only "
                f"{', '.join(sorted(_CHANGEABLE_ON_RESUME - {'out'}))} may change) or start a new run"
            )
    return TrainConfig.from_dict({**config.to_dict(), **changes})


def _normalised(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_normalised(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalised(v) for k, v in value.items()}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def refuse_params_without_effect(config: TrainConfig, typed: dict[str, Any]) -> None:
    """A ConfigError when a regularizer parameter the user typed has no effect under the run's other values
    (``--histogram-normalization product`` with ``--error cosine``); a preset's or a config file's values are not
    the user's to be told about, and a typed default changes nothing."""
    declared = REGULARIZERS[config.regularizer].params
    resolve_params(declared, {**config.regularizer_params, **typed}, owner=config.regularizer, explicit=typed)


def run(args: argparse.Namespace) -> int:
    options = _options(args)
    if args.resume:
        if "out" not in options:
            raise ConfigError("--resume needs --out (the run folder to continue)")
        config = resume_config(options["out"], options)
    else:
        config = make_config(options, config_file=getattr(args, "config_file", None))
        refuse_params_without_effect(config, options.get("regularizer_params", {}))
    Trainer(config, resume=args.resume, progress=args.progress).run()
    return 0
