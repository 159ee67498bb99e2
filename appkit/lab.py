"""Helpers of the Gradient lab page: the tiny network of its first section (standard vs guided backward, every
intermediate signal), the zoo's Softplus models, judges and fooled models, the paper's reference numbers, and the
figures of the page. The experiments themselves are ``interpgrad.lab``'s; nothing here reimplements them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

import interpgrad
from interpgrad.zoo import ModelEntry

__all__ = ["DATA", "DEFAULT_JUDGE", "DENSITY", "DENSITY_SECONDS", "FOOLED_REGULARIZERS", "JUDGE_COMMAND", "KEEP",
           "PANEL", "PAPER_GAN_TEST", "PATTERN_LABELS", "PERTURBATION", "PERTURBATION_SECONDS", "RESAMPLES",
           "SAMPLING", "SCALES", "SECONDS_PER_STEP", "TINY_CLASSES", "TINY_SIZES", "ArbitraryDemo", "NotCached", "ReluLayer",
           "TinyBackward", "activation", "arbitrary_demo", "cached_curves", "cached_density", "cached_gan",
           "cached_samples", "curves_figure", "dataset_of", "describe", "fool_command", "fooled_entries",
           "fooled_original", "forget_lookups", "from_cache", "gan_test_figure", "gan_test_table", "heat_table",
           "input_size", "judge_entries", "keep_valid", "lab_data", "lab_dir_stamp", "lab_model", "pattern_spec",
           "perturbation_fractions", "pixel_image", "regularizer_label", "relu_table", "signed_map_image",
           "softplus_entries", "tiny_backward", "tiny_input", "tiny_network", "train_commands"]

# --- Section 1: a tiny network, its two backward rules spelled out ------------------------------------------------

TINY_SIZES = (8, 6, 5, 3)  # input, hidden ReLU layer 1, hidden ReLU layer 2, logits
TINY_CLASSES = ("A", "B", "C")


def tiny_network(seed: int = 0) -> nn.Sequential:
    """A fixed two-hidden-layer ReLU network ``8 -> 6 -> 5 -> 3`` with seeded weights, eval mode: small enough to
    print every unit of its backward pass."""
    generator = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(zip(TINY_SIZES, TINY_SIZES[1:])):
        linear = nn.Linear(fan_in, fan_out)
        with torch.no_grad():
            linear.weight.copy_(0.7 * torch.randn(fan_out, fan_in, generator=generator))
            linear.bias.copy_(0.1 * torch.randn(fan_out, generator=generator))
        layers.append(linear)
        if index < len(TINY_SIZES) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).eval()


def tiny_input(seed: int, scale: float) -> torch.Tensor:
    """The input of the tiny network: ``scale`` times a seeded standard normal vector of 8 values, ``[1, 8]``."""
    return scale * torch.randn(1, TINY_SIZES[0], generator=torch.Generator().manual_seed(seed))


@dataclass(frozen=True)
class ReluLayer:
    """One ReLU layer of the tiny network's backward pass (each a vector over its units): ``u`` the pre-activation,
    ``mask`` 1[u > 0], ``incoming`` the backward signal dv arriving at its output and ``passed`` what the rule lets
    through, for the standard and the guided rule (their incoming signals differ below the top layer)."""

    u: np.ndarray
    mask: np.ndarray
    incoming_standard: np.ndarray
    passed_standard: np.ndarray
    incoming_guided: np.ndarray
    passed_guided: np.ndarray


@dataclass(frozen=True)
class TinyBackward:
    """The tiny network on one input: logits, target, the ReLU layers (first to last), and the input gradient of the
    target logit under each rule twice: by the arithmetic spelled out here (``*_by_hand``) and by the engine
    (``interpgrad.input_gradient``), which the page shows."""

    x: np.ndarray
    logits: np.ndarray
    target: int
    layers: tuple[ReluLayer, ...]
    standard_by_hand: np.ndarray
    guided_by_hand: np.ndarray
    standard: np.ndarray
    guided: np.ndarray

    @property
    def disagreement(self) -> float:
        """max |by hand - engine| over both rules: 0 up to float rounding."""
        return float(max(np.abs(self.standard_by_hand - self.standard).max(),
                         np.abs(self.guided_by_hand - self.guided).max()))


def tiny_backward(network: nn.Sequential, x: torch.Tensor, target: int | None = None) -> TinyBackward:
    """Every signal of the backward pass of ``network`` (``tiny_network``) at ``x`` ``[1, 8]`` for the ``target``
    logit (None: the predicted class). Standard rule ``du = 1[u > 0] dv``, guided ``du = 1[u > 0] max(dv, 0)``."""
    linears = [module for module in network if isinstance(module, nn.Linear)]
    with torch.no_grad():
        pre, h = [], x[0].double()
        for linear in linears[:-1]:
            u = linear.weight.double() @ h + linear.bias.double()
            pre.append(u)
            h = u.clamp(min=0)
        logits = linears[-1].weight.double() @ h + linears[-1].bias.double()
        chosen = int(logits.argmax()) if target is None else int(target)
        standard = guided = linears[-1].weight.double()[chosen]
        layers = []
        for linear, u in zip(reversed(linears[:-1]), reversed(pre)):
            mask = (u > 0).double()
            passed_standard, passed_guided = mask * standard, mask * guided.clamp(min=0)
            layers.append(ReluLayer(u.numpy(), mask.numpy(), standard.numpy(), passed_standard.numpy(),
                                    guided.numpy(), passed_guided.numpy()))
            standard, guided = linear.weight.double().T @ passed_standard, linear.weight.double().T @ passed_guided
    engine = {rule: interpgrad.input_gradient(network, x, chosen, rule=rule)[0].double().numpy()
              for rule in ("standard", "guided")}
    return TinyBackward(x[0].double().numpy(), logits.numpy(), chosen, tuple(reversed(layers)), standard.numpy(),
                        guided.numpy(), engine["standard"], engine["guided"])


def relu_table(layer: ReluLayer) -> dict[str, list[float]]:
    """The rows of one ReLU layer's table (columns: its units)."""
    return {
        "u (pre-activation)": layer.u.tolist(),
        "forward mask 1[u > 0]": layer.mask.tolist(),
        "standard: incoming dv": layer.incoming_standard.tolist(),
        "standard: passed 1[u>0] dv": layer.passed_standard.tolist(),
        "guided: incoming dv": layer.incoming_guided.tolist(),
        "guided: passed 1[u>0] max(dv,0)": layer.passed_guided.tolist(),
    }


