"""GAD & regions: support models that push two sides of the classes apart (GAD, gradient artificial distancing), the
fusion of their saliency maps with the original's, and the convex-hull regions of the maps with their RC and RS — one
image side by side, and a dataset of images. Our reading of Mazini Rodrigues, Boutry & Najman 2024 (PAPERS.md §2)."""

from __future__ import annotations

import time

import streamlit as st

from appkit.gad import (GadChoice, cached_view, describe_progress, gad_choices, gad_roots,
                        load_run, read_study, share_rows, study_chart, study_progress, summary_rows)
from appkit.images import UPLOAD_EXTENSIONS, crisp, read_upload
from appkit.models import zoo
from appkit.page import page_setup
from appkit.widgets import JOB_BADGES, param_widgets, readable_errors, status_message
from interpgrad.explain import get_method
from interpgrad.gad import (FUSIONS, TRAINING_PARAMS, GadDir, OneVsAll, Pair, Split, gad_bases, launch_gad,
                            list_gad_runs, resume_gad, stop_gad)
from interpgrad.regions import OCCLUSIONS, summarise_regions
from interpgrad.samples import Sample, sample_images

page_setup("GAD & regions")
st.title("GAD & regions")
st.caption(
    "GAD (gradient artificial distancing; Mazini Rodrigues, Boutry & Najman, 2024) as **our reading of the paper**: "
    "its algorithm and code could not be read, so this is a reconstruction in which every choice is a setting, and no "
    "number here is the paper's. Support models are copies of a classifier trained to push the logits of two sides of "
    "its classes further apart; each model's map of a gradient method is cut to its top q % of pixels, the cuts are "
    "fused, and the GAD map is the original map inside the fused mask. The important pixels of a map are grouped into "
    "regions, each enclosed by its convex hull: RC (region complexity) counts them and their area, RS (region "
    "sensitivity) is how much hiding them lowers the probability of the predicted class.")

ROOTS = gad_roots()
STRATEGIES = {"pair": "two classes", "one_vs_all": "one class against the rest", "split": "two groups of classes"}

if "gad.flash" in st.session_state:
    st.success(st.session_state.pop("gad.flash"))

# --- train support models ---------------------------------------------------------------------------------------
choices = {choice.key: choice for choice in gad_choices()}
entries = {entry.key: entry for entry in zoo()}

with st.expander("Train support models", expanded=not choices):
    if not entries:
        st.warning("No models available: train one on the Train page or upload one on the Models page.")
    else:
        top = st.columns([2, 1])
        model_key = top[0].selectbox("Model", list(entries), key="gad.model", persist_state="session",
                                     format_func=lambda key: entries[key].label)
        kind = top[1].radio("Strategy", list(STRATEGIES), format_func=STRATEGIES.get, key="gad.strategy",
                            persist_state="session", help="which logits are pushed apart: class k from class l; one "
                            "class from every other; or one group of classes from another")
        names = entries[model_key].class_names
        picks = st.columns(2)
        strategy = None
        with readable_errors("The strategy is not valid"):
            if kind == "pair":
                k = picks[0].selectbox("Class k", names, index=0, key="gad.class_k", persist_state="session")
                l = picks[1].selectbox("Class l", names, index=min(1, len(names) - 1), key="gad.class_l",
                                       persist_state="session")
                strategy = Pair(k, l)
            elif kind == "one_vs_all":
                k = picks[0].selectbox("Class against the rest", names, key="gad.class_one", persist_state="session")
                strategy = OneVsAll(k)
            else:
                half = len(names) // 2
                side_a = picks[0].multiselect("Group a", names, default=names[:half], key="gad.group_a",
                                              persist_state="session")
                side_b = picks[1].multiselect("Group b", [n for n in names if n not in side_a],
                                              default=[n for n in names[half:] if n not in side_a], key="gad.group_b",
                                              persist_state="session")
                strategy = Split(tuple(side_a), tuple(side_b))
        st.markdown("**Training settings** (our reading of the paper: every choice is one of these)")
        settings = param_widgets(TRAINING_PARAMS, "gad.train", columns=3)
        default_name = f"gad-{entries[model_key].name}-{time.strftime('%m%d-%H%M%S')}"
        name = st.text_input("Run name", value=default_name, key="gad.name", persist_state="session")
        if st.button("Train support models", type="primary", key="gad.start", disabled=strategy is None):
            with readable_errors("The support models were not started"):
                folder, _ = launch_gad({"checkpoint": str(entries[model_key].path), "strategy": strategy, **settings},
                                       ROOTS["run"], name.strip())
                st.session_state["gad.flash"] = (f"Started {folder.name}: it trains in the background (closing the "
                                                 "browser does not stop it) and can be opened below once its first "
                                                 "support model is saved.")
                st.session_state.pop("gad.name", None)
                st.rerun()

    _MESSAGE = {"failed": st.error, "interrupted": st.warning}

    def _show_run(folder: GadDir) -> None:
        status = folder.read_status()
        state = status.get("state", "new")
        fraction, text = describe_progress(status)
        st.markdown(f"**{folder.name}** — {JOB_BADGES.get(state, state)}")
        st.progress(min(1.0, max(0.0, fraction)), text=text)
        message = status_message(status)
        if message:
            _MESSAGE.get(state, st.info)(message)
        slots = iter(st.columns(6))
        if state == "running" and next(slots).button("Stop", key=f"gad.stop.{folder.name}",
                                                     help="stops after the current step; Resume continues"):
            stop_gad(folder)
        if state in ("stopped", "failed", "interrupted") and next(slots).button("Resume",
                                                                              key=f"gad.resume.{folder.name}"):
            with readable_errors(f"{folder.name} was not resumed"):
                resume_gad(folder)
        if folder.log_path.is_file():
            with st.expander("log"):
                st.code(folder.log_path.read_text(errors="replace")[-3000:] or "(empty)")

    @st.fragment(run_every=2)
    def runs_panel() -> None:
        folders = list_gad_runs(ROOTS["run"])
        if not folders:
            st.caption(f"No GAD runs trained here yet (they go to {ROOTS['run']}).")
        for folder in folders:
            with st.container(border=True):
                _show_run(folder)

    st.markdown("**Your GAD runs**")
    runs_panel()

