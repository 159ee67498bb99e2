"""The Gradient lab page through AppTest: every section renders (with tiny Softplus models, a judge and a fooled
model, and with the shipped models only, where sections 3 and 4 say what to train), its widgets work (the tiny
network's seeds, the pattern, the ascent-step slider, the compute buttons), bad input gives a readable message, and
the tiny network's hand-written backward pass agrees with the engine's standard and guided gradients."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

import appkit.lab
import interpgrad
from appkit.lab import PAPER_GAN_TEST, TINY_CLASSES, tiny_backward, tiny_input, tiny_network
from interpgrad.training.checkpoint import file_sha256
from test_app_evaluate import isolated_folders

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages" / "6_Gradient_lab.py")
TIMEOUT = 180
SIZE = 16  # the tiny models' input size
LAB_REGULARIZERS = ("none", "score_matching", "anti_score_matching", "gradient_norm")


def _save(folder: Path, name: str, arch: str, activation: str, regularizer: dict, seed: int, **extra) -> Path:  # type: ignore[no-untyped-def]
    from interpgrad.data.shapes import shapes_info

    torch.manual_seed(seed)
    config = interpgrad.ModelConfig(arch, num_classes=10, width=0.125, image_size=SIZE, activation=activation)
    model = interpgrad.build_model(config).eval()
    data = shapes_info(SIZE, normalize=activation != "softplus")  # the Srinivas & Fleuret models take [0, 1] pixels
    return interpgrad.save_checkpoint(folder / name, model, config, data=data, regularizer=regularizer,
                                      training={"dataset": "shapes", "seed": seed}, metrics={"val_accuracy": 0.5},
                                      name=name, **extra)


def lab_checkpoints(folder: Path, regularizers: tuple[str, ...] = LAB_REGULARIZERS, judge: bool = True,
                    fooled: bool = True) -> dict[str, Path]:
    """Tiny models for the lab in ``folder`` (a checkpoints folder): Softplus ResNet-18s (width 0.125, 16 px, random
    weights) named after their regularizer, a MobileNet-V2 judge, and the Softplus baseline "fine-tuned to show a
    pattern" (its metadata says so, with the init checkpoint's path and sha256, as the trainer writes it)."""
    made = {}
    for seed, regularizer in enumerate(regularizers):
        name = f"tiny-softplus-{regularizer.replace('_', '-')}"
        made[name] = _save(folder, name, "resnet18", "softplus", {"name": regularizer, "params": {}}, seed)
    if judge:
        made["tiny-mobilenetv2-judge"] = _save(folder, "tiny-mobilenetv2-judge", "mobilenet_v2", "relu", {}, 10)
    if fooled:  # as the shipped one: the Softplus baseline fine-tuned with the gradient_pattern regularizer
        original = made["tiny-softplus-none"]
        made["tiny-softplus-fooled"] = _save(
            folder, "tiny-softplus-fooled", "resnet18", "softplus",
            {"name": "gradient_pattern", "params": {"lam": 1.0, "pattern": "text:HI", "scale": 2.0}}, 12,
            init={"path": str(original.resolve()), "sha256": file_sha256(original)})
    return made


@pytest.fixture(autouse=True)
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    found = isolated_folders(tmp_path, monkeypatch)
    monkeypatch.setitem(appkit.lab.DATA, "n", 12)  # the density and perturbation sections measure on 12 images
    return found


@pytest.fixture()
def lab(folders: dict[str, Path]) -> dict[str, Path]:
    return lab_checkpoints(folders["checkpoints"])


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.run()
    _no_exception(at)
    return at


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [exception.value for exception in at.exception]
    assert not at.error, [error.value for error in at.error]
    stray = [kind for kind in ("markdown", "code", "text") for element in at.get(kind)
             if getattr(element, "value", None) == "None"]
    assert not stray, f"a statement's value was written to the page (Streamlit magic): {stray}"


def _texts(at: AppTest) -> str:
    return "\n".join(element.value for kind in ("markdown", "caption", "info", "warning", "code")
                     for element in at.get(kind) if isinstance(getattr(element, "value", None), str))