# --- The zoo: which models each section uses ------------------------------------------------------------------------

def activation(entry: ModelEntry) -> str:
    return str(entry.section("model").get("activation") or "relu")


def input_size(entry: ModelEntry) -> Any:
    return entry.section("model").get("image_size") or entry.section("data").get("image_size")


def softplus_entries(entries: Sequence[ModelEntry]) -> list[ModelEntry]:
    """The usable models with Softplus activations (the Srinivas & Fleuret setting), shipped ones first; models
    fine-tuned to fool their gradients belong to section 2, not here."""
    found = [entry for entry in entries if entry.usable and activation(entry) == "softplus"
             and entry.regularizer not in FOOLED_REGULARIZERS]
    return sorted(found, key=lambda entry: (entry.source != "shipped", _regularizer_order(entry), entry.name))


_ORDER = ("none", "score_matching", "anti_score_matching", "gradient_norm")


def _regularizer_order(entry: ModelEntry) -> int:
    return _ORDER.index(entry.regularizer) if entry.regularizer in _ORDER else len(_ORDER)


DEFAULT_JUDGE = "shapes-mobilenetv2-baseline"


def judge_entries(entries: Sequence[ModelEntry], generators: Sequence[ModelEntry]) -> list[ModelEntry]:
    """Candidate GAN-test judges: usable non-Softplus models with the generators' classes and input size, another
    architecture than theirs first, the shipped ``shapes-mobilenetv2-baseline`` at the top when present; models
    fine-tuned to fool their gradients are left out."""
    kinds = {(tuple(entry.class_names), input_size(entry)) for entry in generators}
    archs = {entry.arch for entry in generators}
    found = [entry for entry in entries if entry.usable and activation(entry) != "softplus"
             and entry.regularizer not in FOOLED_REGULARIZERS
             and (not kinds or (tuple(entry.class_names), input_size(entry)) in kinds)]
    return sorted(found, key=lambda entry: (not (entry.name == DEFAULT_JUDGE and entry.source == "shipped"),
                                            entry.arch in archs, entry.source != "shipped", entry.name))


