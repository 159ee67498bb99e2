"""The training-mode batch norm with a hand-written double backward equals PyTorch's, to float64 precision."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import interpgrad
from interpgrad.batchnorm import batch_norm_train
from interpgrad.gradients import rectifier_hooks
from interpgrad.regularizers import GuidedAlignment


def _inputs(shape: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    x = (torch.randn(shape, generator=generator, dtype=torch.float64) * 2 + 0.5).requires_grad_()
    channels = shape[1]
    weight = (torch.rand(channels, generator=generator, dtype=torch.float64) + 0.5).requires_grad_()
    bias = torch.randn(channels, generator=generator, dtype=torch.float64).requires_grad_()
    return x, weight, bias


@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (6, 2, 7), (5, 4)])
def test_values_first_and_second_derivatives_equal_pytorch(shape: tuple[int, ...]) -> None:
    x, weight, bias = _inputs(shape)
    generator = torch.Generator().manual_seed(1)
    upstream = torch.randn(shape, generator=generator, dtype=torch.float64)
    probe = torch.randn(shape, generator=generator, dtype=torch.float64)
    results = []
    for function in (F.batch_norm, batch_norm_train):
        mean, var = torch.zeros(shape[1], dtype=torch.float64), torch.ones(shape[1], dtype=torch.float64)
        output = function(x, mean, var, weight, bias, True, 0.1, 1e-5)
        first = torch.autograd.grad((output * upstream).sum(), (x, weight, bias), create_graph=True)
        # Differentiate a function of the input gradient (what the regularizers do) w.r.t. everything.
        second = torch.autograd.grad((first[0] * probe).sum() + first[1].pow(2).sum(), (x, weight), allow_unused=True)
        results.append((output, mean, var, *first, *second))
    for ours, reference in zip(results[1], results[0]):
        torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)


def test_gradcheck_of_the_double_backward() -> None:
    x, weight, bias = _inputs((3, 2, 3, 3))
    upstream = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)

    def gradients(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, upstream: torch.Tensor) -> tuple[torch.Tensor, ...]:
        output = batch_norm_train(x, None, None, weight, bias, True, 0.1, 1e-5)
        return torch.autograd.grad((output * upstream).sum(), (x, weight, bias), create_graph=True)

    assert torch.autograd.gradcheck(gradients, (x, weight, bias, upstream))


def test_regularized_parameter_gradients_unchanged_on_a_resnet() -> None:
    model = interpgrad.build_model("resnet18", width=0.25).double().train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(6, 3, 16, 16, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 4, 5])
    GuidedAlignment(lam=1.0)(model, x, y).total.backward()
    ours = [p.grad.clone() for p in model.parameters()]
    fast_stats = {k: v.clone() for k, v in model.state_dict().items()}

    model.load_state_dict(state)
    model.zero_grad()
    # The same loss through PyTorch's own batch norm.
    inputs = x.detach().requires_grad_()
    with rectifier_hooks(cheap_batch_norm_double_backward=False) as rules:
        logits = model(inputs)
    losses = F.cross_entropy(logits, y, reduction="none")
    with rules.use("guided"):
        (guided,) = torch.autograd.grad(losses.sum(), inputs, retain_graph=True)
    (standard,) = torch.autograd.grad(losses.sum(), inputs, create_graph=True)
    cosine = F.cosine_similarity(standard.flatten(1), guided.flatten(1), dim=1, eps=1e-12)
    (losses.mean() - cosine.mean()).backward()
    for a, b in zip(ours, (p.grad for p in model.parameters())):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    for key, value in model.state_dict().items():  # running statistics updated the same way
        torch.testing.assert_close(fast_stats[key], value)
