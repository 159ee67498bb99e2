"""Properties of the individual methods: the formulas on a head whose gradients are known in closed form, CAM = Grad-CAM
up to h*w, Integrated Gradients' completeness and quadrature, Score-CAM and Ablation-CAM equal to their one-channel-
at-a-time definitions whatever the batch size, seeded noise, and hooks that survive in-place ReLUs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import interpgrad
from interpgrad import explain, methods
from interpgrad.explain.gradient_methods import quadrature

CAM_METHODS = [name for name, method in methods().items() if method.uses_layer]


class GapLinearNet(nn.Module):
    """conv -> ReLU -> (target layer ``features``) -> global average -> linear: ``dy_t/dA^k_ij = W_tk / (h w)``."""

    def __init__(self, channels: int = 6, classes: int = 5) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, channels, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))


@pytest.fixture
def gap_net() -> GapLinearNet:
    torch.manual_seed(3)
    return GapLinearNet().eval()


def _activations(model: GapLinearNet, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.features(x)


# ---------------------------------------------------------------------------------------------------------------------
# Closed forms on a GAP + linear head


def test_cam_is_gradcam_times_hw(gap_net: GapLinearNet) -> None:
    """Grad-CAM's weights are ``W_tk / (h w)`` on such a head, CAM's are ``W_tk``: the maps differ by ``h w > 0``."""
    x, target = torch.randn(4, 3, 16, 16), [0, 1, 4, 4]
    cam = explain(gap_net, x, "cam", target=target, layer="features")
    gradcam = explain(gap_net, x, "gradcam", target=target, layer="features")
    height, width = cam.raw.shape[-2:]
    torch.testing.assert_close(cam.raw, gradcam.raw * (height * width), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cam.map, gradcam.map * (height * width), rtol=1e-5, atol=1e-6)
    weights = gap_net.fc.weight.detach()[torch.tensor(target)]
    torch.testing.assert_close(cam.raw, torch.einsum("bk,bkhw->bhw", weights, _activations(gap_net, x)))


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2"])
def test_cam_is_gradcam_times_hw_on_interpgrad_models(arch: str) -> None:
    model = interpgrad.build_model(arch, width=0.25).eval()
    x = torch.randn(2, 3, 32, 32)
    cam = explain(model, x, "cam", target=[2, 7])
    gradcam = explain(model, x, "gradcam", target=[2, 7])
    torch.testing.assert_close(cam.raw, gradcam.raw * cam.raw[0].numel(), rtol=1e-4, atol=1e-6)


def test_gradient_weighted_cams_in_closed_form(gap_net: GapLinearNet) -> None:
    """With ``g_k = c_k`` constant over the map: XGrad-CAM = Grad-CAM, Layer-CAM = ``sum_k ReLU(c_k) A^k``, and
    Grad-CAM++ ``alpha_k = hw ReLU(c_k) / (2 + c_k sum_ij A^k_ij)``."""
    x, target = torch.randn(3, 3, 16, 16), [1, 2, 3]
    activations = _activations(gap_net, x)
    height, width = activations.shape[-2:]
    c = gap_net.fc.weight.detach()[torch.tensor(target)] / (height * width)  # [B, K]
    cam = {name: explain(gap_net, x, name, target=target, layer="features").raw for name in ("gradcam", "xgradcam", "layercam", "gradcam++")}
    torch.testing.assert_close(cam["gradcam"], torch.einsum("bk,bkhw->bhw", c, activations))
    torch.testing.assert_close(cam["xgradcam"], cam["gradcam"], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(cam["layercam"], torch.einsum("bk,bkhw->bhw", c.clamp(min=0), activations))
    plus_plus = height * width * c.clamp(min=0) / (2 + c * activations.sum(dim=(2, 3)))
    torch.testing.assert_close(cam["gradcam++"], torch.einsum("bk,bkhw->bhw", plus_plus, activations), rtol=1e-5, atol=1e-7)


def test_guided_gradcam_is_guided_backprop_times_upsampled_gradcam(gap_net: GapLinearNet) -> None:
    x, target = torch.randn(2, 3, 16, 16), [0, 3]
    guided = explain(gap_net, x, "guided_backprop", target=target).raw
    gradcam = explain(gap_net, x, "gradcam", target=target, layer="features").map  # ReLU, then bilinear upsampling
    combined = explain(gap_net, x, "guided_gradcam", target=target, layer="features")
    torch.testing.assert_close(combined.raw, guided * gradcam.unsqueeze(1))
    assert combined.raw.shape == x.shape


# ---------------------------------------------------------------------------------------------------------------------
# Hooks and in-place operations


class ConvThenReLU(nn.Module):
    def __init__(self, inplace: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.relu = nn.ReLU(inplace=inplace)
        self.conv2 = nn.Conv2d(6, 6, 3, stride=2, padding=1)
        self.fc = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.conv2(self.relu(self.conv(x)))).mean(dim=(2, 3)))


@pytest.mark.parametrize("name", [name for name in CAM_METHODS if name != "cam"])
@pytest.mark.parametrize("layer", ["conv", "relu"])
def test_inplace_relu_after_the_layer_changes_nothing(name: str, layer: str) -> None:
    """The recorded activations and gradients are the layer's own, even when an in-place ReLU overwrites its output."""
    torch.manual_seed(5)
    out_of_place = ConvThenReLU(inplace=False).eval()
    in_place = ConvThenReLU(inplace=True).eval()
    in_place.load_state_dict(out_of_place.state_dict())
    x = torch.randn(2, 3, 12, 12)
    expected = explain(out_of_place, x, name, target=[0, 3], layer=layer)
    actual = explain(in_place, x, name, target=[0, 3], layer=layer)
    torch.testing.assert_close(actual.raw, expected.raw)
    if layer == "conv":  # what an in-place ReLU would erase from a recorded output that is not copied
        assert (_layer_output(out_of_place, out_of_place.conv, x) < 0).any()


