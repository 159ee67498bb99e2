"""Models: the shipped checkpoints, finished runs and uploads; metadata and training curves; upload a checkpoint."""

from __future__ import annotations

import streamlit as st

from appkit.charts import training_curves
from appkit.models import show_broken, zoo
from appkit.widgets import drop_missing_choices, readable_errors
from interpgrad.zoo import as_number, default_directories, save_upload, upload_stem

st.set_page_config(page_title="interpgrad · Models", layout="wide")
st.title("Models")
st.caption("Shipped checkpoints, runs trained on the Train page, and your uploads (safetensors + metadata; pickles are refused).")

if "models.flash" in st.session_state:
    st.success(st.session_state.pop("models.flash"))

everything = zoo(include_broken=True)
entries = [entry for entry in everything if entry.usable]
drop_missing_choices("models.show", [entry.key for entry in entries])


def _row(entry) -> dict:  # type: ignore[no-untyped-def]
    model, data = entry.section("model"), entry.section("data")
    return {
        "name": entry.name,
        "source": entry.source,
        "architecture": entry.arch,
        "width": as_number(model.get("width")),
        "regularizer": entry.regularizer,
        "lambda": as_number((entry.section("regularizer").get("params") or {}).get("lam")),
        "dataset": data.get("name"),
        "classes": as_number(model.get("num_classes")),
        "input": f"{model.get('image_size')} px",
        "val accuracy": entry.metric("val_accuracy"),
        "epochs": as_number(entry.metadata.get("epochs_completed")),
    }


if entries:
    st.dataframe([_row(entry) for entry in entries], hide_index=True, width="stretch",
                 column_config={"val accuracy": st.column_config.NumberColumn(format="percent")})
else:
    st.info("No models yet: train one on the Train page or upload a checkpoint below.")
show_broken(everything)

if entries:
    labels = {entry.key: entry.label for entry in entries}
    chosen = st.multiselect("Show", list(labels), default=list(labels)[:2], format_func=labels.__getitem__,
                            key="models.show", persist_state="session")
    selected = [entry for entry in entries if entry.key in chosen]
    if selected:
        left, right = st.columns([2, 3])
        with left:
            for entry in selected:
                with st.expander(f"{entry.short_label} — metadata", expanded=len(selected) == 1):
                    st.json(entry.metadata, expanded=1)
                    st.caption(f"file: {entry.path}")
        with right:
            curves = {entry.short_label: entry.metrics for entry in selected if entry.metrics}  # unique, like keys
            if curves:
                st.plotly_chart(training_curves(curves), key="models.curves")
            else:
                st.info("No training curves recorded for these models.")

st.subheader("Upload a checkpoint")
st.caption("A `.safetensors` file saved by interpgrad (its metadata is inside), or any safetensors file with the "
           "`model.json` that describes it.")
with st.form("models.upload", clear_on_submit=True):
    weights = st.file_uploader("weights (.safetensors)", type=["safetensors"], key="models.upload.weights")
    metadata = st.file_uploader("metadata (.json, optional)", type=["json"], key="models.upload.metadata")
    submitted = st.form_submit_button("Add to the models")
if submitted:
    if weights is None:
        st.warning("Choose a .safetensors file first.")
    else:
        with readable_errors(f"{weights.name} was not added"):
            entry = save_upload(default_directories()["upload"], weights.name, weights.getvalue(),
                                metadata.getvalue() if metadata is not None else None,
                                metadata.name if metadata is not None else "the metadata file")
            wanted = upload_stem(weights.name)
            renamed = f" An upload named {wanted} already exists, so this one is called {entry.name}." if entry.name != wanted else ""
            st.session_state["models.flash"] = f"Added {entry.label}.{renamed} It is now available on every page."
            st.rerun()
