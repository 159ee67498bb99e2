"""Explore: one image, one or more models, several methods — a grid (rows = models, columns = methods), with Captum's
result under ours where Captum has the method, colour scales, the ground truth's outline and an A - B row per pair
of models."""

from __future__ import annotations

import streamlit as st

from appkit.images import UPLOAD_EXTENSIONS, UPLOAD_FORMATS, colorbar_html, crisp, read_upload
from appkit.models import compared_model, default_models, zoo
from appkit.page import page_setup
from appkit.widgets import drop_missing_choices, param_widgets, readable_errors
from interpgrad.comparison import ALIGNMENT_HELP, compare, image_digest, method_help, score_comparison
from interpgrad.explain import methods as method_registry
from interpgrad.metrics import metrics as metric_registry
from interpgrad.metrics.scores import EXPLORE_METRICS
from interpgrad.reference import has_reference
from interpgrad.samples import Sample, sample_images
from interpgrad.viz import DIVERGING_CMAPS, SEQUENTIAL_CMAPS, DisplayOptions

page_setup("Explore")
st.title("Explore")
st.caption("Pick an image, one or more models and several methods: every map is computed for every model. With two "
           "or more models, an A - B row shows where their maps differ.")

DEFAULT_METHODS = ["gradient", "guided_backprop", "smoothgrad", "gradcam", "gradcam++", "scorecam", "layercam", "guided_gradcam"]
PANEL = 192  # pixels of a panel as drawn (the browser scales it to its column)
MIN_COLUMNS = 6  # the grid is laid out on at least this many columns (input + methods)
REGISTRY = {name: method for name, method in method_registry().items() if not method.requires}  # not "gad" (a GAD run)
NEED_MORE = sorted(name for name, method in method_registry().items() if method.requires)

entries = {entry.key: entry for entry in zoo()}
drop_missing_choices("explore.models", list(entries))
drop_missing_choices("explore.methods", list(REGISTRY))


def _upload_changed() -> None:
    """The file of the uploader changed: decode the new one, or forget the old one when it was removed (its x)."""
    for key in ("explore.uploaded", "explore.upload_error"):
        st.session_state.pop(key, None)
    upload = st.session_state.get("explore.upload")
    if upload is None:
        return
    sample, error = read_upload(upload)
    if sample is None:
        st.session_state["explore.upload_error"] = error
    else:
        st.session_state["explore.uploaded"] = (sample, image_digest(sample.image))


# --- the image ----------------------------------------------------------------------------------------------------
# Choices persist across pages (persist_state); the uploader's file does not (a widget's value is dropped when its
# page is left), so the decoded upload has its own key, changed only when the user changes the file.
samples = {sample.name: sample for sample in sample_images()}
left, right = st.columns([3, 2])
with left:
    source = st.radio("Image", ["bundled sample", "upload"], horizontal=True, key="explore.source", persist_state="session")
    chosen: Sample | None
    if source == "upload":
        upload = st.file_uploader(f"An image ({', '.join(UPLOAD_FORMATS).replace('WEBP', 'WebP')}; any size, 8/16-bit, "
                                  "grayscale or RGBA)", type=UPLOAD_EXTENSIONS,
                                  key="explore.upload", on_change=_upload_changed)
        if "explore.upload_error" in st.session_state:
            st.error(st.session_state["explore.upload_error"])
        chosen, digest = st.session_state.get("explore.uploaded", (None, None))
        if chosen is not None and upload is None:
            st.caption(f"{chosen.name}, uploaded earlier, is still the image; upload another file to replace it.")
    else:
        name = st.selectbox("Sample", list(samples), key="explore.sample", persist_state="session")
        chosen = samples[name]
        digest = image_digest(chosen.image)
with right:
    if chosen is not None:
        pictures, captions = [chosen.image], [f"{chosen.name} ({chosen.image.shape[1]}x{chosen.image.shape[0]})"]
        if chosen.mask is not None:
            pictures.append((chosen.mask * 255).astype("uint8"))
            captions.append(f"ground truth: {chosen.label}")
        st.image([crisp(picture, 160) for picture in pictures], caption=captions, width=160)

# --- models, methods, target ----------------------------------------------------------------------------------------
if len(entries) == 0:
    st.warning("No models available: train one on the Train page or upload one on the Models page.")
    st.stop()
