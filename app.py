"""interpgrad — the app: navigation and the home page. Run it with `make run` (or `streamlit run app.py`)."""

from __future__ import annotations

import streamlit as st

import interpgrad
from appkit.evaluation import load as load_evaluation, style_verdicts
from appkit.home import HEADLINE_MODELS, strong_evaluation_folder, strong_pairs
from appkit.models import compared_model, show_broken, zoo
from appkit.widgets import readable_errors
from interpgrad.comparison import compare
from interpgrad.regularizers import REGULARIZERS
from interpgrad.samples import shapes_samples


@st.cache_data(show_spinner="drawing the overview...", max_entries=4)
def overview(keys: tuple[str, ...], mtimes: tuple[float, ...]) -> bytes:
    """Input, standard and guided gradient and Grad-CAM of the shipped models on one shapes test image."""
    chosen = [entry for entry in zoo() if entry.key in keys]
    models = [compared_model(entry) for entry in chosen]
    star = next(sample for sample in shapes_samples() if sample.label == "star")
    grid = compare(models, star.image, ["gradient", "guided_backprop", "gradcam"], image_name=star.name, mask=star.mask,
                   dataset=star.dataset)
    return grid.png_bytes(alpha=0.6, panel_size=128, differences=False)


def strong_difference(entries: list) -> None:
    """What the strong regularizer changes, from the shipped evaluation of the zoo (paired, with intervals)."""
    folder = strong_evaluation_folder()
    if folder is None:
        return
    with readable_errors("The shipped evaluation of the zoo could not be read"):
        evaluation = load_evaluation(folder)
        pairs = strong_pairs(evaluation, entries)
        if not pairs:
            return
        st.subheader("What the regularizer changes")
        images = evaluation.protocol.get("data", {}).get("n")
        settings = pairs[0].settings or "see its metadata on the Models page"
        st.markdown(
            "At the paper's setting (lambda 7.5e-3) the regularizer barely reaches the gradients explanations use. The "
            "*strong* models are the regularizer study's strongest setting within one point of accuracy, fine-tuned "
            f"from each baseline: {settings}, the batch-norm statistics held constant in the gradient pass. "
            f"Paired over {images or 'the'} shapes validation images (95 % bootstrap intervals; a verdict only where "
            "the interval excludes 0 and the Wilcoxon p < 0.05):")
        for pair in pairs:
            st.markdown("- " + pair.sentence())
        first = pairs[0]
        with st.expander(f"{first.strong} vs {first.baseline}: every verdict of "
                         f"{', '.join(sorted(set(first.verdicts['method'])))}"):
            st.dataframe(style_verdicts(first.verdicts), hide_index=True)
        st.page_link("pages/4_Evaluate.py", label=f"The whole evaluation ({folder.name}) on the Evaluate page",
                     icon=":material/analytics:")


def home() -> None:
    """The home page: what interpgrad is, one picture, the models available, where to go next."""
    st.title("interpgrad")
    st.markdown(
        "**See and measure what the gradients of an image classifier explain.** Train convolutional classifiers with "
        "and without gradient regularizers — the *interpretable gradients* regularizer (Torres Figueroa et al., 2024), "
        "which trains the standard input gradient to align with the guided-backpropagation gradient, and the "
        "score-matching family (Srinivas & Fleuret, 2021) — then compare their saliency maps side by side."
    )

    everything = zoo(include_broken=True)
    entries = [entry for entry in everything if entry.usable]
    shipped = [entry for entry in entries if entry.source == "shipped"]
    pictured = [entry for name in HEADLINE_MODELS for entry in shipped if entry.name == name] or shipped[:2]
    if pictured:
        with readable_errors("The overview could not be drawn"):
            picture = overview(tuple(e.key for e in pictured), tuple(e.mtime for e in pictured))
            alignments = ", ".join(f"{entry.name} {entry.metric('val_alignment'):.3f}" for entry in pictured
                                   if entry.metric("val_alignment") is not None)
            st.image(picture, width=720, caption="A shapes test image explained by the shipped ResNet-18 models (rows): standard "
                     "gradient, guided gradient, Grad-CAM. Mean cosine between the standard and the guided gradient "
                     f"on validation images, in eval mode: {alignments or 'not recorded'}.")
    strong_difference(entries)

    st.subheader("Models available")
    counts = {source: sum(entry.source == source for entry in entries) for source in ("shipped", "run", "upload")}
    st.write(f"{counts['shipped']} shipped · {counts['run']} trained here (runs/) · {counts['upload']} uploaded")
    if entries:
        st.dataframe([{"model": entry.name, "source": entry.source, "architecture": entry.arch,
                       "regularizer": entry.regularizer, "val accuracy": entry.metric("val_accuracy")} for entry in entries],
                     hide_index=True, column_config={"val accuracy": st.column_config.NumberColumn(format="percent")})
    show_broken(everything)

    st.subheader("Where next")
    links = st.columns(2) + st.columns(2) + st.columns(2)
    links[0].page_link("pages/2_Explore.py", label="Explore: compare saliency maps side by side", icon=":material/image_search:")
    links[1].page_link("pages/3_Train.py", label="Train: baseline vs. regularized models", icon=":material/model_training:")
    links[2].page_link("pages/4_Evaluate.py", label="Evaluate: score maps and models with metrics", icon=":material/analytics:")
    links[3].page_link("pages/1_Models.py", label="Models: metadata, curves, uploads", icon=":material/inventory_2:")
    links[4].page_link("pages/5_GAD.py", label="GAD & regions: support models, fused maps, convex-hull RC and RS",
                       icon=":material/join_inner:")
    links[5].page_link("pages/6_Gradient_lab.py", label="Gradient lab: why gradients look the way they do (for teaching)",
                       icon=":material/school:")
    with st.expander("Regularizers and architectures"):
        st.dataframe([{"regularizer": name, "what it does": cls.description} for name, cls in REGULARIZERS.items()], hide_index=True)
        st.dataframe([{"architecture": a.name, "family": a.family, "CAM layer": a.target_layer, "description": a.description}
                      for a in interpgrad.architectures().values()], hide_index=True)
    st.caption(f"interpgrad {interpgrad.__version__} · the library, the command line (`python -m interpgrad`) and this app "
               "share one implementation.")


st.set_page_config(page_title="interpgrad", page_icon=":material/biotech:", layout="wide")
st.navigation([
    st.Page(home, title="Home", icon=":material/home:", default=True),
    st.Page("pages/1_Models.py", title="Models", icon=":material/inventory_2:"),
    st.Page("pages/2_Explore.py", title="Explore", icon=":material/image_search:"),
    st.Page("pages/3_Train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/4_Evaluate.py", title="Evaluate", icon=":material/analytics:"),
    st.Page("pages/5_GAD.py", title="GAD & regions", icon=":material/join_inner:"),
    st.Page("pages/6_Gradient_lab.py", title="Gradient lab", icon=":material/school:"),
]).run()
