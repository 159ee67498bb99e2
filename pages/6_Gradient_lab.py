"""Gradient lab: why logit gradients look the way they do, in sections a teacher can walk through — the standard and
the guided backward rule on a tiny network, gradients made arbitrary without changing the classifier, the generative
view (class samples by gradient ascent, GAN-test), the density ratio and the pixel-perturbation test
(Srinivas & Fleuret, ICLR 2021; PAPERS.md section 3). The experiments are ``interpgrad.lab``'s."""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

import interpgrad
from appkit.images import UPLOAD_EXTENSIONS, read_upload
from appkit.lab import (PATTERN_LABELS, SCALES, TINY_CLASSES, TINY_SIZES, arbitrary_demo, heat_table, lab_model,
                        pixel_image, relu_table, signed_map_image, tiny_backward, tiny_input, tiny_network)
from appkit.models import load_model, zoo
from appkit.page import page_setup
from appkit.widgets import readable_errors
from interpgrad.data import SHAPE_CLASSES, prepare_image
from interpgrad.lab import pattern_from_image, shape_pattern, smooth_random_pattern, text_pattern
from interpgrad.samples import sample_images

page_setup("Gradient lab")
st.title("Gradient lab")
st.caption(
    "Why do the input gradients of a classifier look the way they do? Four experiments, each computed live: how a "
    "backward rule shapes a gradient, why the softmax does not pin the gradients down, what the logits say as a "
    "generative model, and how that model's density and its gradients' faithfulness can be measured. After "
    "Srinivas & Fleuret, *Rethinking the role of gradient-based attribution methods for model interpretability* "
    "(ICLR 2021).")

entries = [entry for entry in zoo() if entry.usable]

# --- 1. Standard vs guided backward -----------------------------------------------------------------------------------
st.header("1. Standard vs guided backward", anchor="standard-vs-guided")
st.markdown(
    "A gradient is computed backwards, layer by layer. At a ReLU v = max(u, 0) the backward pass receives a signal "
    "δ = ∂f/∂v from above and passes some of it down to u. The **standard** rule (the chain rule) passes δ where the "
    "unit was on in the forward pass; **guided backpropagation** also drops the negative part of δ, so only signals "
    "that increase the logit travel down. Below, a tiny network (8 inputs, ReLU layers of 6 and 5 units, 3 logits) "
    "shows every unit.")
st.latex(r"\text{standard: } \frac{\partial f}{\partial u} = \mathbb{1}[u > 0]\,\delta"
         r"\qquad\text{guided: } \frac{\partial_G f}{\partial u} = \mathbb{1}[u > 0]\,\max(\delta, 0)"
         r"\qquad \delta = \frac{\partial f}{\partial v},\; v = \max(u, 0)")
controls = st.columns(4)
network_seed = controls[0].number_input("Network seed", min_value=0, max_value=999, value=2, step=1, key="lab.tiny.network",
                                        help="the seed of the tiny network's weights")
input_seed = controls[1].slider("Input seed", 0, 49, 0, key="lab.tiny.input", help="the seed of the input vector x")
input_scale = controls[2].slider("Input scale", 0.1, 5.0, 1.0, 0.1, key="lab.tiny.scale",
                                 help="x is this times a standard normal vector; the biases make the masks change with it")
target_choice = controls[3].selectbox("Target logit", ["predicted", *TINY_CLASSES], key="lab.tiny.target")
with readable_errors("The tiny network could not be computed"):
    tiny = tiny_backward(tiny_network(int(network_seed)), tiny_input(int(input_seed), float(input_scale)),
                         None if target_choice == "predicted" else TINY_CLASSES.index(target_choice))
    probabilities = np.exp(tiny.logits - tiny.logits.max())
    probabilities /= probabilities.sum()
    st.markdown("**Forward:** logits " + ", ".join(
        f"{name} {logit:+.2f} (p {p:.2f})" for name, logit, p in zip(TINY_CLASSES, tiny.logits, probabilities))
        + f" · the backward pass starts at logit **{TINY_CLASSES[tiny.target]}** with δ = its row of the last layer's weights.")
    for number in reversed(range(len(tiny.layers))):  # in the order the backward pass meets them
        layer = tiny.layers[number]
        st.markdown(f"**ReLU layer {number + 1}** ({len(layer.u)} units; "
                    + ("the first the backward pass meets)" if number == len(tiny.layers) - 1
                       else "its incoming signals come from the layer above, already filtered by each rule)"))
        st.dataframe(heat_table(relu_table(layer), [f"unit {i + 1}" for i in range(len(layer.u))]),
                     key=f"lab.tiny.layer{number + 1}")
    st.markdown("**The two input gradients** ∂f/∂x (by the engine, `interpgrad.input_gradient(..., rule=...)`):")
    st.dataframe(heat_table({"input x": tiny.x, "standard gradient": tiny.standard, "guided gradient": tiny.guided},
                            [f"x{i + 1}" for i in range(TINY_SIZES[0])]), key="lab.tiny.gradients")
    cosine = float(np.dot(tiny.standard, tiny.guided)
                   / max(np.linalg.norm(tiny.standard) * np.linalg.norm(tiny.guided), 1e-300))
    if not np.any(tiny.guided):
        st.info("The guided gradient is all zero here: every path from the input to the logit crosses a negative "
                "signal or a unit that is off. Change the input seed or the scale.")
    st.caption(f"cos(standard, guided) = {cosine:.3f}. The tables' arithmetic and the engine agree: max |difference| = "
               f"{tiny.disagreement:.1e}. Each row has its own colour scale (red positive, blue negative).")

