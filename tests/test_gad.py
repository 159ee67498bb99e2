"""GAD (our reading of Mazini Rodrigues et al. 2024): strategies, distancing that keeps the order within each class,
the alpha schedule, what a support model trains, support models that equal the original at alpha = 0 and otherwise
regress to their targets without changing the original's decisions, the fusion of top-q masks, GAD run folders
(resumable, never overwritten, refused with another checkpoint) and the registry method ``gad``.

Mechanics run on a random ResNet-18 at width 0.125 and 16 px (``small_models.tiny_shapes_checkpoint``); what needs a
model that decides well (agreement) runs on the shipped starter checkpoint, with the head trained on 128 images.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import small_models
import torch
from torch import nn

import interpgrad
from interpgrad import ConfigError, explain, load_checkpoint
from interpgrad.explain import methods
from interpgrad.gad import (
    GadDir,
    OneVsAll,
    Pair,
    Split,
    SupportStopped,
    alpha_schedule,
    command_line,
    distanced_logits,
    fuse_masks,
    gad_explanation,
    gad_settings,
    launch_gad,
    load_gad_run,
    logit_gap,
    parameters_sha256,
    parse_strategy,
    strategy_from_dict,
    train_gad,
    trained_modules,
)
from interpgrad.gad.data import strategy_images
from interpgrad.gad.support import logits_of, report_support, train_support
from interpgrad.modelstate import capture_model_state
from interpgrad.regions import important_pixels

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
STARTER = ROOT / "checkpoints" / "shapes-resnet18-baseline"
NAMES = ["circle", "square", "triangle", "star", "cross", "ring", "crescent", "heart", "arrow", "ellipse"]
# A run of the tiny model: 2 support models, 2 epochs of 4 steps each.
TINY = {"supports": 2, "n_train": 64, "n_val": 32, "epochs": 2, "batch_size": 16, "lr": 1e-4, "device": "cpu"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_models.tiny_shapes_checkpoint(tmp_path_factory.mktemp("tiny") / "original")


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_models.tiny_shapes_checkpoint(tmp_path_factory.mktemp("other") / "original", seed=1)


@pytest.fixture(scope="module")
def tiny_run(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "straight"
    train_gad(tiny, Pair("circle", "square"), out, **TINY)
    return out


def _same_state(a: nn.Module, b: nn.Module) -> None:
    ours, theirs = a.state_dict(), b.state_dict()
    assert ours.keys() == theirs.keys()
    for key in ours:
        torch.testing.assert_close(ours[key], theirs[key], rtol=0, atol=0, msg=key)


# ---------------------------------------------------------------------------------------------------------------------
# Strategies


def test_strategies_resolve_names_and_indices_and_give_each_image_its_side() -> None:
    pair = Pair("circle", 1).resolved(NAMES)
    assert (pair.side_a, pair.side_b, pair.classes) == ((0,), (1,), (0, 1))
    labels = torch.tensor([0, 1, 2, 1, 9])
    assert pair.sides(labels).tolist() == [0, 1, -1, 1, -1]
    rest = OneVsAll("star").resolved(NAMES)
    assert rest.side_b == (0, 1, 2, 4, 5, 6, 7, 8, 9) and rest.sides(labels).tolist() == [1, 1, 1, 1, 1]
    split = Split(("circle", "2"), ("ring", "heart")).resolved(NAMES)
    assert (split.side_a, split.side_b) == ((0, 2), (5, 7))
    assert split.sides(torch.tensor([0, 2, 5, 7, 1])).tolist() == [0, 0, 1, 1, -1]
    assert (pair.describe(NAMES), rest.describe(NAMES), split.describe(NAMES)) == (
        "circle vs square", "star vs rest", "circle+triangle vs ring+heart")
    for strategy in (pair, rest, split):
        assert strategy_from_dict(json.loads(json.dumps(strategy.to_dict()))) == strategy


@pytest.mark.parametrize(("strategy", "message"), [
    (Pair("circle", "hexagon"), r"class 'hexagon' is not in the model; its classes are circle \(0\), square \(1\)"),
    (Pair("circle", 10), "class 10 is not in the model"),
    (Pair("circle", "circle"), "names circle twice"),
    (OneVsAll(-1), "class -1 is not in the model"),
    (Split(("circle", "square"), ("square",)), "names square twice"),
])
def test_a_class_not_in_the_model_is_refused_naming_the_valid_ones(strategy, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        strategy.resolved(NAMES)


def test_parse_strategy_from_the_command_line() -> None:
    assert parse_strategy("circle, square") == Pair("circle", "square")
    assert parse_strategy(one_vs_all="3") == OneVsAll("3")
    assert parse_strategy(split="0,1/2,3,4") == Split(("0", "1"), ("2", "3", "4"))
    for given, message in [({}, "choose one strategy"), ({"classes": "a,b", "split": "a/b"}, "choose one strategy"),
                           ({"classes": "a"}, "two classes"), ({"split": "a,b"}, "two groups")]:
        with pytest.raises(ConfigError, match=message):
            parse_strategy(**given)


# ---------------------------------------------------------------------------------------------------------------------
# Distancing and the alpha schedule


def test_distancing_modes_on_known_logits() -> None:
    pair = Pair(0, 1).resolved(["a", "b", "c"])
    logits = torch.tensor([[3.0, 1.0, 0.5], [1.0, 2.0, 0.5], [0.0, 0.0, 4.0]])
    sides = torch.tensor([0, 1, -1])
    expected = {
        "other": [[3.0, -1.0, 0.5], [-1.0, 2.0, 0.5], [0.0, 0.0, 4.0]],
        "own": [[5.0, 1.0, 0.5], [1.0, 4.0, 0.5], [0.0, 0.0, 4.0]],
        "both": [[4.0, 0.0, 0.5], [0.0, 3.0, 0.5], [0.0, 0.0, 4.0]],
    }
    for mode, values in expected.items():
        torch.testing.assert_close(distanced_logits(logits, sides, pair, 2.0, mode), torch.tensor(values))
    with pytest.raises(ConfigError, match="unknown distancing mode"):
        distanced_logits(logits, sides, pair, 2.0, "far")


@pytest.mark.parametrize("mode", ["other", "own", "both"])
@pytest.mark.parametrize("strategy", [Pair(2, 5), OneVsAll(3), Split((0, 1, 2), (7, 8))])
def test_distancing_is_a_per_class_shift_that_keeps_the_order_within_each_class(strategy, mode: str) -> None:
    strategy = strategy.resolved([str(c) for c in range(10)])
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (400,), generator=generator)
    logits = torch.randn(400, 10, generator=generator) * 3
    sides = strategy.sides(labels)
    distanced = distanced_logits(logits, sides, strategy, 1.7, mode)
    for label in range(10):
        rows = labels == label
        shift = distanced[rows] - logits[rows]
        torch.testing.assert_close(shift, shift[:1].expand_as(shift))  # one constant per (class, logit)
        for column in range(10):  # hence the order of every activation among the class's images is kept
            assert torch.equal(distanced[rows, column].argsort(), logits[rows, column].argsort())
        if label not in strategy.classes:
            assert torch.equal(shift, torch.zeros_like(shift))
    untouched = [c for c in range(10) if c not in strategy.classes]
    assert torch.equal(distanced[:, untouched], logits[:, untouched])
    # Every mode widens the gap between the image's side and the other side by alpha.
    gap = logit_gap(distanced, strategy, "mean") - logit_gap(logits, strategy, "mean")
    involved = sides >= 0
    torch.testing.assert_close(gap[involved], torch.where(sides[involved] == 0, 1.7, -1.7))


def test_the_alpha_schedule() -> None:
    pair = Pair(0, 1).resolved(["a", "b", "c"])
    logits = torch.tensor([[3.0, 1.0, 9.0], [1.0, 2.0, 9.0], [4.0, -1.0, 9.0], [0.0, 0.5, 9.0]])
    spread = float((logits[:, 0] - logits[:, 1]).std())
    assert alpha_schedule(logits, pair) == pytest.approx((spread, 2 * spread, 3 * spread))
    assert alpha_schedule(logits, pair, supports=2, scale=0.5) == pytest.approx((spread / 2, spread))
    assert alpha_schedule(None, pair, alphas=[1, 2.5]) == (1.0, 2.5)
    split = Split((0,), (1, 2)).resolved(["a", "b", "c"])
    assert alpha_schedule(logits, split, 1, reduction="max")[0] == pytest.approx(float((logits[:, 0] - 9.0).std()))
    means = logits[:, 0] - logits[:, 1:].mean(dim=1)
    assert alpha_schedule(logits, split, 1, reduction="mean")[0] == pytest.approx(float(means.std()))
    for alphas in ([], [-1.0], [float("nan")]):
        with pytest.raises(ConfigError, match="alphas"):
            alpha_schedule(logits, pair, alphas=alphas)


def test_settings_are_declared_parameters() -> None:
    settings = gad_settings({})
    assert (settings["supports"], settings["train"], settings["mode"], settings["schedule"]) == (
        3, "last_stage", "other", "gap_std")
    given = gad_settings({"alphas": [1, 2]})
    assert (given["schedule"], given["alphas"], given["supports"]) == ("given", "1.0,2.0", 2)
    with pytest.raises(ConfigError, match="'supports' has no effect: it applies only when schedule is gap_std"):
        gad_settings({"alphas": "1,2", "supports": 4}, explicit={"alphas", "supports"})
    for bad, message in [({"train": "body"}, "must be one of head, last_stage, all"), ({"epochs": 0}, ">= 1"),
                         ({"alphas": "a,b"}, "alphas must be numbers"), ({"device": "tpu"}, "unknown device"),
                         ({"speed": 1}, "unknown gad parameter 'speed'")]:
        with pytest.raises(ConfigError, match=message):
            gad_settings(bad)


# ---------------------------------------------------------------------------------------------------------------------
# What a support model trains


class _Plain(nn.Module):
    """conv -> pool -> conv -> pool -> two linear layers: the last stage is the second convolution and the MLP."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def test_the_trained_parts_are_found_generically() -> None:
    cifar = interpgrad.build_model("resnet18", width=0.125).eval()
    x = torch.randn(1, 3, 32, 32)
    assert trained_modules(cifar, "head", x) == ["fc"]
    stage = trained_modules(cifar, "last_stage", x)
    owning = {name for name, module in cifar.layer4.named_modules(prefix="layer4")
              if any(True for _ in module.parameters(recurse=False))}
    assert stage[-1] == "fc" and set(stage[:-1]) == owning
    torchvision_model = small_models.torchvision_resnet18()
    stage = trained_modules(torchvision_model, "last_stage", torch.randn(1, 3, 64, 64))
    assert stage[-1] == "fc" and all(name.startswith("layer4.") for name in stage[:-1])
    assert "layer4.0.downsample.0" in stage
    mobilenet = interpgrad.build_model("mobilenet_v2", width=0.25).eval()
    stage = trained_modules(mobilenet, "last_stage", x)
    assert stage[-2:] == ["features.18.0", "features.18.1"] or stage[-1] == "classifier.0"
    assert "classifier.0" in stage and "features.18.0" in stage and not any(n.startswith("features.1.") for n in stage)
    assert trained_modules(_Plain().eval(), "last_stage", torch.randn(1, 3, 16, 16)) == [
        "features.3", "features.4", "classifier.1", "classifier.3"]
    assert trained_modules(_Plain().eval(), "head", torch.randn(1, 3, 16, 16)) == ["classifier.3"]
    assert trained_modules(cifar, "all", x) == [""]
    with pytest.raises(ConfigError, match="unknown part to train"):
        trained_modules(cifar, "trunk", x)


