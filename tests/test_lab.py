"""interpgrad.lab (issue 11): the properties each experiment promises, on tiny models.

- f + g: the softmax is unchanged, the logit gradient is the original's plus grad g.
- Class samples: the target logit rises monotonically for a small step on a smooth model, samples stay in [0, 1],
  a seed gives identical samples, a batch equals its samples one at a time.
- GAN-test: the generator as its own judge scores near 100 %, random inputs near chance.
- Density ratio: exactly 0 at std 0; independent of the batch size.
- Pixel perturbation: equals a naive per-image, per-fraction loop (also with another model's saliency).
- Fooling: the gradient_pattern fine-tuning raises cos(grad f_y, P) while accuracy stays.
- The cache: a second call reads what the first wrote; another parameter or checkpoint computes anew.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import interpgrad
from interpgrad import ConfigError
from interpgrad.data.info import IDENTITY_MEAN, IDENTITY_STD
from interpgrad.data.shapes import shapes_info
from interpgrad.data.transforms import normalize
from interpgrad.lab import (PixelSpaceModel, add_to_logits, cached_density_profile, cached_gan_test,
                            cached_perturbation, class_indices, class_samples, density_ratio_profile, gan_test,
                            gradient_pattern_cosine, lab_images, load_lab_model, make_pattern, pixel_perturbation_curves,
                            shape_pattern, smooth_random_pattern, text_pattern, InnerProductField)
from interpgrad.regularizers import build_regularizer

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 16


def tiny_checkpoint(path: Path, seed: int = 0, activation: str = "softplus", normalized: bool = False,
                    arch: str = "resnet18") -> Path:
    """A random tiny model "trained" on shapes at 16 px: Softplus on [0, 1] inputs (the Srinivas & Fleuret setting)
    unless ``normalized``."""
    torch.manual_seed(seed)
    config = interpgrad.ModelConfig(arch, num_classes=10, width=0.125, image_size=SIZE, activation=activation)
    model = interpgrad.build_model(config).eval()
    info = shapes_info(SIZE) if normalized else dataclasses.replace(shapes_info(SIZE), mean=IDENTITY_MEAN, std=IDENTITY_STD)
    return interpgrad.save_checkpoint(path, model, config, data=info, training={"dataset": "shapes", "seed": 0})


def linear_classifier(seed: int = 0, classes: int = 10) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, classes)).eval()


@pytest.fixture(scope="module")
def softplus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("softplus") / "model")


@pytest.fixture(scope="module")
def smooth_model() -> nn.Module:
    torch.manual_seed(0)
    return PixelSpaceModel(interpgrad.build_model("resnet18", width=0.125, activation="softplus")).double().eval()


# ---------------------------------------------------------------------------------------------------- pixel space


def test_pixel_space_model_applies_the_checkpoints_normalisation(tmp_path: Path, softplus: Path) -> None:
    normalised = load_lab_model(tiny_checkpoint(tmp_path / "normalised", normalized=True))
    x = torch.rand(2, 3, SIZE, SIZE)
    info = shapes_info(SIZE)
    torch.testing.assert_close(normalised.model(x), normalised.model.model(normalize(x, info.mean, info.std)))
    plain = load_lab_model(softplus)
    assert plain.model.identity and not normalised.model.identity
    torch.testing.assert_close(plain.model(x), plain.model.model(x))
    assert plain.image_size == SIZE and plain.class_names[3] == "star" and len(plain.sha256) == 64


def test_class_names_and_indices() -> None:
    names = ("circle", "square", "star")
    assert class_indices("star,0", names) == [2, 0] and class_indices(None, names) == [0, 1, 2]
    with pytest.raises(ConfigError, match="class 'hexagon' is not in the model; its classes are circle"):
        class_indices(["hexagon"], names)


# ---------------------------------------------------------------------------------------------------- f + g


@pytest.mark.parametrize("pattern", [text_pattern("HI", SIZE), shape_pattern("star", SIZE), smooth_random_pattern(3, SIZE)])
def test_adding_a_field_keeps_the_softmax_and_adds_its_gradient(smooth_model: nn.Module, pattern: torch.Tensor) -> None:
    scale = 5.0
    fooled = add_to_logits(smooth_model, InnerProductField(pattern.double(), scale))
    x = torch.rand(3, 3, SIZE, SIZE, dtype=torch.float64)
    torch.testing.assert_close(fooled(x).softmax(1), smooth_model(x).softmax(1), rtol=0, atol=1e-12)
    assert not torch.allclose(fooled(x), smooth_model(x))
    target = torch.tensor([0, 4, 9])
    expected = interpgrad.gradients.input_gradient(smooth_model, x, target) + scale * pattern.double()
    torch.testing.assert_close(interpgrad.gradients.input_gradient(fooled, x, target), expected)


def test_patterns_are_zero_mean_unit_norm_and_refuse_bad_specs(tmp_path: Path) -> None:
    from PIL import Image

    Image.fromarray((np.random.default_rng(0).random((20, 24, 3)) * 255).astype(np.uint8)).save(tmp_path / "p.png")
    for spec in ("text:Hello", "shape:heart", "smooth:7", f"image:{tmp_path / 'p.png'}"):
        pattern = make_pattern(spec, SIZE)
        assert pattern.shape == (3, SIZE, SIZE)
        assert abs(float(pattern.mean())) < 1e-6 and abs(float(pattern.norm()) - 1) < 1e-5
    for spec, message in [("nothing", "a pattern is KIND:VALUE"), ("shape:hexagon", "unknown shape"),
                          ("smooth:x", "whole number"), ("image:/missing.png", "no pattern image")]:
        with pytest.raises(ConfigError, match=message):
            make_pattern(spec, SIZE)


# ---------------------------------------------------------------------------------------------------- class samples


def test_ascent_raises_the_target_logit_monotonically(smooth_model: nn.Module) -> None:
    steps = 12
    result = class_samples(smooth_model, [0, 3, 7], steps=steps, lr=1e-3, wd=0.0, keep=range(steps + 1), image_size=SIZE)
    assert result.steps == tuple(range(steps + 1))
    assert (result.target_logits.diff(dim=0) > 0).all()
    assert result.trajectory.min() >= 0 and result.trajectory.max() <= 1
    torch.testing.assert_close(result.samples, result.trajectory[-1])


def test_samples_are_in_the_unit_cube_seeded_and_batch_independent(smooth_model: nn.Module) -> None:
    model = smooth_model.float()
    try:
        settings = {"per_class": 2, "steps": 8, "lr": 0.5, "noise": 0.3, "keep": (0, 4), "image_size": SIZE}
        batched = class_samples(model, [1, 2, 5], batch_size=64, seed=3, **settings)
        again = class_samples(model, [1, 2, 5], batch_size=64, seed=3, **settings)
        single = class_samples(model, [1, 2, 5], batch_size=1, seed=3, **settings)
        other = class_samples(model, [1, 2, 5], batch_size=64, seed=4, **settings)
    finally:
        smooth_model.double()
    assert batched.samples.shape == (6, 3, SIZE, SIZE) and batched.classes.tolist() == [1, 1, 2, 2, 5, 5]
    assert batched.samples.min() >= 0 and batched.samples.max() <= 1
    assert torch.equal(batched.trajectory, again.trajectory)
    torch.testing.assert_close(batched.trajectory, single.trajectory, rtol=0, atol=1e-5)
    torch.testing.assert_close(batched.target_logits, single.target_logits, rtol=0, atol=1e-5)
    assert not torch.allclose(batched.samples, other.samples)
    assert not torch.allclose(batched.samples[0], batched.samples[1])  # replicates differ


def test_bad_sampling_settings_are_config_errors(smooth_model: nn.Module) -> None:
    with pytest.raises(ConfigError, match="lr must be positive"):
        class_samples(smooth_model, [0], lr=0.0, image_size=SIZE)


# ---------------------------------------------------------------------------------------------------- GAN-test


def test_gan_test_of_a_generator_as_its_own_judge_and_of_random_inputs() -> None:
    model = linear_classifier()
    samples = class_samples(model, range(10), per_class=3, steps=30, lr=0.5, image_size=SIZE)
    own = gan_test(model, samples.samples, samples.classes, resamples=200)
    assert own.accuracy.mean > 0.95 and own.accuracy.n == 30
    assert list(own.per_class["class"]) == list(range(10)) and (own.per_class["n"] == 3).all()
    random_images = torch.rand(200, 3, SIZE, SIZE)
    chance = gan_test(linear_classifier(seed=5), random_images, torch.arange(200) % 10, resamples=200)
    assert chance.accuracy.mean < 0.3 and chance.accuracy.ci_low <= chance.accuracy.mean <= chance.accuracy.ci_high


# ---------------------------------------------------------------------------------------------------- density ratio


def test_density_ratio_is_zero_at_std_zero_and_batch_independent(smooth_model: nn.Module) -> None:
    x, y = torch.rand(5, 3, SIZE, SIZE, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 4])
    profile = density_ratio_profile(smooth_model, x, y, stds=[0.0, 1e-2, 0.3], noise_samples=3, resamples=100)
    assert (profile.differences[:, 0] == 0).all() and profile.table["mean"][0] == 0 and profile.table["ratio_mean"][0] == 1
    assert list(profile.table["std"]) == [0.0, 1e-2, 0.3] and profile.differences.shape == (5, 3)
    assert abs(profile.table["mean"][1]) < abs(profile.table["mean"][2])
    single = density_ratio_profile(smooth_model, x, y, stds=[0.0, 1e-2, 0.3], noise_samples=3, batch_size=1, resamples=100)
    np.testing.assert_allclose(single.differences, profile.differences, rtol=0, atol=1e-9)
    clamped = density_ratio_profile(smooth_model, x, y, stds=[0.3], noise_samples=3, clamp=True, resamples=100)
    assert not np.allclose(clamped.differences, profile.differences[:, 2:])


# ---------------------------------------------------------------------------------------------------- pixel perturbation


def naive_pixel_perturbation(judge: nn.Module, explainer: nn.Module, x: torch.Tensor, y: torch.Tensor,
                             fractions: list[float], constant: float = 0.5) -> np.ndarray:
    """One image and one fraction at a time: order the pixels by the channel std of the label's logit gradient
    (ties in raster order), set the round(f H W) least important ones to ``constant``, check the judge's top-1."""
    result = np.zeros((len(x), len(fractions)))
    for i in range(len(x)):
        image = x[i:i + 1].clone().requires_grad_(True)
        (gradient,) = torch.autograd.grad(explainer(image)[0, y[i]], image)
        score = gradient[0].std(dim=0).flatten()
        order = sorted(range(score.numel()), key=lambda p: (float(score[p]), p))
        for j, fraction in enumerate(fractions):
            perturbed = x[i].clone().view(3, -1)
            for p in order[:int(round(fraction * score.numel()))]:
                perturbed[:, p] = constant
            with torch.no_grad():
                result[i, j] = float(judge(perturbed.view(1, 3, SIZE, SIZE)).argmax(1)[0] == y[i])
    return result