def test_reused_module_is_recorded_at_its_last_call() -> None:
    """torchvision's BasicBlock calls ``relu`` twice; the block's output is the second call."""
    import torchvision

    model = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.randn(2, 3, 64, 64)
    by_relu = explain(model, x, "gradcam", target=[1, 2], layer="layer4.1.relu")
    by_block = explain(model, x, "gradcam", target=[1, 2], layer="layer4.1")
    torch.testing.assert_close(by_relu.raw, by_block.raw)


# ---------------------------------------------------------------------------------------------------------------------
# Integrated Gradients


@pytest.mark.parametrize("rule", ["gauss_legendre", "riemann_trapezoid"])
def test_quadrature_weights_sum_to_one(rule: str) -> None:
    for steps in (2, 7, 32):
        alphas, weights = quadrature(rule, steps)
        assert len(alphas) == len(weights) == steps
        assert all(0.0 <= alpha <= 1.0 for alpha in alphas)
        assert sum(weights) == pytest.approx(1.0, abs=1e-12)


def test_gauss_legendre_is_exact_for_polynomials_of_degree_2n_minus_1() -> None:
    alphas, weights = quadrature("gauss_legendre", 3)
    assert sum(w * a**5 for a, w in zip(alphas, weights)) == pytest.approx(1 / 6, abs=1e-12)


