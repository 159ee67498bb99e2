"""The Models and Train pages in a real browser (the fixtures of test_browser.py: `streamlit run`, Chromium through
Playwright): the training curves' legends sit beside the panels with every entry showing, an upload is named after
its model and recognised when it comes again, it is deleted after a confirmation, and a stopped run shows where it
stopped with what to do in the page's words. Screenshots go to test-artifacts/browser/."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from interpgrad import ModelConfig, build_model, save_checkpoint
from interpgrad.errors import Remedy
from interpgrad.jobs import reason_fields
from interpgrad.training import RunDir
from test_browser import ROOT, _full_screenshot, _no_streamlit_exception, app_url, browser, folders, page  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHIPPED = ROOT / "checkpoints"


def _boxes(page, selector: str) -> list[dict[str, float]]:  # type: ignore[no-untyped-def]
    return [box for box in (element.bounding_box() for element in page.locator(selector).all()) if box]


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])


def _check_legends_beside_the_panels(page, entries: int) -> None:  # type: ignore[no-untyped-def]
    """Every legend entry is drawn, none over a panel, an axis title or another legend, and no legend scrolls."""
    chart = page.locator("[data-testid='stPlotlyChart']").first
    legend = ".infolayer > g.legend, .infolayer > g.legend2"  # the models' legend and the line styles'
    chart.locator(f":is({legend}) .traces").first.wait_for(timeout=60_000)
    legends = _boxes(chart, ".infolayer > g.legend > .bg, .infolayer > g.legend2 > .bg")
    assert len(legends) == (2 if entries > 2 else 1), legends  # one run alone has no legend of models
    assert not any(_overlap(a, b) for i, a in enumerate(legends) for b in legends[i + 1:])
    assert chart.locator(f":is({legend}) .traces").count() == entries
    assert all(box["height"] > 0 for box in _boxes(chart, f":is({legend}) .traces"))
    assert chart.locator(f":is({legend}) .scrollbar").evaluate_all(
        "bars => bars.filter(bar => parseFloat(bar.getAttribute('height') || 0) > 0).length") == 0
    titles = "[class^='g-x'][class$='title'] text, [class^='g-y'][class$='title'] text"  # g-xtitle, g-x2title...
    others = _boxes(chart, ".nsewdrag") + _boxes(chart, titles)
    assert len(others) >= 6  # three panels, their axis titles
    for other in others:
        assert not any(_overlap(box, other) for box in legends), (legends, other)


def test_models_page_curves_upload_and_delete(app_url: str, page, folders: dict[str, Path], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = ModelConfig("resnet18", num_classes=10, width=0.125)
    weights = save_checkpoint(tmp_path / "run", build_model(config), config, name="browser-guided",
                              regularizer={"name": "guided", "params": {"lam": 0.01, "error": "cosine"}})
    page.goto(f"{app_url}/Models")
    page.get_by_text("Upload a checkpoint").wait_for(timeout=90_000)
    _check_legends_beside_the_panels(page, entries=3 + 2)  # the shipped ResNet-18 trio; train and validation
    _full_screenshot(page, "models-curves.png")

    copy = tmp_path / "copy" / "model.safetensors"  # the same file again, from another folder
    copy.parent.mkdir()
    shutil.copy(weights, copy)
    for path, message in [(weights, "Added browser-guided (upload:"),
                          (copy, "model.safetensors is already here, as browser-guided (upload)")]:
        page.locator("[data-testid='stFileUploader'] input[type=file]").first.set_input_files(str(path))
        page.get_by_text("model.safetensors", exact=True).first.wait_for(timeout=30_000)  # the uploader's chip
        page.get_by_role("button", name="Add to the models").click()
        page.get_by_text(message).wait_for(timeout=60_000)
        _no_streamlit_exception(page)
    assert [path.name for path in folders["uploads"].iterdir()] == ["browser-guided"]

    shown = page.get_by_role("combobox", name="Model", exact=True).input_value()  # not "Model A/B" of the comparison
    assert shown == "browser-guided (upload: resnet18 x0.125, guided)"  # the only one: no shipped model
    page.get_by_role("button", name="Delete…").click()
    page.get_by_text("Delete browser-guided (upload)?").wait_for(timeout=30_000)
    _full_screenshot(page, "models-delete-confirm.png")
    page.get_by_role("button", name="Delete for good").click()
    page.get_by_text("Deleted browser-guided (upload).").wait_for(timeout=30_000)
    _no_streamlit_exception(page)
    assert not any(folders["uploads"].iterdir())


def test_train_page_shows_a_stopped_run(app_url: str, page, folders: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    shutil.copytree(SHIPPED / "shapes-resnet18-guided", folders["runs"] / "browser-stopped")
    run = RunDir(folders["runs"] / "browser-stopped")
    run.write_status("stopped", epoch=6, epochs=12, step=78, steps_per_epoch=156,
                     **reason_fields("stopped and saved", Remedy("resume")))
    run.resume_path.write_bytes(b"")  # resumable: the Resume button shows
    page.goto(f"{app_url}/Train")
    page.get_by_text("epoch 7/12, step 78/156").wait_for(timeout=90_000)
    page.get_by_text("stopped and saved; continue with the Resume button").wait_for()
    page.get_by_role("button", name="Resume").wait_for()
    _check_legends_beside_the_panels(page, entries=2)
    _no_streamlit_exception(page)
    _full_screenshot(page, "train-stopped.png")