@pytest.mark.parametrize("part", ["head", "last_stage", "all"])
def test_alpha_zero_gives_a_support_equal_to_the_original(tiny: Path, part: str) -> None:
    model, metadata = load_checkpoint(tiny)
    pair = Pair("circle", "square").resolved(NAMES)
    images = strategy_images(metadata, pair, "train", 48)
    before = capture_model_state(model).summary()
    support, training = train_support(model, images, pair, 0.0, part=part, epochs=2, batch_size=16, lr=1e-2)
    assert capture_model_state(model).summary() == before  # the original is left as it was
    assert training["epoch_mse"] == [0.0, 0.0]
    _same_state(support, model)
    x = images.inputs(slice(0, 8), torch.device("cpu"))
    assert torch.equal(support(x), model(x))


def test_a_support_regresses_to_its_targets_and_decides_as_the_original(tmp_path: Path) -> None:
    """On the starter model (it decides well): the regression error falls from epoch to epoch and far below the
    original's, and the support's decisions on held-out images are the original's."""
    model, metadata = load_checkpoint(STARTER)
    pair = Pair("circle", "square").resolved(NAMES)
    train, val = strategy_images(metadata, pair, "train", 128), strategy_images(metadata, pair, "val", 64)
    device = torch.device("cpu")
    train_logits, val_logits = logits_of(model, train, device), logits_of(model, val, device)
    alpha = alpha_schedule(train_logits, pair)[0]
    support, training = train_support(model, train, pair, alpha, part="head", epochs=6, lr=1e-2, batch_size=32)
    report = report_support(1, alpha, support, training, pair, "other", "head", train, train_logits, val, val_logits,
                            device)
    assert report.epoch_mse == sorted(report.epoch_mse, reverse=True)
    assert report.train_mse_after < 0.2 * report.train_mse_before
    assert report.train_mse_before == pytest.approx(alpha ** 2 / 10, rel=1e-4)  # one logit of 10 moved by alpha
    assert report.val_mse < 0.3 * report.val_mse_before
    assert report.agreement >= 0.95
    assert report.trained_modules == ["fc"] and report.trained_parameters == 10 * 128 + 10
    # The targets pushed the classes apart: the support's gap between them is wider than the original's.
    support_gap = logit_gap(logits_of(support, val, device), pair) * (1 - 2 * val.sides)
    assert (support_gap - logit_gap(val_logits, pair) * (1 - 2 * val.sides)).mean() > 0.5 * alpha


