"""Declared parameters and when they apply (``Param.when``): every condition of the registries names an earlier
parameter and values it accepts; a parameter that does not apply changes nothing the code computes, resolves to its
default, and is refused when the user types a value for it on the command line; --help, --list and info say when each
parameter applies."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest
import torch

import interpgrad
from interpgrad import ConfigError
from interpgrad.cli import build_parser, main
from interpgrad.cli.train import refuse_params_without_effect
from interpgrad.explain import Request, methods
from interpgrad.metrics import MetricBatch, metrics
from interpgrad.params import Param, When, applicable, check_declarations, resolve_params
from interpgrad.regularizers import REGULARIZERS, GuidedAlignment
from interpgrad.training.config import make_config
from interpgrad.training.launcher import command_line

pytestmark = pytest.mark.usefixtures("one_thread")

BLUR_ONLY = When("substrate", "blur")
CAUSAL = {"blur_kernel": BLUR_ONLY, "blur_sigma": BLUR_ONLY, "constant": When("substrate", "constant")}
CONDITIONS = {
    "regularizer guided": {"histogram_normalization": When("error", "histogram")},
    "regularizer gradient_pattern": {"scale": When("error", "mse")},
    "method smoothgrad": {"steps": When("base", "integrated_gradients")},
    "method integrated_gradients": {"blur_sigma": When("baseline", "blur")},
    "metric pixel_perturbation": {"constant": When("replacement", "constant")},
    "metric insertion": CAUSAL,
    "metric deletion": CAUSAL,
}
"""Every condition declared in the registries: the parameters each method, metric and regularizer reads only under
some value of another one (their code is checked below: the others change nothing there)."""


def _declarations() -> Iterator[tuple[str, Sequence[Param]]]:
    yield from ((f"regularizer {name}", regularizer.params) for name, regularizer in REGULARIZERS.items())
    yield from ((f"method {name}", method.params) for name, method in methods().items())
    yield from ((f"metric {name}", metric.params) for name, metric in metrics().items())


DECLARATIONS = dict(_declarations())


@pytest.mark.parametrize("owner", DECLARATIONS)
def test_every_condition_names_an_earlier_parameter_and_values_it_accepts(owner: str) -> None:
    params = DECLARATIONS[owner]
    check_declarations(params, owner)
    earlier: dict[str, Param] = {}
    for param in params:
        if param.when is not None:
            controller = earlier[param.when.param]  # declared before: the app draws (and decides) it first
            assert param.when.values and all(controller.coerce(value) == value for value in param.when.values)
            assert controller.choices is None or set(param.when.values) < set(controller.choices)  # else: always
        earlier[param.name] = param


def test_the_conditions_the_registries_declare() -> None:
    declared = {owner: {param.name: param.when for param in params if param.when}
                for owner, params in DECLARATIONS.items()}
    assert {owner: conditions for owner, conditions in declared.items() if conditions} == CONDITIONS


@pytest.mark.parametrize(("params", "message"), [
    ((Param("steps", int, 1, "", when=When("base", "a")), Param("base", str, "a", "", choices=("a", "b"))),
     "'base', which is not declared before it"),
    ((Param("base", str, "a", "", choices=("a", "b")), Param("steps", int, 1, "", when=When("base", "c"))),
     "base='c', a value 'base' does not accept"),
    ((Param("on", bool, False, ""), Param("steps", int, 1, "", when=When("on", "yes"))), "on='yes'"),
    ((Param("base", str, "a", ""), Param("base", str, "b", "")), "declared twice"),
    ((Param("base", str, "a", "", when=When("base", "a")),), "not declared before it"),
])
def test_a_misdeclared_condition_is_refused(params: tuple[Param, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_declarations(params, "demo")
    with pytest.raises(ValueError, match=message):
        resolve_params(params, {})  # every front end resolves through the check


# A chain: ``count`` applies when ``detail`` applies and is on; ``detail`` applies when ``mode`` is fine.
CHAIN = (
    Param("mode", str, "coarse", "", choices=("coarse", "fine", "finest")),
    Param("detail", bool, False, "", when=When("mode", ("fine", "finest"))),
    Param("count", int, 3, "", low=1, high=9, when=When("detail", True)),
)


@pytest.mark.parametrize(("values", "applying"), [
    ({"mode": "coarse", "detail": True, "count": 5}, {"mode": "coarse"}),
    ({"mode": "fine", "detail": False, "count": 5}, {"mode": "fine", "detail": False}),
    ({"mode": "finest", "detail": True, "count": 5}, {"mode": "finest", "detail": True, "count": 5}),
])
def test_conditions_chain_in_declaration_order(values: dict[str, Any], applying: dict[str, Any]) -> None:
    assert applicable(CHAIN, values) == applying
    defaults = {param.name: param.default for param in CHAIN}
    assert resolve_params(CHAIN, values) == {**defaults, **applying}  # the rest resolve to their defaults


def test_a_value_that_does_not_apply_is_checked_then_resolves_to_the_default() -> None:
    smoothgrad = methods()["smoothgrad"]
    assert smoothgrad.resolve({"steps": 64})["steps"] == 32
    assert smoothgrad.resolve({"steps": "64", "base": "integrated_gradients"})["steps"] == 64
    with pytest.raises(ConfigError, match="'steps' must be >= 1"):
        smoothgrad.resolve({"steps": 0})  # a bad value is bad whether or not it applies
    assert set(smoothgrad.resolve({})) == {param.name for param in smoothgrad.params}  # methods get every parameter
    assert GuidedAlignment(error="cosine", histogram_normalization="product").histogram_normalization == "each"


def test_a_typed_value_without_effect_is_an_error_that_says_why() -> None:
    params = methods()["smoothgrad"].params
    with pytest.raises(ConfigError) as refused:
        resolve_params(params, {"steps": "64"}, "smoothgrad", explicit={"steps"})
    assert str(refused.value) == ("smoothgrad parameter 'steps' has no effect: it applies only when base is "
                                  "integrated_gradients (base is gradient)")
    assert resolve_params(params, {"steps": "32"}, "smoothgrad", explicit={"steps"})["steps"] == 32  # the default
    assert resolve_params(params, {"steps": "64"}, "smoothgrad")["steps"] == 32  # not typed: a preset's, a file's
    with pytest.raises(ConfigError, match="'count' has no effect: it applies only when detail is true "
                                          r"\(detail does not apply\)"):
        resolve_params(CHAIN, {"detail": True, "count": 5}, explicit={"count"})
    with pytest.raises(ConfigError, match=r"only when mode is fine or finest \(mode is coarse\)"):
        resolve_params(CHAIN, {"detail": True}, explicit={"detail"})


def test_conditions_are_data_in_to_dict_and_protocols() -> None:
    smoothgrad = methods()["smoothgrad"].to_dict()
    steps = next(param for param in smoothgrad["params"] if param["name"] == "steps")
    assert steps["when"] == {"param": "base", "values": ["integrated_gradients"]}
    assert all(param["when"] is None for param in smoothgrad["params"] if param["name"] != "steps")
    deletion = metrics()["deletion"]
    assert "blur_sigma" not in deletion.describe() and "substrate=zeros" in deletion.describe()
    assert "blur_sigma=3," in deletion.describe({"substrate": "blur", "blur_sigma": 3})
    assert "constant=0.25," in deletion.describe({"substrate": "constant", "constant": 0.25})


# ---------------------------------------------------------------------------------------------------------------------
# The conditions are the code's: a parameter that does not apply changes nothing the method, metric or regularizer
# computes (called directly, without the resolution that would reset it), and one that applies does.


@pytest.fixture(scope="module")
def tiny() -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = interpgrad.build_model("resnet18", width=0.125).eval()
    return model, torch.rand(2, 3, 16, 16)


def _method(name: str, tiny: tuple[torch.nn.Module, torch.Tensor], **params: Any) -> torch.Tensor:
    model, x = tiny
    method = methods()[name]
    return method.compute(Request(model, x), **{**method.resolve({}), **params}).raw


@pytest.mark.parametrize(("method", "controller", "applying", "other", "param", "values"), [
    ("smoothgrad", "base", "integrated_gradients", "gradient", "steps", (2, 5)),
    ("smoothgrad", "base", "integrated_gradients", "guided_backprop", "steps", (2, 5)),
    ("integrated_gradients", "baseline", "blur", "zero", "blur_sigma", (1.0, 3.0)),
])
def test_a_method_parameter_matters_only_where_it_applies(tiny, method: str, controller: str, applying: str,
                                                          other: str, param: str, values: tuple) -> None:
    common = {"samples": 2} if method == "smoothgrad" else {}
    first, second = (_method(method, tiny, **common, **{controller: other, param: value}) for value in values)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    first, second = (_method(method, tiny, **common, **{controller: applying, param: value}) for value in values)
    assert not torch.equal(first, second)


def _metric(name: str, tiny: tuple[torch.nn.Module, torch.Tensor], **params: Any) -> torch.Tensor:
    model, x = tiny
    explanation = interpgrad.explain(model, x, "gradient")
    batch = MetricBatch.from_explanation(model, x, explanation, labels=torch.tensor([1, 2]))
    metric = metrics()[name]
    return metric.compute(batch, **{**metric.resolve({}), **params}).curve


@pytest.mark.parametrize(("metric", "controller", "param", "values"), [
    ("insertion", "substrate", "blur_kernel", (3, 7)),
    ("insertion", "substrate", "blur_sigma", (0.5, 3.0)),
    ("deletion", "substrate", "constant", (0.1, 0.9)),
    ("pixel_perturbation", "replacement", "constant", (0.1, 0.9)),
])
def test_a_metric_parameter_matters_only_where_it_applies(tiny, metric: str, controller: str, param: str,
                                                          values: tuple) -> None:
    declared = {p.name: p for p in metrics()[metric].params}
    score = {"score": "probability"} if metric == "pixel_perturbation" else {"score": "logit"}
    for choice in declared[controller].choices or ():
        curves = [_metric(metric, tiny, **score, **{controller: choice, param: value}) for value in values]
        if choice in declared[param].when.values:
            assert not torch.equal(curves[0], curves[1]), choice
        else:
            torch.testing.assert_close(curves[0], curves[1], rtol=0, atol=0, msg=choice)


def test_histogram_normalization_matters_only_for_the_histogram_error() -> None:
    torch.manual_seed(0)
    model = interpgrad.build_model("resnet18", width=0.125).train()
    x, y = torch.rand(3, 3, 16, 16), torch.tensor([0, 1, 2])
    errors = next(param for param in REGULARIZERS["guided"].params if param.name == "error").choices or ()
    for error in errors:
        losses = []
        for normalization in ("each", "product"):
            regularizer = GuidedAlignment(error=error)
            regularizer.histogram_normalization = normalization  # as if it were resolved to it
            losses.append(regularizer(model, x, y).regularization)
        if error == "histogram":
            assert not torch.equal(*losses), error
        else:
            torch.testing.assert_close(*losses, rtol=0, atol=0, msg=error)


# ---------------------------------------------------------------------------------------------------------------------
# The command line: --help, --list and info say when a parameter applies; a typed value without effect is refused.


def _cli(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, str, str]:
    try:
        code = main(list(arguments))
    except SystemExit as exit:
        code = int(exit.code or 0)
    captured = capsys.readouterr()
    return code, " ".join(captured.out.split()), captured.err


def test_help_list_and_info_say_when_a_parameter_applies(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "explain", "--help")
    assert code == 0
    assert "steps=32 (only when base is integrated_gradients): path points" in out
    assert "blur_sigma=5.0 (only when baseline is blur)" in out and "samples=25: number of noisy copies" in out
    code, out, _ = _cli(capsys, "train", "--help")
    assert code == 0 and "--histogram-normalization {each,product} guided, only when error is histogram:" in out
    code, out, _ = _cli(capsys, "evaluate", "--list")
    assert code == 0
    assert "--param deletion.blur_kernel=5 (only when substrate is blur):" in out
    assert "--param insertion.constant=0.0 (only when substrate is constant):" in out
    assert "--param pixel_perturbation.constant=0.5 (only when replacement is constant):" in out
    code, out, _ = _cli(capsys, "info")
    assert code == 0
    assert "error=cosine, histogram_normalization=each [only when error is histogram], batchnorm=batch" in out
    assert "seed=0, steps=32 [only when base is integrated_gradients], batch_size=0" in out


@pytest.mark.parametrize(("arguments", "message"), [
    (["explain", "--method", "smoothgrad", "--param", "steps=8"],
     "smoothgrad parameter 'steps' has no effect: it applies only when base is integrated_gradients (base is gradient)"),
    (["explain", "--method", "integrated_gradients", "--param", "blur_sigma=2"],
     "integrated_gradients parameter 'blur_sigma' has no effect: it applies only when baseline is blur (baseline is zero)"),
    (["train", "--regularizer", "guided", "--histogram-normalization", "product"],
     "guided parameter 'histogram_normalization' has no effect: it applies only when error is histogram (error is cosine)"),
    (["evaluate", "--metrics", "deletion", "--param", "deletion.blur_sigma=3"],
     "deletion parameter 'blur_sigma' has no effect: it applies only when substrate is blur (substrate is zeros)"),
    (["evaluate", "--metrics", "insertion", "--preset", "rise", "--param", "insertion.substrate=mean",
      "--param", "insertion.blur_kernel=3"], "insertion parameter 'blur_kernel' has no effect"),
    (["evaluate", "--metrics", "pixel_perturbation", "--preset", "srinivas-fleuret",
      "--param", "pixel_perturbation.replacement=mean", "--param", "pixel_perturbation.constant=0.2"],
     "pixel_perturbation parameter 'constant' has no effect: it applies only when replacement is constant"),
    (["evaluate", "--methods", "smoothgrad", "--method-param", "smoothgrad.steps=4"],
     "smoothgrad parameter 'steps' has no effect"),
])
def test_a_typed_value_without_effect_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          arguments: list[str], message: str) -> None:
    command = arguments[0]
    needed = {"explain": ["--checkpoint", str(tmp_path / "none"), "--image", str(tmp_path / "none.png")],
              "train": ["--epochs", "1"], "evaluate": ["--checkpoint", str(tmp_path / "none")]}[command]
    out = tmp_path / "out"
    code, _, err = _cli(capsys, *arguments, *needed, "--out", str(out))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"interpgrad {command}: error: {message}"), err
    assert not out.exists()


@pytest.mark.parametrize(("arguments", "later"), [
    (["explain", "--method", "smoothgrad", "--param", "steps=32"], "no such image file"),  # the default: no change
    (["explain", "--method", "smoothgrad", "--param", "base=integrated_gradients", "--param", "steps=8"],
     "no such image file"),
    (["evaluate", "--metrics", "insertion", "--preset", "rise", "--param", "insertion.substrate=zeros"],
     "no checkpoint"),  # the preset's blur_kernel no longer applies: not the user's to be told
])
def test_a_typed_value_that_applies_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str],
                                           later: str) -> None:
    needed = {"explain": ["--checkpoint", str(tmp_path / "none"), "--image", str(tmp_path / "none.png")],
              "evaluate": ["--checkpoint", str(tmp_path / "none")]}[arguments[0]]
    code, _, err = _cli(capsys, *arguments, *needed, "--out", str(tmp_path / "out"))
    assert code == 2 and later in err and "no effect" not in err, err


def test_the_train_command_line_the_app_launches_passes_the_check() -> None:
    """The launcher spells out every resolved parameter, the defaults of those that do not apply included."""
    from interpgrad.cli.train import _options

    config = make_config({"regularizer": "guided", "regularizer_params": {"error": "cosine"}, "out": "runs/x"})
    arguments = command_line(config)
    assert "histogram_normalization=each" in arguments
    parsed = build_parser(["train"]).parse_args(arguments[3:])
    options = _options(parsed)
    refuse_params_without_effect(make_config(options), options["regularizer_params"])
