"""``interpgrad.explain`` and its registry: every method returns finite ``[B, H, W]`` maps for a batch with different
targets, on the CIFAR ResNet-18 and on torchvision's (in-place, reused ReLUs); the model is left exactly as it was,
also when the method raises; degenerate inputs give zeros, never NaN; bad requests are one-line InterpgradErrors."""

from __future__ import annotations

import captum.attr
import pytest
import small_models
import torch
from torch import nn

import interpgrad
from interpgrad import ConfigError, ModelError, explain, methods
from interpgrad.explain import FAMILIES, Explanation
from interpgrad.modelstate import capture_model_state
from interpgrad.params import Param

METHODS = [name for name, method in methods().items() if not method.requires]  # gad needs a run: tests/test_gad.py
EXPLAINING = [name for name in METHODS if methods()[name].family != "control"]  # the controls ignore the model
TARGETS = [0, 3, 3, 7]


@pytest.fixture(scope="module", name="cifar_resnet18")
def cifar_resnet18_fixture() -> nn.Module:
    return small_models.cifar_resnet18()


@pytest.fixture(scope="module", name="torchvision_resnet18")
def torchvision_resnet18_fixture() -> nn.Module:
    return small_models.torchvision_resnet18()


def _state(model: nn.Module) -> dict:
    return capture_model_state(model).summary()


def _assert_untouched(model: nn.Module, before: dict) -> None:
    assert _state(model) == before
    assert all(parameter.grad is None for parameter in model.parameters())


# ---------------------------------------------------------------------------------------------------------------------
# The registry


def test_registry_holds_the_contract_methods() -> None:
    assert list(methods()) == [
        "gradient", "guided_backprop", "smoothgrad", "integrated_gradients", "cam", "gradcam", "gradcam++",
        "smooth_gradcam++", "scorecam", "guided_gradcam", "layercam", "xgradcam", "ablationcam", "random", "edge",
        "gad",
    ]
    assert {name: method.requires for name, method in methods().items() if method.requires} == {"gad": ("support",)}


@pytest.mark.parametrize("name", list(methods()))
def test_every_method_is_declared_completely(name: str) -> None:
    method = methods()[name]
    assert method.name == name and method.family in FAMILIES and method.description and method.source
    assert method.uses_layer == (method.family == "cam")
    assert all(isinstance(param, Param) and param.help for param in method.params)
    defaults = method.resolve({})  # every default passes its own declaration
    assert set(defaults) == {param.name for param in method.params}
    if method.captum:
        assert hasattr(captum.attr, method.captum)
    assert method.to_dict()["params"] == [param.to_dict() for param in method.params]