# ---------------------------------------------------------------------------------------------------------------------
# Fusion


def test_fusion_intersection_majority_union_are_nested() -> None:
    generator = torch.Generator().manual_seed(0)
    masks = torch.rand(4, 3, 16, 16, generator=generator) < 0.5
    intersection, majority, union = (fuse_masks(masks, fusion) for fusion in ("intersection", "majority", "union"))
    assert all(torch.equal(intersection & mask, intersection) for mask in masks)  # inside every mask
    assert all(torch.equal(union | mask, union) for mask in masks)  # contains every mask
    assert torch.equal(intersection & majority, intersection) and torch.equal(majority | union, union)
    assert torch.equal(majority, masks.sum(dim=0) >= 3)  # more than half of 4
    assert 0 < intersection.sum() < majority.sum() < union.sum()
    with pytest.raises(ConfigError, match="unknown fusion"):
        fuse_masks(masks, "vote")


@pytest.mark.parametrize("fusion", ["intersection", "majority", "union"])
def test_gad_masks_grow_with_q(tiny_run: Path, fusion: str) -> None:
    """Each model's mask is its top q % (``interpgrad.regions.important_pixels``), so a larger q gives a larger fused
    mask that contains the smaller one."""
    run = load_gad_run(tiny_run)
    x = torch.randn(2, 3, 16, 16)
    previous = torch.zeros(2, 16, 16, dtype=torch.bool)
    for q in (5.0, 10.0, 20.0, 40.0, 100.0):
        result = gad_explanation(run, x, base="gradient", q=q, fusion=fusion)
        assert torch.equal(result.masks, important_pixels(result.maps.flatten(0, 1), q).view(result.maps.shape))
        assert result.masks.sum(dim=(2, 3)).eq(round(q / 100 * 256)).all()  # gradients: no zero pixel
        assert torch.equal(result.fused & previous, previous) and result.fused.sum() > previous.sum()
        previous = result.fused


