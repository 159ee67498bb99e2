"""Our localisation, complexity and sanity metrics against Quantus 0.6.0 (Hedström et al. 2023), the reference library
whose definitions they follow, on random maps and masks without ties; and the two places where we differ on purpose
(PAPERS.md, section 4), each shown by a test:

- **Pointing game on an empty mask.** Quantus sets the score of an image without a mask to NaN in a *boolean* array,
  where NaN becomes True: an empty mask counts as a hit. Ours is NaN (excluded from the mean, and counted).
- **MPRT's average over layers.** With ``return_average_correlation=True`` Quantus averages every entry of its score
  dict, and the dict starts with ``"original"``, the unrandomised model's map against itself (1 for a deterministic
  method): its average of L randomised layers is ``(1 + sum_l r_l) / (L + 1)``. Ours is ``sum_l r_l / L``; the
  per-layer correlations are the same.

Options are set so that both compute the same thing: ``normalise=False`` (Quantus divides by the maximum by default,
a positive scale that none of these scores depends on: turning it off only removes a step) and ``abs`` /
``positive_attributions`` matching our ``attribution`` parameter (Quantus' attribution localisation defaults to
``abs=True``, which counts negative evidence as relevance; ours defaults to the display map). Quantus prints a few notes
even with ``disable_warnings=True``; they are silenced.

Not compared, because Quantus cannot be configured to compute ours: its SSIM (``similarity_func.ssim``) runs
scikit-image on the *flattened* maps with a uniform 7-sample window and the joint data range, whereas ours is the 2-D
Gaussian-window SSIM of Wang et al. (compared with scikit-image itself in test_metrics.py); its top-k intersection is
|top-k ∩ s| / k with one k for the whole batch, which we convert to our IoU |T ∩ s| / (k + |s| - |T ∩ s|).
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
import pytest
import quantus
import torch
from torch import nn

import interpgrad
from interpgrad.metrics import MetricBatch, get_metric
from interpgrad.metrics import sanity

QUIET = {"disable_warnings": True, "display_progressbar": False}
SIZE = 8


pytestmark = pytest.mark.usefixtures("one_thread")


def run_quantus(metric: Any, **arguments: Any) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        return np.asarray(metric(**arguments), dtype=np.float64)


@pytest.fixture(scope="module")
def maps_and_masks() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eight random maps (float64, no ties), their signed versions, and masks of exactly 12 pixels each (so that one
    k = |s| fits the whole batch for Quantus' top-k intersection)."""
    generator = np.random.default_rng(2024)
    signed = generator.standard_normal((8, SIZE, SIZE))
    maps = np.abs(signed) + 1e-3 * generator.random((8, SIZE, SIZE))
    masks = np.zeros((8, SIZE * SIZE), dtype=bool)
    for row in masks:
        row[generator.choice(SIZE * SIZE, 12, replace=False)] = True
    return maps, signed, masks.reshape(8, SIZE, SIZE)


def ours(name: str, maps: np.ndarray, masks: np.ndarray, signed: np.ndarray | None = None, **params: Any) -> np.ndarray:
    count = len(maps)
    batch = MetricBatch(model=nn.Identity(), x=torch.zeros(count, 3, SIZE, SIZE), maps=torch.from_numpy(maps),
                        signed_maps=torch.from_numpy(maps if signed is None else signed), raw=None,
                        targets=torch.zeros(count, dtype=torch.long), masks=torch.from_numpy(masks))
    return get_metric(name)(batch, **params).values.numpy()


