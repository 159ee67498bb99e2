"""Explore: one image, several models, several methods — a grid (rows = models, columns = methods), with Captum's
result beside ours where Captum has the method."""

from __future__ import annotations

import streamlit as st

from appkit.images import crisp
from appkit.models import compared_model, zoo
from appkit.widgets import drop_missing_choices, param_widgets, readable_errors
from interpgrad.comparison import compare, score_comparison
from interpgrad.data import load_image
from interpgrad.errors import InterpgradError
from interpgrad.explain import methods as method_registry
from interpgrad.metrics import metrics as metric_registry
from interpgrad.metrics.scores import EXPLORE_METRICS
from interpgrad.reference import has_reference
from interpgrad.samples import sample_images

st.set_page_config(page_title="interpgrad · Explore", layout="wide")
st.title("Explore")
st.caption("Pick an image, two or more models and several methods: every map is computed for every model.")

DEFAULT_METHODS = ["gradient", "guided_backprop", "smoothgrad", "gradcam", "gradcam++", "scorecam", "layercam", "guided_gradcam"]
UPLOAD_TYPES = ["png", "jpg", "jpeg", "tif", "tiff", "bmp", "webp"]
REGISTRY = method_registry()

entries = {entry.key: entry for entry in zoo()}
drop_missing_choices("explore.models", list(entries))

# --- the image ----------------------------------------------------------------------------------------------------
# Choices persist across pages (persist_state); an uploaded file does not, so the decoded image has its own key.
samples = {sample.name: sample for sample in sample_images()}
left, right = st.columns([3, 2])
with left:
    source = st.radio("Image", ["bundled sample", "upload"], horizontal=True, key="explore.source", persist_state="session")
    if source == "upload":
        upload = st.file_uploader("An image (PNG, JPEG, TIFF, BMP, WebP; any size, 8/16-bit, grayscale or RGBA)",
                                  type=UPLOAD_TYPES, key="explore.upload")
        if upload is not None and st.session_state.get("explore.upload_id") != upload.file_id:
            st.session_state["explore.upload_id"] = upload.file_id
            st.session_state.pop("explore.uploaded", None)
            try:
                st.session_state["explore.uploaded"] = (upload.name, load_image(upload.getvalue()), None, None)
                st.session_state.pop("explore.upload_error", None)
            except InterpgradError as error:
                st.session_state["explore.upload_error"] = f"{upload.name} cannot be used: {error}"
        if upload is None:
            st.session_state.pop("explore.upload_error", None)
        if "explore.upload_error" in st.session_state:
            st.error(st.session_state["explore.upload_error"])
        chosen = st.session_state.get("explore.uploaded")
    else:
        name = st.selectbox("Sample", list(samples), key="explore.sample", persist_state="session")
        sample = samples[name]
        chosen = (sample.name, sample.image, sample.mask, sample.label)
with right:
    if chosen is not None:
        image_name, image, mask, label = chosen
        pictures, captions = [image], [f"{image_name} ({image.shape[1]}x{image.shape[0]})"]
        if mask is not None:
            pictures.append((mask * 255).astype("uint8"))
            captions.append(f"ground truth: {label}")
        st.image([crisp(picture, 160) for picture in pictures], caption=captions, width=160)

# --- models, methods, target ----------------------------------------------------------------------------------------
if len(entries) == 0:
    st.warning("No models available: train one on the Train page or upload one on the Models page.")
    st.stop()
default_models = [key for key in entries if key.startswith("shipped/")][:2] or list(entries)[:2]
model_keys = st.multiselect("Models (rows)", list(entries), default=default_models, key="explore.models", persist_state="session",
                            format_func=lambda key: entries[key].label)
method_names = st.multiselect("Methods (columns)", list(REGISTRY), default=[m for m in DEFAULT_METHODS if m in REGISTRY],
                              key="explore.methods", persist_state="session", format_func=lambda name: f"{name} ({REGISTRY[name].family})")
options = st.columns(4)
with_captum = options[0].toggle("Captum beside ours", value=True, key="explore.captum", persist_state="session",
                                help="Captum's result for " + ", ".join(m for m in REGISTRY if has_reference(m)))
target_mode = options[1].radio("Target class", ["predicted", "choose"], horizontal=True, key="explore.target_mode", persist_state="session")
targets: dict[str, int] = {}
if target_mode == "choose":
    for key in model_keys:
        names = entries[key].class_names
        default = names.index(chosen[3]) if chosen and chosen[3] in names else 0
        picked = options[1].selectbox(f"class for {entries[key].short_label}", names, index=default, key=f"explore.target.{key}",
                                      persist_state="session")
        targets[key] = names.index(picked)  # compare() keys targets by the zoo key (unique), not by the name

with st.expander("Method parameters"):
    params = {}
    for name in method_names:
        if REGISTRY[name].params:
            st.markdown(f"**{name}** — {REGISTRY[name].description}")
            params[name] = param_widgets(REGISTRY[name].params, f"explore.param.{name}", columns=3)

run = st.button("Explain", type="primary", key="explore.run",
                disabled=chosen is None or len(model_keys) == 0 or len(method_names) == 0)
if chosen is None:
    st.info("Choose or upload an image.")