def _frame(at: AppTest, label: str):  # type: ignore[no-untyped-def]
    """The first table shown with a row (index) or a column named ``label``."""
    for frame in at.dataframe:
        value = frame.value
        if label in value.index or label in value.columns:
            return value
    raise AssertionError(f"no table with {label!r}")


def _frame_of_layer(at: AppTest, number: int):  # type: ignore[no-untyped-def]
    """The table of ReLU layer ``number`` (the tables come in the order of the backward pass: the last layer first)."""
    tables = [frame.value for frame in at.dataframe if "forward mask 1[u > 0]" in frame.value.index]
    return tables[len(tables) - number]


def _headers(at: AppTest) -> list[str]:
    return [header.value for header in at.header]


# --- 1. the tiny network ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("network_seed", [0, 2, 4])
def test_tiny_network_backward_by_hand_equals_the_engine(network_seed: int) -> None:
    network = tiny_network(network_seed)
    guided_differs = False
    for input_seed in range(12):
        for target in (None, 0, 1, 2):
            result = tiny_backward(network, tiny_input(input_seed, 1.5), target)
            x = tiny_input(input_seed, 1.5)
            chosen = int(network(x).argmax()) if target is None else target
            assert result.target == chosen
            standard = interpgrad.input_gradient(network, x, chosen, rule="standard")[0].double().numpy()
            guided = interpgrad.input_gradient(network, x, chosen, rule="guided")[0].double().numpy()
            np.testing.assert_allclose(result.standard_by_hand, standard, atol=1e-6)
            np.testing.assert_allclose(result.guided_by_hand, guided, atol=1e-6)
            assert result.disagreement < 1e-6
            for layer in result.layers:  # the displayed masks follow the two rules
                np.testing.assert_array_equal(layer.mask, (layer.u > 0).astype(float))
                np.testing.assert_allclose(layer.passed_standard, layer.mask * layer.incoming_standard)
                np.testing.assert_allclose(layer.passed_guided, layer.mask * np.maximum(layer.incoming_guided, 0))
            guided_differs |= not np.allclose(result.standard_by_hand, result.guided_by_hand)
    assert guided_differs  # the example shows a difference somewhere


def test_tiny_network_section_shows_the_engine_gradients_and_follows_its_widgets() -> None:
    at = _page()
    assert "1. Standard vs guided backward" in _headers(at)
    assert len(at.get("latex")) >= 1
    gradients = _frame(at, "guided gradient")
    expected = tiny_backward(tiny_network(2), tiny_input(0, 1.0))
    np.testing.assert_allclose(gradients.loc["standard gradient"].to_numpy(dtype=float), expected.standard, atol=1e-6)
    np.testing.assert_allclose(gradients.loc["guided gradient"].to_numpy(dtype=float), expected.guided, atol=1e-6)
    assert any("The tables' arithmetic and the engine agree" in caption.value for caption in at.caption)

    at.slider(key="lab.tiny.input").set_value(5)
    at.slider(key="lab.tiny.scale").set_value(2.0)
    at.selectbox(key="lab.tiny.target").set_value("C")
    at.run()
    _no_exception(at)
    expected = tiny_backward(tiny_network(2), tiny_input(5, 2.0), TINY_CLASSES.index("C"))
    gradients = _frame(at, "guided gradient")
    np.testing.assert_allclose(gradients.loc["guided gradient"].to_numpy(dtype=float), expected.guided, atol=1e-6)
    layer = _frame_of_layer(at, 1)
    np.testing.assert_allclose(layer.loc["forward mask 1[u > 0]"].to_numpy(dtype=float), expected.layers[0].mask)


# --- 2. gradients are arbitrary --------------------------------------------------------------------------------------

