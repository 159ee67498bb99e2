"""The Models page's "Compare the models" section in a real browser (the fixtures of test_browser.py): on the shipped
evaluation it shows the zoo table and the two models' verdicts without an exception, with every column header
readable. Screenshots go to test-artifacts/browser/ (models-compare.png)."""

from __future__ import annotations

import pytest

from test_browser import ARTIFACTS, _full_screenshot, _no_streamlit_exception, _settle, app_url, browser, folders, page  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_models_page_compares_the_shipped_models(app_url: str, page) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{app_url}/Models")
    page.get_by_text("Compare the models").wait_for(timeout=90_000)
    page.get_by_text("Compare two models").wait_for(timeout=90_000)
    _settle(page)
    _no_streamlit_exception(page)
    summary = page.get_by_text("(method, metric) pairs").first
    # the shipped evaluation of the zoo, a strong model against its baseline
    assert "shapes-resnet18-guided-strong better" in summary.inner_text()
    assert "shapes-resnet18-baseline better" in summary.inner_text()
    tables = page.locator("[data-testid='stDataFrame']")
    tables.nth(2).wait_for(timeout=60_000)  # data grids draw after the text around them
    assert tables.count() == 3  # the zoo, the comparison table, the verdicts
    for index in (1, 2):
        box = tables.nth(index).bounding_box()
        assert box and box["height"] > 100 and box["width"] > 400, box
    _full_screenshot(page, "models-compare.png")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    section = page.get_by_text("Compare the models").first
    section.scroll_into_view_if_needed()
    tables.nth(2).scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "models-compare-verdicts.png"))
