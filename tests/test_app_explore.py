"""The Explore page through AppTest, as a user meets it: a removed upload is forgotten, a grid of another image is
marked, signed maps use the diverging colormap chosen, an all-zero map says so, counts have plurals, a disabled
Explain says why, upload messages say what is wrong; the grid has headers with the methods' formulas and colour
scales, Captum's maps on a row of their own with their correlation to ours, predictions with cos(standard, guided),
out-of-domain and resize notes, a shared scale, the mask's outline and the A - B rows, drawn exactly as the library
draws them."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from interpgrad import ModelConfig, build_model, save_checkpoint
from interpgrad.comparison import ALIGNMENT_HELP, method_help
from interpgrad.viz import DIVERGING_CMAPS, SEQUENTIAL_CMAPS, DisplayOptions, colorize
from test_app import _no_exception, _page as _open, isolated_folders  # noqa: F401 (the folders, autouse)

SHIPPED = ["shipped/shapes-resnet18-baseline", "shipped/shapes-resnet18-guided"]
PANEL = 192  # the page's panel size


@pytest.fixture()
def media(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """The bytes of every file the page hands to Streamlit (images), by the id in its URL."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    files: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def recording(self, path_or_data, mimetype, kind, filename=None):  # type: ignore[no-untyped-def]
        file_id = original(self, path_or_data, mimetype, kind, filename)
        files[file_id] = path_or_data
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", recording)
    return files


def _page() -> AppTest:
    """The Explore page after its first run, which raised nothing."""
    at = _open("pages/2_Explore.py")
    _no_exception(at)
    return at


def _explain(at: AppTest, methods: list[str], captum: bool = False, models: list[str] | None = None) -> AppTest:
    at.multiselect(key="explore.methods").set_value(methods)
    at.multiselect(key="explore.models").set_value(models or SHIPPED)
    at.toggle(key="explore.captum").set_value(captum)
    at.run()
    at.button(key="explore.run").click()
    at.run()
    _no_exception(at)
    return at


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _upload(at: AppTest, name: str, content: bytes) -> AppTest:
    if at.radio(key="explore.source").value != "upload":
        at.radio(key="explore.source").set_value("upload")
        at.run()
    at.get("file_uploader")[0].set_value((name, content, "image/png"))
    at.run()
    _no_exception(at)
    return at


def _pictures(at: AppTest, media: dict[str, bytes]) -> list[tuple[str, np.ndarray]]:
    """Every picture of the page with its caption, in the page's order, decoded from what was sent."""
    found = []
    for element in at.get("image"):
        for picture in element.proto.imgs:
            data = media[picture.url.rsplit("/", 1)[1].split(".")[0]]
            found.append((picture.caption, np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))))
    return found


def _captions(at: AppTest) -> list[str]:
    return [caption for element in at.get("image") for caption in element.captions]


def _texts(at: AppTest) -> str:
    return "\n".join([*(m.value for m in at.markdown), *(c.value for c in at.caption), *(i.value for i in at.info),
                      *(w.value for w in at.warning), *(e.value for e in at.error), *_captions(at)])


def test_removing_the_upload_forgets_it_but_leaving_the_uploader_does_not() -> None:
    at = _upload(_page(), "red.png", _png(np.full((40, 50, 3), (200, 30, 30), np.uint8)))
    assert "red.png (50x40)" in _captions(at)
    assert not at.button(key="explore.run").disabled
    at.radio(key="explore.source").set_value("bundled sample").run()  # the uploader is not drawn: its file is dropped
    at.radio(key="explore.source").set_value("upload").run()
    _no_exception(at)
    assert "red.png (50x40)" in _captions(at) and "uploaded earlier" in _texts(at)  # ... but the image is kept
    _upload(at, "blue.png", _png(np.full((30, 30, 3), (30, 30, 200), np.uint8)))
    assert "blue.png (30x30)" in _captions(at) and "red.png (50x40)" not in _captions(at)
    at.get("file_uploader")[0].set_value(None)  # the x on the file's chip
    at.run()
    _no_exception(at)
    assert not any("blue.png" in caption for caption in _captions(at)), _captions(at)
    assert at.button(key="explore.run").disabled
    assert any("Explain needs an image" in info.value for info in at.info), [i.value for i in at.info]
    assert "explore.uploaded" not in at.session_state


