"""The gradient engine: standard and guided input gradients equal Captum's, hand-computed ReLU6 cases, functional and
in-place rectifiers, batches, and the model left exactly as it was (also when an exception is raised)."""

from __future__ import annotations

import numpy as np
import pytest
import small_models
import torch
import torch.nn.functional as F
import torchvision
from captum.attr import GuidedBackprop, Saliency
from torch import nn

import interpgrad
from interpgrad import ConfigError, input_gradient
from interpgrad.modelstate import capture_model_state, preserved_model_state


def _captum_guided(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return GuidedBackprop(model).attribute(x.clone(), target=target)


def _captum_saliency(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return Saliency(model).attribute(x.clone(), target=target, abs=False)


@pytest.fixture(scope="module", name="torchvision_resnet18")
def torchvision_resnet18_fixture() -> nn.Module:
    return small_models.torchvision_resnet18()


def test_torchvision_resnet_uses_inplace_and_reused_relus(torchvision_resnet18: nn.Module) -> None:
    block = torchvision_resnet18.layer1[0]
    assert block.relu.inplace
    calls = []
    handle = block.relu.register_forward_hook(lambda *args: calls.append(1))
    torchvision_resnet18(torch.randn(1, 3, 64, 64))
    handle.remove()
    assert len(calls) == 2  # the same ReLU module runs twice per block


@pytest.mark.parametrize("rule", ["standard", "guided"])
def test_equals_captum_on_torchvision_resnet18(torchvision_resnet18: nn.Module, rule: str) -> None:
    x = torch.randn(3, 3, 64, 64)
    target = torch.tensor([1, 5, 9])
    ours = input_gradient(torchvision_resnet18, x, target, rule=rule)
    reference = (_captum_guided if rule == "guided" else _captum_saliency)(torchvision_resnet18, x, target)
    assert ours.shape == x.shape
    assert ours.abs().max() > 0
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("rule", ["standard", "guided"])
def test_equals_captum_on_cifar_resnet18(rule: str) -> None:
    model = interpgrad.build_model("resnet18", width=0.25).eval()
    x = torch.randn(4, 3, 32, 32)
    target = torch.tensor([0, 3, 3, 7])
    ours = input_gradient(model, x, target, rule=rule)
    reference = (_captum_guided if rule == "guided" else _captum_saliency)(model, x, target)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)


def test_guided_differs_from_standard() -> None:
    model = interpgrad.build_model("resnet18", width=0.25).eval()
    x = torch.randn(2, 3, 32, 32)
    standard = input_gradient(model, x, 0)
    guided = input_gradient(model, x, 0, rule="guided")
    assert not torch.allclose(standard, guided)


class TwoLayerReLU6(nn.Module):
    """f(x) = v . relu6(U relu6(W x)), small enough to differentiate by hand."""

    def __init__(self, W: np.ndarray, U: np.ndarray, v: np.ndarray) -> None:
        super().__init__()
        self.first = nn.Linear(W.shape[1], W.shape[0], bias=False)
        self.second = nn.Linear(U.shape[1], U.shape[0], bias=False)
        self.head = nn.Linear(v.shape[0], 1, bias=False)
        self.act = nn.ReLU6(inplace=True)
        with torch.no_grad():
            self.first.weight.copy_(torch.from_numpy(W))
            self.second.weight.copy_(torch.from_numpy(U))
            self.head.weight.copy_(torch.from_numpy(v)[None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.second(self.act(self.first(x)))))


def test_guided_relu6_hand_computed() -> None:
    W = np.array([[1.0, 0.0, 2.0], [0.5, -1.0, 0.0], [3.0, 1.0, 1.0], [-1.0, 0.0, 0.0]])
    U = np.array([[1.0, -1.0, 0.5, 2.0], [-2.0, 1.0, -0.5, 1.0]])
    v = np.array([1.0, -3.0])
    x = np.array([1.0, -2.0, 0.5])
    # Layer 1: u1 = W x = [2, 2.5, 3.5, -1] -> mask 1[0<u1<6] = [1, 1, 1, 0]; relu6 = [2, 2.5, 3.5, 0]
    # Layer 2: u2 = U a1 = [1.25, -1.25] -> mask = [1, 0]
    u1 = W @ x
    m1 = ((u1 > 0) & (u1 < 6)).astype(float)
    u2 = U @ np.clip(u1, 0, 6)
    m2 = ((u2 > 0) & (u2 < 6)).astype(float)
    standard = W.T @ (m1 * (U.T @ (m2 * v)))
    guided = W.T @ (m1 * np.maximum(U.T @ (m2 * np.maximum(v, 0)), 0))
    assert not np.allclose(standard, guided)
    model = TwoLayerReLU6(W, U, v).double()
    inputs = torch.from_numpy(x)[None]
    np.testing.assert_allclose(input_gradient(model, inputs, 0)[0].numpy(), standard, atol=1e-12)
    np.testing.assert_allclose(input_gradient(model, inputs, 0, rule="guided")[0].numpy(), guided, atol=1e-12)


def test_guided_relu6_saturated_units_pass_nothing() -> None:
    model = TwoLayerReLU6(np.array([[10.0]]), np.array([[1.0]]), np.array([1.0])).double()
    # u1 = 10 > 6: the unit is saturated, so both rules give 0 (1[0 < u < 6] = 0).
    gradient = input_gradient(model, torch.tensor([[1.0]], dtype=torch.float64), 0, rule="guided")
    assert gradient.item() == 0.0


class FunctionalNet(nn.Module):
    """Same computation written with functional rectifiers of every kind, or with modules."""

    def __init__(self, functional: bool) -> None:
        super().__init__()
        self.functional = functional
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv3 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv4 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 5)
        self.relu = nn.ReLU(inplace=True)
        self.relu6 = nn.ReLU6()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.functional:
            x = F.relu(self.conv1(x))
            x = torch.relu(self.conv2(x))
            x = self.conv3(x).relu_()
            x = F.relu6(self.conv4(x) * 4)
        else:
            x = self.relu(self.conv1(x))
            x = self.relu(self.conv2(x))
            x = self.relu(self.conv3(x))
            x = self.relu6(self.conv4(x) * 4)
        return self.fc(x.mean((2, 3)))


