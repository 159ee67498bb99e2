"""Gradient regularizers: guided alignment (Torres Figueroa et al. 2024) and the score-matching family
(Srinivas & Fleuret 2021).

Every regularizer is called as ``regularizer(model, x, y)`` and returns ``LossParts``: the total loss to minimise and
its parts (classification, regularization, and — a number users want to watch — the mean cosine between the
standard and the guided input gradient of the per-sample cross-entropy).

Notation: ``f`` the logits, ``y`` the label, ``L_C`` the softmax cross-entropy, ``sg`` stop-gradient. Input gradients
are taken per sample: the gradient of the *summed* per-sample losses, so that no error function depends on the batch
size. Row i is ``dL_C(x_i)/dx_i`` only when images do not interact: in eval mode, or with the guided regularizer's
``batchnorm="per_sample"`` (batch statistics held constant in the gradient pass) or ``"running"`` (running statistics).
A model in training mode with batch norm (``batchnorm="batch"``, the paper's formulation as written) couples the rows
through the batch statistics: row i then also carries the other images' losses (PAPERS.md, "What we measured").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError
from .gradients import BATCHNORM_MODES, BackwardRules, rectifier_hooks, select_logits
from .models import unwrap_model
from .params import Param, When, resolve_params

__all__ = [
    "ERROR_FUNCTIONS",
    "GRADIENT_OF",
    "Forward",
    "REGULARIZERS",
    "AntiScoreMatching",
    "GradientNorm",
    "GradientPattern",
    "GuidedAlignment",
    "LossParts",
    "NoRegularizer",
    "Regularizer",
    "ScoreMatching",
    "build_regularizer",
    "gradient_alignment",
    "hessian_trace_estimate",
    "run_forward",
]

EPS = 1e-12


@dataclass
class LossParts:
    """A regularized loss: ``total = classification + lam * regularization``.

    ``alignment`` is the batch mean of cos(dL_C/dx, d_G L_C/dx) (detached), or None when it was not measured;
    ``extras`` holds regularizer-specific diagnostics (e.g. the Hessian-trace estimate) as detached scalars.
    """

    total: torch.Tensor
    classification: torch.Tensor
    regularization: torch.Tensor
    alignment: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    logits: torch.Tensor | None = None  # of the batch, detached (for accuracy)

    def as_dict(self) -> dict[str, float]:
        """Plain floats for logging (one ``.item()`` per part)."""
        values = {
            "loss": self.total.item(),
            "classification": self.classification.item(),
            "regularization": self.regularization.item(),
        }
        if self.alignment is not None:
            values["alignment"] = self.alignment.item()
        return {**values, **{key: value.item() for key, value in self.extras.items()}}


# ---------------------------------------------------------------------------------------------------------------------
# Error functions E(d, d') between a standard gradient d and a guided gradient d', row-wise over flattened [B, P] tensors.
# Each returns [B]. Every division is guarded so that a zero gradient gives a finite value and a finite derivative.


def _safe_norm(d: torch.Tensor, ord: float = 2) -> torch.Tensor:
    return torch.linalg.vector_norm(d, ord=ord, dim=1).clamp_min(EPS)


def cosine_error(d: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """E = - <d, d'> / (||d||_2 ||d'||_2)."""
    return -(d * g).sum(1) / (_safe_norm(d) * _safe_norm(g))


def mae_error(d: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """E = mean_i |d_i - d'_i| (scale-dependent)."""
    return (d - g).abs().mean(1)


