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
from appkit.lab import (DATA, DENSITY, DENSITY_SECONDS, JUDGE_COMMAND, KEEP, PANEL, PAPER_GAN_TEST, PATTERN_LABELS,
                        PERTURBATION, PERTURBATION_SECONDS, SAMPLING, SCALES, SECONDS_PER_STEP, TINY_CLASSES,
                        TINY_SIZES, arbitrary_demo, cached_curves, cached_density, cached_gan, cached_samples,
                        compute_with_progress, curves_figure, dataset_of, describe, fool_command, fooled_entries, fooled_original,
                        gan_test_figure, gan_test_table, heat_table, judge_entries, keep_valid,
                        lab_data, lab_dir_stamp, lab_model, pattern_spec, perturbation_fractions, pixel_image,
                        regularizer_label, relu_table, signed_map_image, softplus_entries, tiny_backward, tiny_input,
                        tiny_network, train_commands)
from appkit.models import zoo
from appkit.page import page_setup
from appkit.widgets import drop_missing_choices, readable_errors
from interpgrad.data import SHAPE_CLASSES, prepare_image
from interpgrad.lab import (cached_class_samples, cached_density_profile, cached_perturbation, gradient_pattern_cosine,
                            make_pattern, pattern_from_image, shape_pattern, smooth_random_pattern, text_pattern)
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
network_seed = controls[0].number_input("Network seed", min_value=0, max_value=999, value=2, step=1, key="lab.tiny.network", persist_state="session",
                                        help="the seed of the tiny network's weights")
input_seed = controls[1].slider("Input seed", 0, 49, 0, key="lab.tiny.input", persist_state="session", help="the seed of the input vector x")
input_scale = controls[2].slider("Input scale", 0.1, 5.0, 1.0, 0.1, key="lab.tiny.scale", persist_state="session",
                                 help="x is this times a standard normal vector; the biases make the masks change with it")