def test_functional_rectifiers_get_the_guided_rule() -> None:
    modules = FunctionalNet(functional=False).eval()
    functional = FunctionalNet(functional=True).eval()
    functional.load_state_dict(modules.state_dict())
    x = torch.randn(2, 3, 12, 12)
    for rule in ("standard", "guided"):
        torch.testing.assert_close(input_gradient(functional, x, [1, 4], rule=rule), input_gradient(modules, x, [1, 4], rule=rule))
    assert not torch.allclose(input_gradient(functional, x, 1, rule="guided"), input_gradient(functional, x, 1))


def test_inplace_relu_same_as_out_of_place() -> None:
    model = torchvision.models.resnet18(num_classes=4).eval()
    copy = torchvision.models.resnet18(num_classes=4).eval()
    copy.load_state_dict(model.state_dict())
    for module in copy.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    x = torch.randn(2, 3, 48, 48)
    torch.testing.assert_close(input_gradient(model, x, 2, rule="guided"), input_gradient(copy, x, 2, rule="guided"))


@pytest.mark.parametrize("rule", ["standard", "guided"])
def test_batch_rows_are_independent(rule: str) -> None:
    model = interpgrad.build_model("mobilenet_v2", width=0.25).eval()
    x = torch.randn(3, 3, 32, 32)
    target = torch.tensor([2, 0, 9])
    batched = input_gradient(model, x, target, rule=rule)
    for i in range(3):
        single = input_gradient(model, x[i : i + 1], int(target[i]), rule=rule)
        torch.testing.assert_close(batched[i : i + 1], single, atol=1e-6, rtol=1e-5)


def test_target_none_is_the_predicted_class() -> None:
    model = interpgrad.build_model("resnet18", width=0.25).eval()
    x = torch.randn(3, 3, 32, 32)
    predicted = model(x).argmax(1)
    torch.testing.assert_close(input_gradient(model, x, None), input_gradient(model, x, predicted))


def test_softplus_models_have_a_guided_gradient() -> None:
    model = interpgrad.build_model("resnet18", width=0.25, activation="softplus").eval()
    assert not any(isinstance(m, (nn.ReLU, nn.ReLU6)) for m in model.modules())
    x = torch.randn(2, 3, 32, 32)
    assert not torch.allclose(input_gradient(model, x, 0, rule="guided"), input_gradient(model, x, 0))


