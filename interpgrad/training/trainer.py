"""The trainer: baseline and gradient-regularized training on a CPU, a GPU, or several GPUs/processes (torchrun).

    from interpgrad.training import make_config, train
    train(make_config({"out": "runs/demo", "arch": "resnet18", "width": 0.25, "regularizer": "guided", "epochs": 2}))

What it guarantees:
- Data order and augmentation are a function of (seed, epoch, step, shard): a run resumed from any saved point, or
  split over K processes (DistributedDataParallel), sees exactly the batches an uninterrupted single-process run with
  K gradient-accumulation steps sees.
- A checkpoint and a resume state are written atomically at the end of every epoch; SIGKILL at any moment leaves
  the last complete epoch; SIGTERM (or Ctrl-C) stops after the current step and saves a mid-epoch resume state.
- A non-finite loss or gradient (checked before every optimizer step), or non-finite weights or metrics at an
  epoch's end, stop the run with the reason in ``status.json`` and on the terminal; no checkpoint or resume state is
  written from them, so the last good one stays.
- Bad input (options, data, device, batch sizes) is found before anything is written: no run folder is left behind.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import time
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .._version import __version__
from ..data import build_datasets, check_dataset, normalize
from ..data.transforms import augmentation_from_names, to_float_images
from ..errors import ConfigError, InterpgradError, Remedy
from ..jobs import StopRequest, reason_fields
from ..models import ModelConfig, build_model, unwrap_model
from ..regularizers import LossParts, Regularizer, build_regularizer, gradient_alignment
from ..runtime import keep_freed_memory
from .checkpoint import file_sha256, load_checkpoint, read_checkpoint_metadata, save_checkpoint
from .config import TrainConfig
from .distributed import DistributedContext, setup_distributed
from .run import RunDir
from .state import load_training_state, save_training_state

__all__ = ["DivergenceError", "Trainer", "train"]

_STATUS_INTERVAL_S = 2.0
_NOISE_STREAM = 1  # folded into the seed of the regularizer's noise, so it differs from the augmentation's draws


class DivergenceError(InterpgradError):
    """The loss, the gradients, the weights or a metric became NaN or infinite. Resuming refuses changed settings,
    so the remedy is a new run with gentler ones."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"{problem}; the last good checkpoint is kept", Remedy("gentler_training"))


@dataclass
class _Batches:
    """The training split in memory as uint8 images (normalised and augmented batch by batch) and labels."""

    images: torch.Tensor  # uint8 [N, H, W, 3]
    labels: torch.Tensor  # int64 [N]


def _load_images(dataset: Any, workers: int) -> torch.Tensor:
    """All images of ``dataset`` as uint8 [N, H, W, 3]; image folders are decoded by ``workers`` processes."""
    if workers > 0 and hasattr(dataset, "load_uint8") and getattr(dataset, "_images", None) is None:
        loader = torch.utils.data.DataLoader(
            range(len(dataset)), batch_size=64, num_workers=workers,
            collate_fn=lambda indices: np.stack([dataset.load_uint8(i) for i in indices]),
        )
        return torch.from_numpy(np.concatenate(list(loader)))
    return torch.from_numpy(np.array(dataset.images))  # a writable copy (cached arrays are read-only)