# ---------------------------------------------------------------------------------------------------------------------
# GAD run folders


def test_a_run_folder_holds_the_supports_with_their_metadata(tiny: Path, tiny_run: Path) -> None:
    folder = GadDir(tiny_run)
    assert sorted(path.name for path in tiny_run.iterdir()) == [
        "config.json", "status.json", "support-1.json", "support-1.safetensors", "support-2.json",
        "support-2.safetensors"]
    status = folder.read_status()
    assert status["state"] == "finished" and status["supports_done"] == 2 and status["fraction"] == 1.0
    config = folder.read_config()
    import hashlib

    digest = hashlib.sha256(Path(tiny).read_bytes()).hexdigest()
    assert config["kind"] == "gad" and config["original"]["sha256"] == digest
    assert config["strategy"] == {"kind": "pair", "k": 0, "l": 1} and config["strategy_text"] == "circle vs square"
    run = load_gad_run(tiny_run)
    assert run.complete and len(run.supports) == 2 and run.alphas[1] == pytest.approx(2 * run.alphas[0])
    assert run.strategy == Pair(0, 1) and run.class_names == NAMES and run.checkpoint_sha256 == digest
    assert parameters_sha256(run.original) == parameters_sha256(load_checkpoint(tiny).model)
    for index, (support, report) in enumerate(zip(run.support_metadata, run.reports), start=1):
        gad = support["gad"]
        assert gad["index"] == index and gad["alpha"] == run.alphas[index - 1] and gad["original"]["sha256"] == digest
        assert gad["settings"]["epochs"] == 2 and gad["report"]["n_train"] == 64 and report.n_val == 32
        assert support["model"] == run.metadata["model"] and support["data"] == run.metadata["data"]
        assert len(report.epoch_mse) == 2
    assert not any(torch.equal(run.original.fc.weight, support.fc.weight) for support in run.supports)