def mse_error(d: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """E = mean_i (d_i - d'_i)^2 (scale-dependent)."""
    return (d - g).pow(2).mean(1)


def histogram_intersection_error(d: torch.Tensor, g: torch.Tensor, normalization: str = "each") -> torch.Tensor:
    """Histogram intersection of the gradient magnitudes.

    ``normalization="each"`` (default, the usual form): E = - sum_i min(|d_i| / ||d||_1, |d'_i| / ||d'||_1), in [-1, 0].
    ``normalization="product"`` (as printed in the paper): E = - sum_i min(|d_i|, |d'_i|) / (||d||_1 ||d'||_1).
    """
    a, b = d.abs(), g.abs()
    if normalization == "each":
        return -torch.minimum(a / _safe_norm(d, 1)[:, None], b / _safe_norm(g, 1)[:, None]).sum(1)
    return -torch.minimum(a, b).sum(1) / (_safe_norm(d, 1) * _safe_norm(g, 1))


def sigmoid_masking_error(d: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """E = - sum_i d'_i * sigmoid(d_i)."""
    return -(g * torch.sigmoid(d)).sum(1)


def centered_sigmoid_masking_error(d: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """E = - sum_i d'_i * sigmoid(d_i - mean(d))."""
    return -(g * torch.sigmoid(d - d.mean(1, keepdim=True))).sum(1)


ERROR_FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "cosine": cosine_error,
    "mae": mae_error,
    "mse": mse_error,
    "histogram": histogram_intersection_error,
    "sigmoid": sigmoid_masking_error,
    "centered_sigmoid": centered_sigmoid_masking_error,
}


def _cosine(d: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return -cosine_error(d.flatten(1), g.flatten(1))


# ---------------------------------------------------------------------------------------------------------------------


GRADIENT_OF = ("loss", "logit")  # what the guided regularizer differentiates: L_C (the paper) or the target logit f_y


@dataclass
class Forward:
    """One forward pass shared by a loss and its diagnostics: the inputs (requiring grad), the logits, the per-sample
    cross-entropies, and the rectifier rule switch of the pass (so both backward rules can reuse it).

    ``gradient_pass``: another forward pass of the same batch whose graph the input gradients are taken on (batch norm
    with its running statistics, ``batchnorm="running"``), None: this one."""

    inputs: torch.Tensor
    logits: torch.Tensor
    losses: torch.Tensor
    rules: BackwardRules
    gradient_pass: "Forward | None" = None

    def input_gradients(
        self, differentiable: bool, of: str = "loss", y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(standard, guided) gradients w.r.t. the inputs of the summed per-sample cross-entropies (``of="loss"``) or
        of the summed target logits f_y (``of="logit"``, ``y`` the targets).

        The guided gradient is detached (the teacher); the standard one keeps its graph when ``differentiable``.
        The forward graph is kept for the caller's final backward pass.
        """
        if self.gradient_pass is not None:
            return self.gradient_pass.input_gradients(differentiable, of, y)
        if of == "logit":
            if y is None:
                raise ValueError("the logit gradients need the targets y")
            output = select_logits(self.logits, y).sum()
        else:
            output = self.losses.sum()
        with self.rules.input_gradients_only():
            with self.rules.use("guided"):
                (guided,) = torch.autograd.grad(output, self.inputs, retain_graph=True)
            (standard,) = torch.autograd.grad(output, self.inputs, create_graph=differentiable, retain_graph=True)
        return standard, guided

    def loss_gradients(self, differentiable: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(standard, guided) gradients of the summed per-sample cross-entropy w.r.t. the inputs (``input_gradients``)."""
        return self.input_gradients(differentiable)

    def alignment(self) -> torch.Tensor:
        """Batch mean of cos(dL_C/dx_i, d_G L_C/dx_i), detached."""
        standard, guided = self.loss_gradients(differentiable=False)
        return _cosine(standard, guided).mean()

    def logit_gradient(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f_y per row, d f_y / dx with its graph)."""
        selected = select_logits(self.logits, y)
        with self.rules.input_gradients_only():
            (gradient,) = torch.autograd.grad(selected.sum(), self.inputs, create_graph=True)
        return selected, gradient


def run_forward(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cheap_double_backward: bool = True,
    hooks: bool = True,
    input_gradients: bool = True,
    batchnorm: str = "batch",
) -> Forward:
    """The model on ``x`` and the per-sample cross-entropies.

    With ``input_gradients`` the model sees a detached copy of ``x`` that requires grad; with ``hooks`` its rectifiers
    are hooked for both backward rules; with ``cheap_double_backward`` its convolutions, batch norms and ReLUs are
    cheaper to differentiate twice. With none of them it is a plain training forward pass. ``batchnorm``: how
    training-mode batch norms treat the input-gradient passes (``batch``, ``per_sample``, ``running``: see
    ``interpgrad.double_backprop``); with ``running`` this pass's logits are inference's (running statistics) and the
    running statistics are not updated.
    """
    if batchnorm != "batch":
        inputs = x.detach().requires_grad_(True)
        with rectifier_hooks(cheap_double_backward=cheap_double_backward, batchnorm=batchnorm) as rules:
            logits = model(inputs)
        return Forward(inputs, logits, F.cross_entropy(logits, y, reduction="none"), rules)
    if not (input_gradients or hooks):
        logits = model(x)
        return Forward(x, logits, F.cross_entropy(logits, y, reduction="none"), BackwardRules())
    inputs = x.detach().requires_grad_(True)
    if not (hooks or cheap_double_backward):
        logits = model(inputs)
        return Forward(inputs, logits, F.cross_entropy(logits, y, reduction="none"), BackwardRules())
    with rectifier_hooks(cheap_double_backward=cheap_double_backward) as rules:
        logits = model(inputs)
    return Forward(inputs, logits, F.cross_entropy(logits, y, reduction="none"), rules)


def gradient_alignment(model: nn.Module, x: torch.Tensor, y: torch.Tensor, of: str = "loss") -> torch.Tensor:
    """Per-sample cos(dL_C/dx_i, d_G L_C/dx_i) (``of="loss"``) or cos(d f_y/dx_i, d_G f_y/dx_i) (``of="logit"``), shape
    [B], detached. Uses the model in its current mode (eval mode: what explanations show)."""
    with torch.enable_grad():
        forward = run_forward(model, x, y)
        standard, guided = forward.input_gradients(differentiable=False, of=of, y=y)
    return _cosine(standard, guided)


def hessian_trace_estimate(
    model: nn.Module, inputs: torch.Tensor, y: torch.Tensor, selected: torch.Tensor, sigma: float, samples: int = 1
) -> torch.Tensor:
    """Per-sample estimate of tr(d^2 f_y / dx^2) by Hutchinson's trick with a Taylor expansion (Srinivas & Fleuret):

        h(x) = (2 / sigma^2) * E_{v ~ N(0, sigma^2 I)} [ f_y(x + v) - f_y(x) ]

    ``selected`` is f_y(x) from the caller's forward pass; the ``samples`` noisy copies go through one batched forward
    (of the module inside a DistributedDataParallel wrapper: its gradients still reach the same parameters).
    """
    noisy = inputs.repeat(samples, *([1] * (inputs.dim() - 1)))
    noisy = noisy + sigma * torch.randn_like(noisy)
    noisy_selected = select_logits(unwrap_model(model)(noisy), y.repeat(samples)).view(samples, -1)
    return (2.0 / sigma**2) * (noisy_selected - selected.unsqueeze(0)).mean(0)


class Regularizer(ABC):
    """Base class: subclasses declare ``name``, ``description``, ``params`` and implement ``loss``."""

    name: ClassVar[str]
    description: ClassVar[str]
    params: ClassVar[tuple[Param, ...]] = ()
    recommended_activation: ClassVar[str] = "relu"
    normalizes_inputs: ClassVar[bool] = True  # False: trained on inputs in [0, 1] (Srinivas & Fleuret's code)
    # The loss differences logits of nearby inputs (the Hessian-trace estimate 2/sigma^2 (f(x+v) - f(x)), ~1e-4 of the
    # logits): below the resolution of bf16 and fp16, so it must not run under autocast.
    differences_logits: ClassVar[bool] = False
    differentiates_gradients: ClassVar[bool] = True  # the loss differentiates an input gradient (double backprop)
    uses_guided_gradient: ClassVar[bool] = False  # the loss needs the rectifier hooks of the guided rule
    cheap_double_backward: bool = True  # interpgrad.double_backprop (False: PyTorch's own, for comparison)

    def __init__(self, **params: object) -> None:
        self.config = resolve_params(self.params, params, owner=self.name)
        for key, value in self.config.items():
            setattr(self, key, value)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, measure_alignment: bool = False) -> LossParts:
        """The loss on batch (x, y). With ``measure_alignment`` the standard/guided cosine is also measured when the
        regularizer does not compute it anyway: two extra backward passes over the same forward pass."""
        forward = self.forward(model, x, y, measure_alignment)
        parts = self.loss(model, forward, y)
        if parts.alignment is None and measure_alignment:
            parts.alignment = forward.alignment()
        parts.logits = forward.logits.detach()
        return parts

    def forward(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, measure_alignment: bool = False) -> Forward:
        """The forward pass the loss is computed from (with its hooks, when the loss or the diagnostic needs them)."""
        hooks = measure_alignment or self.uses_guided_gradient
        cheap = self.differentiates_gradients and self.cheap_double_backward
        return run_forward(model, x, y, cheap, hooks, input_gradients=self.differentiates_gradients)

    @abstractmethod
    def loss(self, model: nn.Module, forward: Forward, y: torch.Tensor) -> LossParts:
        """The loss parts, given the forward pass on the batch and its labels."""

    def __repr__(self) -> str:
        settings = ", ".join(f"{key}={value!r}" for key, value in self.config.items())
        return f"{type(self).__name__}({settings})"


def _has_training_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training for module in model.modules())


def _lam(default: float, help: str) -> Param:
    return Param("lam", float, default, help, low=0.0, high=1e3, log=True)


class NoRegularizer(Regularizer):
    """Plain cross-entropy training (the baseline)."""

    name = "none"
    description = "Baseline: cross-entropy only."
    differentiates_gradients = False

    def loss(self, model: nn.Module, forward: Forward, y: torch.Tensor) -> LossParts:
        classification = forward.losses.mean()
        return LossParts(classification, classification, torch.zeros_like(classification))


class _BatchNormModes(Regularizer):
    """A regularizer whose input-gradient pass treats training-mode batch norm as its ``batchnorm`` parameter says:
    ``batch`` (the batch statistics, as written: rows mix), ``per_sample`` (the batch statistics held constant in the
    gradient pass: row i is image i's own gradient) or ``running`` (the running statistics, as at inference)."""

    batchnorm: str

    def forward(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, measure_alignment: bool = False) -> Forward:
        """With ``batchnorm="running"`` and batch norms in training mode: a plain training forward pass for L_C (it
        updates the running statistics) and a second one with the running statistics for the input gradients."""
        if self.batchnorm == "batch" or not _has_training_batch_norm(model):
            return super().forward(model, x, y, measure_alignment)
        if self.batchnorm == "per_sample":
            return run_forward(model, x, y, self.cheap_double_backward, batchnorm="per_sample")
        training = run_forward(model, x, y, hooks=False, input_gradients=False)
        training.gradient_pass = run_forward(unwrap_model(model), x, y, self.cheap_double_backward, batchnorm="running")
        return training


class GuidedAlignment(_BatchNormModes):
    """Interpretable gradients (Torres Figueroa et al., VISAPP 2024):

        L = L_C + lam * (1/n) sum_i E( dL_C/dx_i , sg(d_G L_C/dx_i) )

    The standard gradient keeps its graph (double backpropagation); the guided one is the detached teacher. One forward
    pass serves both backward rules. Best reported setting: cosine error, lam = 7.5e-3.

    Options beyond the paper (its formulation is the default, preset ``paper``):
    ``batchnorm`` — how training-mode batch norm enters the input gradients: ``batch`` (as written: batch statistics,
    row i mixes every image's loss), ``per_sample`` (the statistics held constant in the gradient passes: row i is
    exactly dL_i/dx_i; same 5 passes), ``running`` (the running statistics, as at inference: the gradients are the
    eval-mode ones; one more forward pass). ``gradient_of`` — ``loss`` (L_C, the paper) or ``logit`` (the target logit
    f_y: d f_y/dx aligned with sg(d_G f_y/dx), which does not fight the sign of the loss's gradient).
    """

    name = "guided"
    description = "Align the standard input gradient with the guided-backpropagation gradient."
    uses_guided_gradient = True
    params = (
        _lam(7.5e-3, "weight of the alignment term (paper: 7.5e-3 with the cosine error)"),
        Param("error", str, "cosine", "error function E(standard, guided)", choices=tuple(ERROR_FUNCTIONS)),
        Param(
            "histogram_normalization",
            str,
            "each",
            "normalise each gradient by its L1 norm ('each') or divide by the product of norms ('product', as printed "
            "in the paper)",
            choices=("each", "product"),
            when=When("error", "histogram"),
        ),
        Param(
            "batchnorm",
            str,
            "batch",
            "how training-mode batch norm enters the input gradients: batch (the paper as written: batch statistics, "
            "rows mix), per_sample (statistics held constant: row i is dL_i/dx_i), running (running statistics, as at "
            "inference; one more forward pass)",
            choices=BATCHNORM_MODES,
        ),
        Param(
            "gradient_of",
            str,
            "loss",
            "what the standard and guided gradients differentiate: loss (the cross-entropy, the paper) or logit (the "
            "target logit)",
            choices=GRADIENT_OF,
        ),
    )
    presets: ClassVar[dict[str, dict[str, object]]] = {
        "paper": {"lam": 7.5e-3, "error": "cosine", "batchnorm": "batch", "gradient_of": "loss"},
    }

    def input_gradients(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(standard, guided) input gradients as this regularizer sees them on the batch (its ``batchnorm`` and
        ``gradient_of``; the model in its current mode), detached. A training-mode call updates the running
        statistics of batch norm, as a training step does."""
        with torch.enable_grad():
            standard, guided = self.forward(model, x, y).input_gradients(False, self.gradient_of, y)
        return standard.detach(), guided

    def loss(self, model: nn.Module, forward: Forward, y: torch.Tensor) -> LossParts:
        standard, guided = forward.input_gradients(True, self.gradient_of, y)
        d, g = standard.flatten(1), guided.flatten(1)
        if self.error == "histogram":
            errors = histogram_intersection_error(d, g, self.histogram_normalization)
        else:
            errors = ERROR_FUNCTIONS[self.error](d, g)
        classification, regularization = forward.losses.mean(), errors.mean()
        alignment = _cosine(d.detach(), g).mean()
        return LossParts(classification + self.lam * regularization, classification, regularization, alignment)


class GradientNorm(Regularizer):
    """Gradient-norm regularization (Srinivas & Fleuret 2021): L = L_C + lam * mean_i 0.5 ||d f_y(x_i) / dx_i||^2."""

    name = "gradient_norm"
    description = "Penalise the squared norm of the logit gradient."
    recommended_activation = "softplus"  # the paper compares it with score matching on the same Softplus(10) networks
    normalizes_inputs = False
    params = (_lam(1e-3, "weight of 0.5 ||grad_x f_y||^2 (paper: 1e-3)"),)

    def loss(self, model: nn.Module, forward: Forward, y: torch.Tensor) -> LossParts:
        _, gradient = forward.logit_gradient(y)
        classification = forward.losses.mean()
        gradient_norm = 0.5 * gradient.flatten(1).pow(2).sum(1).mean()
        return LossParts(classification + self.lam * gradient_norm, classification, gradient_norm)


class ScoreMatching(Regularizer):
    """Regularized score matching (Srinivas & Fleuret 2021), with h the Hessian-trace estimate of f_y:

        L = L_C + lam * mean_i [ h(x_i) + 0.5 ||grad_x f_y(x_i)||^2 + mu h(x_i)^2 ]

    Meant for Softplus(beta=10) networks (a ReLU network has a zero Hessian almost everywhere).
    """

    name = "score_matching"
    description = "Align the logit gradient with the data score (score matching)."
    recommended_activation = "softplus"
    normalizes_inputs = False
    differences_logits = True
    params = (
        _lam(1e-3, "weight of the score-matching term (paper: 1e-3)"),
        Param("mu", float, 1e-3, "weight of the stability term h^2 (paper: 1e-3)", low=0.0, high=1e3, log=True),
        Param("sigma", float, 1e-2, "std of the noise of the Hessian-trace estimate (code: 0.01)", low=1e-6, high=1.0, log=True),
        Param("samples", int, 1, "noise samples per image for the Hessian-trace estimate", low=1, high=64),
    )

    def loss(self, model: nn.Module, forward: Forward, y: torch.Tensor) -> LossParts:
        selected, gradient = forward.logit_gradient(y)
        trace = hessian_trace_estimate(model, forward.inputs, y, selected, self.sigma, self.samples)
        gradient_norm = 0.5 * gradient.flatten(1).pow(2).sum(1)
        classification = forward.losses.mean()
        regularization = (trace + gradient_norm + self.mu * trace.pow(2)).mean()
        extras = {"hessian_trace": trace.detach().mean(), "gradient_norm": gradient_norm.detach().mean()}
        return LossParts(classification + self.lam * regularization, classification, regularization, extras=extras)


class AntiScoreMatching(Regularizer):
    """Anti-score-matching (Srinivas & Fleuret 2021): L = L_C + lam * ( - mean_i min(h(x_i), tau) ).

    Increases the Hessian trace up to ``tau``, which should make gradients less interpretable (a negative control).
    """

    name = "anti_score_matching"
    description = "Push the Hessian trace up (a negative control for gradient interpretability)."
    recommended_activation = "softplus"
    normalizes_inputs = False
    differences_logits = True
    differentiates_gradients = False
    params = (
        _lam(1e-4, "weight of the anti-score-matching term (paper: 1e-4)"),
        Param("tau", float, 1e3, "clamp of the Hessian-trace estimate (paper: 1000; code: 1e4)", low=0.0, high=1e8, log=True),
        Param("sigma", float, 1e-3, "std of the noise of the Hessian-trace estimate (code: 0.001)", low=1e-6, high=1.0, log=True),
        Param("samples", int, 1, "noise samples per image for the Hessian-trace estimate", low=1, high=64),
    )

    def loss(self, model: nn.Module, forward: Forward, y: torch.Tensor) -> LossParts:
        selected = select_logits(forward.logits, y)
        trace = hessian_trace_estimate(model, forward.inputs, y, selected, self.sigma, self.samples)
        classification = forward.losses.mean()
        regularization = -trace.clamp(max=self.tau).mean()
        extras = {"hessian_trace": trace.detach().mean()}
        return LossParts(classification + self.lam * regularization, classification, regularization, extras=extras)


class GradientPattern(_BatchNormModes):
    """Gradients are arbitrary (Srinivas & Fleuret 2021, section 3), shown by fine-tuning: the target logit's input
    gradient is trained to show a chosen pattern P while the cross-entropy keeps the classifier:

        error cosine (default):  L = L_C + lam * mean_i (1 - cos(d f_y(x_i) / dx_i, P))
        error mse:               L = L_C + lam * mean_i || d f_y(x_i) / dx_i - scale * P ||^2 / scale^2

    P = ``interpgrad.lab.patterns.make_pattern(pattern)`` at the input's size (``text:HI``, ``shape:star``,
    ``smooth:3``, ``image:PATH``), zero mean and unit L2 norm. ``mse`` asks for the gradient ``scale * P``; its error
    is relative (divided by scale^2), so a gradient orthogonal to P and as large as asked costs 2 and the pattern 0 —
    but so does shrinking the gradient halfway to 1, and that is what a fine-tune did (shipped Softplus baseline, lam 1,
    3 epochs: the error fell from 1.7 to 1.2 and cos(grad, P) stayed 0.000), hence the default ``cosine``, which
    only the direction can lower. The gradient is taken with respect to the model's input: pixels for a model trained
    on [0, 1] (``--normalize false``, the Srinivas & Fleuret models), the normalised input otherwise. ``batchnorm``:
    how training-mode batch norm enters the gradient pass, as for ``guided`` (default ``per_sample``, the batch
    statistics held constant: with ``running`` the regularizer shapes the running-statistics network that the
    cross-entropy does not train, and eval accuracy falls). ``extras["pattern_cosine"]``: the batch mean of
    cos(d f_y/dx, P).
    """

    name = "gradient_pattern"
    description = "Fine-tune the logit gradient to show a chosen pattern (gradients are arbitrary)."
    params = (
        _lam(1.0, "weight of the error between grad_x f_y and the pattern"),
        Param("error", str, "cosine", "cosine: 1 - cos(grad_x f_y, P); mse: ||grad_x f_y - scale P||^2 / scale^2",
              choices=("cosine", "mse")),
        Param("pattern", str, "text:HI", "the pattern P: text:WORDS, shape:NAME (a shapes class), smooth:SEED or "
              "image:PATH"),
        Param("scale", float, 1.0, "the L2 norm of the target gradient scale * P (P has unit norm)", low=1e-6,
              high=1e6, log=True, when=When("error", "mse")),
        Param("batchnorm", str, "per_sample", "how training-mode batch norm enters the gradient pass: per_sample "
              "(batch statistics held constant, default), running (as at inference; the eval accuracy falls), batch "
              "(rows mix)", choices=BATCHNORM_MODES),
    )

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        from .lab.patterns import make_pattern

        make_pattern(self.pattern, 16)  # refuse a bad pattern before training starts
        self._patterns: dict[tuple, torch.Tensor] = {}

    def target(self, like: torch.Tensor) -> torch.Tensor:
        """scale * P shaped ``[1, C, H, W]`` like the gradient ``like`` ``[B, C, H, W]``."""
        key = (tuple(like.shape[1:]), like.device, like.dtype)
        if key not in self._patterns:
            from .lab.patterns import make_pattern

            channels, height, width = like.shape[1:]
            pattern = make_pattern(self.pattern, max(height, width), channels)
            if height != width:
                pattern = F.interpolate(pattern.unsqueeze(0), size=(height, width), mode="bilinear")[0]
                pattern = pattern / pattern.norm()
            self._patterns[key] = (self.scale * pattern).unsqueeze(0).to(like.device, like.dtype)
        return self._patterns[key]

    def loss(self, model: nn.Module, forward: Forward, y: torch.Tensor) -> LossParts:
        _, gradient = (forward.gradient_pass or forward).logit_gradient(y)
        target = self.target(gradient)
        classification = forward.losses.mean()
        cosines = _cosine(gradient, target.expand_as(gradient))
        if self.error == "cosine":
            regularization = (1 - cosines).mean()
        else:
            regularization = (gradient - target).flatten(1).pow(2).sum(1).mean() / self.scale**2
        cosine = cosines.detach().mean()
        return LossParts(classification + self.lam * regularization, classification, regularization,
                         extras={"pattern_cosine": cosine})


REGULARIZERS: dict[str, type[Regularizer]] = {
    cls.name: cls for cls in (NoRegularizer, GuidedAlignment, ScoreMatching, AntiScoreMatching, GradientNorm,
                              GradientPattern)
}


def build_regularizer(name: str, **params: object) -> Regularizer:
    """The regularizer ``name`` (``none``, ``guided``, ``score_matching``, ``anti_score_matching``, ``gradient_norm``,
    ``gradient_pattern``)."""
    if name not in REGULARIZERS:
        raise ConfigError(f"unknown regularizer {name!r}; choose one of {', '.join(REGULARIZERS)}")
    return REGULARIZERS[name](**params)