FOOLED_REGULARIZERS = ("gradient_pattern", "pattern")


def fooled_entries(entries: Sequence[ModelEntry]) -> list[ModelEntry]:
    """Models fine-tuned so that their logit gradients match a pattern (their regularizer is the pattern one)."""
    return [entry for entry in entries if entry.usable and entry.regularizer in FOOLED_REGULARIZERS]


# --- The paper's numbers --------------------------------------------------------------------------------------------

# GAN-test, Table 1 of Srinivas & Fleuret (ICLR 2021), CIFAR-100, ResNet-18 (accuracy of the judge on the samples, %).
PAPER_GAN_TEST: dict[str, float] = {"none": 59.47, "anti_score_matching": 16.40, "gradient_norm": 80.07,
                                    "score_matching": 72.75}


def describe(value: Any) -> str:
    return "—" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def keep_valid(key: str, options: Sequence[Any]) -> None:
    """Before a single-choice widget is drawn: forget its kept value when it no longer offers it (a deleted model,
    ascent steps of other settings)."""
    import streamlit as st

    if key in st.session_state and st.session_state[key] not in list(options):
        del st.session_state[key]


# --- Tables and maps --------------------------------------------------------------------------------------------------

def heat_table(rows: dict[str, Sequence[float]], columns: Sequence[str], digits: int = 2) -> Any:
    """A table (one row per entry of ``rows``) coloured on a diverging scale, 0 white, each row on its own symmetric
    scale (the largest |value| of the row, at least 1e-12): a pandas Styler for ``st.dataframe``."""
    import pandas as pd

    frame = pd.DataFrame([list(values) for values in rows.values()], index=list(rows), columns=list(columns)) + 0.0
    # (+ 0.0 turns -0.0, a negative signal masked out, into 0.0: shown as +0.00, not -0.00)
    styler = frame.style.format(f"{{:+.{digits}f}}")
    for name in frame.index:
        limit = max(float(np.abs(frame.loc[name].to_numpy()).max()), 1e-12)
        styler = styler.background_gradient(cmap="RdBu_r", vmin=-limit, vmax=limit, axis=1,
                                            subset=pd.IndexSlice[[name], :])
    return styler


def signed_map_image(gradient: torch.Tensor, size: int = 192) -> tuple[np.ndarray, float]:
    """A gradient ``[C, H, W]`` as a picture: the sum over the channels, on a diverging scale (red positive, blue
    negative, white 0) divided by its largest |value|; returns (RGB uint8, that value)."""
    from interpgrad.viz import colorize, enlarge

    summed = gradient.detach().double().sum(0)
    limit = float(summed.abs().max())
    normalised = (summed / limit if limit > 0 else summed).float()
    return enlarge(colorize(normalised, "RdBu_r", signed=True), size), limit


