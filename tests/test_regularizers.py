"""Regularizers: parameter gradients match finite differences (float64, tiny network), error functions match their
formulas, zero gradients never give NaN, parameters are validated."""

from __future__ import annotations

from typing import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from interpgrad import ConfigError, build_regularizer
from interpgrad.regularizers import (
    ERROR_FUNCTIONS,
    REGULARIZERS,
    GuidedAlignment,
    gradient_alignment,
    histogram_intersection_error,
    run_forward,
)


class TinyNet(nn.Module):
    """conv-BN-act-conv-act-GAP-linear: small enough for finite differences, with everything the real models have."""

    def __init__(self, activation: Callable[[], nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act1 = activation()
        self.conv2 = nn.Conv2d(4, 5, 3, padding=1, stride=2)
        self.act2 = activation()
        self.fc = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act2(self.conv2(self.act1(self.bn(self.conv1(x)))))
        return self.fc(x.mean((2, 3)))


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(3, 3, 6, 6, generator=generator, dtype=torch.float64)
    return x, torch.tensor([0, 2, 1])


def _directional_check(loss_of_params: Callable[[], torch.Tensor], model: nn.Module, analytic: list[torch.Tensor]) -> None:
    """Central differences along random directions equal <analytic gradient, direction>."""
    params = list(model.parameters())
    generator = torch.Generator().manual_seed(7)
    for _ in range(3):
        directions = [torch.randn(p.shape, generator=generator, dtype=p.dtype) for p in params]
        eps = 1e-6
        with torch.no_grad():
            for p, d in zip(params, directions):
                p.add_(eps * d)
        plus = loss_of_params().item()
        with torch.no_grad():
            for p, d in zip(params, directions):
                p.sub_(2 * eps * d)
        minus = loss_of_params().item()
        with torch.no_grad():
            for p, d in zip(params, directions):
                p.add_(eps * d)
        numeric = (plus - minus) / (2 * eps)
        predicted = sum((g * d).sum() for g, d in zip(analytic, directions)).item()
        assert numeric == pytest.approx(predicted, rel=1e-5, abs=1e-9), (numeric, predicted)


def _analytic(model: nn.Module, loss: torch.Tensor) -> list[torch.Tensor]:
    model.zero_grad()
    loss.backward()
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("error", list(ERROR_FUNCTIONS) + ["histogram_product"])
def test_guided_alignment_gradient_matches_finite_differences(error: str) -> None:
    torch.manual_seed(0)
    model = TinyNet().double().train()
    x, y = _batch()
    params = {"error": "histogram", "histogram_normalization": "product"} if error == "histogram_product" else {"error": error}
    regularizer = GuidedAlignment(lam=0.5, **params)
    analytic = _analytic(model, regularizer(model, x, y).total)
    # The guided gradient is a stop-gradient teacher: hold it fixed at the unperturbed parameters.
    _, teacher = run_forward(model, x, y).loss_gradients(differentiable=False)

    def loss_with_fixed_teacher() -> torch.Tensor:
        forward = run_forward(model, x, y)
        standard, _ = forward.loss_gradients(differentiable=False)
        d, g = standard.flatten(1), teacher.flatten(1)
        if regularizer.error == "histogram":
            errors = histogram_intersection_error(d, g, regularizer.histogram_normalization)
        else:
            errors = ERROR_FUNCTIONS[regularizer.error](d, g)
        return forward.losses.mean() + 0.5 * errors.mean()

    _directional_check(loss_with_fixed_teacher, model, analytic)


@pytest.mark.parametrize("name", ["none", "gradient_norm", "score_matching", "anti_score_matching"])
def test_score_family_gradients_match_finite_differences(name: str) -> None:
    torch.manual_seed(0)
    model = TinyNet(lambda: nn.Softplus(beta=10)).double().train()
    x, y = _batch()
    params = {"lam": 0.1, "sigma": 0.1} if "score" in name else ({"lam": 0.5} if name != "none" else {})
    regularizer = build_regularizer(name, **params)

    def loss() -> torch.Tensor:
        torch.manual_seed(11)  # the same noise for the Hessian-trace estimate at every evaluation
        return regularizer(model, x, y).total

    analytic = _analytic(model, loss())
    _directional_check(loss, model, analytic)


def test_guided_alignment_lambda_zero_is_cross_entropy() -> None:
    model = TinyNet().double().train()
    x, y = _batch()
    parts = GuidedAlignment(lam=0.0)(model, x, y)
    torch.testing.assert_close(parts.total, F.cross_entropy(model(x), y))
    assert -1.0 <= parts.alignment.item() <= 1.0
    assert parts.regularization.item() == pytest.approx(-parts.alignment.item())  # cosine error = -cosine


def test_error_functions_on_known_vectors() -> None:
    d = torch.tensor([[3.0, -4.0, 0.0, 0.0]])
    g = torch.tensor([[3.0, 4.0, 0.0, 0.0]])
    assert ERROR_FUNCTIONS["cosine"](d, g).item() == pytest.approx(-(9 - 16) / 25)
    assert ERROR_FUNCTIONS["mae"](d, g).item() == pytest.approx(8 / 4)
    assert ERROR_FUNCTIONS["mse"](d, g).item() == pytest.approx(64 / 4)
    assert ERROR_FUNCTIONS["histogram"](d, g).item() == pytest.approx(-1.0)  # same magnitudes, L1-normalised
    assert histogram_intersection_error(d, g, "product").item() == pytest.approx(-7 / 49)
    sig = torch.sigmoid(d)
    assert ERROR_FUNCTIONS["sigmoid"](d, g).item() == pytest.approx(-(g * sig).sum().item())
    centered = torch.sigmoid(d - d.mean())
    assert ERROR_FUNCTIONS["centered_sigmoid"](d, g).item() == pytest.approx(-(g * centered).sum().item())


class ConstantNet(TinyNet):
    """Output independent of the input: every input gradient is exactly zero."""

    def __init__(self, activation: Callable[[], nn.Module] = nn.ReLU) -> None:
        super().__init__(activation)
        with torch.no_grad():
            self.conv1.weight.zero_()


@pytest.mark.parametrize("error", list(ERROR_FUNCTIONS))
def test_zero_gradients_never_give_nan_guided(error: str) -> None:
    model = ConstantNet()
    x, y = _batch()
    parts = GuidedAlignment(lam=1.0, error=error)(model, x.float(), y)
    parts.total.backward()
    assert torch.isfinite(parts.total)
    assert torch.isfinite(parts.alignment)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", list(REGULARIZERS))
def test_zero_gradients_never_give_nan(name: str) -> None:
    model = ConstantNet(lambda: nn.Softplus(beta=10))
    x, y = _batch()
    parts = build_regularizer(name)(model, x.float(), y, measure_alignment=True)
    parts.total.backward()
    assert all(torch.isfinite(torch.as_tensor(v)) for v in parts.as_dict().values())
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_every_regularizer_reports_its_parts() -> None:
    model = TinyNet().train()
    x, y = _batch()
    for name in REGULARIZERS:
        parts = build_regularizer(name)(model, x.float(), y, measure_alignment=True).as_dict()
        assert {"loss", "classification", "regularization", "alignment"} <= set(parts)
        assert -1.0 <= parts["alignment"] <= 1.0


def test_alignment_measured_on_the_same_forward_pass() -> None:
    model = TinyNet().double().eval()
    x, y = _batch()
    direct = gradient_alignment(model, x, y).mean()
    via_regularizer = build_regularizer("none")(model, x, y, measure_alignment=True).alignment
    torch.testing.assert_close(direct, via_regularizer)


def test_parameters_are_validated() -> None:
    with pytest.raises(ConfigError, match="lam"):
        build_regularizer("guided", lam=-1.0)
    with pytest.raises(ConfigError, match="error"):
        build_regularizer("guided", error="l3")
    with pytest.raises(ConfigError, match="unknown guided parameter 'tau'"):
        build_regularizer("guided", tau=3.0)
    with pytest.raises(ConfigError, match="unknown regularizer"):
        build_regularizer("dropout")
    assert build_regularizer("guided", lam="0.01").lam == 0.01
    assert build_regularizer("score_matching").config == {"lam": 1e-3, "mu": 1e-3, "sigma": 1e-2, "samples": 1}


# ---------------------------------------------------------------------------------------------------------------------
# Batch-norm modes and gradient_of (issue 9).


def _batch_of_four() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(4, 3, 6, 6, generator=generator, dtype=torch.float64)
    return x, torch.tensor([0, 2, 1, 2])


def _with_running_statistics(model: nn.Module) -> nn.Module:
    """Running statistics far from the batch's (so that running and batch modes differ), and frozen (momentum 0)."""
    generator = torch.Generator().manual_seed(9)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = 0.0
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator, dtype=torch.float64))
            module.running_var.copy_(0.5 + torch.rand(module.num_features, generator=generator, dtype=torch.float64))
    return model