model_keys = st.multiselect("Models (rows)", list(entries), default=default_models(list(entries), entries),
                            key="explore.models", persist_state="session",
                            format_func=lambda key: entries[key].label)
method_names = st.multiselect("Methods (columns)", list(REGISTRY), default=[m for m in DEFAULT_METHODS if m in REGISTRY],
                              key="explore.methods", persist_state="session", format_func=lambda name: f"{name} ({REGISTRY[name].family})")
if NEED_MORE:
    st.caption(f"{', '.join(NEED_MORE)} needs support models trained for a model: see the GAD & regions page.")
options = st.columns(4)
with_captum = options[0].toggle("Captum beside ours", value=True, key="explore.captum", persist_state="session",
                                help="Captum's result for " + ", ".join(m for m in REGISTRY if has_reference(m)))
target_mode = options[1].radio("Target class", ["predicted", "choose"], horizontal=True, key="explore.target_mode", persist_state="session")
targets: dict[str, int] = {}
if target_mode == "choose":
    for key in model_keys:
        names = entries[key].class_names
        default = names.index(chosen.label) if chosen is not None and chosen.label in names else 0
        picked = options[1].selectbox(f"class for {entries[key].short_label}", names, index=default, key=f"explore.target.{key}",
                                      persist_state="session")
        targets[key] = names.index(picked)  # compare() keys targets by the zoo key (unique), not by the name

with st.expander("Method parameters"):
    params = {}
    for name in method_names:
        if REGISTRY[name].params:
            st.markdown(f"**{name}** — {REGISTRY[name].description}")
            params[name] = param_widgets(REGISTRY[name].params, f"explore.param.{name}", columns=3)

needs = (("an image", chosen is not None), ("a model", bool(model_keys)), ("a method", bool(method_names)))
missing = [what for what, given in needs if not given]
run = st.button("Explain", type="primary", key="explore.run", disabled=bool(missing))
if missing:
    needed = missing[0] if len(missing) == 1 else ", ".join(missing[:-1]) + " and " + missing[-1]
    st.info(f"Explain needs {needed}: " + ("upload one or pick a bundled sample." if missing == ["an image"]
                                           else "choose above."))
if run and chosen is not None:
    bar = st.progress(0.0, text="explaining...")
    with readable_errors("The grid could not be computed"):
        compared = [compared_model(entries[key]) for key in model_keys]
        result = compare(compared, chosen.image, method_names, params=params, targets=targets, with_captum=with_captum,
                         progress=lambda fraction, message: bar.progress(fraction, text=message),
                         image_name=chosen.name, mask=chosen.mask, dataset=chosen.dataset)
        st.session_state["explore.result"] = (chosen.name, result)
        st.session_state.pop("explore.scores", None)  # scores belong to one grid: a new grid drops them
    bar.empty()

# --- the grid -----------------------------------------------------------------------------------------------------
METRICS = metric_registry()


def _grid_scores(result, entries) -> dict | None:  # type: ignore[no-untyped-def]
    """The per-image scores of every map of ``result``, computed the first time they are shown and kept with it."""
    stored = st.session_state.get("explore.scores")
    if stored is not None and stored[0] is result:
        return stored[1]
    with st.spinner("scoring every map (insertion, deletion"
                    + (", energy pointing game)..." if result.mask is not None else ")...")):
        with readable_errors("The scores could not be computed"):
            models = [compared_model(entries[row.key]) for row in result.rows if row.key in entries]
            scores = score_comparison(models, result.image, result, mask=result.mask)
            st.session_state["explore.scores"] = (result, scores)
            return scores
    return None


def _score_text(values: dict[str, float]) -> str:
    """One line per score: name, arrow (which way is better), value."""
    return "  \n".join(f"{name.replace('_', ' ')} {METRICS[name].arrow} {value:.2f}" for name, value in values.items())


def _keep_valid(key: str, options: list) -> None:  # type: ignore[type-arg]
    """Before a widget is drawn: drop a kept value it no longer offers (e.g. a colormap of the other kind)."""
    if key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]


def _panel(slot, panel, caption: str, scores: dict | None, key: tuple) -> None:  # type: ignore[no-untyped-def]
    """One map in its grid column: the picture with its caption, or why there is none; its scores when shown."""
    if panel.image is None:
        slot.warning(caption)
        return
    slot.image(panel.image, caption=caption, width="stretch", output_format="PNG")
    if scores is not None and key in scores:
        slot.caption(_score_text(scores[key]))