def pixel_image(x: torch.Tensor, size: int = 192) -> np.ndarray:
    """An image ``[C, H, W]`` in [0, 1] as RGB uint8, enlarged (nearest neighbour) to about ``size`` px."""
    from interpgrad.viz import enlarge

    array = (x.detach().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return enlarge(np.ascontiguousarray(array), size)


# --- Loading models for the lab ---------------------------------------------------------------------------------------

def _cache_resource(function):  # type: ignore[no-untyped-def]
    import streamlit as st

    return st.cache_resource(max_entries=16, show_spinner=False)(function)


@_cache_resource
def _lab_model(path: str, mtime: float) -> Any:
    from interpgrad.lab import load_lab_model

    return load_lab_model(path)


def lab_model(entry: ModelEntry) -> Any:
    """The zoo entry as an ``interpgrad.lab.LabModel`` (pixel space, eval mode), loaded once per file version."""
    return _lab_model(str(entry.path), entry.mtime)


# --- Section 2: gradients are arbitrary -------------------------------------------------------------------------------

PATTERN_LABELS = {"text": "text", "shape": "a shape", "image": "an uploaded image", "smooth": "a smooth random field"}
PANEL = 192  # px: every picture of the page at one width (a long caption would otherwise widen its picture)
SCALES = [0.0, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0]

@dataclass(frozen=True)
class ArbitraryDemo:
    """The original model and the wrapped one (``add_to_logits`` with ``scale * <P, x>``) on one image: their
    logits and probabilities ``[K]``, the target, and the target logit's gradient of each ``[C, H, W]``."""

    logits: np.ndarray
    wrapped_logits: np.ndarray
    probabilities: np.ndarray
    wrapped_probabilities: np.ndarray
    target: int
    gradient: torch.Tensor
    wrapped_gradient: torch.Tensor

    @property
    def probability_difference(self) -> float:
        return float(np.abs(self.probabilities - self.wrapped_probabilities).max())

    @property
    def gradient_cosine(self) -> float:
        a, b = self.gradient.flatten().double(), self.wrapped_gradient.flatten().double()
        return float(a @ b / max(float(a.norm() * b.norm()), 1e-300))


def arbitrary_demo(model: nn.Module, x: torch.Tensor, pattern: torch.Tensor, scale: float) -> ArbitraryDemo:
    """``model`` (pixel space) and ``add_to_logits(model, InnerProductField(pattern, scale))`` on ``x`` ``[1, C, H,
    W]``; the target is the original's predicted class (the wrapped model's too: the softmax is the same)."""
    from interpgrad.lab import InnerProductField, add_to_logits

    wrapped = add_to_logits(model, InnerProductField(pattern, scale))
    with torch.no_grad():
        logits, wrapped_logits = model(x)[0].double(), wrapped(x)[0].double()
    target = int(logits.argmax())
    return ArbitraryDemo(logits.numpy(), wrapped_logits.numpy(), logits.softmax(0).numpy(),
                         wrapped_logits.softmax(0).numpy(), target,
                         interpgrad.input_gradient(model, x, target)[0], interpgrad.input_gradient(wrapped, x, target)[0])


def pattern_spec(entry: ModelEntry) -> dict[str, Any]:
    """The regularizer parameters of a fooled model (``pattern``, ``scale``, ``lam``...) as saved in its metadata."""
    params = entry.section("regularizer").get("params")
    return params if isinstance(params, dict) else {}


def fooled_original(fooled: ModelEntry, entries: Sequence[ModelEntry]) -> ModelEntry | None:
    """The model a fooled one was fine-tuned from (its ``init`` checkpoint, matched by sha256, else by path), when it
    is in the zoo."""
    init = fooled.section("init")  # the trainer records --init's {path, sha256}
    wanted_sha, path = init.get("sha256"), init.get("path")
    others = [entry for entry in entries if entry.usable and entry.key != fooled.key]
    if isinstance(wanted_sha, str):
        for entry in others:
            try:
                if entry.sha256() == wanted_sha:
                    return entry
            except OSError:
                continue
    if isinstance(path, str) and path:
        for entry in others:
            if str(entry.path.resolve()) == path:
                return entry
    return None


# --- Sections 3 and 4: results from the lab's disk cache, computed on request ------------------------------------------

def command_line_defaults(subcommand: str) -> dict[str, Any]:
    """The defaults of ``python -m interpgrad lab SUBCOMMAND`` (its parser's, read rather than copied)."""
    import argparse

    from interpgrad.cli.lab import SUBCOMMANDS

    parser = argparse.ArgumentParser()
    SUBCOMMANDS[subcommand][1](parser)
    return vars(parser.parse_args([]))


# The settings the page measures with: the command line's defaults, so that what `python -m interpgrad lab ...
# --cache auto` computed for a checkpoint is what the page opens on.
_GAN_TEST, _DENSITY, _PERTURB = (command_line_defaults(name) for name in ("gan-test", "density", "perturb"))
SAMPLING = {name: _GAN_TEST[name] for name in ("per_class", "steps", "lr", "wd", "noise", "seed")}
KEEP = tuple(int(step) for step in command_line_defaults("samples")["keep"].split(","))
RESAMPLES = int(_GAN_TEST["resamples"])
DATA = {"split": _DENSITY["split"], "n": int(_DENSITY["n"])}
DENSITY = {name: _DENSITY[name] for name in ("noise_samples", "seed", "clamp")}
PERTURBATION = {"points": int(_PERTURB["points"]), "constant": float(_PERTURB["constant"]), "seed": int(_PERTURB["seed"])}
# Measured on ResNet-18 x0.25 at 32 px (the shipped models' size), 1 CPU thread: for the page's time estimates.
SECONDS_PER_STEP = 0.09  # one ascent step of 10 samples (47 s for 500 steps)
DENSITY_SECONDS = 43.0  # a density-ratio profile on 200 images (14 levels, 4 noise draws)
PERTURBATION_SECONDS = 17.0  # a pixel-perturbation curve on 200 images (25 fractions)


class NotCached(Exception):
    """Raised by the progress callback of a lookup: the result is not in the cache and would have to be computed."""


def _refuse(done: int, total: int) -> None:
    raise NotCached


def from_cache(compute: Any, *args: Any, **kwargs: Any) -> Any:
    """``compute(*args, **kwargs)`` (one of ``interpgrad.lab``'s ``cached_*`` functions) when its result is in the
    disk cache, else None. A missing result stops at the computation's first progress report, with batches of one
    (the batch size is not part of a result's cache key): one ascent step of one sample, one noise level of one
    image, one image's curve; so nothing is kept and little is spent. A GAN-test of cached samples is only the judge's
    forward pass, which is done and kept."""
    try:
        return compute(*args, progress=_refuse, batch_size=1, **kwargs)
    except NotCached:
        return None


def lab_dir_stamp(entries: Sequence[ModelEntry]) -> tuple[float, ...]:
    """The modification times of the models' ``lab/`` cache folders (0 where there is none): part of the page's
    memo keys, so that results another process (the command line) added are seen."""
    from interpgrad.lab import lab_cache_dir

    stamps = []
    for entry in entries:
        folder = lab_cache_dir(entry.path)
        stamps.append(folder.stat().st_mtime if folder.is_dir() else 0.0)
    return tuple(stamps)


def dataset_of(entry: ModelEntry) -> str:
    """The dataset a model was trained on (its training section, else its data section), ``shapes`` by default."""
    return str(entry.section("training").get("dataset") or entry.section("data").get("name") or "shapes")


JUDGE_COMMAND = ("python -m interpgrad train --preset shapes-cpu --arch mobilenet_v2 --width 0.5 --regularizer none "
                 "--out runs/shapes-mobilenetv2-baseline")


def train_commands(judge: bool = True) -> str:
    """The commands that train the Softplus models of the lab on shapes (the Srinivas & Fleuret setting: Softplus(10),
    inputs in [0, 1]) and, with ``judge``, a judge of another architecture."""
    base = "python -m interpgrad train --preset shapes-cpu --activation softplus --normalize false"
    return "\n".join([
        f"{base} --regularizer none --out runs/shapes-resnet18-softplus-baseline",
        f"{base} --regularizer score_matching --out runs/shapes-resnet18-score-matching",
        f"{base} --regularizer anti_score_matching --out runs/shapes-resnet18-anti-score-matching",
        f"{base} --regularizer gradient_norm --out runs/shapes-resnet18-gradient-norm",
        *([JUDGE_COMMAND] if judge else []),
    ])


def fool_command(entry: ModelEntry | None) -> str:
    """The command that fine-tunes a model so that its logit gradients show a pattern."""
    checkpoint = entry.path.parent if entry is not None and entry.path.name == "model.safetensors" else (
        entry.path if entry is not None else "checkpoints/shapes-resnet18-baseline")
    try:
        from pathlib import Path

        checkpoint = Path(checkpoint).resolve().relative_to(Path.cwd())
    except ValueError:
        pass
    return f"python -m interpgrad lab fool --checkpoint {checkpoint} --pattern text:HI --out runs/shapes-resnet18-fooled"


def regularizer_label(name: str) -> str:
    return {"none": "baseline (none)", "score_matching": "score matching", "anti_score_matching": "anti-score-matching",
            "gradient_norm": "gradient norm"}.get(name, name.replace("_", " "))


# --- Memos of the cached results (per checkpoint sha256, parameters and the cache folder's state) ----------------------

def _cache_data(function):  # type: ignore[no-untyped-def]
    import streamlit as st

    return st.cache_data(max_entries=64, show_spinner=False)(function)


@_cache_data
def _memo_samples(_model: Any, sha256: str, stamp: float, classes: tuple[int, ...], settings: tuple) -> Any:
    from interpgrad.lab import cached_class_samples

    return from_cache(cached_class_samples, _model, list(classes), keep=KEEP, **dict(settings))


@_cache_data
def _memo_gan_test(_model: Any, _judge: Any, sha256: str, judge_sha256: str, stamp: float, classes: tuple[int, ...],
                   settings: tuple) -> Any:
    from interpgrad.lab import cached_gan_test

    return from_cache(cached_gan_test, _model, _judge, list(classes), resamples=RESAMPLES, **dict(settings))


@_cache_data
def _lab_images(dataset: str, n: int, split: str, image_size: int) -> Any:
    from interpgrad.lab import lab_images

    return lab_images(dataset, n, split, image_size)


@_cache_data
def _memo_density(_model: Any, sha256: str, stamp: float, data_key: str, n: int, split: str) -> Any:
    from interpgrad.lab import cached_density_profile

    data = _lab_images(data_key, n, split, _model.image_size)
    return from_cache(cached_density_profile, _model, data, **DENSITY)


def perturbation_fractions() -> list[float]:
    from interpgrad.metrics.faithfulness import masking_fractions

    return [float(f) for f in masking_fractions(PERTURBATION["points"])]


@_cache_data
def _memo_perturbation(_judge: Any, _saliency: Any, judge_sha256: str, saliency_sha256: str, stamp: float,
                       data_key: str, n: int, split: str) -> Any:
    from interpgrad.lab import cached_perturbation

    data = _lab_images(data_key, n, split, _judge.image_size)
    return from_cache(cached_perturbation, _judge, data, saliency_model=_saliency, fractions=perturbation_fractions(),
                      constant=PERTURBATION["constant"], seed=PERTURBATION["seed"])


def cached_samples(model: Any, stamp: float, classes: Sequence[int], settings: dict[str, Any]) -> Any:
    """The model's class samples from the disk cache (``ClassSamples``), or None."""
    return _memo_samples(model, model.sha256, stamp, tuple(classes), tuple(sorted(settings.items())))


def cached_gan(model: Any, judge: Any, stamp: float, classes: Sequence[int], settings: dict[str, Any]) -> Any:
    """The GAN-test of the model's cached samples by ``judge`` (``GanTest``), or None when the samples are missing."""
    return _memo_gan_test(model, judge, model.sha256, judge.sha256, stamp, tuple(classes),
                          tuple(sorted(settings.items())))


def cached_density(model: Any, stamp: float, dataset: str, n: int) -> Any:
    """The model's density-ratio profile on the first ``n`` images of the page's split from the disk cache, or None."""
    return _memo_density(model, model.sha256, stamp, dataset, n, DATA["split"])


def cached_curves(judge: Any, saliency: Any, stamp: float, dataset: str, n: int) -> Any:
    """Pixel-perturbation curves (``judge``'s accuracy, ``saliency``'s maps) on the first ``n`` images of the page's
    split from the disk cache, or None."""
    return _memo_perturbation(judge, saliency, judge.sha256, saliency.sha256, stamp, dataset, n, DATA["split"])


def compute_with_progress(items: Sequence[Any], start: str, error: str, text: str,
                          compute: Callable[[Any, Callable[[int, int], None]], Any],
                          name: Callable[[Any], str] = lambda item: item.name) -> None:
    """Compute every missing result of a section (``compute(item, report)``) under one progress bar (``text``
    formats each report with ``name``, ``done`` and ``total``), a readable message on failure; then the page reads
    them from the cache anew."""
    import streamlit as st

    from appkit.widgets import readable_errors

    bar = st.progress(0.0, text=start)
    with readable_errors(error):
        for index, item in enumerate(items):
            def report(done: int, total: int, index: int = index, label: str = name(item)) -> None:
                bar.progress(min(1.0, (index + done / max(total, 1)) / len(items)),
                             text=text.format(name=label, done=done, total=total))

            compute(item, report)
        forget_lookups()
        st.rerun()


def forget_lookups() -> None:
    """After a computation: the memos of missing results are dropped (they are found in the cache now)."""
    for memo in (_memo_samples, _memo_gan_test, _memo_density, _memo_perturbation):
        memo.clear()


def lab_data(dataset: str, image_size: int, n: int) -> Any:
    """The first ``n`` images of the page's split that the density and perturbation sections measure on
    (``interpgrad.lab.lab_images``), memoised."""
    return _lab_images(dataset, n, DATA["split"], image_size)


# --- Figures ------------------------------------------------------------------------------------------------------------

def curves_figure(curves: dict[str, Any], x: str, y: str, x_title: str, y_title: str, log_x: bool = True,
                  height: int = 420, legend_below: bool = False, y_range: tuple[float, float] | None = None) -> Any:
    """Plotly lines with their 95 % bands, one colour per entry of ``curves`` (label -> table with columns ``x``,
    ``y``, ``ci_low``, ``ci_high``); the legend to the right of the plot, or under it (for a half-width chart);
    ``y_range``: a fixed y axis (accuracy: [0, 1])."""
    import plotly.graph_objects as go

    from appkit.charts import model_colours

    colours = model_colours(list(curves))
    figure = go.Figure()
    for label, table in curves.items():
        colour = colours[label]
        rgb = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
        xs, low, high = list(table[x]), list(table["ci_low"]), list(table["ci_high"])
        figure.add_trace(go.Scatter(x=xs + xs[::-1], y=high + low[::-1], fill="toself", line=dict(width=0),
                                    fillcolor=f"rgba({rgb[0]}, {rgb[1]}, {rgb[2]}, 0.15)", hoverinfo="skip",
                                    showlegend=False, legendgroup=label))
        figure.add_trace(go.Scatter(x=xs, y=list(table[y]), mode="lines+markers", name=label, legendgroup=label,
                                    line=dict(color=colour, width=2), marker=dict(size=5)))
    legend = (dict(orientation="h", x=0.0, xanchor="left", y=-0.2, yanchor="top") if legend_below
              else dict(orientation="v", x=1.01, xanchor="left", y=1.0, yanchor="top"))
    figure.update_layout(height=height, margin=dict(l=60, r=20, t=30, b=50), legend=legend)
    figure.update_xaxes(title_text=x_title, type="log" if log_x else "linear")
    figure.update_yaxes(title_text=y_title, range=list(y_range) if y_range else None)
    return figure


def gan_test_figure(rows: Sequence[dict[str, Any]]) -> Any:
    """GAN-test bars: ours per model (with the 95 % interval) beside the paper's CIFAR-100 number for the same
    regularizer, grouped by model."""
    import plotly.graph_objects as go

    labels = [row["model"] for row in rows]
    ours = [100 * row["accuracy"] for row in rows]
    figure = go.Figure()
    figure.add_trace(go.Bar(x=labels, y=ours, name="ours (shapes, 10 classes)", marker_color="#1f77b4",
                            error_y=dict(type="data", symmetric=False,
                                         array=[100 * row["ci_high"] - value for row, value in zip(rows, ours)],
                                         arrayminus=[value - 100 * row["ci_low"] for row, value in zip(rows, ours)])))
    figure.add_trace(go.Bar(x=labels, y=[row["paper"] for row in rows], name="paper (CIFAR-100, 100 classes)",
                            marker_color="#bbbbbb"))
    figure.update_layout(barmode="group", height=380, margin=dict(l=60, r=20, t=30, b=50),
                         legend=dict(orientation="v", x=1.01, xanchor="left", y=1.0, yanchor="top"))
    figure.update_yaxes(title_text="GAN-test: judge accuracy on the samples (%)", range=[0, 100])
    figure.update_xaxes(title_text="generator model")
    return figure


def gan_test_table(rows: Sequence[dict[str, Any]], judge: str) -> Any:
    """The GAN-test as a table with a column per model (headed by its regularizer) and four rows: the model, ours,
    our 95 % interval, and the paper's CIFAR-100 number for the same regularizer as the reference row."""
    import pandas as pd

    regularizers = [row["regularizer"] for row in rows]
    columns = [name if regularizers.count(name) == 1 else f"{name} ({index + 1})" for index, name in enumerate(regularizers)]
    return pd.DataFrame(
        [[row["model"] for row in rows],
         [f"{100 * row['accuracy']:.1f} %" for row in rows],
         [f"[{100 * row['ci_low']:.1f}, {100 * row['ci_high']:.1f}] · {row['samples']} samples" for row in rows],
         ["—" if row["paper"] is None else f"{row['paper']:.2f} %" for row in rows]],
        index=["model", f"ours: shapes, judge {judge}", "ours: 95 % interval", "reference: the paper, CIFAR-100 (ResNet-18)"],
        columns=columns)