if not choices:
    st.info("No GAD run yet: train support models above (the shipped runs are in checkpoints/gad).")
    st.stop()

# --- the run ------------------------------------------------------------------------------------------------------
if st.session_state.get("gad.run") not in choices:  # a run deleted since, or none chosen yet: the default
    st.session_state.pop("gad.run", None)
run_key = st.selectbox("GAD run", list(choices), key="gad.run", persist_state="session",
                       format_func=lambda key: choices[key].label,
                       help="shipped with the project (checkpoints/gad) or trained here")
choice: GadChoice = choices[run_key]
loaded = None
with readable_errors(f"{choice.folder.name} cannot be opened"):
    loaded = load_run(choice.folder)
if loaded is None:
    st.stop()
run = loaded.run
st.caption(run.describe() + ("" if run.complete else " — still training: the support models saved so far are used"))
reports = {report.index: report for report in run.reports}
with st.expander("Support models: alphas, agreement with the original, regression error"):
    st.dataframe([{"support model": index, "alpha": report.alpha, "agreement": report.agreement,
                   "agreement (all classes)": report.agreement_all_classes,
                   "train MSE before → after": f"{report.train_mse_before:.3g} → {report.train_mse_after:.3g}",
                   "val MSE": report.val_mse, "trained": report.trained, "seconds": report.seconds}
                  for index, report in sorted(reports.items())], hide_index=True,
                 column_config={"agreement": st.column_config.NumberColumn(format="percent", help=(
                     "share of held-out images of the strategy's classes on which the support model decides as the "
                     "original does: GAD must not change what the model decides")),
                     "agreement (all classes)": st.column_config.NumberColumn(format="percent")})

# --- the image ----------------------------------------------------------------------------------------------------
samples = {sample.name: sample for sample in sample_images()}
involved = [run.class_names[index] for index in run.strategy.classes]
first = next((sample.name for sample in samples.values() if sample.label in involved), next(iter(samples)))
if st.session_state.get("gad.sample.run") != run_key:  # another run: open on a sample of its classes
    st.session_state["gad.sample"] = first
    st.session_state["gad.sample.run"] = run_key


def _upload_changed() -> None:
    for key in ("gad.uploaded", "gad.upload_error"):
        st.session_state.pop(key, None)
    upload = st.session_state.get("gad.upload")
    if upload is None:
        return
    sample, error = read_upload(upload)
    if sample is None:
        st.session_state["gad.upload_error"] = error
    else:
        st.session_state["gad.uploaded"] = sample


left, middle, right = st.columns([2, 2, 1])
with left:
    source = st.radio("Image", ["bundled sample", "upload"], horizontal=True, key="gad.source", persist_state="session")
    chosen: Sample | None
    if source == "upload":
        st.file_uploader("An image (PNG, JPEG, TIFF, BMP, WebP)", type=UPLOAD_EXTENSIONS, key="gad.upload",
                         on_change=_upload_changed)
        if "gad.upload_error" in st.session_state:
            st.error(st.session_state["gad.upload_error"])
        chosen = st.session_state.get("gad.uploaded")
    else:
        sample_name = st.selectbox("Sample", list(samples), key="gad.sample",
                                   help=f"the run's classes: {', '.join(involved)}")
        chosen = samples[sample_name]
