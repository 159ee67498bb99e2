"""A page opened by its URL on a fresh server (a bookmark, a reload after `make run`) is inside the app's navigation:
Streamlit's directory mode (a sidebar of file names) must never show. A module of its own: its own server."""

from __future__ import annotations

import pytest

from test_browser import ARTIFACTS, app_url, browser, folders, page  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NAVIGATION = ["Home", "Models", "Explore", "Train", "Evaluate", "GAD & regions", "Gradient lab"]


def test_a_page_opened_by_its_url_first_is_inside_the_app_navigation(app_url: str, page) -> None:  # type: ignore[no-untyped-def]
    for path, heading in (("Explore", "Explore"), ("Models", "Models")):  # Explore: the server's very first request
        page.goto(f"{app_url}/{path}")
        page.get_by_role("heading", name=heading, exact=True).wait_for(timeout=90_000)
        nav = page.locator("[data-testid='stSidebarNav']")
        nav.get_by_text("GAD & regions").wait_for(timeout=30_000)
        links = [text.strip() for text in nav.locator("a").all_inner_texts()]
        assert [link.split("\n")[-1].strip() for link in links] == NAVIGATION, links
        assert page.title() == f"interpgrad · {heading}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "opened-by-url.png"))