def test_pixel_perturbation_equals_a_naive_loop(smooth_model: nn.Module) -> None:
    torch.manual_seed(1)
    other = PixelSpaceModel(interpgrad.build_model("resnet18", width=0.125, activation="softplus")).double().eval()
    x = torch.rand(4, 3, SIZE, SIZE, dtype=torch.float64)
    with torch.no_grad():
        y = smooth_model(x).argmax(1)  # every clean image right: the curves start at 1
    fractions = [0.0, 0.05, 0.3, 0.7, 1.0]
    curves = pixel_perturbation_curves(smooth_model, x, y, fractions=fractions, batch_size=3, rows=7, resamples=100)
    np.testing.assert_array_equal(curves.correct, naive_pixel_perturbation(smooth_model, smooth_model, x, y, fractions))
    assert (curves.correct[:, 0] == 1).all()
    judged = pixel_perturbation_curves(smooth_model, x, y, saliency_model=other, fractions=fractions, resamples=100)
    np.testing.assert_array_equal(judged.correct, naive_pixel_perturbation(smooth_model, other, x, y, fractions))
    assert list(judged.table["fraction"]) == fractions
    default = pixel_perturbation_curves(smooth_model, x, y, resamples=100)
    np.testing.assert_allclose(default.fractions, np.logspace(-2, 0, 25))


