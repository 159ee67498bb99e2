"""The real app in a real browser: Streamlit serving app.py on a free local port, Playwright driving the system Chromium.

Screenshots are kept in test-artifacts/browser/. A missing Chromium or Playwright fails these tests (it does not skip
them): `make test` installs Chromium when it runs as root.
"""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def serve_app(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """The app served by `streamlit run` as a user starts it, ``env`` added to the environment (folders, threads);
    yields its URL once healthy, and stops the server afterwards. The server's output goes to ``log_path``."""
    port = _free_port()
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.address",
             "127.0.0.1", "--server.port", str(port)],
            cwd=ROOT, env={**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", **env}, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, server, log_path)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("browser")
    return {"runs": base / "runs", "uploads": base / "uploads", "evaluations": base / "evaluations",
            "log": base / "streamlit.log"}


@pytest.fixture(scope="module")
def app_url(folders: dict[str, Path]) -> Iterator[str]:
    """The app, served by `streamlit run` as a user starts it, with runs, uploads and evaluations in temporary
    folders."""
    env = {"INTERPGRAD_RUNS": str(folders["runs"]), "INTERPGRAD_UPLOADS": str(folders["uploads"]),
           "INTERPGRAD_EVALUATIONS": str(folders["evaluations"])}
    try:
        with serve_app(env, folders["log"]) as url:
            yield url
    finally:
        # Training runs and evaluations the pages launched are separate processes (closing the browser must not kill
        # them): stop them.
        for status in [*folders["runs"].glob("*/status.json"), *folders["evaluations"].glob("*/status.json")]:
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


def _full_screenshot(page, name: str) -> Path:  # type: ignore[no-untyped-def]
    """The whole page as a user would scroll through it: Streamlit scrolls inside its own container, so the viewport
    is made as tall as that container's content for the shot."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    viewport = page.viewport_size
    height = page.evaluate("() => document.querySelector(\"[data-testid='stMain']\")?.scrollHeight ?? 0")
    page.set_viewport_size({"width": viewport["width"], "height": max(viewport["height"], int(height) + 40)})
    page.wait_for_timeout(1500)  # charts re-layout to the new size
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(viewport)
    return path


def _no_streamlit_exception(page) -> None:  # type: ignore[no-untyped-def]
    exceptions = page.locator("[data-testid='stException']")
    assert exceptions.count() == 0, exceptions.first.inner_text()


def _settle(page) -> None:  # type: ignore[no-untyped-def]
    """Wait until the rerun a click started has finished (until then old and new elements can both be there)."""
    page.wait_for_timeout(300)
    page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(timeout=120_000)


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
    page.get_by_role("button", name=re.compile("^Download the grid \\(PNG\\)")).wait_for()
    _no_streamlit_exception(page)
    images = page.locator("[data-testid='stImage'] img")
    assert images.count() >= 2 * 9, images.count()  # input + 8 methods per model (+ Captum beside ours)
    with page.expect_download(timeout=60_000) as download:  # the file is built when the button is clicked
        page.get_by_role("button", name=re.compile("^Download the grid \\(PNG\\)")).click()
    assert Path(download.value.path()).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name=re.compile("^Download the raw maps \\(NPY, ZIP\\)")).click()
    assert Path(download.value.path()).read_bytes().startswith(b"PK")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    images.last.scroll_into_view_if_needed()  # the page scrolls inside Streamlit's container: bring the grid into view
    page.screenshot(path=str(ARTIFACTS / "explore-grid.png"))


def test_explore_grid_with_headers_scales_outline_and_a_minus_b(  # type: ignore[no-untyped-def]
    app_url: str, page
) -> None:
    """The default grid on a shapes sample, then signed maps on a shared scale with the mask's outline: the headers,
    colour scales, predictions with cos(standard, guided), Captum's rows with their correlation, the A - B row, and
    the downloaded PNG (kept for looking at)."""
    page.goto(f"{app_url}/Explore")
    page.get_by_text("Models (rows)").wait_for(timeout=90_000)
    page.get_by_role("button", name="Explain").click()
    page.get_by_text("shapes: circle #1 — 2 models x 8 methods").wait_for(timeout=120_000)
    page.get_by_text("A - B: shapes-resnet18-baseline (shipped) - shapes-resnet18-guided (shipped)").wait_for()
    _no_streamlit_exception(page)
    assert page.get_by_text("cos(standard, guided)").count() == 2
    assert page.get_by_text(re.compile(r"Pearson r 1\.0000 with ours")).count() == 10  # 5 methods x 2 models
    assert page.get_by_text("out of domain").count() == 0  # a shapes sample, models trained on shapes
    _full_screenshot(page, "explore-grid-default.png")
    for option in ("shared per column", "Mask outline", "Signed"):
        page.get_by_text(option, exact=True).click()
        _settle(page)
    page.get_by_text("Colormap (diverging)").wait_for(timeout=30_000)
    _no_streamlit_exception(page)
    headers = page.locator("[data-testid='stMarkdownContainer'] strong", has_text=re.compile(r"^gradcam$"))
    assert headers.count() == 1
    # Each model's maps and Captum's row below them start at the same height in every column.
    tops = page.evaluate("""() => [...document.querySelectorAll("[data-testid='stHorizontalBlock']")]
        .filter(block => block.querySelectorAll("[data-testid='stImage']").length >= 5)
        .map(block => [...block.querySelectorAll("[data-testid='stImage'] img")]
            .map(img => Math.round(img.getBoundingClientRect().top)))""")
    assert len(tops) == 5 and all(len(set(row)) == 1 for row in tops), tops  # 2 x (ours, Captum's), A - B
    _full_screenshot(page, "explore-grid-signed-shared-outline.png")
    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name=re.compile("^Download the grid \\(PNG\\)")).click()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    saved = ARTIFACTS / "explore-grid-download.png"
    download.value.save_as(str(saved))
    from PIL import Image

    with Image.open(saved) as picture:
        assert picture.width > 9 * 160 and picture.height > 3 * 160


def test_explore_forgets_a_removed_upload_and_marks_the_old_grid(  # type: ignore[no-untyped-def]
    app_url: str, page, tmp_path: Path
) -> None:
    page.goto(f"{app_url}/Explore")
    page.get_by_text("Models (rows)").wait_for(timeout=90_000)
    page.get_by_role("button", name="Remove gradient (gradient)").wait_for()
    for method in ("smoothgrad (gradient)", "scorecam (cam)", "gradcam++ (cam)", "layercam (cam)",
                   "guided_gradcam (cam)", "guided_backprop (gradient)"):
        page.locator(f"button[aria-label='Remove {method}']:visible").click()
        _settle(page)
    page.get_by_role("button", name="Explain").click()
    page.get_by_text("shapes: circle #1 — 2 models x 2 methods").wait_for(timeout=120_000)
    page.get_by_text("upload", exact=True).click()
    page.locator("input[type=file]").set_input_files(str(_photo(tmp_path)))
    page.get_by_text("astronaut.jpg (512x512)").wait_for(timeout=60_000)
    page.get_by_text("This grid and its downloads are of shapes: circle #1, not of the image chosen above "
                     "(astronaut.jpg)").wait_for(timeout=30_000)
    page.locator("[data-testid='stFileChipDeleteBtn'] button").click()
    page.get_by_text("Explain needs an image: upload one or pick a bundled sample.").wait_for(timeout=30_000)
    page.get_by_text("astronaut.jpg (512x512)").wait_for(state="detached", timeout=30_000)  # at the end of the rerun
    assert page.get_by_role("button", name="Explain").is_disabled()
    page.get_by_text("are of shapes: circle #1; no image is chosen above now").wait_for()
    _no_streamlit_exception(page)
    _full_screenshot(page, "explore-upload-removed.png")


def test_train_a_tiny_run_and_find_it_among_the_models(app_url: str, page, folders: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{app_url}/Train")
    page.get_by_text("Start training").wait_for(timeout=90_000)
    page.get_by_label("Run name").fill("browser-tiny")
    page.get_by_label("Epochs", exact=True).fill("1")
    page.get_by_label("Training images (0 = all)").fill("256")
    page.get_by_label("Training images (0 = all)").press("Tab")
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Started browser-tiny").wait_for(timeout=30_000)
    page.get_by_text("check_circle finished").wait_for(timeout=240_000)
    _no_streamlit_exception(page)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "train-finished.png"), full_page=True)
    assert (folders["runs"] / "browser-tiny" / "model.safetensors").is_file()

    page.goto(f"{app_url}/Models")
    page.get_by_text("Upload a checkpoint").wait_for(timeout=90_000)
    _settle(page)  # the whole page drawn (curves, the zoo comparison): typing into a picker redrawn later is lost
    picker = page.locator("[data-testid='stMultiSelect'] input").first  # the table is drawn on a canvas: use the picker
    picker.click()
    picker.fill("browser-tiny")
    page.get_by_text(re.compile(r"^browser-tiny \(run: resnet18")).first.wait_for(timeout=30_000)
    _no_streamlit_exception(page)


def test_evaluate_two_models_and_read_the_results(  # type: ignore[no-untyped-def]
    app_url: str, page, folders: dict[str, Path]
) -> None:
    """Start a small evaluation from the page (2 shipped models, 2 methods, 3 cheap metrics, 8 images), wait for the
    background process to finish, and find its summary table and charts."""
    page.goto(f"{app_url}/Evaluate")
    page.get_by_text("Evaluations", exact=True).wait_for(timeout=90_000)  # drawn after the form: the page is there
    page.wait_for_timeout(500)
    start = page.get_by_role("button", name="Start evaluation")
    if not start.is_visible():  # collapsed when evaluations are listed (a shipped one)
        page.get_by_text("New evaluation").first.click()
    start.wait_for()
    for method in ("guided_backprop (gradient)", "random (control)", "edge (control)"):
        page.locator(f"button[aria-label='Remove {method}']:visible").click()  # (a hidden copy sits in a template)
        page.wait_for_timeout(300)
    keep = {"insertion ↑", "energy_pointing_game ↑", "sparseness ↑"}
    for pill in page.locator("[data-testid='stButtonGroup'] button[aria-pressed='true']").all_inner_texts():
        if pill.strip() not in keep:
            page.get_by_role("button", name=pill.strip(), exact=True).click()
            page.wait_for_timeout(300)
    images = page.get_by_label("N (images)", exact=True).and_(page.locator("input"))
    images.fill("8")
    images.press("Tab")
    name = page.get_by_label("Evaluation name", exact=True).and_(page.locator("input"))
    name.fill("browser-eval")
    name.press("Tab")
    page.wait_for_timeout(500)
    _full_screenshot(page, "evaluate-new.png")
    start.click()
    page.get_by_text("Started browser-eval").wait_for(timeout=30_000)
    _full_screenshot(page, "evaluate-started.png")  # starting, or already running with its progress
    page.get_by_text("How each metric was measured").wait_for(timeout=240_000)  # opens by itself when it finishes
    _no_streamlit_exception(page)
    assert (folders["evaluations"] / "browser-eval" / "results.json").is_file()
    page.get_by_role("tab", name="Summary").wait_for()
    page.locator("[data-testid='stDataFrame']").first.wait_for()
    page.locator("[data-testid='stPlotlyChart'] .main-svg").first.wait_for(timeout=30_000)
    assert page.get_by_text("browser-eval", exact=True).count() >= 1
    _full_screenshot(page, "evaluate-summary.png")
    for tab, shows in [("Models compared", "(method, metric) pairs"), ("Curves", "— mean over the images"),
                       ("One image", "Scores of image 0")]:
        page.get_by_role("tab", name=tab).click()
        page.get_by_text(shows).first.wait_for(timeout=60_000)
        _no_streamlit_exception(page)
        _full_screenshot(page, f"evaluate-{tab.lower().replace(' ', '-')}.png")