def test_a_grid_of_another_image_is_marked_after_another_sample_and_after_a_failed_upload() -> None:
    at = _explain(_page(), ["gradient"])
    assert not at.warning
    first = at.session_state["explore.result"][1]
    at.selectbox(key="explore.sample").set_value("shapes: square #1").run()
    _no_exception(at)
    stale = [w.value for w in at.warning]
    assert any("of shapes: circle #1, not of the image chosen above (shapes: square #1)" in w for w in stale), stale
    assert at.session_state["explore.result"][1] is first
    assert any("circle" in button.label for button in at.get("download_button"))  # the files say which image
    at.button(key="explore.run").click().run()
    assert not at.warning and at.session_state["explore.result"][0] == "shapes: square #1"
    _upload(at, "broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    assert any("broken.png cannot be used" in e.value for e in at.error)
    stale = [w.value for w in at.warning]
    assert any("are of shapes: square #1; no image is chosen above now" in w for w in stale), stale
    at.radio(key="explore.source").set_value("bundled sample").run()  # back to the square: the grid is current
    assert not at.warning


def test_signed_maps_offer_only_diverging_colormaps_and_are_drawn_with_the_one_chosen(media: dict[str, bytes]) -> None:
    at = _explain(_page(), ["gradient"], models=SHIPPED[:1])
    assert at.selectbox(key="explore.cmap").options == list(SEQUENTIAL_CMAPS)
    at.selectbox(key="explore.cmap").set_value("jet").run()
    at.toggle(key="explore.signed").set_value(True).run()
    _no_exception(at)
    assert at.selectbox(key="explore.cmap_signed").options == list(DIVERGING_CMAPS)
    at.selectbox(key="explore.cmap_signed").set_value("PiYG").run()
    result = at.session_state["explore.result"][1]
    view = result.render(DisplayOptions("PiYG", signed=True), PANEL)
    panel = view.panels[(SHIPPED[0], "gradient")]
    shown = [picture for caption, picture in _pictures(at, media) if caption.startswith(panel.note)]
    assert len(shown) == 1 and np.array_equal(shown[0], panel.image)
    jet = result.render(DisplayOptions("jet", signed=True), PANEL).panels[(SHIPPED[0], "gradient")]
    assert not np.array_equal(shown[0], jet.image)
    low, high = (colorize(torch.tensor([value]), "PiYG", signed=True)[0] for value in (-1.0, 1.0))
    scale = next(h.proto.body for h in at.get("html"))  # the column's colour scale: PiYG from -1 to +1
    assert f"rgb({low[0]},{low[1]},{low[2]})" in scale and f"rgb({high[0]},{high[1]},{high[2]})" in scale
    at.toggle(key="explore.signed").set_value(False).run()  # back to magnitudes: the colormap chosen for them
    assert at.selectbox(key="explore.cmap").value == "jet"


def test_an_all_zero_map_says_so(isolated_folders: dict[str, Path]) -> None:
    """A model whose classifier weights are zero: every gradient is zero, and Grad-CAM's map too."""
    config = ModelConfig("resnet18", num_classes=10, width=0.125)
    model = build_model(config)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.zero_()
    save_checkpoint(isolated_folders["upload"] / "flat", model, config)
    at = _explain(_page(), ["gradient", "gradcam"], models=["upload/flat"])
    captions = [caption for caption in _captions(at) if "ms" in caption]
    assert len(captions) == 2 and all(caption.startswith("all zero") for caption in captions), captions


def test_counts_have_plurals_and_the_caption_asks_for_one_model_or_more() -> None:
    at = _page()
    assert at.caption[0].value.startswith("Pick an image, one or more models and several methods")
    _explain(at, ["gradient"], models=SHIPPED[:1])
    assert at.subheader[0].value.startswith("shapes: circle #1 — 1 model x 1 method in ")
    _explain(at, ["gradient", "gradcam"])
    assert at.subheader[0].value.startswith("shapes: circle #1 — 2 models x 2 methods in ")


def test_a_disabled_explain_button_says_what_is_missing() -> None:
    at = _page()
    assert not at.button(key="explore.run").disabled and not at.info
    at.multiselect(key="explore.models").set_value([]).run()
    assert at.button(key="explore.run").disabled
    assert [i.value for i in at.info] == ["Explain needs a model: choose above."]
    at.multiselect(key="explore.methods").set_value([]).run()
    assert [i.value for i in at.info] == ["Explain needs a model and a method: choose above."]
    at.radio(key="explore.source").set_value("upload").run()
    assert [i.value for i in at.info] == ["Explain needs an image, a model and a method: choose above."]


@pytest.mark.parametrize(
    "content, says, never",
    [
        (b"", "empty.png cannot be used: the image data is empty (0 bytes)", "supported format"),
        (b"these are my notes", "not an image in a supported format (PNG, JPEG, TIFF, BMP, WebP)", "GIF"),
        ("gif", "not an image in a supported format (PNG, JPEG, TIFF, BMP, WebP)", "GIF"),  # readable, not offered
    ],
)
def test_upload_messages_say_what_is_wrong(content, says: str, never: str) -> None:  # type: ignore[no-untyped-def]
    if content == "gif":
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, format="GIF")
        content = buffer.getvalue()
    at = _upload(_page(), "empty.png" if not content else "notes.png", content)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and says in errors[0] and never not in errors[0], errors
    assert at.button(key="explore.run").disabled