@pytest.mark.parametrize("rule", ["gauss_legendre", "riemann_trapezoid"])
def test_integrated_gradients_of_a_linear_model_is_exact(rule: str) -> None:
    """``f(x) = w . x + b``: IG = (x - x') * w for any rule whose weights sum to 1 (Captum's trapezoid does not)."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4)).eval()
    x = torch.randn(2, 3, 8, 8)
    explanation = explain(model, x, "integrated_gradients", target=[1, 3], integration=rule, steps=5)
    weights = model[1].weight.detach()[torch.tensor([1, 3])].view(2, 3, 8, 8)
    torch.testing.assert_close(explanation.raw, x * weights)


@pytest.mark.parametrize("baseline", ["zero", "blur"])
def test_integrated_gradients_completeness(baseline: str) -> None:
    """On a smooth (Softplus) network, ``sum IG = f_t(x) - f_t(x')`` up to the quadrature error."""
    from interpgrad.explain.gradient_methods import baseline_for

    torch.manual_seed(2)
    model = interpgrad.build_model("resnet18", width=0.25, activation="softplus", softplus_beta=2.0).eval()
    x, target = torch.randn(2, 3, 32, 32), torch.tensor([1, 6])
    explanation = explain(model, x, "integrated_gradients", target=target, steps=48, baseline=baseline, batch_size=40)
    with torch.no_grad():
        difference = (model(x) - model(baseline_for(x, baseline, 5.0))).gather(1, target.view(-1, 1)).squeeze(1)
    torch.testing.assert_close(explanation.signed_map.sum(dim=(1, 2)), difference, rtol=2e-2, atol=1e-4)


def test_integrated_gradients_does_not_depend_on_the_batch_size() -> None:
    model = interpgrad.build_model("resnet18", width=0.25).eval()
    x = torch.randn(2, 3, 32, 32)
    reference = explain(model, x, "integrated_gradients", target=[1, 2], steps=9).raw
    for batch_size in (1, 4, 18):
        chunked = explain(model, x, "integrated_gradients", target=[1, 2], steps=9, batch_size=batch_size).raw
        torch.testing.assert_close(chunked, reference, rtol=1e-5, atol=1e-8)


# ---------------------------------------------------------------------------------------------------------------------
# Noise: SmoothGrad and Smooth Grad-CAM++


@pytest.mark.parametrize(("name", "layer"), [("smoothgrad", None), ("smooth_gradcam++", "layer3")])
def test_seeded_noise_is_reproducible_and_leaves_the_global_generator_alone(name: str, layer: str | None) -> None:
    model = interpgrad.build_model("resnet18", width=0.25).eval()
    x = torch.randn(2, 3, 32, 32)
    global_state = torch.get_rng_state()
    first = explain(model, x, name, target=[1, 2], layer=layer, samples=6, seed=11)
    assert torch.equal(torch.get_rng_state(), global_state)
    torch.manual_seed(123)  # the global seed plays no part
    again = explain(model, x, name, target=[1, 2], layer=layer, samples=6, seed=11)
    other = explain(model, x, name, target=[1, 2], layer=layer, samples=6, seed=12)
    assert torch.equal(first.raw, again.raw)
    assert not torch.allclose(first.raw, other.raw)
    chunked = explain(model, x, name, target=[1, 2], layer=layer, samples=6, seed=11, batch_size=2)
    torch.testing.assert_close(chunked.raw, first.raw, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(("name", "base", "equivalent"), [
    ("smoothgrad", "gradient", "gradient"),
    ("smoothgrad", "guided_backprop", "guided_backprop"),
    ("smoothgrad", "integrated_gradients", "integrated_gradients"),
    ("smooth_gradcam++", None, "gradcam++"),
])
def test_zero_noise_gives_the_base_method(name: str, base: str | None, equivalent: str) -> None:
    model = interpgrad.build_model("resnet18", width=0.25).eval()
    x = torch.randn(2, 3, 32, 32)
    params = {"noise": 0.0, "samples": 3, **({"base": base} if base else {})}
    layer = "layer3" if name != "smoothgrad" else None
    smoothed = explain(model, x, name, target=[4, 5], layer=layer, **params)
    plain = explain(model, x, equivalent, target=[4, 5], layer=layer)
    torch.testing.assert_close(smoothed.raw, plain.raw, rtol=1e-5, atol=1e-7)


def test_smoothgrad_noise_is_relative_to_each_images_range() -> None:
    """Scaling an image by k scales its noise by k: on a positively homogeneous network (ReLU, no biases), whose
    gradient at ``k x`` equals the one at ``x``, SmoothGrad of ``10 x`` equals SmoothGrad of ``x``."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3, bias=False)).eval()
    x = torch.randn(1, 3, 8, 8)
    small = explain(model, x, "smoothgrad", target=1, samples=5)
    large = explain(model, x * 10, "smoothgrad", target=1, samples=5)
    torch.testing.assert_close(small.raw, large.raw, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------------
# Score-CAM and Ablation-CAM: the batched computation equals the one-channel-at-a-time definition


def _layer_output(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    seen = []
    handle = layer.register_forward_hook(lambda module, inputs, output: seen.append(output.detach().clone()))
    with torch.no_grad():
        model(x)
    handle.remove()
    return seen[-1]


def _scorecam_by_definition(model: nn.Module, layer: nn.Module, x: torch.Tensor, target: list[int]) -> torch.Tensor:
    activations = _layer_output(model, layer, x)
    maps = []
    for index, t in enumerate(target):
        weights = []
        for channel in range(activations.shape[1]):
            up = F.interpolate(activations[index, channel][None, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
            span = up.max() - up.min()
            mask = (up - up.min()) / span if span > 0 else torch.zeros_like(up)
            with torch.no_grad():
                weights.append(torch.softmax(model(x[index : index + 1] * mask), dim=1)[0, t])
        maps.append(torch.einsum("k,khw->hw", torch.stack(weights), activations[index]))
    return torch.stack(maps)


def _ablationcam_by_definition(model: nn.Module, layer: nn.Module, x: torch.Tensor, target: list[int]) -> torch.Tensor:
    activations = _layer_output(model, layer, x)
    with torch.no_grad():
        scores = model(x)[torch.arange(len(target)), target]
    weights = torch.zeros(activations.shape[:2])
    for channel in range(activations.shape[1]):

        def zero_channel(module: nn.Module, inputs: object, output: torch.Tensor, channel: int = channel) -> torch.Tensor:
            output = output.clone()
            output[:, channel] = 0
            return output

        handle = layer.register_forward_hook(zero_channel)
        with torch.no_grad():
            ablated = model(x)[torch.arange(len(target)), target]
        handle.remove()
        weights[:, channel] = (scores - ablated) / scores
    return torch.einsum("bk,bkhw->bhw", weights, activations)


def test_scorecam_equals_its_definition_for_every_batch_size() -> None:
    torch.manual_seed(4)
    model = interpgrad.build_model("resnet18", width=0.125).eval()
    x, target = torch.randn(2, 3, 32, 32), [3, 8]
    expected = _scorecam_by_definition(model, model.layer4, x, target)
    for batch_size in (0, 1, 7, 64):
        actual = explain(model, x, "scorecam", target=target, batch_size=batch_size).raw
        # batch size 1 may pick other convolution kernels: float rounding of the model itself, ~1e-7 relative
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6 * float(expected.abs().max()))


def test_scorecam_scores_and_baseline() -> None:
    torch.manual_seed(4)
    model = interpgrad.build_model("resnet18", width=0.125).eval()
    x, target = torch.randn(2, 3, 32, 32), [3, 8]
    probability = explain(model, x, "scorecam", target=target)
    logit = explain(model, x, "scorecam", target=target, score="logit")
    subtracted = explain(model, x, "scorecam", target=target, subtract_baseline=True)
    assert not torch.allclose(probability.raw, logit.raw)
    with torch.no_grad():
        zero_probability = torch.softmax(model(torch.zeros(1, 3, 32, 32)), dim=1)[0, target]
    channel_sum = _layer_output(model, model.layer4, x).sum(dim=1)
    torch.testing.assert_close(subtracted.raw, probability.raw - zero_probability.view(-1, 1, 1) * channel_sum, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layer", ["layer3", "layer3.0.conv1", "layer4"])
def test_ablationcam_equals_its_definition_for_every_batch_size(layer: str) -> None:
    """``layer3.0.conv1`` sits inside a residual block: the rest of the network adds a tensor from before the layer."""
    torch.manual_seed(6)
    model = interpgrad.build_model("resnet18", width=0.125).eval()
    x, target = torch.randn(2, 3, 32, 32), [1, 9]
    expected = _ablationcam_by_definition(model, model.get_submodule(layer), x, target)
    for batch_size in (0, 1, 5):
        actual = explain(model, x, "ablationcam", target=target, layer=layer, batch_size=batch_size).raw
        torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))


class DenseConcat(nn.Module):
    """The head concatenates features from before and after the target layer (as DenseNet does), so the layer's
    ablated copies cannot be replayed alone: Ablation-CAM must fall back to full forward passes."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(10, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stem = self.stem(x)
        return self.fc(torch.cat([stem, self.block(stem)], dim=1).mean(dim=(2, 3)))


def test_ablationcam_falls_back_when_the_layer_cannot_be_replayed_alone() -> None:
    torch.manual_seed(7)
    model = DenseConcat().eval()
    x, target = torch.randn(3, 3, 10, 10), [0, 2, 1]
    expected = _ablationcam_by_definition(model, model.block, x, target)
    for batch_size in (0, 2):
        actual = explain(model, x, "ablationcam", target=target, layer="block", batch_size=batch_size).raw
        torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-6)