def test_a_run_is_never_overwritten(tiny: Path, tiny_run: Path) -> None:
    before = (tiny_run / "config.json").read_bytes()
    with pytest.raises(ConfigError, match="already holds a run; pass --resume to continue it or choose another --out"):
        train_gad(tiny, Pair(0, 1), tiny_run, **TINY)
    assert (tiny_run / "config.json").read_bytes() == before


def test_bad_input_writes_nothing(tiny: Path, tmp_path: Path) -> None:
    for strategy, options, message in [
        (Pair("circle", "hexagon"), {}, "class 'hexagon' is not in the model"),
        (Pair(0, 1), {"train": "trunk"}, "must be one of head, last_stage, all"),
        (Pair(0, 1), {"n_train": 1}, ">= 2"),
    ]:
        with pytest.raises(ConfigError, match=message):
            train_gad(tiny, strategy, tmp_path / "bad", **options)
        assert not (tmp_path / "bad").exists()
    with pytest.raises(ConfigError, match="no checkpoint at"):
        train_gad(tmp_path / "missing.safetensors", Pair(0, 1), tmp_path / "bad")


def test_a_stopped_run_resumes_with_the_next_support_and_equals_an_uninterrupted_one(tiny: Path, tiny_run: Path,
                                                                                      tmp_path: Path) -> None:
    out = tmp_path / "stopped"
    steps = []

    def stop_in_the_second_support() -> bool:
        steps.append(1)
        return len(steps) > 8 + 2  # support 1 takes 8 steps; stop after 2 steps of support 2

    with pytest.raises(SupportStopped, match="stopped while training support model 2; continue with --resume"):
        train_gad(tiny, Pair("circle", "square"), out, should_stop=stop_in_the_second_support, **TINY)
    status = GadDir(out).read_status()
    assert status["state"] == "stopped" and status["supports_done"] == 1 and status["remedy"]["action"] == "resume"
    assert (out / "support-1.safetensors").is_file() and not (out / "support-2.safetensors").exists()
    assert len(load_gad_run(out).supports) == 1 and not load_gad_run(out).complete
    first = (out / "support-1.safetensors").read_bytes()

    messages: list[str] = []
    resumed = train_gad(out=out, resume=True, log=messages.append)
    assert (out / "support-1.safetensors").read_bytes() == first  # kept, not trained again
    assert any(message.startswith("kept support 1") for message in messages)
    straight = load_gad_run(tiny_run)
    assert resumed.alphas == straight.alphas
    for ours, theirs in zip(resumed.supports, straight.supports):
        _same_state(ours, theirs)
    assert GadDir(out).read_status()["state"] == "finished"