def test_the_grid_has_headers_predictions_notes_and_captum_on_a_row_of_its_own() -> None:
    at = _page()
    at.selectbox(key="explore.sample").set_value("photo: astronaut")
    _explain(at, ["gradient", "gradcam", "layercam"], captum=True)
    headers = {m.value.replace(chr(0x200B), ""): m.proto.help for m in at.markdown
               if m.value.startswith("**") and m.value.endswith("**")}
    for method in ("gradient", "gradcam", "layercam"):
        assert headers[f"**{method}**"] == method_help(method)
    assert "alpha_k = (1/hw) sum_ij g^k_ij" in headers["**gradcam**"]  # the formula, from the registry
    rows = [m for m in at.markdown if "cos(standard, guided)" in m.value]
    assert len(rows) == 2 and all(m.proto.help == ALIGNMENT_HELP and "target: " in m.value for m in rows)
    domain = [c.value for c in at.caption if "out of domain" in c.value]
    assert len(domain) == 2 and "trained on shapes images" in domain[0]
    assert sum("512x512 downscaled to 32x32" in caption for caption in _captions(at)) == 2
    # Captum has gradient and Grad-CAM, not Layer-CAM: per model a row of its own under ours, aligned by column.
    captum = [c for c in _captions(at) if "Pearson" in c]
    assert len(captum) == 4 and all("Pearson r 1.0000 with ours" in c for c in captum), captum
    captum_rows = [block for block in at.get("flex_container") if block.children and any(
        "Captum's result below ours" in c.value for c in block.children[0].get("caption"))]
    assert len(captum_rows) == 2
    for block in captum_rows:  # input, gradient, gradcam, layercam, and an empty column (a few methods only)
        assert [len(column.get("image")) for column in block.children.values()] == [0, 1, 1, 0, 0]

    at.selectbox(key="explore.sample").set_value("shapes: circle #1").run()
    at.button(key="explore.run").click().run()
    assert not any("out of domain" in c.value for c in at.caption)
    assert sum("32x32, not resized" in caption for caption in _captions(at)) == 2


