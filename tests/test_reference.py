"""interpgrad's methods equal Captum's (``interpgrad.reference``) within 1e-5, on the CIFAR ResNet-18 (width 0.25) and
on torchvision's ResNet-18 (in-place ReLUs reused within each block), for a batch of 4 with different targets.

Conventions compared: gradient maps are signed ``[B, C, H, W]`` (Captum ``Saliency(abs=False)``); Grad-CAM is the raw
CAM at the layer's resolution, and its display map is ReLU first, then bilinear upsampling with
``align_corners=False`` (Captum ``LayerGradCam(relu_attributions=True)`` + ``LayerAttribution.interpolate(...,
"bilinear")``); Guided Grad-CAM upsamples bilinearly (``interpolate_mode="bilinear"``; Captum's default is nearest).
"""

from __future__ import annotations

import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn

from interpgrad import ConfigError, explain, methods
from interpgrad.modelstate import capture_model_state
from interpgrad.reference import captum_explain, has_reference, reference_methods
from small_models import cifar_resnet18, torchvision_resnet18

TARGETS = torch.tensor([0, 3, 3, 7])
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


@pytest.fixture(scope="module", params=["cifar_resnet18", "torchvision_resnet18"])
def model_and_input(request: pytest.FixtureRequest) -> tuple[nn.Module, torch.Tensor]:
    if request.param == "cifar_resnet18":
        return cifar_resnet18(), torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    return torchvision_resnet18(), torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))


CASES = [
    ("gradient", {}),
    ("guided_backprop", {}),
    ("gradcam", {}),
    ("guided_gradcam", {}),
    ("integrated_gradients", {}),
    ("integrated_gradients", {"integration": "riemann_trapezoid", "steps": 16}),
    ("integrated_gradients", {"baseline": "blur", "steps": 16, "batch_size": 24}),
    ("smoothgrad", {"samples": 6}),
    ("smoothgrad", {"base": "guided_backprop", "samples": 6, "noise": 0.3, "seed": 5}),
    ("smoothgrad", {"base": "integrated_gradients", "samples": 3, "steps": 4}),
]


@pytest.mark.parametrize(("name", "params"), CASES, ids=[f"{name}-{'-'.join(map(str, p.values()))}" for name, p in CASES])
def test_equals_captum(model_and_input: tuple[nn.Module, torch.Tensor], name: str, params: dict) -> None:
    model, x = model_and_input
    before = capture_model_state(model).summary()
    ours = explain(model, x, name, target=TARGETS, **params)
    reference = captum_explain(model, x, name, target=TARGETS, **params)
    assert ours.raw.shape == reference.raw.shape
    assert ours.raw.abs().max() > 0
    torch.testing.assert_close(ours.raw, reference.raw, **TOLERANCE)
    torch.testing.assert_close(ours.map, reference.map, **TOLERANCE)
    assert ours.target.tolist() == reference.target.tolist() == TARGETS.tolist()
    assert capture_model_state(model).summary() == before


def test_gradcam_map_is_captums_relu_then_bilinear_upsampling(model_and_input: tuple[nn.Module, torch.Tensor]) -> None:
    model, x = model_and_input
    ours = explain(model, x, "gradcam", target=TARGETS)
    layer_map = LayerGradCam(model, model.layer4).attribute(x.clone(), target=TARGETS, relu_attributions=True)
    upsampled = LayerAttribution.interpolate(layer_map, tuple(x.shape[-2:]), interpolate_mode="bilinear").squeeze(1)
    torch.testing.assert_close(ours.map, upsampled, **TOLERANCE)


def test_reference_registry() -> None:
    assert reference_methods() == {
        "gradient": "Saliency",
        "guided_backprop": "GuidedBackprop",
        "smoothgrad": "NoiseTunnel",
        "integrated_gradients": "IntegratedGradients",
        "gradcam": "LayerGradCam",
        "guided_gradcam": "GuidedGradCam",
    }
    assert all(has_reference(name) == bool(method.captum) for name, method in methods().items())
    with pytest.raises(ConfigError, match="Captum has no equivalent of 'scorecam'"):
        captum_explain(cifar_resnet18(), torch.randn(1, 3, 32, 32), "scorecam")


class FailingReLUNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.relu(self.conv(x))
        raise RuntimeError("the forward pass failed")


def test_captum_hooks_are_removed_when_it_fails() -> None:
    model = FailingReLUNet().eval()
    before = capture_model_state(model).summary()
    for name in ("guided_backprop", "guided_gradcam"):
        with pytest.raises(RuntimeError, match="failed"):
            captum_explain(model, torch.randn(1, 3, 8, 8), name, target=0, layer="conv")
        assert capture_model_state(model).summary() == before


def test_seeded_captum_smoothgrad_is_reproducible_under_concurrent_calls() -> None:
    """Captum draws SmoothGrad's noise from torch's global generator after seeding it. Two sessions on different
    models (different model locks) run at once, several times: each must get the result it gets alone."""
    import sys
    import threading

    models = [cifar_resnet18(0), cifar_resnet18(1)]
    x = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    params = {"samples": 2, "seed": 3}
    alone = [captum_explain(model, x, "smoothgrad", target=0, **params).raw for model in models]

    def run_together() -> list:
        together: list = [None, None]
        barrier = threading.Barrier(2)

        def session(index: int) -> None:
            barrier.wait()
            together[index] = captum_explain(models[index], x, "smoothgrad", target=0, **params).raw

        threads = [threading.Thread(target=session, args=(index,)) for index in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return together

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: without the lock, draws interleave
    try:
        rounds = [run_together() for _ in range(4)]
    finally:
        sys.setswitchinterval(interval)
    for together in rounds:
        for expected, got in zip(alone, together):
            torch.testing.assert_close(got, expected, rtol=0, atol=0)