def test_arbitrary_gradients_keep_the_probabilities_and_change_the_maps() -> None:
    at = _page()
    assert "2. Gradients are arbitrary" in _headers(at)
    table = _frame(at, "probability (wrapped)")
    np.testing.assert_allclose(table["probability (model)"], table["probability (wrapped)"], atol=1e-6)
    assert not np.allclose(table["logit f"], table["logit f + g"])  # g moved every logit...
    differences = (table["logit f + g"] - table["logit f"]).to_numpy()
    np.testing.assert_allclose(differences, differences[0], atol=1e-4)  # ...by the same amount
    metrics = {metric.label: metric.value for metric in at.metric}
    assert float(metrics["max |Δ probability|"]) < 1e-6
    assert float(metrics["cos(∇ f, ∇ (f + g))"]) < 0.9  # scale 100 against a gradient of norm ~20
    assert len(at.get("image")) >= 4

    for kind, widget in (("shape", "lab.arbitrary.shape"), ("smooth", "lab.arbitrary.seed")):
        at.radio(key="lab.arbitrary.kind").set_value(kind)
        at.run()
        _no_exception(at)
        assert at.get("selectbox" if kind == "shape" else "number_input")  # its own control
        table = _frame(at, "probability (wrapped)")
        np.testing.assert_allclose(table["probability (model)"], table["probability (wrapped)"], atol=1e-6)
    at.number_input(key="lab.arbitrary.seed").set_value(7)
    at.select_slider(key="lab.arbitrary.scale").set_value(0.0)
    at.run()
    _no_exception(at)
    metrics = {metric.label: metric.value for metric in at.metric}
    assert float(metrics["cos(∇ f, ∇ (f + g))"]) == pytest.approx(1.0, abs=1e-6)  # s = 0: nothing added


def test_a_bad_pattern_gets_a_readable_message() -> None:
    at = _page()
    at.text_input(key="lab.arbitrary.text").set_value("   ")
    at.run()
    assert not at.exception
    assert any("The pattern cannot be used" in error.value and "needs some text" in error.value for error in at.error)
    at.radio(key="lab.arbitrary.kind").set_value("image")
    at.run()
    assert not at.exception
    assert any("Upload an image" in info.value for info in at.info)
    at.file_uploader(key="lab.arbitrary.upload").set_value(("notes.png", b"not an image at all", "image/png"))
    at.run()
    assert not at.exception
    assert any("notes.png cannot be used" in error.value for error in at.error), [e.value for e in at.error]


def test_a_fooled_model_is_shown_beside_its_original(lab: dict[str, Path]) -> None:
    at = _page()
    assert any("A model fine-tuned to fool its gradients" == sub.value for sub in at.subheader)
    texts = _texts(at)
    assert "Pattern `text:HI`, error mse, scale s = 2, λ = 1" in texts
    captions = [caption for element in at.get("image") for caption in element.captions]
    assert sum("cos(∇ f, P)" in caption for caption in captions) == 2, captions
    assert "original: tiny-softplus-none · val acc 50.0%" in captions, captions
    assert "fooled: tiny-softplus-fooled · val acc 50.0%" in captions, captions
    # a fooled model is not one of the generative view's models (nor a judge)
    options = at.multiselect(key="lab.samples.models").options
    assert len(options) == 4 and not any("tiny-softplus-fooled" in option for option in options), options


def test_without_a_fooled_model_the_page_gives_the_command() -> None:
    at = _page()
    assert any("No fooled model is available yet" in info.value for info in at.info)
    assert any("python -m interpgrad lab fool --checkpoint" in code.value for code in at.code)


# --- 3 and 4 without Softplus models ------------------------------------------------------------------------------------

def test_without_softplus_models_the_sections_say_what_to_train() -> None:
    at = _page()
    assert _headers(at) == ["1. Standard vs guided backward", "2. Gradients are arbitrary", "3. The generative view",
                            "4. Density ratio and pixel perturbation"]
    assert any("No Softplus model is available" in info.value for info in at.info)
    commands = "\n".join(code.value for code in at.code)
    assert "--regularizer score_matching" in commands and "--activation softplus --normalize false" in commands
    # the shipped starter models (ReLU, the same classes and size) can judge: no judge to train
    assert "--arch mobilenet_v2" not in commands
    assert not at.get("plotly_chart")


# --- 3 and 4 with tiny Softplus models ------------------------------------------------------------------------------