stored = st.session_state.get("explore.result")
if stored is not None:
    image_name, result = stored
    current = chosen is not None and result.is_of(chosen.image, digest)
    st.subheader(f"{image_name} — {result.summary} in {result.seconds:.2f} s")
    if not current:
        if chosen is not None:
            stale = (f"This grid and its downloads are of {image_name}, not of the image chosen above ({chosen.name}). "
                     f"Press Explain to compute the grid of {chosen.name}.")
        else:
            stale = (f"This grid and its downloads are of {image_name}; no image is chosen above now (upload one or "
                     "pick a bundled sample).")
        st.warning(stale, icon=":material/history:")
    display_row = st.columns([1, 1.3, 1.3, 1.3, 1.4, 1])
    signed = display_row[0].toggle("Signed", value=False, key="explore.signed", persist_state="session",
                                   help="keep the sign of the maps (the two ends of a diverging colormap, its light "
                                        "middle at 0) instead of their magnitudes")
    colormaps = list(DIVERGING_CMAPS if signed else SEQUENTIAL_CMAPS)
    cmap_key = "explore.cmap_signed" if signed else "explore.cmap"
    _keep_valid(cmap_key, colormaps)
    cmap = display_row[1].selectbox("Colormap (diverging)" if signed else "Colormap", colormaps, key=cmap_key,
                                    persist_state="session",
                                    help="signed maps: diverging colormaps only, so that 0 is the light middle"
                                    if signed else "magnitudes, from low to high")
    alpha = display_row[2].slider("Opacity", 0.0, 1.0, 0.5, 0.05, key="explore.alpha", persist_state="session")
    percentile = display_row[3].slider("Clip at percentile", 90.0, 100.0, 99.5, 0.5, key="explore.percentile",
                                       persist_state="session",
                                       help="|map| at this percentile is the end of the colour scale")
    scale = display_row[4].radio("Scale", ["map", "column"], horizontal=True, key="explore.scale",
                                 persist_state="session",
                                 format_func=lambda value: {"map": "per map", "column": "shared per column"}[value],
                                 help="per map: every map on its own scale (its caption gives it); shared per column: "
                                      "one scale for every model's map of a method, so a weaker map looks weaker")
    outline = display_row[5].toggle("Mask outline", value=False, key="explore.outline", persist_state="session",
                                    disabled=result.mask is None,
                                    help="the ground-truth mask's outline on every panel (white inside, black outside)"
                                    if result.mask is not None else "this image has no ground-truth mask (the bundled "
                                    "shapes samples have one)")
    keys = [row.key for row in result.rows]
    names = {row.key: row.name for row in result.rows}
    reference = None
    more = st.columns([3, 2, 2, 2], vertical_alignment="bottom")
    regions = more[2].toggle("Convex-hull regions", value=False, key="explore.regions", persist_state="session",
                             help="the important pixels of every map (its top q % by magnitude) grouped into connected "
                                  "regions, each enclosed by its convex hull (interpgrad.regions; our reading of the "
                                  "GAD paper's region view); the caption gives their number and area")
    region_q = more[3].slider("Regions: top q %", 1.0, 50.0, 10.0, 1.0, key="explore.region_q",
                              persist_state="session", disabled=not regions,
                              help="the share of each map's pixels, the most important first, that the regions enclose")
    display = DisplayOptions(cmap, alpha, signed, percentile, scale, outline and result.mask is not None, regions,
                             region_q)
    if len(keys) > 1:
        _keep_valid("explore.reference", keys)
        reference = more[0].selectbox("A in the A - B rows (minus every other model)", keys, key="explore.reference",
                                      persist_state="session", format_func=lambda key: names[key])
    scores = _grid_scores(result, entries) if more[1].toggle(
        "Scores under the maps", key="explore.show_scores", persist_state="session",
        help="insertion and deletion AUC of every map and, when the image has a ground-truth mask (the shapes "
             "samples), the energy pointing game; computed once per grid, when first shown") else None
    view = result.render(display, PANEL, reference)

    # Names and colour scales in rows of their own: a name that wraps does not push its scale out of line.
    widths = [1] * (len(result.methods) + 1)
    if len(widths) < MIN_COLUMNS:  # a few methods: an empty column on the right keeps the panels a sensible size
        widths.append(MIN_COLUMNS - len(widths))
    header = st.columns(widths)
    header[0].markdown("**input**")
    for slot, method in zip(header[1:], result.methods):
        slot.markdown(f"**{method.replace('_', '_' + chr(0x200B))}**", help=method_help(method))  # may break after _
    header = st.columns(widths)
    for slot, method in zip(header[1:], result.methods):
        slot.html(colorbar_html(display.colormap, display.signed, view.scale_labels(method)))
    for row in result.rows:
        label = entries[row.key].label if row.key in entries else row.name
        st.markdown(f"**{label}** — {row.predictions()}", help=ALIGNMENT_HELP)
        if row.domain:
            st.caption(f":orange[:material/warning: {row.domain}]")
        by_column = {cell.column: cell for cell in row.cells}
        slots = st.columns(widths)
        slots[0].image(view.inputs[row.key], caption=f"input · target: {row.target_name} · {row.resize}",
                       width="stretch", output_format="PNG")
        for slot, method in zip(slots[1:], result.methods):
            cell, panel = by_column[method], view.panels[(row.key, method)]
            caption = panel.note if panel.image is None else " · ".join(
                text for text in (panel.note, f"{cell.seconds * 1000:.0f} ms") if text)
            _panel(slot, panel, caption, scores, (row.key, method))
        captum = [method for method in result.methods if f"{method} (Captum)" in by_column]
        if captum:  # a row of its own, so that Captum's maps line up however long the captions above them are
            slots = st.columns(widths)
            slots[0].caption("Captum's result below ours: the same model, target and parameters")
            for slot, method in zip(slots[1:], result.methods):
                if method in captum:
                    column = f"{method} (Captum)"
                    cell, panel = by_column[column], view.panels[(row.key, column)]
                    caption = panel.note if panel.image is None else " · ".join(
                        text for text in (panel.note, cell.agreement_text, f"{cell.seconds * 1000:.0f} ms") if text)
                    _panel(slot, panel, caption, scores, (row.key, column))
    for difference in view.differences:
        st.markdown(f"**A - B: {names[difference.minuend]} - {names[difference.subtrahend]}**",
                    help="Each method's map of A minus B's, both normalised as the grid shows them (so in display "
                         f"units, -{difference.limit:g} to +{difference.limit:g}), on one scale for the whole row.")
        slots = st.columns(widths)
        slots[0].html(colorbar_html(display.difference_colormap, True, view.difference_labels))
        slots[0].caption(f"{display.difference_colormap}: high where A's map is higher, low where B's is")
        for slot, method in zip(slots[1:], result.methods):
            if method in difference.panels:
                panel = difference.panels[method]
                slot.image(panel.image, caption=panel.note, width="stretch", output_format="PNG")
    if view.difference_note:
        st.info(view.difference_note)
    if scores is not None:
        with st.expander("How the scores are measured"):
            measured = {name for values in scores.values() for name in values}
            st.markdown("\n".join(f"- **{name} {METRICS[name].arrow}** ({METRICS[name].direction} is better): "
                                   f"{METRICS[name].describe()}" for name in EXPLORE_METRICS if name in measured))
            if "energy_pointing_game" not in measured:
                st.caption("The energy pointing game needs a ground-truth mask: the bundled shapes samples have one.")
    # The files are built when a button is clicked (not on every rerun of the page, e.g. each opacity change), and
    # a download does not rerun the page (a rerun while the other button is clicked would swallow that click).
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in image_name).strip("-") or "image"
    downloads = st.columns(2)
    downloads[0].download_button(
        f"Download the grid (PNG) of {image_name}", file_name=f"interpgrad-grid-{stem}.png", mime="image/png",
        key="explore.download.png", on_click="ignore", data=lambda: result.png_bytes(display, reference=reference),
        help="the grid as shown, with a title giving the display settings, the predictions and the colour scales",
    )
    downloads[1].download_button(
        f"Download the raw maps (NPY, ZIP) of {image_name}", file_name=f"interpgrad-maps-{stem}.zip",
        mime="application/zip", key="explore.download.zip", on_click="ignore",
        data=lambda: result.zip_bytes(display, reference=reference),
        help="every raw, display and A - B map as .npy, the input image, the grid as PNG and a manifest.json of the "
             "methods' parameters, each model's target, checkpoint path and sha256, and the display settings",
    )