def test_interpgrad_info_lists_the_methods(capsys: pytest.CaptureFixture[str]) -> None:
    from interpgrad.cli import main

    assert main(["info"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in METHODS)


# ---------------------------------------------------------------------------------------------------------------------
# Every method: shape, finiteness, targets, model state


def _check_explanation(explanation: Explanation, x: torch.Tensor, name: str, targets: list[int]) -> None:
    batch, _, height, width = x.shape
    assert isinstance(explanation, Explanation)
    assert explanation.map.shape == (batch, height, width) and explanation.signed_map.shape == (batch, height, width)
    assert explanation.map.dtype == x.dtype
    assert torch.isfinite(explanation.map).all() and torch.isfinite(explanation.raw).all()
    assert (explanation.map >= 0).all()
    assert explanation.target.tolist() == targets and explanation.target.dtype == torch.long
    assert explanation.method == name
    assert explanation.logits.shape == (batch, 10)
    torch.testing.assert_close(explanation.probabilities.sum(dim=1), torch.ones(batch))
    if methods()[name].uses_layer:
        assert explanation.layer == "layer4"
        assert explanation.raw.shape[0] == batch
    else:
        assert explanation.layer is None and explanation.raw.shape == x.shape
    assert explanation.params == methods()[name].resolve({})


@pytest.mark.parametrize("name", METHODS)
def test_every_method_on_a_batch_with_different_targets(cifar_resnet18: nn.Module, name: str) -> None:
    x = torch.randn(4, 3, 32, 32)
    before = _state(cifar_resnet18)
    explanation = explain(cifar_resnet18, x, name, target=TARGETS)
    _check_explanation(explanation, x, name, TARGETS)
    assert explanation.map.abs().amax(dim=(1, 2)).gt(0).all()  # a real map for every row
    _assert_untouched(cifar_resnet18, before)


@pytest.mark.parametrize("name", METHODS)
def test_every_method_on_inplace_reused_relus(torchvision_resnet18: nn.Module, name: str) -> None:
    x = torch.randn(4, 3, 64, 64)
    assert torchvision_resnet18.layer1[0].relu.inplace
    before = _state(torchvision_resnet18)
    explanation = explain(torchvision_resnet18, x, name, target=TARGETS)
    _check_explanation(explanation, x, name, TARGETS)
    _assert_untouched(torchvision_resnet18, before)


@pytest.mark.parametrize("name", METHODS)
def test_rows_are_explained_independently(cifar_resnet18: nn.Module, name: str) -> None:
    """Row i of a batch equals the explanation of image i alone (no mixing across the batch, same noise)."""
    x = torch.randn(3, 3, 32, 32)
    batch = explain(cifar_resnet18, x, name, target=[1, 2, 5])
    single = explain(cifar_resnet18, x[1:2], name, target=2)
    torch.testing.assert_close(batch.map[1:2], single.map, rtol=1e-4, atol=1e-5 * float(single.map.abs().max()))


def test_predicted_class_is_the_default_target(cifar_resnet18: nn.Module) -> None:
    x = torch.randn(4, 3, 32, 32)
    explanation = explain(cifar_resnet18, x, "gradcam")
    with torch.no_grad():
        assert explanation.target.tolist() == cifar_resnet18(x).argmax(dim=1).tolist()
    torch.testing.assert_close(explanation.logits, cifar_resnet18(x).detach())


def test_layer_by_module_name_or_default(cifar_resnet18: nn.Module) -> None:
    x = torch.randn(2, 3, 32, 32)
    by_default = explain(cifar_resnet18, x, "gradcam", target=1)
    by_name = explain(cifar_resnet18, x, "gradcam", target=1, layer="layer4")
    by_module = explain(cifar_resnet18, x, "gradcam", target=1, layer=cifar_resnet18.layer4)
    assert by_default.layer == by_name.layer == by_module.layer == "layer4"
    torch.testing.assert_close(by_default.map, by_name.map)
    torch.testing.assert_close(by_default.map, by_module.map)
    inner = explain(cifar_resnet18, x, "gradcam", target=1, layer=cifar_resnet18.layer3[1].conv2)
    assert inner.layer == "layer3.1.conv2" and inner.raw.shape == (2, 8, 8)


def test_input_that_requires_grad_is_left_alone(cifar_resnet18: nn.Module) -> None:
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    explain(cifar_resnet18, x, "gradient")
    explain(cifar_resnet18, x, "gradcam")
    assert x.grad is None and x.requires_grad


def test_frozen_model_still_gets_layer_gradients() -> None:
    model = small_models.cifar_resnet18().requires_grad_(False)
    before = _state(model)
    explanation = explain(model, torch.randn(2, 3, 32, 32), "gradcam", target=1)
    assert explanation.map.abs().max() > 0
    _assert_untouched(model, before)


def test_train_mode_warns_and_is_kept() -> None:
    model = small_models.cifar_resnet18().train()
    before = _state(model)
    with pytest.warns(UserWarning, match="train mode"):
        explain(model, torch.randn(2, 3, 32, 32), "gradient")
    _assert_untouched(model, before)
    assert model.training and model.layer1[0].bn1.training


# ---------------------------------------------------------------------------------------------------------------------
# The model is restored when a method raises


class FailingNet(nn.Module):
    """A small CNN with in-place ReLUs and a GAP + linear head; forward passes after the first ``fail_after`` raise."""

    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(inplace=True)
        )
        self.fc = nn.Linear(8, 10)
        self.fail_after = fail_after
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.features(x)
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("the forward pass failed")
        return self.fc(features.mean(dim=(2, 3)))


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("failing", ["first", "last"])
def test_state_is_restored_when_a_forward_pass_raises(name: str, failing: str) -> None:
    x = torch.randn(2, 3, 16, 16)
    model = FailingNet().eval()
    explain(model, x, name, target=[1, 2], layer="features")
    model.fail_after = 0 if failing == "first" else model.calls - 1
    model.calls = 0
    model.features[0].register_forward_hook(lambda *args: None)  # a user's own hook must survive
    before = _state(model)
    with pytest.raises(RuntimeError, match="failed"):
        explain(model, x, name, target=[1, 2], layer="features")
    _assert_untouched(model, before)
    assert len(model.features[0]._forward_hooks) == 1


@pytest.mark.parametrize("name", [name for name, method in methods().items() if method.uses_layer])
def test_unknown_layer_is_a_model_error_and_leaves_no_trace(cifar_resnet18: nn.Module, name: str) -> None:
    before = _state(cifar_resnet18)
    with pytest.raises(ModelError, match="no layer 'layer9'"):
        explain(cifar_resnet18, torch.randn(1, 3, 32, 32), name, layer="layer9")
    _assert_untouched(cifar_resnet18, before)


def test_layer_that_is_not_a_feature_map_is_a_model_error(cifar_resnet18: nn.Module) -> None:
    with pytest.raises(ModelError, match="feature map"):
        explain(cifar_resnet18, torch.randn(1, 3, 32, 32), "gradcam", layer="fc")


def test_layer_of_another_model_is_a_model_error(cifar_resnet18: nn.Module) -> None:
    with pytest.raises(ModelError, match="not a submodule"):
        explain(cifar_resnet18, torch.randn(1, 3, 32, 32), "gradcam", layer=nn.Conv2d(3, 3, 1))


