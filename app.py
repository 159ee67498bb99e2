"""interpgrad — the Streamlit app's home page. Run it with `make run` (or `streamlit run app.py`)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

import interpgrad
from interpgrad.regularizers import REGULARIZERS
from interpgrad.training import read_checkpoint_metadata

ROOT = Path(__file__).resolve().parent

st.set_page_config(page_title="interpgrad", layout="wide")
st.title("interpgrad")
st.markdown(
    """
**See and measure what the gradients of an image classifier explain.**
Train convolutional classifiers with and without gradient regularizers — the *interpretable gradients* regularizer,
which aligns the standard input gradient with the guided-backpropagation gradient, and the score-matching family —
then compare their saliency maps side by side and score them.
"""
)

left, right = st.columns(2)
with left:
    st.subheader("Architectures")
    st.dataframe(
        [
            {"name": arch.name, "family": arch.family, "CAM layer": arch.target_layer, "description": arch.description}
            for arch in interpgrad.architectures().values()
        ],
        hide_index=True,
    )
with right:
    st.subheader("Regularizers")
    st.dataframe(
        [{"name": name, "description": cls.description} for name, cls in REGULARIZERS.items()],
        hide_index=True,
    )

st.subheader("Shipped checkpoints")
shipped = sorted((ROOT / "checkpoints").glob("*.safetensors"))
if not shipped:
    st.info("No checkpoints are shipped yet.")
for path in shipped:
    try:
        metadata = read_checkpoint_metadata(path)
        st.write(f"**{path.stem}** — {metadata['model']['arch']}, regularizer {metadata.get('regularizer', {}).get('name', 'none')}")
    except interpgrad.InterpgradError as error:
        st.warning(f"{path.name}: {error}")
st.caption(f"interpgrad {interpgrad.__version__}")
