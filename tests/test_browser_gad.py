"""The GAD & regions page in a real browser (the fixtures of test_browser.py: `streamlit run`, Chromium through
Playwright): it opens on a GAD run without training, shows every map, the fused mask, the GAD map and the convex-hull
overlays with their RC captions and the RC/RS table, and nothing fails. Screenshots go to test-artifacts/browser/."""

from __future__ import annotations

from pathlib import Path

import pytest

from appkit.gad import SHIPPED_DEFAULT
from interpgrad.gad import Pair, train_gad
from test_browser import ROOT, _full_screenshot, _no_streamlit_exception, _settle, app_url, browser, folders, page  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _a_gad_run(folders: dict[str, Path]) -> None:
    """The shipped default GAD run when it is there, else a tiny one among the page's runs (INTERPGRAD_RUNS/gad)."""
    if (ROOT / "checkpoints" / "gad" / SHIPPED_DEFAULT / "config.json").is_file():
        return
    out = folders["runs"] / "gad" / "tiny-square-heart"
    if not out.exists():
        train_gad(str(ROOT / "checkpoints" / "shapes-resnet18-baseline"), Pair("square", "heart"), out, supports=2,
                  epochs=1, n_train=32, n_val=16, batch_size=16, train="head")


def test_gad_page_shows_maps_overlays_and_numbers(app_url: str, page, folders: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    _a_gad_run(folders)
    page.goto(f"{app_url}/GAD")
    page.get_by_text("Convex-hull regions and their metrics").wait_for(timeout=120_000)
    _settle(page)
    _no_streamlit_exception(page)
    for text in ("our reading of the paper", "original map", "fused mask (intersection)",
                 "GAD map: the original inside the fused mask", "(cyan hulls)", "(magenta hulls)"):
        assert page.get_by_text(text).first.is_visible(), text
    assert page.get_by_text("support 1 · alpha").first.is_visible()
    images = page.locator("[data-testid='stImage'] img")
    assert images.count() >= 9
    assert all(box and box["width"] > 60 for box in (images.nth(i).bounding_box() for i in range(1, images.count())))
    tiles = page.locator("[data-testid='stMetric']")
    assert tiles.count() >= 6
    assert tiles.filter(has_text="RS: GAD's regions").first.is_visible()
    _full_screenshot(page, "gad-page.png")

    page.locator("[data-testid='stSelectbox']").filter(has_text="Fusion").click()  # pick union
    page.get_by_role("option", name="union").click()
    _settle(page)
    page.get_by_text("fused mask (union)").wait_for(timeout=60_000)
    _no_streamlit_exception(page)
    _full_screenshot(page, "gad-page-union.png")