# --- 2. Gradients are arbitrary -------------------------------------------------------------------------------------
st.header("2. Gradients are arbitrary", anchor="gradients-are-arbitrary")
st.markdown(
    "A classifier's decisions and probabilities come from the softmax, which does not change when the same function "
    "g(x) is added to every logit. The logit gradients do change: by ∇g, which can be anything. So nothing in the "
    "training objective alone forces a gradient to look meaningful. Here g(x) = s ⟨P, x⟩ adds s times a pattern P "
    "(unit norm) to every logit gradient.")
st.latex(r"\operatorname{softmax}\big(f(x) + g(x)\mathbf{1}\big) = \operatorname{softmax}\big(f(x)\big)"
         r"\qquad \nabla_x \big(f_i(x) + g(x)\big) = \nabla_x f_i(x) + s\,P \quad\text{for } g(x) = s\,\langle P, x\rangle")
if not entries:
    st.warning("No models available: train one on the Train page or upload one on the Models page.")
else:
    by_key = {entry.key: entry for entry in entries}
    default_key = next((key for key in by_key if key == "shipped/shapes-resnet18-baseline"),
                       next((key for key in by_key if key.startswith("shipped/")), next(iter(by_key))))
    top = st.columns([2, 2])
    model_key = top[0].selectbox("Model", list(by_key), index=list(by_key).index(default_key), key="lab.arbitrary.model",
                                 format_func=lambda key: by_key[key].label)
    samples = {sample.name: sample for sample in sample_images()}
    sample_name = top[1].selectbox("Image", list(samples), index=list(samples).index("shapes: star #1")
                                   if "shapes: star #1" in samples else 0, key="lab.arbitrary.image")
    pick = st.columns([1, 2, 1])
    kind = pick[0].radio("Pattern P", list(PATTERN_LABELS), format_func=PATTERN_LABELS.get, key="lab.arbitrary.kind")
    size, lab = 32, None
    with readable_errors("The model could not be loaded"):
        lab = lab_model(by_key[model_key])
        size = lab.image_size
    pattern = None
    with readable_errors("The pattern cannot be used"):
        if kind == "text":
            text = pick[1].text_input("Text", value="HI", max_chars=12, key="lab.arbitrary.text")
            pattern = text_pattern(text, size)
        elif kind == "shape":
            shape = pick[1].selectbox("Shape", SHAPE_CLASSES, index=SHAPE_CLASSES.index("heart"), key="lab.arbitrary.shape")
            pattern = shape_pattern(shape, size)
        elif kind == "smooth":
            seed = pick[1].number_input("Seed", min_value=0, max_value=10_000, value=0, step=1, key="lab.arbitrary.seed")
            pattern = smooth_random_pattern(int(seed), size)
        else:
            upload = pick[1].file_uploader("An image (PNG, JPEG, TIFF, BMP, WebP)", type=UPLOAD_EXTENSIONS,
                                           key="lab.arbitrary.upload")
            if upload is None:
                st.info("Upload an image to use it as the pattern.")
            else:
                sample, problem = read_upload(upload)
                if problem:
                    st.error(problem)
                else:
                    pattern = pattern_from_image(sample.image, size)
    scale = pick[2].select_slider("Scale s", options=SCALES, value=100.0, key="lab.arbitrary.scale",
                                  format_func=lambda value: f"{value:g}",
                                  help="the norm of the pattern added to every logit gradient (P has unit norm)")
    if pattern is not None and lab is not None:
        with readable_errors("The demonstration could not be computed"):
            chosen = samples[sample_name]
            x = prepare_image(chosen.image, size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
            demo = arbitrary_demo(lab.model, x, pattern, float(scale))
            names = list(lab.class_names)
            panels = st.columns(4)
            panels[0].image(pixel_image(x[0]), caption=f"input ({chosen.name})")
            pattern_picture, _ = signed_map_image(pattern)
            panels[1].image(pattern_picture, caption="the pattern P (red +, blue -)")
            original_picture, original_max = signed_map_image(demo.gradient)
            wrapped_picture, wrapped_max = signed_map_image(demo.wrapped_gradient)
            target = names[demo.target] if demo.target < len(names) else str(demo.target)
            panels[2].image(original_picture, caption=f"∇ f_{target}(x) of the model · |max| {original_max:.3g}")
            panels[3].image(wrapped_picture, caption=f"∇ (f_{target} + g)(x), wrapped · |max| {wrapped_max:.3g}")
            numbers = st.columns(4)
            numbers[0].metric("max |Δ probability|", f"{demo.probability_difference:.1e}",
                              help="between the model and the wrapped model, over every class")
            wrapped_target = int(np.argmax(demo.wrapped_logits))
            numbers[1].metric("prediction: model · wrapped", f"{target} · {names[wrapped_target]}")
            numbers[2].metric("‖∇ f‖ of the model", f"{float(demo.gradient.norm()):.3g}",
                              help="the norm of the model's own logit gradient; the wrapped one adds s P, of norm s")
            numbers[3].metric("cos(∇ f, ∇ (f + g))", f"{demo.gradient_cosine:.3f}",
                              help="1: the same direction; near 0: the gradient now points elsewhere")
            st.dataframe({"class": names, "logit f": demo.logits, "logit f + g": demo.wrapped_logits,
                          "probability (model)": demo.probabilities, "probability (wrapped)": demo.wrapped_probabilities},
                         hide_index=True, key="lab.arbitrary.table",
                         column_config={column: st.column_config.NumberColumn(format="%.4f") for column in
                                        ("logit f", "logit f + g", "probability (model)", "probability (wrapped)")})
            st.caption("Gradient maps: the sum over the colour channels, each map on its own scale (its largest |value| "
                       "given), red positive, blue negative.")
