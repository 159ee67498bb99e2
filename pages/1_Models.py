"""Models: the shipped checkpoints, finished runs and uploads; metadata and training curves; upload a checkpoint;
delete a run or an upload."""

from __future__ import annotations

import streamlit as st

import appkit.evaluation as evaluation_views
from appkit.charts import training_curves
from appkit.home import HEADLINE_MODELS, STRONG_EVALUATION, strong_pairs
from appkit.models import confirm_deletion, model_table, show_broken, zoo
from appkit.zoo_compare import (DEFAULT_METHODS, EVALUATE_HINT, models_without_evaluation, pair_counts, pair_verdicts,
                                zoo_table)
from appkit.page import page_setup
from appkit.widgets import drop_missing_choices, readable_errors
from interpgrad.zoo import default_directories, delete_model, save_upload

page_setup("Models")
st.title("Models")
st.caption("Shipped checkpoints, runs trained on the Train page, and your uploads (safetensors + metadata; pickles are refused).")

everything = zoo(include_broken=True)
entries = [entry for entry in everything if entry.usable]
drop_missing_choices("models.show", [entry.key for entry in entries])

if entries:
    rows, columns = model_table(entries)
    st.dataframe(rows, hide_index=True, width="stretch", column_config=columns, key="models.table")
else:
    st.info("No models yet: train one on the Train page or upload a checkpoint below.")
show_broken(everything)

if entries:
    labels = {entry.key: entry.label for entry in entries}
    headline = [entry.key for name in HEADLINE_MODELS for entry in entries
                if entry.source == "shipped" and entry.name == name]  # the shipped ResNet-18 trio, when there
    chosen = st.multiselect("Show", list(labels), default=headline or list(labels)[:2], format_func=labels.__getitem__,
                            key="models.show", persist_state="session")
    selected = [entry for entry in entries if entry.key in chosen]
    curves = {entry.short_label: entry.metrics for entry in selected if entry.metrics}  # unique, like keys
    if curves:
        st.plotly_chart(training_curves(curves), key="models.curves")
    elif selected:
        st.info("No training curves recorded for these models.")
    for column, entry in zip(st.columns(max(1, min(3, len(selected)))) * len(selected), selected):
        with column.expander(f"{entry.short_label} — metadata", expanded=len(selected) == 1):
            st.json(entry.metadata, expanded=1)
            st.caption(f"file: {entry.path}")

st.subheader("Compare the models")
listed = [item for item in evaluation_views.list_all() if item.folder.finished()]
if not listed:
    st.info(f"No finished evaluation yet: to compare the models' explanations, {EVALUATE_HINT}.")
else:
    keys = {item.key: item for item in listed}
    if st.session_state.get("models.compare.evaluation") not in keys:  # first visit, or the folder is gone
        # the shipped evaluation of the zoo (every shipped architecture) when it is there, else the starter one
        zoo_evaluation = any(item.source == "shipped" and item.folder.name == STRONG_EVALUATION for item in listed)
        st.session_state["models.compare.evaluation"] = evaluation_views.default_open(
            listed, STRONG_EVALUATION if zoo_evaluation else evaluation_views.SHIPPED_DEFAULT)
    choice = st.columns([2, 3])
    key = choice[0].selectbox("Evaluation", list(keys), format_func=lambda key: keys[key].label,
                              key="models.compare.evaluation",
                              help="an evaluation folder (the Evaluate page makes them): its models, methods, metrics")
    with readable_errors("the evaluation cannot be read"):
        evaluation = evaluation_views.load(keys[key].folder)
        real = [name for name in evaluation.methods if name not in evaluation_views.CONTROLS]
        drop_missing_choices("models.compare.methods", evaluation.methods)
        methods = choice[1].multiselect(
            "Methods", evaluation.methods, default=[name for name in DEFAULT_METHODS if name in evaluation.methods]
            or real[:2], key="models.compare.methods", help="the attribution methods whose scores the table shows")
        st.caption(f"{evaluation_views.protocol_lines(evaluation)[0]} Each cell: the mean over the images and, beside "
                   "it, its confidence interval. Click a column header to sort.")
        if methods:
            table, columns = zoo_table(evaluation, entries, methods)
            st.dataframe(table, hide_index=True, column_config=columns, key="models.compare.table")
        else:
            st.info("Choose at least one method.")
        missing = models_without_evaluation(evaluation, entries)
        if missing:
            names = ", ".join(entry.short_label for entry in missing)
            st.info(f"Not in this evaluation: {names}. To compare {'it' if len(missing) == 1 else 'them'}, "
                    f"{EVALUATE_HINT}.")
        if len(evaluation.models) >= 2:
            st.markdown("**Compare two models** — paired over the same images")
            pair = st.columns(2)
            # a strong model and its baseline when the evaluation has them (the zoo's point), else the last against
            # the first
            strong = strong_pairs(evaluation, entries)
            first_a = evaluation.models.index(strong[0].strong) if strong else len(evaluation.models) - 1
            model_a = pair[0].selectbox("Model A", evaluation.models, index=first_a, key="models.compare.a")
            others = [name for name in evaluation.models if name != model_a]
            first_b = others.index(strong[0].baseline) if strong and strong[0].baseline in others else 0
            model_b = pair[1].selectbox("Model B", others, index=first_b, key="models.compare.b")
            verdicts = pair_verdicts(evaluation, model_a, model_b, methods or None)
            if verdicts.empty:
                st.info(f"{evaluation.folder.name if evaluation.folder else 'This evaluation'} has no paired "
                        f"comparison of {model_a} and {model_b}.")
            else:
                counts = pair_counts(verdicts)
                st.markdown(f"Over {len(verdicts)} (method, metric) pairs: **{model_a} better** on {counts['better']}, "
                            f"**{model_b} better** on {counts['worse']}, no clear difference on "
                            f"{counts['no clear difference']}. The difference is A - B; the verdict is for A.")
                styled = evaluation_views.style_verdicts(verdicts, ["result", "verdict"]).format(
                    {"difference": "{:.4g}", "p-value": "{:.2g}"})
                st.dataframe(styled, hide_index=True, key="models.compare.verdicts")
        else:
            st.caption("This evaluation has one model: there is nothing to compare it with.")