with middle:
    bases = list(gad_bases())
    base = st.selectbox("Base method", bases, index=bases.index("integrated_gradients")
                        if "integrated_gradients" in bases else 0, key="gad.base", persist_state="session",
                        help="the gradient method whose maps are computed for the original and every support model")
    controls = st.columns(2)
    q = controls[0].slider("q: top % of pixels", 1.0, 50.0, 10.0, 1.0, key="gad.q", persist_state="session",
                           help="each map is cut to its top q % of pixels; the regions enclose the top q % too")
    fusion = controls[1].selectbox("Fusion", FUSIONS, key="gad.fusion", persist_state="session",
                                   help="intersection: pixels in every model's top q %; majority: in more than half; "
                                        "union: in any")
with right:
    if chosen is not None:
        st.image(crisp(chosen.image, 128), caption=f"{chosen.name} ({chosen.image.shape[1]}x{chosen.image.shape[0]})",
                 width=128)
with st.expander(f"Parameters of {base} and of the regions"):
    base_params = param_widgets(get_method(base).params, f"gad.base.{base}", columns=3)
    region_columns = st.columns(3)
    min_size = region_columns[0].number_input("Smallest region (pixels)", 0, 1000, 4, key="gad.min_size",
                                              persist_state="session",
                                              help="connected groups of fewer important pixels are dropped")
    merge_distance = region_columns[1].number_input("Merge regions closer than (pixels)", 0, 64, 0,
                                                    key="gad.merge_distance", persist_state="session",
                                                    help="0: every connected group is a region of its own")
    occlusion = region_columns[2].selectbox("Occlude with", OCCLUSIONS, key="gad.occlusion", persist_state="session",
                                            help="what replaces a region's pixels for RS (black: in pixel space)")

if chosen is None:
    st.info("Upload an image or pick a bundled sample.")
    st.stop()

view = None
with readable_errors("The GAD explanation could not be computed"):
    with st.spinner(f"computing {base} for the original and {len(run.supports)} support models..."):
        view = cached_view(choice.folder, chosen.image, chosen.dataset, base, base_params, float(q), fusion,
                           int(min_size), int(merge_distance), occlusion)
if view is None:
    st.stop()

# --- one image, side by side -------------------------------------------------------------------------------------
st.subheader(f"{chosen.name}: {base}, top {q:g} %, {fusion}")
st.markdown(f"Predicted **{view.target_name}** (p = {view.probability:.3f}); every map explains that class.")
if view.domain:
    st.warning(f"{chosen.name}: {view.domain}. The maps and numbers below are computed all the same.",
               icon=":material/warning:")
if view.target_name not in involved:
    st.caption(f":orange[:material/info: The model predicts {view.target_name}, which is not one of the run's classes "
               f"({', '.join(involved)}): the support models were not trained to distance it.]")

count = len(view.maps)
widths = [1] * max(count + 2, 6)
row = st.columns(widths)
row[0].image(view.maps[0], caption="original map", width="stretch")
for index in range(1, count):
    report = reports.get(index)
    text = (f"support {index} · alpha {report.alpha:.3g} · agreement {report.agreement:.0%}" if report
            else f"support {index}")
    row[index].image(view.maps[index], caption=text, width="stretch")
row[count].image(view.fused, caption=f"fused mask ({fusion}): {view.fused_share:.1%} of the pixels", width="stretch")
row[count + 1].image(view.gad, caption="GAD map: the original inside the fused mask", width="stretch")
row = st.columns(widths)
row[0].image(view.masks[0], caption=f"original's top {q:g} %", width="stretch")
for index in range(1, count):
    row[index].image(view.masks[index], caption=f"support {index}'s top {q:g} %", width="stretch")
st.caption("Maps: " + base + " summed over the colour channels (|.|), each on its own colour scale (jet, over the "
           "image). Second row: each map's top q % of pixels (white), the masks fused into the GAD mask.")

st.markdown("**Convex-hull regions and their metrics**")
hulls = st.columns([1, 1, 3])
n_original, area_original = view.rc_original
n_gad, area_gad = view.rc_gad
numbers = view.row
hulls[0].image(view.hulls_original, width="stretch",
               caption=f"original: {n_original} regions, {area_original:.1%} of the image (cyan hulls)")
hulls[1].image(view.hulls_gad, width="stretch",
               caption=f"GAD: {n_gad} regions, {area_gad:.1%} of the image (magenta hulls)")