target_choice = controls[3].selectbox("Target logit", ["predicted", *TINY_CLASSES], key="lab.tiny.target", persist_state="session")
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
    keep_valid("lab.arbitrary.model", list(by_key))
    model_key = top[0].selectbox("Model", list(by_key), index=list(by_key).index(default_key), key="lab.arbitrary.model", persist_state="session",
                                 format_func=lambda key: by_key[key].label)
    samples = {sample.name: sample for sample in sample_images()}
    sample_name = top[1].selectbox("Image", list(samples), index=list(samples).index("shapes: star #1")
                                   if "shapes: star #1" in samples else 0, key="lab.arbitrary.image", persist_state="session")
    pick = st.columns([1, 2, 1])
    kind = pick[0].radio("Pattern P", list(PATTERN_LABELS), format_func=PATTERN_LABELS.get, key="lab.arbitrary.kind", persist_state="session")
    size, lab = 32, None
    with readable_errors("The model could not be loaded"):
        lab = lab_model(by_key[model_key])
        size = lab.image_size
    pattern = None
    with readable_errors("The pattern cannot be used"):
        if kind == "text":
            text = pick[1].text_input("Text", value="HI", max_chars=12, key="lab.arbitrary.text", persist_state="session")
            pattern = text_pattern(text, size)
        elif kind == "shape":
            shape = pick[1].selectbox("Shape", SHAPE_CLASSES, index=SHAPE_CLASSES.index("heart"), key="lab.arbitrary.shape", persist_state="session")
            pattern = shape_pattern(shape, size)
        elif kind == "smooth":
            seed = pick[1].number_input("Seed", min_value=0, max_value=10_000, value=0, step=1, key="lab.arbitrary.seed", persist_state="session")
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
    scale = pick[2].select_slider("Scale s", options=SCALES, value=100.0, key="lab.arbitrary.scale", persist_state="session",
                                  format_func=lambda value: f"{value:g}",
                                  help="the norm of the pattern added to every logit gradient (P has unit norm)")
    if pattern is not None and lab is not None:
        with readable_errors("The demonstration could not be computed"):
            chosen = samples[sample_name]
            x = prepare_image(chosen.image, size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
            demo = arbitrary_demo(lab.model, x, pattern, float(scale))
            names = list(lab.class_names)
            panels = st.columns(4)
            panels[0].image(pixel_image(x[0]), width=PANEL, caption=f"input ({chosen.name})")
            pattern_picture, _ = signed_map_image(pattern)
            panels[1].image(pattern_picture, width=PANEL, caption="the pattern P (red +, blue -)")
            original_picture, original_max = signed_map_image(demo.gradient)
            wrapped_picture, wrapped_max = signed_map_image(demo.wrapped_gradient)
            target = names[demo.target] if demo.target < len(names) else str(demo.target)
            panels[2].image(original_picture, width=PANEL, caption=f"∇ f_{target}(x) of the model · |max| {original_max:.3g}")
            panels[3].image(wrapped_picture, width=PANEL, caption=f"∇ (f_{target} + g)(x), wrapped · |max| {wrapped_max:.3g}")
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

    # The stronger demonstration: a model fine-tuned so that its own gradients show a pattern.
    st.subheader("A model fine-tuned to fool its gradients")
    st.markdown(
        "Adding g is a trick on top of a model. A model can also be *trained* so that its logit gradients show a "
        "pattern while it keeps classifying as well: fine-tune it with a penalty on the distance between each "
        "gradient and the pattern.")
    st.latex(r"L = L_{CE} + \lambda\,\frac{1}{B}\sum_i e\big(\nabla_x f_{y_i}(x_i),\, P\big), \qquad "
             r"e = 1 - \cos(\nabla_x f_y, P) \ \text{(cosine)} \quad\text{or}\quad "
             r"e = \lVert \nabla_x f_y - s\,P \rVert^2 / s^2 \ \text{(mse)}")
    fooled = fooled_entries(entries)
    if not fooled:
        st.info("No fooled model is available yet: fine-tune one with the command below (a training run that appears "
                "among the models after its first epoch), then reopen this page.")
        st.code(fool_command(by_key.get(default_key)), language="bash", wrap_lines=True)
    else:
        fooled_by_key = {entry.key: entry for entry in fooled}
        keep_valid("lab.fooled.model", list(fooled_by_key))
        fooled_key = st.selectbox("Fooled model", list(fooled_by_key), key="lab.fooled.model", persist_state="session",
                                  format_func=lambda key: fooled_by_key[key].label)
        chosen_fooled = fooled_by_key[fooled_key]
        original = fooled_original(chosen_fooled, entries)
        spec = pattern_spec(chosen_fooled)
        if original is None:
            st.warning(f"The model {chosen_fooled.name} was fine-tuned from is not among the models; pick one to "
                       "compare it with.")
            same = [entry.key for entry in entries if entry.arch == chosen_fooled.arch and entry.key != fooled_key]
            keep_valid("lab.fooled.original", same or list(by_key))
            original_key = st.selectbox("Compare with", same or list(by_key), key="lab.fooled.original", persist_state="session",
                                        format_func=lambda key: by_key[key].label)
            original = by_key[original_key]
        with readable_errors("The fooled model could not be shown"):
            pair = [(original, lab_model(original)), (chosen_fooled, lab_model(chosen_fooled))]
            chosen = samples[sample_name]
            pattern_text = str(spec.get("pattern", "?"))
            error = str(spec.get("error") or ("mse" if spec.get("scale") is not None else "cosine"))
            error_text = f"error mse, scale s = {describe(spec.get('scale'))}" if error == "mse" else f"error {error}"
            st.markdown(f"Pattern `{pattern_text}`, {error_text}, λ = {describe(spec.get('lam'))}; the image is the one "
                        f"chosen above ({chosen.name}); "
                        "cos(∇ f, P) is the cosine between the map and the pattern (1: the pattern itself).")
            panels = st.columns(4)
            for column, (entry, model) in zip((0, 2), pair):
                x = prepare_image(chosen.image, model.image_size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
                with torch.no_grad():
                    probabilities = model.model(x)[0].softmax(0)
                # the class the fine-tuning aligned: the image's label (as in training), else the prediction
                top = (list(model.class_names).index(chosen.label) if chosen.label in model.class_names
                       else int(probabilities.argmax()))
                gradient = interpgrad.input_gradient(model.model, x, top)[0]
                picture, largest = signed_map_image(gradient)
                cosine = float(gradient_pattern_cosine(model.model, x, [top], make_pattern(pattern_text, model.image_size))[0])
                accuracy = entry.metric("val_accuracy")
                role = "original" if entry is original else "fooled"
                accuracy_text = f"val acc {accuracy:.1%}" if accuracy is not None else "val acc not recorded"
                panels[column].image(pixel_image(x[0]), width=PANEL, caption=f"{role}: {entry.name} · {accuracy_text}")
                panels[column + 1].image(picture, width=PANEL, caption=(
                    f"∇ f_{model.class_names[top]}(x) · p {float(probabilities[top]):.3f} · cos(∇ f, P) {cosine:.2f}"))

# --- 3. The generative view -------------------------------------------------------------------------------------------
st.header("3. The generative view", anchor="generative-view")
st.markdown(
    "Read the logits as an energy: f_y(x) is, up to a constant, the log of a density of images of class y that the "
    "classifier defines without ever being trained for it. Its gradient is then the *score* of that density, the "
    "direction in which images become more typical of the class. Climbing it from noise draws samples: if they look "
    "like the class, the gradients carry the class's structure. Score matching trains that score to match the data's; "
    "anti-score-matching does the opposite; the gradient-norm penalty only makes it small and smooth. The models are "
    "Softplus(10) networks on pixels in [0, 1], as in the paper.")
st.latex(r"\log p_\theta(x \mid y) = f_y(x) - \log Z_y(\theta) \quad\Rightarrow\quad "
         r"\nabla_x \log p_\theta(x \mid y) = \nabla_x f_y(x)")
st.latex(r"x_0 \sim \mathcal{N}(0.5,\, 0.2^2 I)\ \text{clamped to } [0, 1], \qquad "
         r"x_{t+1} = \operatorname{clamp}_{[0,1]}\!\Big(x_t + \eta\,\big(\nabla_x f_y(x_t) - \lambda_{wd}\,(x_t - 0.5)\big)\Big)"
         r"\qquad \eta = 0.1,\ \lambda_{wd} = 0.01")
generators = softplus_entries(entries)
if not generators:
    need_judge = not judge_entries(entries, [])
    st.info("No Softplus model is available, so there is nothing to sample from yet. The lab's models are trained on "
            "shapes with these commands (a few minutes each on 2 CPU cores; they appear among the models after "
            "their first epoch)" + (", the last one an independent judge for the GAN-test:" if need_judge else ":"))
    st.code(train_commands(judge=need_judge), language="bash", wrap_lines=True)
else:
    by_generator = {entry.key: entry for entry in generators}
    drop_missing_choices("lab.samples.models", list(by_generator))
    picked = st.multiselect("Softplus models (rows)", list(by_generator), default=list(by_generator)[:6],
                            key="lab.samples.models", persist_state="session", format_func=lambda key: by_generator[key].label)
    settings = dict(SAMPLING)
    with st.expander("Sampler settings (the command line's defaults: what its --cache auto fills and the page opens on)"):
        knobs = st.columns(4)
        settings["steps"] = int(knobs[0].number_input("steps", min_value=1, max_value=2000, value=SAMPLING["steps"],
                                                      step=50, key="lab.samples.steps", persist_state="session"))
        settings["per_class"] = int(knobs[1].number_input("samples per class", min_value=1, max_value=10,
                                                          value=SAMPLING["per_class"], key="lab.samples.per_class", persist_state="session"))
        settings["noise"] = float(knobs[2].select_slider("Langevin noise", options=[0.0, 0.01, 0.1, 1.0],
                                                         value=SAMPLING["noise"], key="lab.samples.noise", persist_state="session",
                                                         help="0: the paper's sampler (projected gradient ascent); "
                                                              "1: unadjusted Langevin dynamics"))
        settings["seed"] = int(knobs[3].number_input("seed", min_value=0, max_value=10_000, value=SAMPLING["seed"],
                                                     key="lab.samples.seed", persist_state="session"))
    chosen_generators = [by_generator[key] for key in picked]
    results: dict[str, object] = {}
    missing = []
    with readable_errors("The class samples could not be read"):
        for entry in chosen_generators:
            model = lab_model(entry)
            found = cached_samples(model, lab_dir_stamp([entry])[0], range(len(model.class_names)), settings)
            if found is None:
                missing.append(entry)
            else:
                results[entry.key] = found
    if missing:
        st.warning(f"No samples with these settings yet for {', '.join(entry.name for entry in missing)}: about "
                   f"{SECONDS_PER_STEP * settings['steps'] * settings['per_class']:.0f} s per model of the shipped models' size "
                   "on one CPU core. "
                   "They are kept on disk beside each checkpoint.")
        if st.button(f"Compute the samples of {len(missing)} model(s)", key="lab.samples.compute", type="primary"):
            compute_with_progress(
                missing, "sampling...", "The class samples could not be computed", "{name}: step {done} of {total}",
                lambda entry, report: cached_class_samples(lab_model(entry), None, keep=KEEP, progress=report,
                                                           **settings))
    if results:
        kept = sorted(set.intersection(*(set(result.steps) for result in results.values())))
        keep_valid("lab.samples.step", kept)
        step = st.select_slider("Ascent step", options=kept, value=kept[-1], key="lab.samples.step", persist_state="session",
                                help="the kept steps of the trajectory: step 0 is the noise it starts from")
        class_names = list(lab_model(chosen_generators[0]).class_names)
        replicate = 0
        if settings["per_class"] > 1:
            replicate = st.slider("Sample", 1, settings["per_class"], 1, key="lab.samples.replicate") - 1
        header = st.columns([2] + [1] * len(class_names))
        header[0].markdown("**model** · mean target logit")
        for column, name in zip(header[1:], class_names):
            column.markdown(f"**{name}**")
        for entry in chosen_generators:
            if entry.key not in results:
                continue
            result = results[entry.key]
            index = list(result.steps).index(step)
            row = st.columns([2] + [1] * len(class_names))
            row[0].markdown(f"{entry.name}  \n{regularizer_label(entry.regularizer)} · "
                            f"f_y {float(result.target_logits[index].mean()):.2f}")
            for column, c in zip(row[1:], range(len(class_names))):
                picks = ((result.classes == c) & (result.replicates == replicate)).nonzero().flatten()
                if len(picks):
                    column.image(pixel_image(result.trajectory[index, int(picks[0])], 96), width=96)
        st.caption(f"Samples at step {step} of {kept[-1]}: one column per class, one row per model; the row title gives "
                   "the mean target logit f_y over the samples at this step.")
        with st.expander("The whole trajectory of one class"):
            keep_valid("lab.samples.class", class_names)
            trajectory_class = class_names.index(st.selectbox("Class", class_names, key="lab.samples.class",
                                                              persist_state="session"))
            slots = max(len(kept), len(class_names))  # pictures as wide as in the grid above
            header = st.columns([2] + [1] * slots)
            header[0].markdown("**model** · f_y at each step")
            for column, kept_step in zip(header[1:], kept):
                column.markdown(f"**step {kept_step}**")
            for entry in chosen_generators:
                if entry.key not in results:
                    continue
                result = results[entry.key]
                picks = ((result.classes == trajectory_class) & (result.replicates == replicate)).nonzero().flatten()
                if not len(picks):
                    continue
                row = st.columns([2] + [1] * slots)
                row[0].markdown(f"{entry.name}  \n{regularizer_label(entry.regularizer)}")
                for column, kept_step in zip(row[1:], kept):
                    index = list(result.steps).index(kept_step)
                    column.image(pixel_image(result.trajectory[index, int(picks[0])], 96), width=96,
                                 caption=f"f_y {float(result.target_logits[index, int(picks[0])]):.2f}")

    # GAN-test
    st.subheader("GAN-test: do the samples look like their class to another model?")
    st.markdown(
        "An independent classifier (the judge, another architecture trained without any of these regularizers) "
        "labels each sample; its accuracy against the class the sample was drawn for measures how class-like the "
        "samples are. The paper's numbers (ResNet-18 on CIFAR-100, where chance is 1 %) are shown beside ours "
        "(shapes, where chance is 10 %): compare the order of the regularizers, not the values.")
    st.latex(r"\text{GAN-test} = \frac{1}{N}\sum_{n=1}^{N} \mathbb{1}\big[\arg\max_k J_k(x_n) = y_n\big]")
    judges = judge_entries(entries, generators)
    if not judges:
        st.info("No judge is available: the GAN-test needs an independent classifier with the same classes. Train one "
                "(another architecture, no regularizer):")
        st.code(JUDGE_COMMAND, language="bash", wrap_lines=True)
    elif not results:
        st.info("The GAN-test scores the class samples above: choose models and compute their samples first.")
    else:
        judges_by_key = {entry.key: entry for entry in judges}
        keep_valid("lab.gan.judge", list(judges_by_key))
        judge_key = st.selectbox("Judge", list(judges_by_key), key="lab.gan.judge", persist_state="session",
                                 format_func=lambda key: judges_by_key[key].label)
        rows = []
        with readable_errors("The GAN-test could not be computed"):
            judge = lab_model(judges_by_key[judge_key])
            for entry in chosen_generators:
                if entry.key not in results:
                    continue
                model = lab_model(entry)
                test = cached_gan(model, judge, lab_dir_stamp([entry])[0], range(len(model.class_names)), settings)
                if test is None:
                    continue
                rows.append({"model": entry.short_label, "regularizer": regularizer_label(entry.regularizer),
                             "accuracy": test.accuracy.mean, "ci_low": test.accuracy.ci_low,
                             "ci_high": test.accuracy.ci_high, "samples": test.accuracy.n,
                             "paper": PAPER_GAN_TEST.get(entry.regularizer), "per_class": test.per_class})
        if rows:
            st.dataframe(gan_test_table(rows, judges_by_key[judge_key].name), key="lab.gan.table")
            st.plotly_chart(gan_test_figure(rows), key="lab.gan.chart")
            with st.expander("Per class"):
                for row in rows:
                    st.markdown(f"**{row['model']}**")
                    st.dataframe(row["per_class"], hide_index=True)

# --- 4. Density ratio and pixel perturbation ------------------------------------------------------------------------
st.header("4. Density ratio and pixel perturbation", anchor="density-and-perturbation")
st.markdown(
    "If f_y is a log density, it should be highest on real images: adding noise of growing size to test images "
    "should lower f_y, the more so the larger the noise. The curve below averages that change over test images of "
    "their true class (the log of the density ratio; lower is better, exactly 0 without noise).")
st.latex(r"r(\sigma) = \mathbb{E}_{x,\;\eta \sim \mathcal{N}(0, \sigma^2 I)}\big[f_y(x + \eta) - f_y(x)\big]"
         r" = \mathbb{E}\Big[\log \frac{p_\theta(x + \eta \mid y)}{p_\theta(x \mid y)}\Big]")
if not generators:
    st.info("No Softplus model is available: train the lab's models first (the commands in section 3).")
else:
    dataset = dataset_of(chosen_generators[0] if chosen_generators else generators[0])
    n, split = DATA["n"], DATA["split"]
    with st.expander("Measurement settings (the command line's defaults: what its --cache auto fills and the page "
                     "opens on)"):
        n = int(st.number_input(f"images (the first N of the {split} split of {dataset})", min_value=2,
                                max_value=10_000, value=DATA["n"], step=50, key="lab.data.n", persist_state="session"))
    chosen_generators = [entry for entry in chosen_generators if dataset_of(entry) == dataset]
    profiles, curves, judged = {}, {}, {}
    missing_density, missing_curves = [], []
    with readable_errors("The density-ratio profiles could not be read"):
        for entry in chosen_generators:
            profile = cached_density(lab_model(entry), lab_dir_stamp([entry])[0], dataset, n)
            if profile is None:
                missing_density.append(entry)
            else:
                profiles[entry.short_label] = profile
    if not chosen_generators:
        st.info("Choose Softplus models in section 3 to measure them here.")
    if profiles:
        shown = {label: profile.table[profile.table["std"] > 0] for label, profile in profiles.items()}
        st.plotly_chart(curves_figure(shown, "std", "mean", "noise std σ (pixel units, log scale)",
                                      "mean f_y(x + η) − f_y(x)"), key="lab.density.chart")
        st.caption(f"{n} {split} images of {dataset}, {DENSITY['noise_samples']} noise draws per image and level, "
                   "95 % bootstrap bands over the images; σ = 0 (not drawn on the log axis) gives exactly 0.")
    if missing_density:
        st.warning(f"No density-ratio profile yet for {', '.join(entry.name for entry in missing_density)} "
                   f"({n} images: about {DENSITY_SECONDS * n / 200:.0f} s per model of the shipped models' size on one CPU core).")
        if st.button(f"Compute the profiles of {len(missing_density)} model(s)", key="lab.density.compute"):
            def profile(entry, report) -> None:  # type: ignore[no-untyped-def]
                model = lab_model(entry)
                cached_density_profile(model, lab_data(dataset, model.image_size, n), progress=report, **DENSITY)

            compute_with_progress(missing_density, "measuring...", "The density-ratio profiles could not be computed",
                                  "{name}: {done} of {total}", profile)

    st.subheader("Pixel perturbation: are the gradients faithful to the model?")
    st.markdown(
        "Rank the pixels by the gradient (the standard deviation of the signed logit gradient over the colour "
        "channels), replace the least important fraction of them by grey (0.5) and measure the accuracy: a faithful "
        "map removes what the model does not need, so the accuracy holds up longer (higher is better). Left: each "
        "model with its own gradients. Right: the Softplus baseline judged with each model's gradients, so that every "
        "curve asks the same model and only the maps differ (the paper's second experiment).")
    st.latex(r"s(i, j) = \operatorname{std}_c\, \frac{\partial f_y(x)}{\partial x_{c,i,j}}, \qquad "
             r"\text{acc}(k) = \frac{1}{N}\sum_n \mathbb{1}\big[\arg\max f(\tilde x_n^{(k)}) = y_n\big],\quad "
             r"k \in \operatorname{logspace}(-2, 0, 25)")
    baselines = {entry.key: entry for entry in chosen_generators if entry.regularizer == "none"}
    baseline = None
    if baselines:
        keep_valid("lab.perturb.baseline", list(baselines))
        baseline = baselines[st.selectbox(
            "Baseline that judges every model's gradients (the right-hand chart)", list(baselines),
            key="lab.perturb.baseline", persist_state="session", format_func=lambda key: baselines[key].label)]
    with readable_errors("The pixel-perturbation curves could not be read"):
        for entry in chosen_generators:
            model = lab_model(entry)
            stamp = lab_dir_stamp([entry])[0]
            own = cached_curves(model, model, stamp, dataset, n)
            if own is None:
                missing_curves.append((entry, entry))
            else:
                curves[entry.short_label] = own
            if baseline is not None:
                judge = lab_model(baseline)
                found = cached_curves(judge, model, lab_dir_stamp([baseline])[0], dataset, n)
                if found is None:
                    missing_curves.append((baseline, entry))
                else:
                    judged[f"{entry.short_label}'s gradients"] = found
    charts = st.columns(2)
    if not curves and chosen_generators:
        charts[0].info("No model's own curve is computed yet (below).")
    if curves:
        charts[0].plotly_chart(curves_figure({label: result.table for label, result in curves.items()}, "fraction",
                                             "accuracy", "fraction of pixels removed, least salient first (log scale)",
                                             "accuracy", height=480, legend_below=True, y_range=(0, 1.02)),
                               key="lab.perturb.own")
        charts[0].caption("each model judging itself with its own gradients")
    if judged:
        charts[1].plotly_chart(curves_figure({label: result.table for label, result in judged.items()}, "fraction",
                                             "accuracy", "fraction of pixels removed, least salient first (log scale)",
                                             "accuracy of the baseline", height=480, legend_below=True,
                                             y_range=(0, 1.02)), key="lab.perturb.judged")
        charts[1].caption(f"{baseline.short_label} judging every model's gradients")
    elif baseline is None:
        charts[1].info("The judged variant needs the Softplus baseline (regularizer none) among the chosen models.")
    else:
        charts[1].info(f"{baseline.short_label} has not judged the models' gradients yet (below).")
    if curves or judged:
        st.caption(f"{n} {split} images of {dataset}; removed pixels set to {PERTURBATION['constant']}; 95 % bootstrap "
                   "bands over the images.")
    if missing_curves:
        st.warning(f"{len(missing_curves)} pixel-perturbation curve(s) are not computed yet ({n} images: about "
                   f"{PERTURBATION_SECONDS * n / 200:.0f} s each for a model of the shipped models' size on one CPU core).")
        if st.button(f"Compute {len(missing_curves)} curve(s)", key="lab.perturb.compute"):
            def curve(pair, report) -> None:  # type: ignore[no-untyped-def]
                judge, model = lab_model(pair[0]), lab_model(pair[1])
                cached_perturbation(judge, lab_data(dataset, judge.image_size, n), saliency_model=model,
                                    fractions=perturbation_fractions(), constant=PERTURBATION["constant"],
                                    seed=PERTURBATION["seed"], progress=report)

            compute_with_progress(missing_curves, "perturbing...", "The pixel-perturbation curves could not be computed",
                                  "{name}: {done} of {total} images", curve, name=lambda pair: pair[1].name)