def test_a_tiny_upload_says_how_it_was_resized() -> None:
    at = _upload(_page(), "dot.png", _png(np.full((1, 1, 3), 128, np.uint8)))
    _explain(at, ["gradient"], models=SHIPPED[:1])
    assert any("1x1 upscaled to 32x32" in caption for caption in _captions(at)), _captions(at)
    assert any("out of domain" in c.value for c in at.caption)


def test_shared_scale_outline_and_a_minus_b_rows_are_drawn_as_the_library_draws_them(media: dict[str, bytes]) -> None:
    at = _explain(_page(), ["gradient", "gradcam"])
    assert any(m.value.startswith("**A - B: shapes-resnet18-baseline (shipped) - shapes-resnet18-guided")
               for m in at.markdown)
    at.radio(key="explore.scale").set_value("column")
    at.toggle(key="explore.outline").set_value(True)
    at.selectbox(key="explore.reference").set_value(SHIPPED[1])
    at.run()
    _no_exception(at)
    result = at.session_state["explore.result"][1]
    view = result.render(DisplayOptions(scale="column", outline=True), PANEL, reference=SHIPPED[1])
    pictures = _pictures(at, media)
    for key in SHIPPED:
        note = view.panels[(key, "gradient")].note
        assert note == ""  # one scale for the column: given by the colour scale, not per map
    shown = [picture for caption, picture in pictures if caption.endswith(" ms")]
    expected = [view.panels[(key, method)].image for key in SHIPPED for method in ("gradient", "gradcam")]
    assert len(shown) == 4 and all(np.array_equal(a, b) for a, b in zip(shown, expected))
    assert view.column_scales["gradient"] > 0
    scales = [h.proto.body for h in at.get("html")]
    assert any(f">{view.scale_labels('gradient')[2]}<" in body for body in scales)
    assert any(m.value.startswith("**A - B: shapes-resnet18-guided (shipped) - shapes-resnet18-baseline")
               for m in at.markdown)
    difference = view.differences[0].panels["gradient"]
    assert any(np.array_equal(picture, difference.image) for caption, picture in pictures if caption == difference.note)
    inputs = [picture for caption, picture in pictures if caption == "input · target: circle · 32x32, not resized"]
    assert len(inputs) == 2 and all(np.array_equal(picture, view.inputs[key]) for picture, key in zip(inputs, SHIPPED))
    mask = np.kron(result.mask_view(result.rows[0]), np.ones((6, 6), dtype=bool))  # 32 px enlarged 6 times
    assert (inputs[0][mask & ~np.roll(mask, 2, axis=1)] == 255).all()  # the white line just inside, on the left
    assert (inputs[0][~mask & np.roll(mask, -2, axis=1)] == 0).all()  # the black line just outside


def test_convex_hull_regions_are_drawn_as_the_library_draws_them(media: dict[str, bytes]) -> None:
    at = _explain(_page(), ["gradient", "gradcam"], models=SHIPPED[:1])
    assert at.slider(key="explore.region_q").disabled  # only while the regions are drawn
    at.toggle(key="explore.regions").set_value(True)
    at.run()
    at.slider(key="explore.region_q").set_value(20.0)
    at.run()
    _no_exception(at)
    result = at.session_state["explore.result"][1]
    view = result.render(DisplayOptions(regions=True, region_q=20.0), PANEL)
    expected = [view.panels[(SHIPPED[0], method)] for method in ("gradient", "gradcam")]
    assert all("regions" in panel.note or "1 region," in panel.note for panel in expected)
    shown = [picture for caption, picture in _pictures(at, media) if caption.endswith(" ms")]
    assert len(shown) == 2 and all(np.array_equal(a, panel.image) for a, panel in zip(shown, expected))
    assert any(expected[0].note in caption for caption in _captions(at)), _captions(at)
