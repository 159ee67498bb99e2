"""The Gradient lab page in a real browser (`streamlit run`, Chromium through Playwright, as test_browser.py): it opens
from the navigation, every section shows (the tiny network's tables, the arbitrary gradients' maps, the fooled model,
the class samples, the GAN-test with the paper's reference row, the density and pixel-perturbation charts), widgets
work, and nothing fails. Its own server, on a checkpoints folder with the shipped models and tiny lab models whose
results are already in the lab's disk cache (computed here with few steps and images, the settings the test then
types in). Screenshots go to test-artifacts/browser/."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
import torch

from test_browser import (ARTIFACTS, ROOT, _full_screenshot, _no_streamlit_exception, _settle, browser, page,  # noqa: F401
                          serve_app)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STEPS, IMAGES = 20, 16  # what the cache holds for the tiny models, typed into the page


def _fill_the_cache(checkpoints: Path) -> None:
    """Tiny lab models (test_app_lab.lab_checkpoints) and their results in the lab cache: samples of STEPS steps,
    the GAN-test by the tiny judge, density profiles and pixel-perturbation curves on IMAGES images."""
    import appkit.lab as lab
    from interpgrad.lab import (cached_class_samples, cached_density_profile, cached_gan_test, cached_perturbation,
                                lab_images, load_lab_model)
    from test_app_lab import LAB_REGULARIZERS, lab_checkpoints

    made = lab_checkpoints(checkpoints)
    generators = [load_lab_model(made[f"tiny-softplus-{name.replace('_', '-')}"]) for name in LAB_REGULARIZERS]
    judge = load_lab_model(made["tiny-mobilenetv2-judge"])
    settings = {**lab.SAMPLING, "steps": STEPS}
    data = lab_images("shapes", IMAGES, lab.DATA["split"], generators[0].image_size)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for model in generators:
            cached_class_samples(model, list(range(10)), keep=lab.KEEP, **settings)
            cached_gan_test(model, judge, list(range(10)), resamples=lab.RESAMPLES, **settings)
            cached_density_profile(model, data, **lab.DENSITY)
            for judged_by in (model, generators[0]):  # its own curve; the baseline judging its maps
                cached_perturbation(judged_by, data, saliency_model=model, fractions=lab.perturbation_fractions(),
                                    constant=lab.PERTURBATION["constant"], seed=lab.PERTURBATION["seed"])
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = tmp_path_factory.mktemp("browser-lab")
    checkpoints = base / "checkpoints"
    checkpoints.mkdir()
    for name in ("shapes-resnet18-baseline", "shapes-resnet18-guided"):
        (checkpoints / name).symlink_to(ROOT / "checkpoints" / name, target_is_directory=True)
    _fill_the_cache(checkpoints)
    env = {"INTERPGRAD_CHECKPOINTS": str(checkpoints), "INTERPGRAD_RUNS": str(base / "runs"),
           "INTERPGRAD_UPLOADS": str(base / "uploads"), "INTERPGRAD_EVALUATIONS": str(base / "evaluations"),
           "OMP_NUM_THREADS": "1"}
    with serve_app(env, base / "streamlit.log") as url:
        yield url


def _type_number(page, label: str, value: int) -> None:  # type: ignore[no-untyped-def]
    field = page.get_by_label(label, exact=True)
    field.fill(str(value))
    field.press("Enter")
    _settle(page)


def _section_shot(page, heading: str, name: str) -> None:  # type: ignore[no-untyped-def]
    """A viewport's screenshot from ``heading`` (a heading, else any text) down."""
    target = page.get_by_role("heading", name=heading)
    target = target if target.count() else page.get_by_text(heading)
    target.first.evaluate("element => element.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(800)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))


def test_the_lab_page_opens_from_the_navigation_and_shows_every_section(app_url: str, page) -> None:  # type: ignore[no-untyped-def]
    page.goto(app_url)
    nav = page.locator("[data-testid='stSidebarNav']")
    nav.get_by_text("Gradient lab").wait_for(timeout=90_000)
    nav.get_by_text("Gradient lab").click()
    page.get_by_role("heading", name="Gradient lab", exact=True).wait_for(timeout=90_000)
    _settle(page)
    _no_streamlit_exception(page)
    assert page.title() == "interpgrad · Gradient lab"
    for heading in ("1. Standard vs guided backward", "2. Gradients are arbitrary", "3. The generative view",
                    "4. Density ratio and pixel perturbation"):
        assert page.get_by_role("heading", name=heading).first.is_visible(), heading
    assert page.locator(".katex").count() >= 6  # every section's formula, typeset
    assert page.get_by_text("The tables' arithmetic and the engine agree").first.is_visible()
    assert page.get_by_text("A model fine-tuned to fool its gradients").first.is_visible()

    # the lab's results as the cache holds them: samples of STEPS steps, curves on IMAGES images
    page.get_by_text("Sampler settings").first.click()
    _type_number(page, "steps", STEPS)
    page.get_by_text("Measurement settings").first.click()
    _type_number(page, f"images (the first N of the val split of shapes)", IMAGES)
    page.get_by_text(f"Samples at step {STEPS} of {STEPS}").wait_for(timeout=60_000)
    _no_streamlit_exception(page)
    # tables: the tiny network's 3, the probabilities, the GAN-test (a canvas: its text is in the screenshots)
    assert page.locator("[data-testid='stDataFrame']").count() >= 5
    assert page.locator("[data-testid='stPlotlyChart']").count() == 4
    assert page.get_by_text("not computed yet").count() == 0
    assert page.get_by_text("No density-ratio profile yet").count() == 0
    _full_screenshot(page, "lab-page.png")
    _section_shot(page, "1. Standard vs guided backward", "lab-1-backward.png")
    _section_shot(page, "2. Gradients are arbitrary", "lab-2-arbitrary.png")
    _section_shot(page, "3. The generative view", "lab-3-samples.png")
    _section_shot(page, "GAN-test: do the samples look like their class to another model?", "lab-3-gan-test.png")
    _section_shot(page, "4. Density ratio and pixel perturbation", "lab-4-density.png")
    _section_shot(page, "Pixel perturbation: are the gradients faithful to the model?", "lab-4-perturbation.png")

    # the trajectory of one class: a picture per kept step and model
    page.get_by_text("The whole trajectory of one class").first.click()
    page.get_by_text("step 10", exact=True).first.wait_for(timeout=30_000)
    _section_shot(page, "The whole trajectory of one class", "lab-3-trajectory.png")

    # a widget: the pattern becomes a shape, the maps are redrawn, the probabilities still agree
    page.get_by_text("a shape", exact=True).click()
    _settle(page)
    page.get_by_text("∇ (f_").first.wait_for(timeout=60_000)
    _no_streamlit_exception(page)
    _section_shot(page, "2. Gradients are arbitrary", "lab-2-arbitrary-shape.png")