with hulls[2]:
    tiles = st.columns([0.8, 1.6, 1])
    tiles[0].metric("Regions", f"{n_original} → {n_gad}", border=True,
                    help="RC, region complexity: the number of convex-hull regions, original → GAD")
    tiles[1].metric("Hull area", f"{area_original:.1%} → {area_gad:.1%}", border=True,
                    help="RC: the area of the union of the hulls as a share of the image, original → GAD")
    tiles[2].metric("RC: area ratio", "—" if numbers["rc"] != numbers["rc"] else f"{numbers['rc']:.3f}",
                    border=True, help="GAD's hull area / the original's: below 1, GAD explains with less of the image")
    tiles = st.columns(3)
    tiles[0].metric("RS: GAD's regions", f"{numbers['rs_gad']:.3f}", border=True,
                    help="relative drop of the predicted class's probability when GAD's hulls are occluded")
    tiles[1].metric("RS: what GAD removed", f"{numbers['rs_removed']:.3f}", border=True,
                    help="the same for the original's hull pixels outside GAD's hulls")
    tiles[2].metric("RS: random control", f"{numbers['rs_random']:.3f}", border=True,
                    help="the same for random regions of the area of GAD's hulls (the control)")
    st.caption(f"RS = (p − p occluded) / p for the predicted class, the hulls' pixels replaced by {occlusion}: higher "
               "means the regions matter more to the model. Both overlays are drawn over the original map.")
    with st.expander("The numbers, unrounded"):
        st.dataframe([
            {"quantity": "RC: regions", "original": float(n_original), "GAD": float(n_gad)},
            {"quantity": "RC: hull area (share of the image)", "original": area_original, "GAD": area_gad},
            {"quantity": "RC: GAD area / original area (< 1: GAD explains with less)", "GAD": numbers["rc"]},
            {"quantity": "RS: GAD's regions occluded", "GAD": numbers["rs_gad"]},
            {"quantity": "RS: what GAD removed occluded", "GAD": numbers["rs_removed"]},
            {"quantity": "RS: random regions of GAD's area occluded", "GAD": numbers["rs_random"]},
        ], hide_index=True, key="gad.numbers")

# --- the dataset --------------------------------------------------------------------------------------------------
st.subheader("The dataset: RC and RS over many images")


def _show_study(table, summary, what: str, key: str) -> None:  # type: ignore[no-untyped-def]
    shares = share_rows(summary)
    st.markdown(what)
    if shares:
        cells = st.columns(len(shares) + 1)
        for cell, share in zip(cells, shares):
            cell.metric(f"Occluding GAD's regions hurts more than occluding {share['against']}",
                        f"{share['share']:.0%}", help=f"share of the {share['n']} images where RS of GAD's regions is "
                        f"larger; 95% CI [{share['low']:.0%}, {share['high']:.0%}]", border=True)
    charts = st.columns([3, 2])
    charts[0].plotly_chart(study_chart(summary), key=f"{key}.chart")
    charts[1].dataframe(summary_rows(summary), hide_index=True, key=f"{key}.summary",
                        column_config={"mean": st.column_config.NumberColumn(format="%.3f")})
    with st.expander(f"Every image ({len(table)})"):
        st.dataframe(table, hide_index=True, key=f"{key}.table")


study = None
with readable_errors("The run's study could not be read"):
    study = read_study(choice.folder)
if study is not None:
    _show_study(*study, f"Stored with the run (`study/regions.csv`, {len(study[0])} images; the settings of "
                "`python -m interpgrad gad explain` that wrote it, not necessarily those above).", "gad.study.file")
else:
    st.caption("This run has no stored study (study/regions.csv): compute one below.")

computed = st.session_state.get("gad.computed")
compute = st.columns([1, 3], vertical_alignment="bottom")
n_images = compute[0].number_input("Images (validation split, the run's classes)", 2, 5000, 50, key="gad.n",
                                   persist_state="session")
if compute[1].button(f"Compute on {int(n_images)} images", key="gad.compute",
                     help="RC and RS of every image with the settings above (can take a while)"):
    bar = st.progress(0.0, text="reading the images...")
    with readable_errors("The study could not be computed"):
        from interpgrad.gad import region_study, study_images

        x, labels, image_names = study_images(run, split="val", n=int(n_images))
        with loaded.lock:
            table = region_study(run, x, labels, base=base, base_params=dict(base_params), q=float(q), fusion=fusion,
                                 min_size=int(min_size), merge_distance=int(merge_distance), occlusion=occlusion,
                                 seed=0, batch_size=32, progress=study_progress(bar), names=image_names)
        computed = (run_key, f"{len(table)} images, {base}, top {q:g} %, {fusion}, occluded with {occlusion}", table,
                    summarise_regions(table))
        st.session_state["gad.computed"] = computed
    bar.empty()
if computed is not None and computed[0] == run_key:
    _show_study(computed[2], computed[3], f"Computed here: {computed[1]}.", "gad.study.computed")