# ---------------------------------------------------------------------------------------------------- fooling


def test_gradient_pattern_regularizer_parts_and_target() -> None:
    model = interpgrad.build_model("resnet18", width=0.125, activation="softplus").train()
    x, y = torch.rand(4, 3, SIZE, SIZE), torch.tensor([0, 1, 2, 3])
    mse = build_regularizer("gradient_pattern", pattern="shape:star", error="mse", scale=2.0)
    parts = mse(model, x, y)
    parts.total.backward()
    assert -1 <= parts.extras["pattern_cosine"] <= 1 and torch.isfinite(parts.total)
    torch.testing.assert_close(mse.target(x)[0], 2.0 * shape_pattern("star", SIZE))
    cosine = build_regularizer("gradient_pattern", pattern="shape:star")  # the default error: 1 - cos(grad, P)
    parts = cosine(model, x, y)
    torch.testing.assert_close(parts.regularization, 1 - parts.extras["pattern_cosine"])
    with pytest.raises(ConfigError, match="unknown shape"):
        build_regularizer("gradient_pattern", pattern="shape:hexagon")


def test_fooling_raises_the_gradient_pattern_cosine_and_keeps_the_predictions(tmp_path: Path) -> None:
    """A few Adam steps of the gradient_pattern loss on a tiny Softplus model (eval-mode BN in the gradient pass)."""
    torch.manual_seed(0)
    model = interpgrad.build_model("resnet18", width=0.125, activation="softplus")
    data = lab_images("shapes", 32, "train", SIZE)
    pattern = make_pattern("text:HI", SIZE)
    before = gradient_pattern_cosine(model, data.images, data.labels, pattern).mean()
    with torch.no_grad():
        predictions = model.eval()(data.images).argmax(1)
    regularizer = build_regularizer("gradient_pattern", pattern="text:HI", error="mse", scale=1.0, lam=1.0,
                                    batchnorm="running")  # the eval-mode gradient that is measured
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(15):
        optimizer.zero_grad()
        regularizer(model, data.images, data.labels).total.backward()
        optimizer.step()
    after = gradient_pattern_cosine(model, data.images, data.labels, pattern).mean()
    assert after > before + 0.4, (before, after)
    with torch.no_grad():
        assert (model.eval()(data.images).argmax(1) == data.labels).float().mean() >= (predictions == data.labels).float().mean()