def test_samples_gan_test_and_curves_are_computed_on_request_and_then_read_from_the_cache(lab: dict[str, Path]) -> None:
    at = _page()
    assert [entry for entry in at.multiselect(key="lab.samples.models").value] == [
        f"shipped/tiny-softplus-{name.replace('_', '-')}" for name in LAB_REGULARIZERS]
    at.number_input(key="lab.samples.steps").set_value(20)
    at.run()
    _no_exception(at)
    assert any("No samples with these settings yet" in warning.value for warning in at.warning)
    at.button(key="lab.samples.compute").click()
    at.run()
    _no_exception(at)
    assert not any("No samples with these settings yet" in warning.value for warning in at.warning)

    # the samples grid: rows models, columns classes, a slider over the kept steps
    slider = at.select_slider(key="lab.samples.step")
    assert list(slider.options) == ["0", "10", "20"] and slider.value == 20
    assert any("Samples at step 20 of 20" in caption.value for caption in at.caption)
    slider.set_value(10)
    at.run()
    _no_exception(at)
    assert any("Samples at step 10 of 20" in caption.value for caption in at.caption)
    at.selectbox(key="lab.samples.class").set_value("heart")  # one class's trajectory: a picture per kept step
    at.run()
    _no_exception(at)
    captions = [caption for element in at.get("image") for caption in element.captions if caption.startswith("f_y ")]
    assert len(captions) == 4 * 3, captions  # 4 models x steps 0, 10, 20
    at.number_input(key="lab.samples.steps").set_value(5)  # other settings: step 10 is not kept there
    at.run()
    at.button(key="lab.samples.compute").click()
    at.run()
    _no_exception(at)
    assert list(at.select_slider(key="lab.samples.step").options) == ["0", "5"]
    at.number_input(key="lab.samples.steps").set_value(20)  # back: read from the cache, no button
    at.run()
    _no_exception(at)
    assert at.select_slider(key="lab.samples.step").value == 20

    # the GAN-test, judged by the MobileNet-V2, the paper's numbers in the reference row
    assert at.selectbox(key="lab.gan.judge").value == "shipped/tiny-mobilenetv2-judge"
    table = _frame(at, "reference: the paper, CIFAR-100 (ResNet-18)")
    assert len(table.columns) == 4
    reference = table.loc["reference: the paper, CIFAR-100 (ResNet-18)"].tolist()
    assert reference == [f"{PAPER_GAN_TEST[name]:.2f} %" for name in LAB_REGULARIZERS]
    assert all(value.endswith(" %") for value in table.iloc[1])
    assert table.loc["model"].tolist() == [f"tiny-softplus-{name.replace('_', '-')} (shipped)" for name in LAB_REGULARIZERS]
    figure = at.get("plotly_chart")[0].proto.spec
    assert "paper (CIFAR-100, 100 classes)" in figure and "GAN-test: judge accuracy" in figure

    # section 4: nothing measured yet; compute the profiles and the curves
    assert any("No density-ratio profile yet" in warning.value for warning in at.warning)
    assert at.selectbox(key="lab.perturb.baseline").value == "shipped/tiny-softplus-none"
    infos = [info.value for info in at.info]
    assert "No model's own curve is computed yet (below)." in infos
    assert "tiny-softplus-none (shipped) has not judged the models' gradients yet (below)." in infos
    at.button(key="lab.density.compute").click()
    at.run()
    _no_exception(at)
    at.button(key="lab.perturb.compute").click()
    at.run()
    _no_exception(at)
    charts = {chart.proto.id: chart.proto.spec for chart in at.get("plotly_chart")}
    assert len(charts) == 4  # GAN-test, density, own curves, judged curves
    specs = "\n".join(json.dumps(json.loads(spec), ensure_ascii=False) for spec in charts.values())
    for text in ("noise std σ (pixel units, log scale)", "mean f_y(x + η) − f_y(x)",
                 "fraction of pixels removed, least salient first (log scale)", "accuracy of the baseline",
                 "tiny-softplus-score-matching (shipped)'s gradients", '"type": "log"'):
        assert text in specs, text

    # a fresh session opens on the cached results without computing
    again = _page()
    assert not any("not computed yet" in w.value or "No density-ratio" in w.value for w in again.warning)
    again.number_input(key="lab.samples.steps").set_value(20)
    again.run()
    _no_exception(again)
    assert len(again.get("plotly_chart")) == 4