def _seed_for(*parts: int) -> int:
    """A 63-bit seed derived from integers (stable across processes and runs)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


@contextmanager
def _seeded_rng(seed: int, device: torch.device) -> Iterator[None]:
    """The global generators (CPU, and ``device``'s when it is a GPU) seeded with ``seed`` inside the block and restored
    after it: draws made inside are a function of ``seed`` and leave the outer stream untouched."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.default_generator.manual_seed(seed)
        if device.type == "cuda":
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield


def _requested_device(name: str) -> torch.device:
    """The device ``--device`` asks for (auto: a GPU when there is one); ConfigError when it is absent. The name's form
    (auto, cpu, cuda, cuda:N) was checked with the config."""
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name}: no CUDA GPU is available; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {name}: there are only {torch.cuda.device_count()} GPUs")
    return device


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def shared_threads(processes: int) -> int:
    """Torch threads for each of ``processes`` processes sharing this machine's cores: max(1, cores // processes).
    More threads than cores made a guided step 7x slower on a busy 2-core machine (5.75 s against 0.77 s)."""
    return max(1, available_cores() // max(1, processes))


def requested_threads() -> int | None:
    """The thread count the environment asks for (``OMP_NUM_THREADS``, a positive whole number), or None."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


class Trainer:
    """One training run (see the module docstring). ``progress``: a tqdm bar per epoch on the terminal."""

    def __init__(self, config: TrainConfig, *, progress: bool = True, resume: bool = False,
                 log: Callable[[str], None] | None = None) -> None:
        self.config = config.validated()
        self.resume = resume
        self.progress = progress
        self.run_dir = RunDir(self.config.out)
        self._log_function = log
        self.distributed = DistributedContext()
        self._claimed = False  # the run folder is ours to write (checked, not another run's)

    # set-up -------------------------------------------------------------------------------------------------------

    def _log(self, message: str) -> None:
        if self.distributed.is_main:
            (self._log_function or (lambda text: print(text, flush=True)))(message)

    def _check_run_folder(self) -> None:
        """The run folder can be created (or continued) at ``--out``; nothing is written yet."""
        path = self.run_dir.path
        if not self.config.out:
            raise ConfigError("--out (the run folder) is required")
        if self.run_dir.exists() and not self.resume:
            raise ConfigError(f"{path} already holds a run", Remedy("resume_or_rename"))
        existing = _nearest_existing(path)
        if not existing.is_dir():
            raise ConfigError(f"--out {path}: {existing} is a file, not a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(f"--out {path}: {existing} is not writable")

    def _make_run_folder(self) -> None:
        """Create the run folder: the first thing written, after every check."""
        try:
            self.run_dir.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"--out {self.run_dir.path}: cannot create the run folder ({error.strerror})") from None

    def _micro_batch(self) -> int:
        """The images one process trains on per micro-batch."""
        config = self.config
        shards = self.distributed.world_size * config.grad_accumulation
        if config.batch_size % shards:
            raise ConfigError(
                f"--batch-size {config.batch_size} must be divisible by processes x --grad-accumulation = {shards}"
            )
        micro_batch = config.batch_size // shards
        if micro_batch < 2:
            raise ConfigError(f"each process would train on batches of {micro_batch}; batch norm needs at least 2")
        return micro_batch

    def _launched_for_us(self) -> bool:
        """Whether the launcher created the run folder for this very process (its status names our pid as starting):
        then the folder exists anyway, and a failure in set-up is worth recording there for the app."""
        status = self.run_dir.read_status()
        return bool(status.get("starting")) and status.get("pid") == os.getpid()

    def _setup(self) -> None:
        """Check everything a user can get wrong, load the data and build the model before claiming the run folder:
        bad input leaves nothing behind (no folder that the app would list as a failed run)."""
        config = self.config
        device = _requested_device(config.device)
        self.distributed = setup_distributed(device.type == "cuda")
        if device.type == "cuda" and self.distributed.enabled:
            device = torch.device("cuda", self.distributed.local_rank)
        self.device = device
        self._claimed = self.distributed.is_main and self._launched_for_us()
        self._check_run_folder()
        check_dataset(config.dataset, config.data_root, config.download)
        self.micro_batch = self._micro_batch()
        if self.device.type == "cpu":
            keep_freed_memory()
        # --threads, else OMP_NUM_THREADS (the user's or torchrun's choice), else the cores shared by this job's processes
        self.threads = (config.threads or requested_threads()
                        or shared_threads(int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
        torch.set_num_threads(self.threads)
        torch.manual_seed(config.seed)

        train_set, val_set, info = build_datasets(
            config.dataset, root=config.data_root, image_size=config.image_size, seed=config.seed,
            n_train=config.n_train, n_val=config.n_val, normalize=config.resolved_normalize, download=config.download,
        )
        self.info = info
        self.train_data = _Batches(_load_images(train_set, config.workers), torch.tensor(train_set.labels))
        self.val_data = _Batches(_load_images(val_set, config.workers), torch.tensor(val_set.labels))
        self.steps_per_epoch = len(self.train_data.labels) // config.batch_size
        if self.steps_per_epoch == 0:
            raise ConfigError(f"{len(self.train_data.labels)} training images are fewer than one batch of {config.batch_size}")
        self.augmentation = augmentation_from_names(info.augment) if config.augment else None

        self.model_config = ModelConfig(
            arch=config.arch, num_classes=info.num_classes, width=config.width, image_size=info.image_size,
            activation=config.resolved_activation, softplus_beta=config.softplus_beta,
        )
        model = build_model(self.model_config, pretrained=config.pretrained)
        self.init = None
        if config.init is not None and not (self.resume and self.run_dir.can_resume()):
            self.init = self._load_init(model)
        model = model.to(self.device)
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        model = model.to(memory_format=self.memory_format)
        if self.distributed.enabled:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        self.model = model
        self.optimizer = self._optimizer()
        self.regularizer: Regularizer = build_regularizer(config.regularizer, **config.regularizer_params)
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.amp)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.amp == "fp16")
        if self.distributed.is_main:
            self._make_run_folder()
        self._claimed = True  # every check passed: from here on a failure is recorded in the run folder
        self.distributed.barrier()  # every process has checked the run folder before rank 0 writes into it

    def _load_init(self, model: nn.Module) -> dict[str, str]:
        """Load ``--init``'s weights into ``model`` (a ConfigError of one line when its architecture or classes differ);
        returns its path and sha256 for the run's metadata."""
        from ..errors import CheckpointError

        path = Path(self.config.init)
        try:
            metadata = read_checkpoint_metadata(path)
        except (CheckpointError, OSError) as error:
            raise ConfigError(f"--init {path}: {str(error).splitlines()[0]}") from None
        theirs = metadata.get("model", {})
        ours = self.model_config.to_dict()
        differences = [f"{key} {theirs.get(key)!r} (this run: {ours[key]!r})"
                       for key in ("arch", "num_classes", "width", "activation", "softplus_beta")
                       if key in ours and theirs.get(key) != ours[key]
                       and (key != "softplus_beta" or ours.get("activation") == "softplus")]
        if differences:
            raise ConfigError(f"--init {path} cannot start this run: it has {', '.join(differences)}")
        loaded = load_checkpoint(path)
        model.load_state_dict(loaded.model.state_dict())
        from .checkpoint import checkpoint_path

        weights = checkpoint_path(path)
        return {"path": str(weights.resolve()), "sha256": file_sha256(weights)}

    def _set_lam(self, epoch: int, step: int) -> float | None:
        """The regularizer's lam at this position: ramped linearly from 0 over ``lam_warmup_epochs``."""
        if "lam" not in self.regularizer.config:
            return None
        lam = self.regularizer.config["lam"]
        warmup = self.config.lam_warmup_epochs
        if warmup > 0:
            lam *= min(1.0, (epoch + step / self.steps_per_epoch) / warmup)
        self.regularizer.lam = lam
        return lam

    def _optimizer(self) -> torch.optim.Optimizer:
        config, params = self.config, self.model.parameters()
        if config.optimizer == "sgd":
            return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
        optimizer_class = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
        return optimizer_class(params, lr=config.lr, weight_decay=config.weight_decay)

    def learning_rate(self, epoch: int, step: int) -> float:
        """The schedule as a pure function of the position (so resuming needs no scheduler state)."""
        config = self.config
        position = epoch + step / self.steps_per_epoch
        if config.schedule == "multistep":
            factor = config.gamma ** sum(position >= milestone for milestone in config.resolved_milestones)
        elif config.schedule == "cosine":
            factor = 0.5 * (1 + math.cos(math.pi * min(position / config.epochs, 1.0)))
        else:
            factor = 1.0
        if config.warmup_epochs > 0 and position < config.warmup_epochs:
            factor *= (position + 1 / self.steps_per_epoch) / config.warmup_epochs
        return config.lr * factor

    # data ---------------------------------------------------------------------------------------------------------

    def _prepare(self, images: torch.Tensor, augmentation_seed: int | None = None) -> torch.Tensor:
        """uint8 images as the model's input: in [0, 1], augmented (with ``augmentation_seed``), then normalised. The
        crop pads before normalising, so its padding is black, as torchvision's RandomCrop(padding=4) ahead of
        Normalize in both papers' code (zeros after normalising would be the dataset's mean colour)."""
        x = to_float_images(images.to(self.device, non_blocking=True))
        if self.augmentation is not None and augmentation_seed is not None:
            generator = torch.Generator().manual_seed(augmentation_seed)
            x = self.augmentation.apply(x, self.augmentation.sample(len(x), generator))
        if self.info.normalized:
            x = normalize(x, self.info.mean, self.info.std, inplace=True)
        return x.contiguous(memory_format=self.memory_format)

    def _shards(self, epoch: int, step: int) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """This process's micro-batches of global step ``step`` as (shard, x, y): shard j = rank * accumulation + micro."""
        config = self.config
        order = torch.randperm(len(self.train_data.labels), generator=torch.Generator().manual_seed(_seed_for(config.seed, epoch)))
        batch = order[step * config.batch_size:(step + 1) * config.batch_size]
        for micro in range(config.grad_accumulation):
            shard = self.distributed.rank * config.grad_accumulation + micro
            indices = batch[shard * self.micro_batch:(shard + 1) * self.micro_batch]
            x = self._prepare(self.train_data.images[indices], _seed_for(config.seed, epoch, step, shard))
            yield shard, x, self.train_data.labels[indices].to(self.device)

    def _noise(self, epoch: int, step: int, shard: int) -> Any:
        """Where the regularizer's random draws (score matching's noise) come from on this shard. Every process seeds
        the global generator alike, so without this every rank would draw rank 0's noise. Rank 0 (and a single
        process) continues the global stream, which the resume state saves; any other rank draws from a stream seeded
        by (seed, epoch, step, shard), which needs no saved state to resume exactly."""
        if self.distributed.is_main:
            return nullcontext()
        return _seeded_rng(_seed_for(self.config.seed, epoch, step, shard, _NOISE_STREAM), self.device)

    # training -----------------------------------------------------------------------------------------------------

    def _autocast(self) -> Any:
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _train_step(self, epoch: int, step: int, totals: torch.Tensor) -> None:
        """One optimizer step over the global batch; adds (loss, classification, regularization, alignment, correct,
        count) of this process's samples into ``totals``."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(epoch, step)
        self._set_lam(epoch, step)
        self.optimizer.zero_grad(set_to_none=True)
        accumulation = self.config.grad_accumulation
        for micro, (shard, x, y) in enumerate(self._shards(epoch, step)):
            sync = nullcontext()
            if self.distributed.enabled and micro < accumulation - 1:
                sync = self.model.no_sync()
            with sync:
                with self._autocast(), self._noise(epoch, step, shard):
                    parts = self.regularizer(self.model, x, y)
                self._check_finite(parts, epoch, step)
                self.scaler.scale(parts.total / accumulation).backward()
            totals += self._batch_totals(parts, y)
        norm = None
        if self.config.clip_grad_norm:
            self.scaler.unscale_(self.optimizer)
            norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_grad_norm)
        self._check_gradients(norm, epoch, step)
        self.scaler.step(self.optimizer)
        self.scaler.update()

    @staticmethod
    def _batch_totals(parts: LossParts, y: torch.Tensor) -> torch.Tensor:
        """(loss, classification, regularization, alignment) summed over the batch, correct predictions, count."""
        count = len(y)
        nan = torch.tensor(float("nan"), device=y.device)
        means = [parts.total, parts.classification, parts.regularization,
                 parts.alignment if parts.alignment is not None else nan]
        sums = [mean.detach().float() * count for mean in means]
        correct = (parts.logits.argmax(1) == y).sum().float()
        return torch.stack([*sums, correct, torch.tensor(float(count), device=y.device)]).to("cpu", torch.float64)

    def _check_finite(self, parts: LossParts, epoch: int, step: int) -> None:
        bad = not bool(torch.isfinite(parts.total.detach()).item())
        if self.distributed.any(bad, self.device):
            values = ", ".join(f"{k}={v:.4g}" for k, v in parts.as_dict().items())
            raise DivergenceError(
                f"the loss became non-finite at epoch {epoch + 1}, step {step + 1} ({values})"
            )

    def _check_gradients(self, norm: torch.Tensor | None, epoch: int, step: int) -> None:
        """Before the optimizer step: a finite loss can still have NaN or infinite gradients, which would step the
        weights into NaN. ``norm``: the total gradient norm when clipping computed it already. Under fp16 the
        GradScaler owns this check (inf gradients are normal there: it skips the step and lowers the scale). After
        DistributedDataParallel's all-reduce every process holds the same gradients; the flag is shared anyway so that
        all stop together."""
        if self.scaler.is_enabled():
            return
        if norm is None:
            gradients = [p.grad for p in self.model.parameters() if p.grad is not None]
            norm = nn.utils.get_total_norm(gradients) if gradients else torch.zeros((), device=self.device)
        if self.distributed.any(not bool(torch.isfinite(norm).item()), self.device):
            raise DivergenceError(
                f"the gradients became non-finite at epoch {epoch + 1}, step {step + 1} (norm {float(norm):.4g}) "
                "while the loss was finite"
            )

    def _check_epoch(self, epoch: int, metrics: dict[str, Any]) -> None:
        """Before anything of an epoch is saved: its weights, buffers and metrics are finite (a checkpoint or resume
        state with NaN weights would be taken for the last good one, and NaN is not valid JSON in metrics.jsonl)."""
        model = unwrap_model(self.model)
        bad = [f"{key}={value:.4g}" for key, value in metrics.items()
               if isinstance(value, float) and not math.isfinite(value)]
        bad += [f"weights {name}" for name, tensor in model.state_dict().items()
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())][:3]
        if self.distributed.any(bool(bad), self.device):
            raise DivergenceError(
                f"the model became non-finite in epoch {epoch + 1} ({', '.join(bad) or 'on another process'})"
            )

    @staticmethod
    def _means(totals: torch.Tensor, prefix: str) -> dict[str, float]:
        loss, classification, regularization, alignment, correct, count = totals.tolist()
        count = max(count, 1.0)
        means = {
            f"{prefix}_loss": loss / count,
            f"{prefix}_classification": classification / count,
            f"{prefix}_regularization": regularization / count,
            f"{prefix}_accuracy": correct / count,
        }
        if not math.isnan(alignment):  # the regularizer's own view: training batch, its batchnorm mode and gradient_of
            means[f"{prefix}_alignment_batch"] = alignment / count
        return means

    # evaluation ---------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def _evaluate_loss(self, model: nn.Module) -> tuple[float, float]:
        """(mean cross-entropy, accuracy) on the validation split, shared out over the processes."""
        labels = self.val_data.labels
        share = torch.arange(self.distributed.rank, len(labels), self.distributed.world_size)
        totals = torch.zeros(3, dtype=torch.float64)
        for start in range(0, len(share), 256):
            indices = share[start:start + 256]
            x = self._prepare(self.val_data.images[indices])
            y = labels[indices].to(self.device)
            with self._autocast():
                logits = model(x)
            totals += torch.tensor([F.cross_entropy(logits.float(), y, reduction="sum").item(),
                                    (logits.argmax(1) == y).sum().item(), len(indices)], dtype=torch.float64)
        loss, correct, count = self.distributed.sum(totals.to(self.device)).tolist()
        return loss / max(count, 1), correct / max(count, 1)

    def _evaluate_alignment(self, model: nn.Module) -> dict[str, float]:
        """As explanations see it (the model in eval mode, per image): mean cos(standard, guided) of the loss gradients
        (``val_alignment_eval``) and of the target logit's gradients (``val_alignment_logit_eval``) over the first
        ``alignment_samples`` validation images."""
        count = min(self.config.alignment_samples, len(self.val_data.labels))
        if count == 0:
            return {}
        cosines: dict[str, list[torch.Tensor]] = {"loss": [], "logit": []}
        for start in range(0, count, 128):
            indices = torch.arange(start, min(start + 128, count))
            x = self._prepare(self.val_data.images[indices])
            y = self.val_data.labels[indices].to(self.device)
            for of, values in cosines.items():
                values.append(gradient_alignment(model, x, y, of=of).float().cpu())
        return {"val_alignment_eval": float(torch.cat(cosines["loss"]).mean()),
                "val_alignment_logit_eval": float(torch.cat(cosines["logit"]).mean())}

    def _evaluate(self) -> dict[str, float]:
        model = unwrap_model(self.model)
        model.eval()
        try:
            loss, accuracy = self._evaluate_loss(model)
            metrics = {"val_loss": loss, "val_accuracy": accuracy}
            if self.distributed.is_main:
                metrics.update(self._evaluate_alignment(model))
        finally:
            model.train()
        return metrics

    # saving -------------------------------------------------------------------------------------------------------

    def _progress_state(self, epoch: int, step: int, totals: torch.Tensor, history: list[dict[str, Any]], elapsed: float) -> dict[str, Any]:
        return {"epoch": epoch, "step": step, "totals": totals.tolist(), "history": history, "epoch_elapsed": elapsed}

    def _save(self, epoch: int, step: int, totals: torch.Tensor, history: list[dict[str, Any]], elapsed: float) -> None:
        """The resume state first, then what derives from it (each file atomic). The resume state holds the model and
        the metrics history, so ``--resume`` rewrites the rest from it: a kill between these writes loses nothing."""
        if not self.distributed.is_main:
            return
        save_training_state(self.run_dir.resume_path, self.model, self.optimizer,
                            self._progress_state(epoch, step, totals, history, elapsed), self.scaler)
        self._write_outputs(history, checkpoint=step == 0)

    def _write_outputs(self, history: list[dict[str, Any]], checkpoint: bool) -> None:
        """metrics.jsonl from ``history`` and, with ``checkpoint`` (the model is the one after the last epoch of
        ``history``), the model checkpoint."""
        self.run_dir.write_metrics(history)
        if checkpoint and history:
            save_checkpoint(
                self.run_dir.checkpoint_path, self.model, self.model_config, data=self.info,
                training=self.config.to_dict(), regularizer={"name": self.regularizer.name, "params": self.regularizer.config},
                metrics=history[-1], epochs_completed=len(history), name=self.run_dir.name,
                **({"init": self._init_record()} if self.config.init else {}),
            )

    def _init_record(self) -> dict[str, str] | None:
        """The fine-tuned checkpoint's path and sha256 (of this process's load, or as config.json recorded it)."""
        if self.init is not None:
            return self.init
        return (self.run_dir.read_config() or {}).get("init_checkpoint")

    def _status(self, state: str, epoch: int, step: int, history: list[dict[str, Any]], **extra: Any) -> None:
        if self.distributed.is_main:
            self.run_dir.write_status(
                state, pid=os.getpid(), host=socket.gethostname(), epoch=epoch, epochs=self.config.epochs,
                step=step, steps_per_epoch=self.steps_per_epoch, world_size=self.distributed.world_size,
                device=str(self.device), last_metrics=history[-1] if history else None, **extra,
            )

    # the loop -----------------------------------------------------------------------------------------------------

    def _start_or_resume(self) -> tuple[int, int, torch.Tensor, list[dict[str, Any]], float]:
        empty = torch.zeros(6, dtype=torch.float64)
        if self.resume and self.run_dir.can_resume():
            progress = load_training_state(self.run_dir.resume_path, self.model, self.optimizer, self.scaler, self.device)
            if self.distributed.is_main and progress["step"] == 0:  # an epoch's end: complete what a kill interrupted
                self._write_outputs(progress["history"], checkpoint=True)
            self._log(f"resuming {self.run_dir.path} at epoch {progress['epoch'] + 1}, step {progress['step']}")
            return (progress["epoch"], progress["step"], torch.tensor(progress["totals"], dtype=torch.float64),
                    progress["history"], progress.get("epoch_elapsed", 0.0))
        if self.resume:
            self._log(f"nothing to resume in {self.run_dir.path} (no complete epoch yet): starting from scratch")
        return 0, 0, empty, [], 0.0

    def run(self) -> list[dict[str, Any]]:
        """Train; returns the metrics history (one dict per epoch). A failure after the run folder was claimed is
        recorded in its status with the reason."""
        try:
            self._setup()
            return self._run()
        except BaseException as error:
            if self._claimed and self.distributed.is_main and self.run_dir.read_status().get("state") != "failed":
                with suppress(OSError):  # the folder went away or became unwritable: the error itself matters more
                    self.run_dir.write_status("failed", pid=os.getpid(), **reason_fields(error))
            raise
        finally:
            self.distributed.close()

    def _run(self) -> list[dict[str, Any]]:
        config = self.config
        if self.distributed.is_main:
            saved = self.run_dir.read_config() or {}
            created = saved.get("created_at", time.time())
            extra = {"init_checkpoint": self.init or saved.get("init_checkpoint")} if config.init else {}
            self.run_dir.write_config({**config.to_dict(), "interpgrad_version": __version__, "created_at": created,
                                       **extra})
        epoch, start_step, totals, history, elapsed = self._start_or_resume()
        started = time.time()
        with StopRequest() as stop:  # before "running" is announced: a stop request from then on is always clean
            self._status("running", epoch, start_step, history, started_at=started)
            self._log(self._describe())
            while epoch < config.epochs:
                epoch_start = time.perf_counter() - elapsed
                bar = tqdm(range(start_step, self.steps_per_epoch), desc=f"epoch {epoch + 1}/{config.epochs}",
                           disable=None if self.progress and self.distributed.is_main else True,
                           leave=False, dynamic_ncols=True, file=sys.stderr)
                last_status = time.perf_counter()
                step = start_step
                try:
                    for step in bar:
                        self._train_step(epoch, step, totals)
                        if time.perf_counter() - last_status > _STATUS_INTERVAL_S:
                            self._status("running", epoch, step + 1, history, started_at=started)
                            last_status = time.perf_counter()
                        bar.set_postfix(self._postfix(totals), refresh=False)
                        if self.distributed.any(stop.signal is not None, self.device):
                            return self._stop(epoch, step + 1, totals, history, time.perf_counter() - epoch_start, started)
                    lam = self._set_lam(epoch, self.steps_per_epoch - 1)
                    metrics = {"epoch": epoch + 1, "lr": self.learning_rate(epoch, self.steps_per_epoch - 1),
                               **({"lam": lam} if lam is not None and config.lam_warmup_epochs > 0 else {}),
                               **self._means(self.distributed.sum(totals.to(self.device)).cpu(), "train"),
                               **self._evaluate(), "epoch_time_s": time.perf_counter() - epoch_start}
                    self._check_epoch(epoch, metrics)
                except DivergenceError as error:
                    self._status("failed", epoch, step, history, started_at=started, **reason_fields(error))
                    raise
                finally:
                    bar.close()
                history.append(metrics)
                epoch, start_step, elapsed = epoch + 1, 0, 0.0
                totals = torch.zeros(6, dtype=torch.float64)
                self._save(epoch, 0, totals, history, 0.0)
                self._log(self._summary(metrics))
                self._status("running", epoch, 0, history, started_at=started)
        self._status("finished", epoch, 0, history, started_at=started, finished_at=time.time())
        self._log(f"finished: {self.run_dir.checkpoint_path}")
        return history

    def _stop(self, epoch: int, step: int, totals: torch.Tensor, history: list[dict[str, Any]], elapsed: float,
              started: float) -> list[dict[str, Any]]:
        self._save(epoch, step, totals, history, elapsed)
        self._status("stopped", epoch, step, history, started_at=started,
                     **reason_fields("stopped and saved", Remedy("resume")))
        self._log(f"stopped at epoch {epoch + 1}, step {step}; saved; continue with --resume")
        return history

    # reporting ----------------------------------------------------------------------------------------------------

    @staticmethod
    def _postfix(totals: torch.Tensor) -> dict[str, str]:
        count = max(float(totals[5]), 1.0)
        postfix = {"loss": f"{float(totals[0]) / count:.3f}", "acc": f"{float(totals[4]) / count:.3f}"}
        if not math.isnan(float(totals[3])):
            postfix["cos"] = f"{float(totals[3]) / count:.3f}"
        return postfix

    def _describe(self) -> str:
        config = self.config
        params = ", ".join(f"{k}={v}" for k, v in self.regularizer.config.items())
        return (f"training {config.arch} (width {config.width}, {self.model_config.activation}) on {config.dataset} "
                f"({len(self.train_data.labels)} train / {len(self.val_data.labels)} val images, "
                f"{self.info.image_size}px) with regularizer {config.regularizer}{f' ({params})' if params else ''} "
                f"on {self.device}{f' x {self.distributed.world_size} processes' if self.distributed.enabled else ''}"
                f"{f' ({self.threads} threads)' if self.device.type == 'cpu' else ''}"
                f"{f', fine-tuning {self.config.init}' if self.config.init else ''}; "
                f"{config.epochs} epochs of {self.steps_per_epoch} steps -> {self.run_dir.path}")

    @staticmethod
    def _summary(metrics: dict[str, Any]) -> str:
        parts = [f"epoch {metrics['epoch']}"]
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "train_alignment_batch",
                    "val_alignment_eval", "val_alignment_logit_eval"):
            if key in metrics:
                parts.append(f"{key} {metrics[key]:.4f}")
        parts.append(f"{metrics['epoch_time_s']:.1f}s")
        return " | ".join(parts)


def train(config: TrainConfig, *, resume: bool = False, progress: bool = True) -> list[dict[str, Any]]:
    """Run ``config``; returns the metrics history. See :class:`Trainer`."""
    return Trainer(config, progress=progress, resume=resume).run()