def _own_loss_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor, rule: str = "standard") -> torch.Tensor:
    """Row i = the gradient of image i's own loss, every batch norm held at the batch's statistics, each image alone
    (an eval-mode copy whose running statistics are the batch's mean and biased variance)."""
    import copy

    frozen = copy.deepcopy(model)
    statistics: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}
    handles = [module.register_forward_hook(
        lambda module, inputs, output: statistics.__setitem__(
            module, (inputs[0].mean((0, 2, 3)), inputs[0].var((0, 2, 3), unbiased=False))))
        for module in frozen.modules() if isinstance(module, nn.BatchNorm2d)]
    with torch.no_grad():
        frozen(x)
    for handle in handles:
        handle.remove()
    for module, (mean, var) in statistics.items():
        module.running_mean.copy_(mean)
        module.running_var.copy_(var)
    frozen.eval()
    rows = []
    for i in range(len(x)):
        forward = run_forward(frozen, x[i:i + 1], y[i:i + 1])
        standard, guided = forward.loss_gradients(differentiable=False)
        rows.append(standard if rule == "standard" else guided)
    return torch.cat(rows)


def test_per_sample_rows_are_each_image_s_own_loss_gradient() -> None:
    torch.manual_seed(0)
    model = _with_running_statistics(TinyNet().double().train())
    x, y = _batch_of_four()
    standard, guided = GuidedAlignment(batchnorm="per_sample").input_gradients(model, x, y)
    torch.testing.assert_close(standard, _own_loss_gradients(model, x, y), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(guided, _own_loss_gradients(model, x, y, "guided"), rtol=1e-10, atol=1e-12)
    mixed, _ = GuidedAlignment(batchnorm="batch").input_gradients(model, x, y)  # as written: the rows mix
    assert not torch.allclose(mixed, standard, rtol=1e-3, atol=1e-6)


def test_running_mode_equals_the_eval_mode_gradients() -> None:
    torch.manual_seed(0)
    model = _with_running_statistics(TinyNet().double().train())
    x, y = _batch_of_four()
    for of in ("loss", "logit"):
        standard, guided = GuidedAlignment(batchnorm="running", gradient_of=of).input_gradients(model, x, y)
        assert model.training
        model.eval()
        expected = run_forward(model, x, y).input_gradients(False, of, y)
        model.train()
        torch.testing.assert_close(standard, expected[0], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(guided, expected[1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("batchnorm", ["per_sample", "running"])
@pytest.mark.parametrize("gradient_of", ["loss", "logit"])
def test_batchnorm_modes_keep_the_parameter_gradient_equal_to_finite_differences(batchnorm: str, gradient_of: str) -> None:
    torch.manual_seed(0)
    model = _with_running_statistics(TinyNet().double().train())
    x, y = _batch_of_four()
    regularizer = GuidedAlignment(lam=0.5, batchnorm=batchnorm, gradient_of=gradient_of)
    analytic = _analytic(model, regularizer(model, x, y).total)
    _, teacher = regularizer.input_gradients(model, x, y)  # the stop-gradient teacher, fixed

    def standard_reference() -> torch.Tensor:
        """The standard gradient computed independently of the modes' implementation."""
        if batchnorm == "running":
            model.eval()
            try:
                inputs = x.detach().requires_grad_(True)
                logits = model(inputs)
                output = F.cross_entropy(logits, y, reduction="sum") if gradient_of == "loss" else logits.gather(1, y[:, None]).sum()
                return torch.autograd.grad(output, inputs)[0]
            finally:
                model.train()
        if gradient_of == "loss":
            return _own_loss_gradients(model, x, y)
        rows = []  # the target logit's gradient, statistics frozen, one image at a time
        for i in range(len(x)):
            import copy

            frozen = copy.deepcopy(model)
            with torch.no_grad():
                captured = {}
                handles = [m.register_forward_hook(lambda m, i_, o: captured.__setitem__(m, (i_[0].mean((0, 2, 3)), i_[0].var((0, 2, 3), unbiased=False))))
                           for m in frozen.modules() if isinstance(m, nn.BatchNorm2d)]
                frozen(x)
                for h in handles:
                    h.remove()
                for m, (mean, var) in captured.items():
                    m.running_mean.copy_(mean)
                    m.running_var.copy_(var)
            frozen.eval()
            inputs = x[i:i + 1].detach().requires_grad_(True)
            rows.append(torch.autograd.grad(frozen(inputs)[0, y[i]], inputs)[0])
        return torch.cat(rows)

    def loss_with_fixed_teacher() -> torch.Tensor:
        with torch.no_grad():
            classification = F.cross_entropy(model(x), y)  # training mode: batch statistics (momentum 0)
        errors = ERROR_FUNCTIONS["cosine"](standard_reference().flatten(1), teacher.flatten(1))
        return classification + 0.5 * errors.mean()

    _directional_check(loss_with_fixed_teacher, model, analytic)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_logit_gradients_equal_interpgrad_input_gradient(mode: str) -> None:
    from interpgrad import input_gradient

    torch.manual_seed(0)
    model = _with_running_statistics(TinyNet().double())
    model.train(mode == "train")
    x, y = _batch_of_four()
    standard, guided = GuidedAlignment(gradient_of="logit").input_gradients(model, x, y)
    torch.testing.assert_close(standard, input_gradient(model, x, y, rule="standard"), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(guided, input_gradient(model, x, y, rule="guided"), rtol=1e-10, atol=1e-12)
    loss_standard, _ = GuidedAlignment().input_gradients(model, x, y)
    assert not torch.allclose(loss_standard, standard, rtol=1e-3, atol=1e-6)


def test_the_paper_preset_is_the_default() -> None:
    assert {**GuidedAlignment().config, **GuidedAlignment.presets["paper"]} == GuidedAlignment().config