def test_standard_gradient_is_differentiable() -> None:
    model = interpgrad.build_model("resnet18", width=0.25).double().train()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    gradient = input_gradient(model, x, [1, 2], create_graph=True)
    assert gradient.requires_grad
    (second,) = torch.autograd.grad(gradient.pow(2).sum(), model.conv1.weight)
    assert torch.isfinite(second).all() and second.abs().sum() > 0


def test_bad_targets_and_rules_are_clear_errors() -> None:
    model = interpgrad.build_model("resnet18", width=0.25).eval()
    x = torch.randn(2, 3, 32, 32)
    with pytest.raises(ConfigError, match="out of range"):
        input_gradient(model, x, 10)
    with pytest.raises(ConfigError, match="2 entries|3 entries"):
        input_gradient(model, x, [1, 2, 3])
    with pytest.raises(ConfigError, match="unknown backward rule"):
        input_gradient(model, x, 0, rule="deconvnet")


# --- model-state restoration ----------------------------------------------------------------------------------------


def _state(model: nn.Module) -> dict:
    return capture_model_state(model).summary()


@pytest.mark.parametrize("rule", ["standard", "guided"])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_model_left_exactly_as_it_was(torchvision_resnet18: nn.Module, rule: str, mode: str) -> None:
    model = torchvision_resnet18
    model.train(mode == "train")
    model.layer1.requires_grad_(False)
    before = _state(model)
    weights = {k: v.clone() for k, v in model.state_dict().items()}  # batch-norm running statistics included
    input_gradient(model, torch.randn(2, 3, 64, 64), 1, rule=rule, create_graph=(rule == "standard"))
    assert _state(model) == before
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())
    assert model.layer1[0].relu.inplace
    model.requires_grad_(True)
    model.eval()


class Exploding(nn.Module):
    """A model whose forward pass changes itself (a hook, a mode, a flag, a module, running statistics) and raises."""

    def __init__(self) -> None:
        super().__init__()
        self.body = interpgrad.build_model("resnet18", width=0.25)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.body.layer2.register_forward_hook(lambda *args: None)
        self.body.layer3.train()
        self.body.fc.requires_grad_(False)
        self.body.relu = nn.Softplus()
        self.body.layer1(F.relu(self.body.bn1(self.body.conv1(x))))
        raise RuntimeError("boom inside the forward pass")


def test_model_restored_when_an_exception_is_raised_inside() -> None:
    model = Exploding().train()
    model.body.layer3.eval()
    before = _state(model)
    running = model.body.bn1.running_mean.clone()
    with pytest.raises(RuntimeError, match="boom"):
        input_gradient(model, torch.randn(2, 3, 32, 32), 0, rule="guided")
    assert _state(model) == before
    assert isinstance(model.body.relu, nn.ReLU) and not model.body.layer3.training
    assert torch.equal(model.body.bn1.running_mean, running)
    # The rectifier mode is gone with the exception: a later forward pass outside the engine is not intercepted.
    assert not torch.overrides._get_current_function_mode_stack()
    with pytest.raises(ConfigError):
        input_gradient(model.body, torch.randn(1, 3, 32, 32), 99, rule="guided")
    assert _state(model) == before


def test_preserved_model_state_undoes_hooks_modes_flags_grads_and_modules() -> None:
    model = interpgrad.build_model("resnet18", width=0.25).eval()
    before = _state(model)
    relu = model.relu
    with pytest.raises(KeyError):
        with preserved_model_state(model):
            model.layer4.register_forward_hook(lambda *a: None)
            model.conv1.register_full_backward_hook(lambda *a: None)
            model.fc.weight.register_hook(lambda g: g)
            nn.modules.module.register_module_forward_hook(lambda *a: None)
            model.train()
            model.fc.requires_grad_(False)
            model.conv1.weight.grad = torch.ones_like(model.conv1.weight)
            model.relu = nn.Softplus()
            raise KeyError("inside")
    assert _state(model) == before
    assert model.relu is relu
    assert model.conv1.weight.grad is None
    assert not nn.modules.module._global_forward_hooks