st.subheader("Upload a checkpoint")
st.caption("A `.safetensors` file saved by interpgrad (its metadata is inside), or any safetensors file with the "
           "`model.json` that describes it. It is named after the model its metadata describes.")


def _flash(where: str) -> None:
    """The message an action left for the next run of the page, shown where the action was (upload, delete)."""
    if st.session_state.get("models.flash", ("",))[0] == where:
        _, kind, text = st.session_state.pop("models.flash")
        (st.info if kind == "info" else st.success)(text)


with st.form("models.upload", clear_on_submit=True):
    weights = st.file_uploader("weights (.safetensors)", type=["safetensors"], key="models.upload.weights")
    metadata = st.file_uploader("metadata (.json, optional)", type=["json"], key="models.upload.metadata")
    submitted = st.form_submit_button("Add to the models")
_flash("upload")
if submitted:
    if weights is None:
        st.warning("Choose a .safetensors file first.")
    else:
        with readable_errors(f"{weights.name} was not added"):
            saved = save_upload(default_directories()["upload"], weights.name, weights.getvalue(),
                                metadata.getvalue() if metadata is not None else None,
                                metadata.name if metadata is not None else "the metadata file", existing=entries)
            if saved.already_there:
                flash = ("upload", "info", f"{weights.name} is already here, as {saved.entry.short_label}: nothing was added.")
            else:
                renamed = (f" Another upload is called {saved.wanted}, so this one is called {saved.entry.name}."
                           if saved.entry.name != saved.wanted else "")
                flash = ("upload", "success", f"Added {saved.entry.label}.{renamed} It is now available on every page.")
            st.session_state["models.flash"] = flash
            st.rerun()

deletable = {entry.key: entry for entry in everything if entry.deletable}
if deletable or "models.flash" in st.session_state:
    st.subheader("Delete a run or an upload")
    _flash("delete")
if deletable:
    st.caption("Shipped checkpoints stay. A run that is still training cannot be deleted: stop it on the Train page first.")
    key = st.selectbox("Model", list(deletable), format_func=lambda key: deletable[key].label, key="models.delete.choice")
    if st.button("Delete…", key="models.delete"):
        st.session_state["models.delete.request"] = key
    entry = deletable[key]
    what = "Its run folder (checkpoint, curves, log) is removed." if entry.source == "run" else "The uploaded file is removed."
    if confirm_deletion("models.delete.request", key, entry.short_label, what, "models.delete"):
        with readable_errors(f"{entry.short_label} was not deleted"):
            delete_model(entry)
            st.session_state["models.flash"] = ("delete", "success", f"Deleted {entry.short_label}.")
            st.rerun()