if run and chosen is not None:
    bar = st.progress(0.0, text="explaining...")
    with readable_errors("The grid could not be computed"):
        compared = [compared_model(entries[key]) for key in model_keys]
        result = compare(compared, chosen[1], method_names, params=params, targets=targets, with_captum=with_captum,
                         progress=lambda fraction, message: bar.progress(fraction, text=message))
        st.session_state["explore.result"] = (chosen[0], result)
        st.session_state["explore.input"] = (chosen[1], chosen[2])  # the image and its mask, for the scores
        st.session_state.pop("explore.scores", None)  # scores belong to one grid: a new grid drops them
    bar.empty()

# --- the grid -----------------------------------------------------------------------------------------------------
METRICS = metric_registry()


def _grid_scores(result, entries) -> dict | None:  # type: ignore[no-untyped-def]
    """The per-image scores of every map of ``result``, computed the first time they are shown and kept with it."""
    stored = st.session_state.get("explore.scores")
    if stored is not None and stored[0] is result:
        return stored[1]
    image, mask = st.session_state.get("explore.input", (None, None))
    if image is None:
        return None
    with st.spinner("scoring every map (insertion, deletion" + (", energy pointing game)..." if mask is not None else ")...")):
        with readable_errors("The scores could not be computed"):
            models = [compared_model(entries[row.key]) for row in result.rows if row.key in entries]
            scores = score_comparison(models, image, result, mask=mask)
            st.session_state["explore.scores"] = (result, scores)
            return scores
    return None


def _score_text(values: dict[str, float]) -> str:
    """One line per score: name, arrow (which way is better), value."""
    return "  \n".join(f"{name.replace('_', ' ')} {METRICS[name].arrow} {value:.2f}" for name, value in values.items())


stored = st.session_state.get("explore.result")
if stored is not None:
    image_name, result = stored
    st.subheader(f"{image_name} — {len(result.rows)} models x {len(result.methods)} methods in {result.seconds:.2f} s")
    display = st.columns(4)
    cmap = display[0].selectbox("Colormap", ["jet", "inferno", "viridis", "magma", "gray", "RdBu_r", "coolwarm"],
                                key="explore.cmap", persist_state="session")
    alpha = display[1].slider("Opacity", 0.0, 1.0, 0.5, 0.05, key="explore.alpha", persist_state="session")
    signed = display[2].toggle("Signed (diverging)", value=False, key="explore.signed", persist_state="session",
                               help="keep the sign of the maps (blue negative, red positive) instead of magnitudes")
    percentile = display[3].slider("Clip at percentile", 90.0, 100.0, 99.5, 0.5, key="explore.percentile", persist_state="session")
    colormap = None if signed and cmap in ("jet", "inferno", "viridis", "magma", "gray") else cmap
    scores = _grid_scores(result, entries) if st.toggle(
        "Scores under the maps", key="explore.show_scores", persist_state="session",
        help="insertion and deletion AUC of every map and, when the image has a ground-truth mask (the shapes "
             "samples), the energy pointing game; computed once per grid, when first shown") else None
    st.caption("Each column: our map, and Captum's below it where Captum has the method.")
    for row in result.rows:
        st.markdown(f"**{entries[row.key].label if row.key in entries else row.name}** — target: {row.target_name} · top: "
                    + ", ".join(f"{name} {p:.1%}" for name, p in row.top[:3]))
        slots = st.columns(len(result.methods) + 1)
        slots[0].image(crisp(row.image), caption="input", width="stretch")
        for slot, method in zip(slots[1:], result.methods):
            for cell in (cell for cell in row.cells if cell.method == method):
                who = method if cell.source == "ours" else "Captum"
                if cell.explanation is None:
                    slot.warning(f"{who}: {cell.error}")
                else:
                    slot.image(crisp(result.panel(row, cell, colormap, alpha, signed, percentile)), width="stretch",
                               caption=f"{who} · {cell.seconds * 1000:.0f} ms")
                    if scores is not None and (row.key, cell.column) in scores:
                        slot.caption(_score_text(scores[(row.key, cell.column)]))
    if scores is not None:
        with st.expander("How the scores are measured"):
            measured = {name for values in scores.values() for name in values}
            st.markdown("\n".join(f"- **{name} {METRICS[name].arrow}** ({METRICS[name].direction} is better): "
                                   f"{METRICS[name].describe()}" for name in EXPLORE_METRICS if name in measured))
            if "energy_pointing_game" not in measured:
                st.caption("The energy pointing game needs a ground-truth mask: the bundled shapes samples have one.")
    # The files are built when a button is clicked (not on every rerun of the page, e.g. each opacity change), and
    # a download does not rerun the page (a rerun while the other button is clicked would swallow that click).
    downloads = st.columns(2)
    downloads[0].download_button(
        "Download the grid (PNG)", file_name="interpgrad-grid.png", mime="image/png", key="explore.download.png", on_click="ignore",
        data=lambda: result.png_bytes(cmap=colormap, alpha=alpha, signed=signed, percentile=percentile),
    )
    downloads[1].download_button("Download the raw maps (NPY, ZIP)", data=result.zip_bytes, file_name="interpgrad-maps.zip",
                                 mime="application/zip", key="explore.download.zip", on_click="ignore")