def theirs(metric: Any, maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    count = len(maps)
    return run_quantus(metric, model=None, x_batch=np.zeros((count, 3, SIZE, SIZE), dtype=np.float32),
                       y_batch=np.zeros(count, dtype=np.int64), a_batch=maps[:, None].copy(),
                       s_batch=masks[:, None].astype(np.float64))


def test_pointing_game_equals_quantus(maps_and_masks) -> None:
    maps, _, masks = maps_and_masks
    expected = theirs(quantus.PointingGame(abs=False, normalise=False, **QUIET), maps, masks)
    values = ours("pointing_game", maps, masks)
    np.testing.assert_array_equal(values, expected)
    assert 0 < values.sum() < len(values)  # both hits and misses are compared


def test_pointing_game_differs_from_quantus_on_an_empty_mask(maps_and_masks) -> None:
    maps, _, masks = maps_and_masks
    masks = masks.copy()
    masks[0] = False
    expected = theirs(quantus.PointingGame(abs=False, normalise=False, **QUIET), maps, masks)
    values = ours("pointing_game", maps, masks)
    assert expected[0] == 1.0  # Quantus' defect: NaN written into a boolean array is True, a hit
    assert np.isnan(values[0])  # ours: undefined, excluded from the mean
    np.testing.assert_array_equal(values[1:], expected[1:])


@pytest.mark.parametrize(("attribution", "options"), [
    ("map", {"abs": False}),
    ("positive", {"abs": False, "positive_attributions": True}),
    ("absolute", {"abs": True}),
])
def test_energy_pointing_game_equals_quantus_attribution_localisation(maps_and_masks, attribution: str,
                                                                     options: dict[str, bool]) -> None:
    """Quantus adds 1e-9 to the total: equal to ~1e-9 relative."""
    maps, signed, masks = maps_and_masks
    quantus_maps = maps if attribution == "map" else signed
    expected = theirs(quantus.AttributionLocalisation(normalise=False, **options, **QUIET), quantus_maps, masks)
    values = ours("energy_pointing_game", maps, masks, signed, attribution=attribution)
    np.testing.assert_allclose(values, expected, rtol=1e-8, atol=0)
    if attribution != "map":
        assert not np.allclose(values, ours("energy_pointing_game", maps, masks, signed))  # the choice matters


def test_relevance_rank_accuracy_equals_quantus(maps_and_masks) -> None:
    maps, _, masks = maps_and_masks
    expected = theirs(quantus.RelevanceRankAccuracy(abs=False, normalise=False, **QUIET), maps, masks)
    np.testing.assert_allclose(ours("relevance_rank_accuracy", maps, masks), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("k", [12, 20])
def test_topk_iou_equals_quantus_top_k_intersection(maps_and_masks, k: int) -> None:
    """k = 12 = |s| is our default (fraction 0); k = 20 is fraction 20 / 64. Quantus gives |T ∩ s| / k."""
    maps, _, masks = maps_and_masks
    share = theirs(quantus.TopKIntersection(k=k, abs=False, normalise=False, **QUIET), maps, masks)
    inside = share * k
    expected = inside / (k + 12 - inside)
    values = ours("topk_iou", maps, masks, fraction=0.0 if k == 12 else k / (SIZE * SIZE))
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-15)
    assert len(set(values.round(6))) > 1


def test_roc_auc_equals_quantus_auc(maps_and_masks) -> None:
    maps, _, masks = maps_and_masks
    expected = theirs(quantus.AUC(abs=False, normalise=False, **QUIET), maps, masks)
    np.testing.assert_allclose(ours("roc_auc", maps, masks), expected, rtol=0, atol=1e-12)


def test_sparseness_equals_quantus(maps_and_masks) -> None:
    """Quantus adds 1e-7 to every value before its Gini index: ours of the same shifted maps is equal to 1e-12, and
    ours of the maps themselves within that shift."""
    maps, _, masks = maps_and_masks
    expected = theirs(quantus.Sparseness(abs=False, normalise=False, **QUIET), maps, masks)
    np.testing.assert_allclose(ours("sparseness", maps + 1e-7, masks), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours("sparseness", maps, masks), expected, rtol=1e-5, atol=0)


# ---------------------------------------------------------------------------------------------------------------------
# Sanity checks


def small_model(classes: int) -> nn.Module:
    """Three parametrised modules (0, 2, 5), smooth activations so that no gradient map is constant."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 4, 3, padding=1), nn.Tanh(),
                         nn.Flatten(), nn.Linear(4 * SIZE * SIZE, classes)).eval()


def explain_for_quantus(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **kwargs: Any) -> np.ndarray:
    explanation = interpgrad.explain(model, torch.as_tensor(inputs), "gradient", target=torch.as_tensor(targets))
    return explanation.map.unsqueeze(1).numpy()


def explainer(network: nn.Module, inputs: torch.Tensor, classes: torch.Tensor):  # type: ignore[no-untyped-def]
    return interpgrad.explain(network, inputs, "gradient", target=classes)


def sanity_inputs(model: nn.Module) -> tuple[np.ndarray, np.ndarray, MetricBatch]:
    generator = np.random.default_rng(9)
    x = generator.standard_normal((5, 3, SIZE, SIZE)).astype(np.float32)
    y = np.array([0, 1, 2, 1, 0]) % model[-1].out_features
    explanation = interpgrad.explain(model, torch.from_numpy(x), "gradient", target=torch.from_numpy(y))
    batch = MetricBatch.from_explanation(model, torch.from_numpy(x), explanation, explainer=explainer)
    return x, y, batch


def test_randomisation_equals_quantus_mprt_per_layer_but_not_its_average(monkeypatch) -> None:
    """Cascading randomisation with one module per stage, top down, as Quantus' MPRT. Quantus re-seeds torch with
    seed + 1 before every layer's reset_parameters(); our stages draw from seeds derived from (seed, stage), so the test
    makes ours use Quantus' seeds to compare the same randomised models."""
    model = small_model(3)
    x, y, batch = sanity_inputs(model)
    monkeypatch.setattr(sanity, "_stage_seed", lambda seed, stage: seed + 1)
    result = get_metric("randomisation")(batch, granularity="module", seed=42)
    assert list(result.curve_labels) == ["5", "2", "0"]

    per_layer = quantus.MPRT(similarity_func=quantus.similarity_func.correlation_spearman, layer_order="top_down",
                             seed=42, abs=False, normalise=False, **QUIET)
    with contextlib.redirect_stdout(io.StringIO()):
        scores = per_layer(model=model, x_batch=x, y_batch=y, a_batch=None, explain_func=explain_for_quantus)
    assert list(scores) == ["original", "5", "2", "0"]
    np.testing.assert_allclose(scores["original"], 1.0, atol=1e-12)
    expected = np.array([scores[name] for name in ("5", "2", "0")]).T
    np.testing.assert_allclose(result.curve.numpy(), expected, rtol=0, atol=1e-12)
    assert np.abs(expected).max() < 0.9  # the gradient does depend on the layers

    averaged = quantus.MPRT(similarity_func=quantus.similarity_func.correlation_spearman, layer_order="top_down",
                            seed=42, return_average_correlation=True, abs=False, normalise=False, **QUIET)
    with contextlib.redirect_stdout(io.StringIO()):
        quantus_average = np.asarray(averaged(model=model, x_batch=x, y_batch=y, a_batch=None,
                                              explain_func=explain_for_quantus))
    values = result.values.numpy()
    np.testing.assert_allclose(values, expected.mean(axis=1), rtol=0, atol=1e-12)
    # Quantus' defect: the unrandomised model's self-correlation (1) is one of the averaged entries
    np.testing.assert_allclose(quantus_average, (1.0 + 3 * values) / 4, rtol=0, atol=1e-12)
    assert np.all(np.abs(quantus_average - values) > 0.1)


def test_random_logit_equals_quantus_with_two_classes() -> None:
    """With two classes the other class is forced, so Quantus' draw and ours (seeded differently) agree."""
    model = small_model(2)
    x, y, batch = sanity_inputs(model)
    values = get_metric("random_logit")(batch, similarity="spearman").values.numpy()
    metric = quantus.RandomLogit(num_classes=2, similarity_func=quantus.similarity_func.correlation_spearman,
                                 abs=False, normalise=False, **QUIET)
    expected = run_quantus(metric, model=model, x_batch=x, y_batch=y, a_batch=batch.maps.unsqueeze(1).numpy(),
                           explain_func=explain_for_quantus)
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-12)
    assert np.abs(values).max() < 0.99
