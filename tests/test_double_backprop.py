"""The cheaper double backward of convolutions and training-mode batch norms equals PyTorch's own, to float64
precision, and input-only passes compute no parameter gradients."""

from __future__ import annotations

from typing import Callable

import pytest
import torch
import torch.nn.functional as F

import interpgrad
from interpgrad import double_backprop
from interpgrad.gradients import rectifier_hooks
from interpgrad.regularizers import REGULARIZERS, build_regularizer, run_forward


def _random(*shape: int, seed: int, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=generator, dtype=torch.float64) * scale + shift).requires_grad_()


def _first_and_second(function: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...], cheap: bool) -> list:
    """The output, its gradients w.r.t. every input (with graph), and the gradients of a function of those gradients."""
    with rectifier_hooks(cheap_double_backward=cheap):
        output = function(*inputs)
    upstream = torch.randn(output.shape, generator=torch.Generator().manual_seed(5), dtype=output.dtype)
    first = torch.autograd.grad((output * upstream).sum(), inputs, create_graph=True)
    probes = [torch.randn(f.shape, generator=torch.Generator().manual_seed(6 + i), dtype=f.dtype) for i, f in enumerate(first)]
    objective = sum((f * p).sum() + f.pow(2).sum() for f, p in zip(first, probes))
    second = torch.autograd.grad(objective, inputs, allow_unused=True)
    return [output, *first, *second]


def _assert_same(ours: list, reference: list) -> None:
    for a, b in zip(ours, reference):
        if a is None or b is None:
            assert a is None or b is None or torch.count_nonzero(a if b is None else b) == 0
        else:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "stride, padding, dilation, groups",
    [(1, 1, 1, 1), (2, 1, 1, 1), (1, 2, 2, 1), (2, 0, 1, 2), (1, 1, 1, 4)],
)
def test_convolution_matches_pytorch(stride: int, padding: int, dilation: int, groups: int) -> None:
    x = _random(3, 4, 9, 9, seed=0)
    weight = _random(8, 4 // groups, 3, 3, seed=1)
    bias = _random(8, seed=2)

    def convolution(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    _assert_same(_first_and_second(convolution, (x, weight, bias), True), _first_and_second(convolution, (x, weight, bias), False))


@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (6, 2, 7), (5, 4)])
def test_batch_norm_matches_pytorch(shape: tuple[int, ...]) -> None:
    x = _random(*shape, seed=0, scale=2.0, shift=0.5)
    weight = _random(shape[1], seed=1, scale=0.3, shift=1.0)
    bias = _random(shape[1], seed=2)
    results = []
    for cheap in (True, False):
        running = (torch.zeros(shape[1], dtype=torch.float64), torch.ones(shape[1], dtype=torch.float64))

        def batch_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
            return F.batch_norm(x, running[0], running[1], weight, bias, True, 0.1, 1e-5)

        results.append(_first_and_second(batch_norm, (x, weight, bias), cheap) + list(running))
    _assert_same(*results)


def test_gradcheck_of_both_double_backwards() -> None:
    x = _random(3, 2, 5, 5, seed=0)
    weight = _random(2, 2, 3, 3, seed=1)
    gamma = _random(2, seed=2, scale=0.2, shift=1.0)
    beta = _random(2, seed=3)
    upstream = _random(3, 2, 5, 5, seed=4)

    def gradients(x, weight, gamma, beta, upstream):  # type: ignore[no-untyped-def]
        with rectifier_hooks(cheap_double_backward=True):
            hidden = F.conv2d(x, weight, None, 1, 1)
            output = F.batch_norm(hidden, None, None, gamma, beta, True, 0.1, 1e-5)
        return torch.autograd.grad((output * upstream).sum(), (x, weight, gamma, beta), create_graph=True)

    assert torch.autograd.gradcheck(gradients, (x, weight, gamma, beta, upstream))


