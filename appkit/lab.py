"""Helpers of the Gradient lab page: the tiny network of its first section (standard vs guided backward, every
intermediate signal), the zoo's Softplus models, judges and fooled models, the paper's reference numbers, and the
figures of the page. The experiments themselves are ``interpgrad.lab``'s; nothing here reimplements them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

import interpgrad
from interpgrad.zoo import ModelEntry

__all__ = ["PAPER_GAN_TEST", "TinyBackward", "fooled_entries", "judge_entries", "softplus_entries", "tiny_backward",
           "tiny_network"]

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


def softplus_entries(entries: Sequence[ModelEntry]) -> list[ModelEntry]:
    """The usable models with Softplus activations (the Srinivas & Fleuret setting), shipped ones first."""
    found = [entry for entry in entries if entry.usable and activation(entry) == "softplus"]
    return sorted(found, key=lambda entry: (entry.source != "shipped", _regularizer_order(entry), entry.name))


_ORDER = ("none", "score_matching", "anti_score_matching", "gradient_norm")


def _regularizer_order(entry: ModelEntry) -> int:
    return _ORDER.index(entry.regularizer) if entry.regularizer in _ORDER else len(_ORDER)


DEFAULT_JUDGE = "shapes-mobilenetv2-baseline"


def judge_entries(entries: Sequence[ModelEntry], generators: Sequence[ModelEntry]) -> list[ModelEntry]:
    """Candidate GAN-test judges: usable non-Softplus models with the generators' classes, another architecture than
    theirs first, the shipped ``shapes-mobilenetv2-baseline`` at the top when present."""
    classes = {tuple(entry.class_names) for entry in generators}
    archs = {entry.arch for entry in generators}
    found = [entry for entry in entries if entry.usable and activation(entry) != "softplus"
             and (not classes or tuple(entry.class_names) in classes)]
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


# --- Tables and maps --------------------------------------------------------------------------------------------------

def heat_table(rows: dict[str, Sequence[float]], columns: Sequence[str], digits: int = 2) -> Any:
    """A table (one row per entry of ``rows``) coloured on a diverging scale, 0 white, each row on its own symmetric
    scale (the largest |value| of the row, at least 1e-12): a pandas Styler for ``st.dataframe``."""
    import pandas as pd

    frame = pd.DataFrame([list(values) for values in rows.values()], index=list(rows), columns=list(columns))
    styler = frame.style.format(f"{{:+.{digits}f}}")
    for name in frame.index:
        limit = max(float(np.abs(frame.loc[name].to_numpy()).max()), 1e-12)
        styler = styler.background_gradient(cmap="RdBu_r", vmin=-limit, vmax=limit, axis=1,
                                            subset=pd.IndexSlice[[name], :])
    return styler


def signed_map_image(gradient: torch.Tensor, size: int = 160) -> tuple[np.ndarray, float]:
    """A gradient ``[C, H, W]`` as a picture: the sum over the channels, on a diverging scale (red positive, blue
    negative, white 0) divided by its largest |value|; returns (RGB uint8, that value)."""
    from interpgrad.viz import colorize, enlarge

    summed = gradient.detach().double().sum(0)
    limit = float(summed.abs().max())
    normalised = (summed / limit if limit > 0 else summed).float()
    return enlarge(colorize(normalised, "RdBu_r", signed=True), size), limit


def pixel_image(x: torch.Tensor, size: int = 160) -> np.ndarray:
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