def test_cam_needs_a_gap_linear_head() -> None:
    vgg_like = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, 10)
    ).eval()
    before = _state(vgg_like)
    with pytest.raises(ConfigError, match="GAP \\+ linear head"):
        explain(vgg_like, torch.randn(2, 3, 8, 8), "cam", layer="0")
    _assert_untouched(vgg_like, before)
    assert explain(vgg_like, torch.randn(2, 3, 8, 8), "gradcam", layer="0").map.shape == (2, 8, 8)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"method": "saliency_magic"}, ConfigError, "unknown attribution method"),
        ({"method": "smoothgrad", "samples": 0}, ConfigError, "samples"),
        ({"method": "smoothgrad", "sigma": 0.2}, ConfigError, "unknown smoothgrad parameter 'sigma'"),
        ({"method": "integrated_gradients", "integration": "simpson"}, ConfigError, "integration"),
        ({"method": "integrated_gradients", "integration": "riemann_trapezoid", "steps": 1}, ConfigError, "steps >= 2"),
        ({"method": "gradient", "target": 10}, ConfigError, "out of range"),
        ({"method": "gradcam", "target": [1, 2, 3]}, ConfigError, "3 entries for a batch of 2"),
        ({"method": "gradcam", "target": 1.5}, ConfigError, "integer"),
    ],
)
def test_bad_requests_are_config_errors(cifar_resnet18: nn.Module, kwargs: dict, error: type, match: str) -> None:
    before = _state(cifar_resnet18)
    with pytest.raises(error, match=match):
        explain(cifar_resnet18, torch.randn(2, 3, 32, 32), **kwargs)
    _assert_untouched(cifar_resnet18, before)


@pytest.mark.parametrize("x", [torch.randn(3, 32, 32), torch.zeros(0, 3, 32, 32), torch.zeros(1, 3, 32, 32, dtype=torch.long), [1.0]])
def test_bad_inputs_are_config_errors(cifar_resnet18: nn.Module, x: object) -> None:
    with pytest.raises(ConfigError, match="input"):
        explain(cifar_resnet18, x, "gradient")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------------
# Degenerate cases: zeros, never NaN


class ZeroFeatures(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0


def _zero_activation_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), ZeroFeatures(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)
    ).eval()


@pytest.mark.parametrize("name", EXPLAINING)
def test_all_zero_activations_give_zero_maps(name: str) -> None:
    explanation = explain(_zero_activation_net(), torch.randn(2, 3, 16, 16), name, target=[1, 4], layer="2")
    assert torch.isfinite(explanation.raw).all()
    assert torch.equal(explanation.map, torch.zeros(2, 16, 16))


@pytest.mark.parametrize("name", EXPLAINING)
def test_constant_input_gives_finite_maps_and_zero_input_gives_zeros(name: str) -> None:
    model = small_models.cifar_resnet18()  # fresh: no biases, zero batch-norm means, so a zero input keeps every activation at 0
    for value in (0.0, 0.7):
        explanation = explain(model, torch.full((2, 3, 32, 32), value), name, target=[1, 4])
        assert torch.isfinite(explanation.raw).all() and torch.isfinite(explanation.map).all()
        if value == 0.0:
            assert torch.equal(explanation.map, torch.zeros(2, 32, 32))


# ---------------------------------------------------------------------------------------------------------------------
# Control maps


def test_control_maps_ignore_the_model(cifar_resnet18: nn.Module) -> None:
    x = torch.randn(3, 3, 32, 32)
    other = small_models.cifar_resnet18(seed=5)
    for name in ("random", "edge"):
        ours, theirs = explain(cifar_resnet18, x, name), explain(other, x, name)
        assert torch.equal(ours.map, theirs.map)
        assert not torch.equal(ours.logits, theirs.logits)  # the logits are each model's own
    first, again = explain(cifar_resnet18, x, "random"), explain(cifar_resnet18, x, "random")
    assert torch.equal(first.map, again.map) and not torch.equal(first.map[0], first.map[1])
    assert not torch.equal(first.map, explain(cifar_resnet18, x, "random", seed=1).map)
    assert 0 <= float(first.map.min()) and float(first.map.max()) < 1


def test_edge_map_is_the_sobel_magnitude() -> None:
    """A vertical step of height 1 in channel 0: Sobel's Gx is 1 + 2 + 1 = 4 on both columns beside the step, 0 elsewhere
    (replicated borders make the image's own border no edge); channels without the step give 0."""
    x = torch.zeros(1, 3, 6, 6)
    x[0, 0, :, 3:] = 1.0
    model = nn.Sequential(nn.Flatten(), nn.Linear(108, 4)).eval()
    explanation = explain(model, x, "edge")
    expected = torch.zeros(6, 6)
    expected[:, 2:4] = 4.0
    torch.testing.assert_close(explanation.raw[0, 0], expected)
    assert torch.equal(explanation.raw[0, 1:], torch.zeros(2, 6, 6))
    torch.testing.assert_close(explanation.map[0], expected)