def test_the_replacement_is_used_only_where_it_applies() -> None:
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    rules = object()
    assert double_backprop.replacement_for(F.conv2d, (x, torch.randn(2, 3, 3, 3)), {}, rules) is not None
    assert double_backprop.replacement_for(F.conv2d, (x, torch.randn(2, 3, 3, 3)), {"padding": "same"}, rules) is None
    eval_mode = (x, torch.zeros(3), torch.ones(3), torch.ones(3), torch.zeros(3), False)
    assert double_backprop.replacement_for(F.batch_norm, eval_mode, {}, rules) is None
    with torch.no_grad():
        assert double_backprop.replacement_for(F.conv2d, (x, torch.randn(2, 3, 3, 3)), {}, rules) is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert double_backprop.replacement_for(F.conv2d, (x, torch.randn(2, 3, 3, 3)), {}, rules) is None


def test_input_only_passes_compute_no_weight_gradients(monkeypatch: pytest.MonkeyPatch) -> None:
    masks: list[list[bool]] = []
    original = double_backprop._convolution_backward

    def recording(g, x, weight, params, mask):  # type: ignore[no-untyped-def]
        masks.append(list(mask))
        return original(g, x, weight, params, mask)

    monkeypatch.setattr(double_backprop, "_convolution_backward", recording)
    model = interpgrad.build_model("resnet18", width=0.25).train()
    x, y = torch.randn(2, 3, 16, 16), torch.tensor([1, 2])
    build_regularizer("guided")(model, x, y)  # the guided and the standard pass, no final backward
    assert masks and all(mask[1:] == [False, False] for mask in masks)
    masks.clear()
    build_regularizer("guided")(model, x, y).total.backward()
    assert any(mask[1] for mask in masks)


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2"])
@pytest.mark.parametrize("name", [name for name in REGULARIZERS if name != "none"])
def test_regularized_parameter_gradients_unchanged(arch: str, name: str) -> None:
    activation = REGULARIZERS[name].recommended_activation
    model = interpgrad.build_model(arch, width=0.25, activation=activation).double().train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(4, 3, 16, 16, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3])
    results = []
    for cheap in (True, False):
        model.load_state_dict(state)
        model.zero_grad()
        regularizer = build_regularizer(name, lam=1.0)
        regularizer.cheap_double_backward = cheap
        torch.manual_seed(3)
        regularizer(model, x, y).total.backward()
        results.append(([p.grad.clone() for p in model.parameters()], {k: v.clone() for k, v in model.state_dict().items()}))
    (ours, our_state), (reference, reference_state) = results
    scale = max(float(b.abs().max()) for b in reference)  # score matching multiplies by 2 / sigma^2
    for a, b in zip(ours, reference):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10 * scale)
    for key, value in reference_state.items():  # running statistics updated the same way
        torch.testing.assert_close(our_state[key], value)


@pytest.mark.parametrize("arch", ["torchvision.resnet18", "mobilenet_v2", "resnet18"])
def test_standard_and_guided_gradients_unchanged(arch: str) -> None:
    """In-place and reused ReLUs (torchvision), ReLU6 (MobileNet): both rules give the same input gradients."""
    model = interpgrad.build_model(arch, num_classes=10, width=1.0 if "torchvision" in arch else 0.25).double().train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    y = torch.tensor([1, 2, 3])
    results = []
    for cheap in (True, False):
        model.load_state_dict(state)
        results.append(run_forward(model, x, y, cheap).loss_gradients(differentiable=False))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)
    assert not torch.allclose(*results[0])  # guided differs from standard


def test_inplace_relu_through_the_replacement() -> None:
    x = torch.randn(2, 5, requires_grad=True)
    with rectifier_hooks(cheap_double_backward=True) as rules:
        hidden = x * 2
        output = F.relu(hidden, inplace=True)
    assert output is hidden and rules.count == 1
    (gradient,) = torch.autograd.grad((output * torch.arange(5.0)).sum(), x)
    torch.testing.assert_close(gradient, 2 * (x > 0) * torch.arange(5.0))


def test_regularizers_run_under_bf16_autocast() -> None:
    model = interpgrad.build_model("resnet18", width=0.25).train()
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    for name in REGULARIZERS:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            parts = build_regularizer(name)(model, x, y)
        parts.total.backward()
        assert torch.isfinite(parts.total)
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        model.zero_grad()
