"""The real app in a real browser: Streamlit serving app.py on a free local port, Playwright driving the system Chromium.

Screenshots are kept in test-artifacts/browser/. A missing Chromium or Playwright fails these tests (it does not skip
them): `make test` installs Chromium when it runs as root.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = os.environ.get("INTERPGRAD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_healthy(url: str, server: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"streamlit exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"streamlit did not become healthy in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("browser")
    return {"runs": base / "runs", "uploads": base / "uploads", "log": base / "streamlit.log"}


@pytest.fixture(scope="module")
def app_url(folders: dict[str, Path]) -> Iterator[str]:
    """The app, served by `streamlit run` as a user starts it, with runs and uploads in temporary folders."""
    port = _free_port()
    env = {**os.environ, "INTERPGRAD_RUNS": str(folders["runs"]), "INTERPGRAD_UPLOADS": str(folders["uploads"]),
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    log = folders["log"].open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.address",
         "127.0.0.1", "--server.port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, server, folders["log"])
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        # Training runs the page launched are separate processes (closing the browser must not kill them): stop them.
        for status in folders["runs"].glob("*/status.json"):
            subprocess.run(["pkill", "-f", str(status.parent)], check=False)


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).is_file(), f"the browser tests need Chromium at {CHROMIUM} (apt-get install -y chromium)"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1600, "height": 1100})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-final.png"), full_page=True)
    context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


def _no_streamlit_exception(page) -> None:  # type: ignore[no-untyped-def]
    exceptions = page.locator("[data-testid='stException']")
    assert exceptions.count() == 0, exceptions.first.inner_text()


def _photo(tmp_path: Path) -> Path:
    """A real photo (skimage's astronaut, shipped inside the wheel) as a JPEG file."""
    from PIL import Image
    from skimage import data

    path = tmp_path / "astronaut.jpg"
    Image.fromarray(data.astronaut()).save(path, quality=90)
    return path


def test_home_page_shows_the_overview(app_url: str, page) -> None:  # type: ignore[no-untyped-def]
    page.goto(app_url)
    page.get_by_text("Models available").wait_for(timeout=90_000)
    page.locator("[data-testid='stImage'] img").first.wait_for(timeout=90_000)
    _no_streamlit_exception(page)


def test_upload_a_photo_and_see_the_grid(app_url: str, page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{app_url}/Explore")
    page.get_by_text("Models (rows)").wait_for(timeout=90_000)
    page.get_by_text("upload", exact=True).click()
    page.locator("input[type=file]").set_input_files(str(_photo(tmp_path)))
    page.get_by_text("astronaut.jpg (512x512)").wait_for(timeout=60_000)  # the caption under the preview
    page.screenshot(path=str(ARTIFACTS / "explore-uploaded.png"))
    page.get_by_role("button", name="Explain").click()
    page.get_by_text("astronaut.jpg — 2 models x 8 methods").wait_for(timeout=120_000)
    page.get_by_text("Download the grid (PNG)").wait_for()
    _no_streamlit_exception(page)
    images = page.locator("[data-testid='stImage'] img")
    assert images.count() >= 2 * 9, images.count()  # input + 8 methods per model (+ Captum beside ours)
    with page.expect_download(timeout=60_000) as download:  # the file is built when the button is clicked
        page.get_by_text("Download the grid (PNG)").click()
    assert Path(download.value.path()).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    with page.expect_download(timeout=60_000) as download:
        page.get_by_text("Download the raw maps (NPY, ZIP)").click()
    assert Path(download.value.path()).read_bytes().startswith(b"PK")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    images.last.scroll_into_view_if_needed()  # the page scrolls inside Streamlit's container: bring the grid into view
    page.screenshot(path=str(ARTIFACTS / "explore-grid.png"))


def test_train_a_tiny_run_and_find_it_among_the_models(app_url: str, page, folders: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{app_url}/Train")
    page.get_by_text("Start training").wait_for(timeout=90_000)
    page.get_by_label("Run name").fill("browser-tiny")
    page.get_by_label("Epochs").fill("1")
    page.get_by_label("Training images (0 = all)").fill("256")
    page.get_by_label("Training images (0 = all)").press("Tab")
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Started browser-tiny").wait_for(timeout=30_000)
    page.get_by_text("✅ finished").wait_for(timeout=240_000)
    _no_streamlit_exception(page)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "train-finished.png"), full_page=True)
    assert (folders["runs"] / "browser-tiny" / "model.safetensors").is_file()

    page.goto(f"{app_url}/Models")
    page.get_by_text("Upload a checkpoint").wait_for(timeout=90_000)
    picker = page.locator("[data-testid='stMultiSelect'] input").first  # the table is drawn on a canvas: use the picker
    picker.click()
    picker.fill("browser-tiny")
    page.get_by_text(re.compile(r"^browser-tiny \(run: resnet18")).first.wait_for(timeout=30_000)
    _no_streamlit_exception(page)