def test_a_resume_with_other_settings_or_another_checkpoint_is_refused(tiny: Path, other: Path, tiny_run: Path) -> None:
    before = (tiny_run / "config.json").read_bytes()
    with pytest.raises(ConfigError, match="was made with epochs=2; resume with the same settings"):
        train_gad(out=tiny_run, resume=True, epochs=5)
    with pytest.raises(ConfigError, match="was made from .*, not from"):
        train_gad(other, out=tiny_run, resume=True)
    with pytest.raises(ConfigError, match="was made for circle vs square"):
        train_gad(strategy=Pair("circle", "star"), out=tiny_run, resume=True)
    assert (tiny_run / "config.json").read_bytes() == before


def test_a_resume_after_the_original_changed_is_refused(other: Path, tiny_run: Path, tmp_path: Path) -> None:
    """The run records its original by path and content: a file at that path with other contents (retrained since)
    is refused, not trained from."""
    import shutil

    moved = tmp_path / "run"
    shutil.copytree(tiny_run, moved)
    config = json.loads((moved / "config.json").read_text())
    config["original"]["path"] = str(other)
    (moved / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=r"was made from .*other.* \(sha256 [0-9a-f]{12}…\), not from .*, which has "
                                          "changed or is another checkpoint"):
        train_gad(out=moved, resume=True)
    with pytest.raises(ConfigError, match="the GAD run was made from"):
        load_gad_run(moved)


def test_a_run_made_from_another_checkpoint_is_refused(other: Path, tiny_run: Path) -> None:
    with pytest.raises(ConfigError, match=r"the GAD run was made from .* \(sha256 [0-9a-f]{12}…\), not from .*other"):
        load_gad_run(tiny_run, original=other)
    other_model = load_checkpoint(other).model
    with pytest.raises(ConfigError, match="the model is not the GAD run's original"):
        load_gad_run(tiny_run, original=other_model)
    with pytest.raises(ConfigError, match="the model is not the original of the GAD run .*: its weights differ"):
        explain(other_model, torch.randn(1, 3, 16, 16), "gad", support=str(tiny_run))


def test_a_folder_without_a_gad_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="there is no GAD run"):
        load_gad_run(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"arch": "resnet18"}))  # a training run's
    with pytest.raises(ConfigError, match="holds another kind of run, not a GAD run"):
        load_gad_run(tmp_path)
    with pytest.raises(ConfigError, match="holds another kind of run"):
        train_gad(out=tmp_path, resume=True)


# ---------------------------------------------------------------------------------------------------------------------
# Combination and the registry method