def test_lab_sections_need_no_judge_and_no_baseline(folders: dict[str, Path]) -> None:
    lab_checkpoints(folders["checkpoints"], regularizers=("score_matching",), judge=False, fooled=False)
    at = _page()
    assert "3. The generative view" in _headers(at)
    at.number_input(key="lab.samples.steps").set_value(5)
    at.run()
    at.button(key="lab.samples.compute").click()
    at.run()
    _no_exception(at)
    # the shipped ReLU starter models have the same classes but another input size (32 px): no judge
    assert any("No judge is available" in info.value for info in at.info)
    assert any("needs the Softplus baseline" in info.value for info in at.info)


def test_the_page_opens_on_what_the_command_line_cached(folders: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    """`python -m interpgrad lab ... --cache auto` with its defaults (but fewer steps and images, set on the page too)
    fills the cache the page reads: samples, GAN-test, density profiles and both kinds of perturbation curves show
    at once, and nothing asks to be computed."""
    from interpgrad.cli import main

    made = lab_checkpoints(folders["checkpoints"], regularizers=("none", "score_matching"), fooled=False)
    generators = [str(made["tiny-softplus-none"]), str(made["tiny-softplus-score-matching"])]
    models = [argument for path in generators for argument in ("--checkpoint", path)]
    common = ["--cache", "auto", "--no-progress", "--out"]
    out = folders["run"] / "lab"
    assert main(["lab", "gan-test", *models, "--judge", str(made["tiny-mobilenetv2-judge"]), "--steps", "20",
                 *common, str(out / "gan")]) == 0
    assert main(["lab", "density", *models, "--n", "12", *common, str(out / "density")]) == 0
    assert main(["lab", "perturb", *models, "--n", "12", *common, str(out / "own")]) == 0
    assert main(["lab", "perturb", *models, "--judge", generators[0], "--n", "12", *common, str(out / "judged")]) == 0
    capsys.readouterr()

    at = _page()
    assert not any("No density-ratio profile yet" in w.value or "not computed yet" in w.value for w in at.warning)
    at.number_input(key="lab.samples.steps").set_value(20)
    at.run()
    _no_exception(at)
    assert not at.warning, [warning.value for warning in at.warning]
    assert any("Samples at step 20 of 20" in caption.value for caption in at.caption)
    assert len(at.get("plotly_chart")) == 4
    assert _frame(at, "reference: the paper, CIFAR-100 (ResNet-18)").shape == (4, 2)


def test_with_no_model_chosen_the_sections_say_so(lab: dict[str, Path]) -> None:
    at = _page()
    at.multiselect(key="lab.samples.models").set_value([])
    at.run()
    _no_exception(at)
    infos = [info.value for info in at.info]
    assert any("choose models and compute their samples first" in info for info in infos), infos
    assert any("Choose Softplus models in section 3" in info for info in infos), infos
    assert not at.get("plotly_chart")


def test_a_fooled_model_trained_with_the_cosine_error_says_so(folders: dict[str, Path]) -> None:
    made = lab_checkpoints(folders["checkpoints"], regularizers=("none",), judge=False, fooled=False)
    original = made["tiny-softplus-none"]
    _save(folders["checkpoints"], "tiny-softplus-fooled-cosine", "resnet18", "softplus",
          {"name": "gradient_pattern", "params": {"lam": 0.5, "pattern": "shape:heart", "error": "cosine"}}, 13,
          init={"path": str(original.resolve()), "sha256": file_sha256(original)})
    at = _page()
    assert "Pattern `shape:heart`, error cosine, λ = 0.5" in _texts(at)
    captions = [caption for element in at.get("image") for caption in element.captions]
    assert "fooled: tiny-softplus-fooled-cosine · val acc 50.0%" in captions, captions