def test_fool_options_follow_the_checkpoint(softplus: Path, tmp_path: Path) -> None:
    from interpgrad.lab import fool_options
    from interpgrad.training import make_config

    options = fool_options(softplus, "smooth:1", tmp_path / "run", epochs=1)
    config = make_config(options)
    assert config.init == str(softplus) and config.regularizer == "gradient_pattern"
    assert config.resolved_activation == "softplus" and not config.resolved_normalize and config.image_size == SIZE
    assert config.regularizer_params["pattern"] == "smooth:1" and config.regularizer_params["scale"] > 0


# ---------------------------------------------------------------------------------------------------- cache


def test_cached_results_are_read_back_and_keyed_by_checkpoint_and_parameters(softplus: Path, tmp_path: Path) -> None:
    model = load_lab_model(softplus)
    data = lab_images("shapes", 6, "val", SIZE)
    cache = tmp_path / "cache"
    first = cached_density_profile(model, data, stds=[0, 0.1], noise_samples=2, resamples=50, cache_dir=cache)
    entries = sorted(path.name for path in cache.iterdir())
    second = cached_density_profile(model, data, stds=[0, 0.1], noise_samples=2, resamples=50, cache_dir=cache)
    np.testing.assert_array_equal(first.differences, second.differences)
    assert sorted(path.name for path in cache.iterdir()) == entries
    cached_density_profile(model, data, stds=[0, 0.2], noise_samples=2, resamples=50, cache_dir=cache)
    other = load_lab_model(tiny_checkpoint(tmp_path / "other", seed=1))
    cached_perturbation(model, data, saliency_model=other, fractions=[0.1, 0.5], resamples=50, cache_dir=cache)
    assert len(list(cache.iterdir())) == 3
    gan = cached_gan_test(model, other, "circle,star", steps=3, resamples=50, cache_dir=cache)
    again = cached_gan_test(model, other, "circle,star", steps=3, resamples=50, cache_dir=cache)
    assert gan.accuracy == again.accuracy and torch.equal(gan.predictions, again.predictions)
    assert {path.name.split("-")[0] for path in cache.iterdir()} == {"density", "perturbation", "gan", "samples"}
    auto = cached_density_profile(model, data, stds=[0], noise_samples=1, resamples=50)  # "auto": lab/ beside it
    assert auto.differences.shape == (6, 1) and any((softplus.parent / "lab").iterdir())