def test_alpha_zero_gives_the_thresholded_original_map(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "zero"
    run = train_gad(tiny, Pair(0, 1), out, alphas=[0.0, 0.0], **{k: v for k, v in TINY.items() if k != "supports"})
    assert run.alphas == (0.0, 0.0)
    for support in run.supports:
        _same_state(support, run.original)
    x = torch.randn(3, 3, 16, 16)
    for fusion in ("intersection", "majority", "union"):
        result = gad_explanation(run, x, base="integrated_gradients", base_params={"steps": 8}, q=15.0, fusion=fusion)
        original = explain(run.original, x, "integrated_gradients", steps=8).raw.abs().sum(dim=1)
        torch.testing.assert_close(result.original_map, original)
        assert torch.equal(result.fused, important_pixels(original, 15.0))
        torch.testing.assert_close(result.gad_map, original * important_pixels(original, 15.0))


def test_gad_explanation_holds_every_map_and_mask(tiny_run: Path) -> None:
    run = load_gad_run(tiny_run)
    x = torch.randn(2, 3, 16, 16)
    result = gad_explanation(run, x, target=[3, 4], base="smoothgrad", base_params={"samples": 2}, q=20.0)
    assert result.maps.shape == result.masks.shape == (3, 2, 16, 16) and result.masks.dtype == torch.bool
    assert result.target.tolist() == [3, 4] and all(e.target.tolist() == [3, 4] for e in result.supports)
    for index, explanation in enumerate((result.original, *result.supports)):
        torch.testing.assert_close(result.maps[index], explanation.raw.abs().sum(dim=1))
    assert torch.equal(result.fused, result.masks.all(dim=0))
    assert torch.equal(result.gad_map, result.original_map * result.fused)
    assert (result.base, result.base_params["samples"], result.q, result.fusion) == ("smoothgrad", 2, 20.0,
                                                                                       "intersection")
    with pytest.raises(ConfigError, match="must be one of gradient, guided_backprop, smoothgrad, integrated_gradients"):
        gad_explanation(run, x, base="gradcam")
    with pytest.raises(ConfigError, match="at least one support model"):
        gad_explanation([run.original], x)


def test_explain_gad_from_a_run_folder(tiny: Path, tiny_run: Path) -> None:
    model = load_checkpoint(tiny).model
    x = torch.randn(3, 3, 16, 16)
    before = capture_model_state(model).summary()
    explanation = explain(model, x, "gad", target=[0, 1, 1], support=str(tiny_run), base="gradient", q=25.0,
                          fusion="majority")
    assert capture_model_state(model).summary() == before
    assert all(parameter.grad is None for parameter in model.parameters())
    result = gad_explanation(load_gad_run(tiny_run), x, target=[0, 1, 1], base="gradient", q=25.0, fusion="majority")
    assert explanation.method == "gad" and explanation.target.tolist() == [0, 1, 1]
    torch.testing.assert_close(explanation.raw, result.original.raw * result.fused.unsqueeze(1))
    assert explanation.map.shape == (3, 16, 16) and not (explanation.map > 0)[~result.fused].any()
    assert explanation.params == {"support": str(tiny_run), "base": "gradient", "q": 25.0, "fusion": "majority"}
    torch.testing.assert_close(explanation.logits, model(x))
    with pytest.raises(ConfigError, match="gad needs support=RUN"):
        explain(model, x, "gad")
    with pytest.raises(ConfigError, match="there is no GAD run in"):
        explain(model, x, "gad", support=str(tiny_run / "nowhere"))


def test_gad_is_explicit_only_in_evaluations() -> None:
    from interpgrad.metrics import check_request

    request = check_request("all", ["sparseness"], device="cpu")
    assert "gad" not in request.methods and list(request.methods) == [
        name for name in methods() if name != "gad"]
    with pytest.raises(ConfigError, match="the method 'gad' needs its parameter 'support'"):
        check_request("gad", ["sparseness"], device="cpu")
    assert check_request("gad", ["sparseness"], method_params={"gad": {"support": "RUN"}}, device="cpu").methods[
        "gad"]["support"] == "RUN"


# ---------------------------------------------------------------------------------------------------------------------
# The launcher's command line


def test_the_command_line_reproduces_the_settings(tiny: Path, tmp_path: Path) -> None:
    from interpgrad.cli import build_parser

    settings = gad_settings({"alphas": "1.5,3", "train": "head", "epochs": 4, "data_root": ""})
    arguments = command_line(tiny, Split((0, 2), (5,)), settings, tmp_path / "run")
    assert arguments[3:6] == ["gad", "train", "--no-progress"]
    assert "--supports" not in arguments and "--alpha-scale" not in arguments and "--data-root" not in arguments
    args = build_parser(["gad"]).parse_args(arguments[3:])
    assert (args.split, args.alphas, args.train, args.epochs) == ("0,2/5", "1.5,3.0", "head", 4)
    typed = {key: value for key, value in vars(args).items() if key in settings}
    assert gad_settings(typed) == settings
    with pytest.raises(ConfigError, match="class 'hexagon' is not in the model"):
        launch_gad({"checkpoint": str(tiny), "strategy": Pair("circle", "hexagon")}, tmp_path, "bad")
    with pytest.raises(ConfigError, match="choose a strategy"):
        launch_gad({"checkpoint": str(tiny)}, tmp_path, "bad")
    assert not (tmp_path / "bad").exists()
