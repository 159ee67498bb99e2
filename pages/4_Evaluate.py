"""Evaluate: score attribution methods and models with metrics. An evaluation is `python -m interpgrad evaluate` in
the background (closing the browser loses nothing); a finished one shows its protocol, summary with confidence
intervals, paired comparisons with verdicts, curves, and the maps of any one of its images."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import streamlit as st
import torch

from appkit import evaluation as views
from appkit.charts import metric_curves, metric_title, summary_bars
from appkit.images import crisp
from appkit.models import default_models, zoo
from appkit.page import page_setup
from appkit.widgets import JOB_BADGES, drop_missing_choices, param_widgets, readable_errors, status_message
from interpgrad.data import DATASETS
from interpgrad.explain import methods as method_registry
from interpgrad.metrics import (CATEGORIES, PRESETS, SPLITS, TARGETS, launch_evaluation, resume_evaluation,
                                stop_evaluation)
from interpgrad.metrics import metrics as metric_registry
from interpgrad.zoo import default_directories

page_setup("Evaluate")
st.title("Evaluate")
st.caption("Score saliency maps with faithfulness, causality, localisation, sanity and complexity metrics, with "
           "confidence intervals and paired comparisons. Each evaluation is `python -m interpgrad evaluate` in the "
           "background: it keeps going when you close the browser, and a finished one reopens instantly.")

ROOT = default_directories()["evaluation"]
METHODS = {name: method for name, method in method_registry().items() if not method.requires}  # not "gad"
NEED_MORE = sorted(name for name, method in method_registry().items() if method.requires)
METRICS = metric_registry()
DEFAULT_METHODS = ["gradient", "guided_backprop", "gradcam", "random", "edge"]
HAS_MASKS = {"shapes", "shapes-hard"}

if "evaluate.flash" in st.session_state:
    st.success(st.session_state.pop("evaluate.flash"))

listed = views.list_all()
if "evaluate.open" not in st.session_state:
    st.session_state["evaluate.open"] = views.default_open(listed)

# --- a new evaluation ---------------------------------------------------------------------------------------------
entries = {entry.key: entry for entry in zoo()}
drop_missing_choices("evaluate.models", list(entries))
drop_missing_choices("evaluate.methods", list(METHODS))


def _changed(values: dict, defaults: dict) -> dict:
    return {name: value for name, value in values.items() if value != defaults.get(name)}


with st.expander("New evaluation", expanded=not listed):
    # Models without a regularizer first: the first model chosen is the baseline the others are compared with.
    ordered = sorted(entries, key=lambda key: entries[key].regularizer != "none")
    model_keys = st.multiselect(
        "Models (the baseline first)", ordered, default=default_models(ordered, entries), key="evaluate.models", persist_state="session",
        format_func=lambda key: entries[key].label,
        help="Models without a regularizer are listed first. Every model is compared with each model chosen before it.")
    if len(model_keys) >= 2:
        st.caption(f"Baseline: **{entries[model_keys[0]].short_label}** · compared with it: "
                   + ", ".join(entries[key].short_label for key in model_keys[1:])
                   + ". The first model you choose is the baseline; each model is compared with every model before it.")
    elif model_keys:
        st.caption("One model: its methods are scored and compared with each other; choose a second model to compare "
                   "models (the first one chosen is the baseline).")

    method_names = st.multiselect(
        "Methods", list(METHODS), default=[name for name in DEFAULT_METHODS if name in METHODS], key="evaluate.methods",
        persist_state="session", format_func=lambda name: f"{name} ({METHODS[name].family})")
    st.caption("The controls random (noise) and edge (an edge detector) are evaluated last: every method is compared "
               "with them, which shows whether it beats a map that knows nothing about the model.")
    if NEED_MORE:
        st.caption(f"{', '.join(NEED_MORE)} is not offered here: it needs support models trained for a model; "
                   "the GAD & regions page trains them, explains with them and measures their regions.")

    data_columns = st.columns([2, 3, 1, 1])
    dataset = data_columns[0].selectbox("Dataset", DATASETS, key="evaluate.dataset", persist_state="session",
                                        help="shapes: synthetic, with a ground-truth mask per image (needed by the "
                                             "localisation metrics)")
    data_root = data_columns[1].text_input("Data folder", key="evaluate.data_root", persist_state="session",
                                           disabled=dataset in HAS_MASKS,
                                           help="the folder containing cifar-10-batches-py / cifar-100-python, or "
                                                "class subfolders")
    split = data_columns[2].selectbox("Split", SPLITS, key="evaluate.split", persist_state="session",
                                      help="val (default), test or train; CIFAR's val and test are its test set")
    n = data_columns[3].number_input("N (images)", 1, 100_000, 100, key="evaluate.n", persist_state="session",
                                     help="the first N images of the split; every model sees the same ones")

    st.markdown("**Metrics** — ↑ higher is better, ↓ lower is better")
    metric_names: list[str] = []
    for category in CATEGORIES:
        names = [name for name, metric in METRICS.items() if metric.category == category]
        needs_masks = any(METRICS[name].needs_masks for name in names)
        chosen = st.pills(
            category + (" (needs ground-truth masks: shapes)" if needs_masks else ""), names, selection_mode="multi",
            default=names, key=f"evaluate.metrics.{category}", persist_state="session",
            format_func=lambda name: f"{name} {METRICS[name].arrow}",
            help="\n\n".join(f"**{name}** {METRICS[name].arrow} — {METRICS[name].description}" for name in names))
        if needs_masks and chosen and dataset not in HAS_MASKS:
            st.warning(f"{dataset} has no ground-truth masks: deselect the localisation metrics (or evaluate on "
                       "shapes) to start.")
        metric_names += chosen

    options_columns = st.columns([2, 3])
    preset_choices = ["none", *PRESETS]
    preset_choice = options_columns[0].selectbox(
        "Preset", preset_choices, key="evaluate.preset", persist_state="session",
        format_func=lambda name: "none (each metric's defaults)" if name == "none" else name,
        help="a named protocol from a paper: parameter values and the explained class")
    preset = None if preset_choice == "none" else preset_choice
    if preset:
        options_columns[0].caption(PRESETS[preset]["description"])
    preset_target = PRESETS[preset].get("target", "predicted") if preset else "predicted"
    target = options_columns[1].radio(
        "Target class", TARGETS, index=TARGETS.index(preset_target), horizontal=True,
        key=f"evaluate.target.{preset_choice}", persist_state="session",
        format_func=lambda name: "predicted class" if name == "predicted" else "label (ground truth)",
        help="the class every map explains and every metric scores")

    metric_defaults = views.effective_metric_defaults(preset)
    metric_params: dict[str, dict] = {}
    with st.expander("Metric parameters" + (f" (starting from the {preset} preset)" if preset else "")):
        shown = [name for name in metric_names if METRICS[name].params]
        if not shown:
            st.caption("None of the chosen metrics has parameters.")
        for name in shown:
            metric = METRICS[name]
            st.markdown(f"**{metric_title(name, metric.to_dict())}** — {metric.description}")
            declared = [dataclasses.replace(param, default=metric_defaults[name][param.name])
                        for param in metric.params]
            values = param_widgets(declared, f"evaluate.param.{preset_choice}.{name}", columns=3)
            if _changed(values, metric_defaults[name]):
                metric_params[name] = _changed(values, metric_defaults[name])

    method_params: dict[str, dict] = {}
    with st.expander("Method parameters"):
        shown = [name for name in method_names if METHODS[name].params]
        if not shown:
            st.caption("None of the chosen methods has parameters.")
        for name in shown:
            st.markdown(f"**{name}** — {METHODS[name].description}")
            defaults = {param.name: param.default for param in METHODS[name].params}
            values = param_widgets(METHODS[name].params, f"evaluate.method_param.{name}", columns=3)
            if _changed(values, defaults):
                method_params[name] = _changed(values, defaults)

    with st.expander("Advanced"):
        advanced = st.columns(3)
        devices = ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        device = advanced[0].selectbox("Device", devices, key="evaluate.device", persist_state="session",
                                       help="auto: the GPU when there is one")
        batch_size = advanced[0].number_input("Images per unit of work", 1, 4096, 32, key="evaluate.batch_size",
                                              persist_state="session",
                                              help="maps are computed this many images at a time; a stopped evaluation "
                                                   "resumes from the last finished unit")
        seed = advanced[1].number_input("Seed", 0, 2**31 - 1, 0, key="evaluate.seed", persist_state="session",
                                        help="of the bootstrap and of every random draw")
        confidence = advanced[1].select_slider("Confidence level", [0.8, 0.9, 0.95, 0.99], value=0.95,
                                               key="evaluate.confidence")
        resamples = advanced[2].number_input("Bootstrap resamples", 100, 100_000, 2000, step=500,
                                             key="evaluate.resamples", persist_state="session")
        judges = ["itself", *entries]
        judge = advanced[2].selectbox(
            "Judge of pixel perturbation", judges, key="evaluate.judge", persist_state="session",
            format_func=lambda key: "each model itself" if key == "itself" else entries[key].label,
            help="a model whose predictions score the perturbed images of every model (Srinivas & Fleuret)")

    name = st.text_input("Evaluation name", value=f"evaluation-{time.strftime('%m%d-%H%M%S')}", key="evaluate.name",
                         persist_state="session", help=f"its folder in {ROOT}")
    if st.button("Start evaluation", type="primary", key="evaluate.start"):
        with readable_errors("The evaluation was not started"):
            chosen_entries = [entries[key] for key in model_keys]
            views.check_choices(chosen_entries, method_names, metric_names, dataset, data_root, split, int(n))
            methods = ([name for name in method_names if name not in views.CONTROLS]
                       + [name for name in method_names if name in views.CONTROLS])
            options = {
                "checkpoints": [str(entry.path) for entry in chosen_entries], "methods": methods,
                "metrics": metric_names, "dataset": dataset,
                "data_root": (data_root.strip() or None) if dataset not in HAS_MASKS else None, "split": split, "n": int(n),
                "preset": preset, "target": target,
                "params": metric_params, "method_params": method_params, "seed": int(seed),
                "batch_size": int(batch_size), "device": device, "confidence": float(confidence),
                "resamples": int(resamples), "judge": str(entries[judge].path) if judge != "itself" else None,
            }
            folder, _ = launch_evaluation(options, ROOT, name.strip())
            st.session_state["evaluate.open"] = str(folder.path)
            st.session_state["evaluate.flash"] = (f"Started {folder.name}: it runs in the background and opens below "
                                                  "when it finishes.")
            del st.session_state["evaluate.name"]  # the next evaluation gets a fresh default name
            st.rerun()


# --- the evaluations, live ----------------------------------------------------------------------------------------


def _state(status: dict) -> str:
    return "new" if status.get("state") == "running" and status.get("starting") else status.get("state", "new")


def _what(config: dict | None) -> str:
    if not config:
        return ""
    counts = [(len(config.get(key) or []), word) for key, word in (("checkpoints", "model"), ("methods", "method"),
                                                                  ("metrics", "metric"))]
    return (" × ".join(f"{count} {word}{'s' if count != 1 else ''}" for count, word in counts)
            + f" · {config.get('dataset')} {config.get('split', 'val')}, N = {config.get('n')}")


def _progress_text(status: dict, key: str) -> str:
    """``done of total units · what it is doing · about how long is left``; the rate is measured from the first time
    this session saw the process (a resumed evaluation counts the units of its earlier run as done)."""
    done, total = int(status.get("done") or 0), int(status.get("total") or 0)
    text = f"{done} of {total} units"
    if status.get("message") and status.get("message") not in ("starting", "stopped"):
        text += f" · {status['message']}"
    if status.get("state") == "running" and not status.get("starting") and done < total:
        seen = st.session_state.setdefault("evaluate.rates", {})
        pid, first_done, first_time = seen.setdefault(key, (status.get("pid"), done, time.time()))
        if pid != status.get("pid"):
            seen[key] = (status.get("pid"), done, time.time())
        elif done > first_done:
            left = (time.time() - first_time) / (done - first_done) * (total - done)
            text += f" · about {left:.0f} s left" if left < 120 else f" · about {left / 60:.0f} min left"
    return text


def _show_listed(item: views.Listed, status: dict) -> None:
    state, folder = _state(status), item.folder
    config = folder.read_config()
    line, *buttons = st.columns([8, 1, 1], vertical_alignment="center")
    what = _what(config)
    line.markdown(f"**{item.label}** {JOB_BADGES.get(state, state)}" + (f" · {what}" if what else ""))
    key = f"{item.source}.{folder.name}"
    if state == "finished":
        showing = st.session_state.get("evaluate.open") == item.key
        if buttons[0].button("Showing" if showing else "Open", key=f"evaluate.open.{key}", disabled=showing,
                             type="tertiary" if showing else "secondary"):
            st.session_state["evaluate.open"] = item.key
            st.rerun()
    elif status.get("total"):
        fraction = min(1.0, int(status.get("done") or 0) / max(1, int(status["total"])))
        st.progress(fraction, text=_progress_text(status, item.key))
    if state in ("failed", "interrupted", "stopped") and status.get("reason"):
        (st.error if state == "failed" else st.warning)(status_message(status))
    if item.source != "yours":
        return
    if state in ("running", "new") and buttons[0].button("Stop", key=f"evaluate.stop.{key}",
                                                          help="stops after the current unit; it can be resumed"):
        if stop_evaluation(folder):
            st.toast(f"Stopping {folder.name} after its current unit; Resume continues it.")
        else:
            st.warning(f"{folder.name} is not running.")
    if state in ("stopped", "failed", "interrupted") and folder.can_resume():
        if buttons[0].button("Resume", key=f"evaluate.resume.{key}", help="continues from the last finished unit"):
            with readable_errors(f"{folder.name} was not resumed"):
                resume_evaluation(folder)
                st.session_state["evaluate.open"] = item.key
                st.rerun()
    if state != "finished" and folder.log_path.is_file():
        with st.expander("log"):
            st.code(folder.log_path.read_text(errors="replace")[-3000:] or "(empty)")


@st.fragment(run_every=2)
def evaluations_panel() -> None:
    everything = views.list_all()
    if not everything:
        st.info("No evaluations yet: start one above. Evaluations shipped with the project appear here too.")
        return
    statuses = {item.key: item.folder.read_status() for item in everything}
    # The results below are drawn by a full run of the page: when the open evaluation changes state (it finished,
    # failed, was stopped), or one finishes while none is open, a run of this panel alone runs the whole page again.
    full_run = st.session_state.pop("evaluate.full_run", False)
    open_key = st.session_state.get("evaluate.open")
    if open_key is None:
        finished = [item.key for item in everything if _state(statuses[item.key]) == "finished"]
        if finished:
            st.session_state["evaluate.open"] = open_key = finished[0]
    current = (open_key, _state(statuses[open_key])) if open_key in statuses else None
    if not full_run and current != st.session_state.get("evaluate.shown"):
        st.rerun()
    with st.container(height=420 if len(everything) > 6 else "content"):
        for item in everything:
            with st.container(border=True):
                _show_listed(item, statuses[item.key])


st.subheader("Evaluations")
st.session_state["evaluate.full_run"] = True
evaluations_panel()


# --- a finished evaluation ----------------------------------------------------------------------------------------
def _height(rows: int, most: int = 20) -> int:
    """A table tall enough for ``rows`` rows (up to ``most``; it scrolls beyond)."""
    return 38 + 35 * min(max(rows, 1), most)


def _show_summary(evaluation) -> None:  # type: ignore[no-untyped-def]
    if evaluation.summary.empty:
        st.info("This evaluation has no values: every method failed on every model (the reasons are above).")
        return
    table, level = views.summary_table(evaluation), evaluation.protocol.get("statistics", {}).get("confidence", 0.95)
    st.dataframe(table, hide_index=True, key="evaluate.summary_table", height=_height(len(table)),
                 column_config={"mean": st.column_config.NumberColumn(format="%.4g"),
                                "interval": st.column_config.TextColumn(f"{level:.0%} interval"),
                                "n": st.column_config.NumberColumn(help="images with a value"),
                                "excluded": st.column_config.NumberColumn(
                                    help="images where the metric is undefined (an empty mask, a constant map)")})
    st.plotly_chart(summary_bars(evaluation.summary, evaluation.metrics, evaluation.models, evaluation.methods),
                    key="evaluate.bars")
    st.caption(f"Bars: the mean over the images; whiskers: its {level:.0%} bootstrap confidence interval. "
               "↑ higher is better, ↓ lower is better.")


def _show_models(evaluation) -> None:  # type: ignore[no-untyped-def]
    if len(evaluation.models) < 2:
        st.info("One model in this evaluation: there is no model comparison. Evaluate two or more models (the "
                "baseline first) to compare them.")
        return
    for sentence in views.headline_sentences(evaluation):
        st.markdown(sentence)
    table = views.comparison_table(evaluation)
    st.dataframe(views.style_verdicts(table), hide_index=True, key="evaluate.comparison_table",
                 height=_height(len(table)),
                 column_config={"difference": st.column_config.NumberColumn(format="%.4g",
                                                                            help="mean of model - against, per image"),
                                "p-value": st.column_config.NumberColumn(format="%.3g",
                                                                         help="two-sided Wilcoxon signed-rank")})
    alpha = evaluation.protocol.get("statistics", {}).get("alpha", 0.05)
    st.caption("Each model against every model listed before it, on the same images: the mean per-image difference "
               "with its paired-bootstrap interval, and the Wilcoxon p-value. The verdict (for the first model) is "
               ":green-background[better] or :red-background[worse] when the interval excludes 0 and p < "
               f"{alpha}, otherwise :gray-background[no clear difference] "
               "(not corrected for the number of comparisons).")


def _show_methods(evaluation) -> None:  # type: ignore[no-untyped-def]
    controls = views.control_table(evaluation)
    if controls.empty:
        st.info("No control maps in this evaluation: add random and edge to see which methods beat chance.")
    else:
        for sentence in views.control_sentences(evaluation):
            st.markdown(sentence)
        metric_columns = [column for column in controls.columns if column not in ("model", "method", "against")]
        st.dataframe(views.style_verdicts(controls, metric_columns), hide_index=True, key="evaluate.control_table")
        st.caption("Each method against each control, per metric: :green-background[better] (beats the control), "
                   ":red-background[worse], :gray-background[no clear difference].")
    table = views.method_comparison_table(evaluation)
    if not table.empty:
        with st.expander("Every method against every method listed after it", expanded=controls.empty):
            st.dataframe(views.style_verdicts(table), hide_index=True, key="evaluate.method_table",
                         column_config={"difference": st.column_config.NumberColumn(format="%.4g"),
                                        "p-value": st.column_config.NumberColumn(format="%.3g")})


def _show_curves(evaluation) -> None:  # type: ignore[no-untyped-def]
    names = [name for name in evaluation.metrics if (evaluation.curves["metric"] == name).any()]
    if not names:
        st.info("None of this evaluation's metrics has a curve (insertion, deletion, pixel perturbation and "
                "randomisation do).")
    for name in names:
        info = evaluation.metrics[name]
        st.plotly_chart(metric_curves(evaluation.curves, name, info, evaluation.models, evaluation.methods),
                        key=f"evaluate.curves.{name}")
        st.caption(f"{metric_title(name, info)}: {info.get('protocol')}")


def _pick_image(key: str, position: int) -> None:
    st.session_state[key] = position


def _show_image(evaluation) -> None:  # type: ignore[no-untyped-def]
    data = views.evaluation_images(evaluation)
    ids = list(evaluation.protocol["data"]["images"])
    names = data.class_names
    key = f"evaluate.image.{evaluation.folder.path}"
    if st.session_state.get(key, 0) >= len(ids):
        st.session_state[key] = 0
    top = st.columns([2, 2, 2, 2])
    position = top[0].selectbox("Image", range(len(ids)), key=key,
                                format_func=lambda i: f"{ids[i]} · {names[int(data.labels[i])]}")
    model = top[1].selectbox("Model", evaluation.models, key="evaluate.rank.model")
    method = top[2].selectbox("Method", evaluation.methods, key="evaluate.rank.method")
    metric = top[3].selectbox("Metric", list(evaluation.metrics), key="evaluate.rank.metric",
                              format_func=lambda name: metric_title(name, evaluation.metrics[name]))
    best, worst = views.ranked_images(evaluation, model, method, metric, count=min(5, len(ids) // 2))
    with st.expander(f"Best and worst images: {model}, {method}, {metric_title(metric, evaluation.metrics[metric])}",
                     expanded=True):
        for title, rows in (("best", best), ("worst", worst)):
            slots = st.columns(len(rows) + 1 if len(rows) else 1)
            slots[0].markdown(f"**{title}**")
            for slot, (image_id, value) in zip(slots[1:], zip(rows["image"], rows["value"])):
                index = ids.index(str(image_id))
                slot.image(crisp(data.images[index], 96), caption=f"image {image_id}: {value:.3g}", width=96)
                slot.button("Show", key=f"evaluate.show.{title}.{image_id}", on_click=_pick_image, args=(key, index))
    image, mask, label, rows = views.image_maps(evaluation, position)
    image_id = ids[position]
    st.markdown(f"**Image {image_id}** ({label}) — the maps recomputed with the recorded parameters and target; "
                f"under each map its {metric_title(metric, evaluation.metrics[metric])} on this image.")
    results = evaluation.results
    scores = results[(results["image"] == str(image_id)) & (results["metric"] == metric)]
    values = {(m, me): v for m, me, v in zip(scores["model"], scores["method"], scores["value"])}
    pictures = [crisp(image, 128)] + ([crisp(np.repeat((mask * 255).astype(np.uint8)[..., None], 3, axis=2), 128)]
                                      if mask is not None else [])
    st.image(pictures, caption=["input", "ground truth"][:len(pictures)], width=128)
    for row in rows:
        predicted = f" — target: {row.target} · predicted: {row.prediction}" if row.target else ""
        heading = f"**{row.model}**{predicted}"
        st.markdown(heading)
        if row.warning:
            st.warning(row.warning)
        if not row.maps:
            continue
        slots = st.columns(max(len(row.maps), 5))
        for slot, (method_name, picture) in zip(slots, row.maps.items()):
            value = values.get((row.model, method_name))
            score = f"{value:.3g}" if value is not None and np.isfinite(value) else "—"
            if picture is None:
                slot.warning(f"{method_name}: {row.errors.get(method_name)}")
            else:
                slot.image(crisp(picture, 160), caption=f"{method_name} · {metric} {score}", width="stretch")
    st.markdown(f"**Scores of image {image_id}**")
    st.dataframe(views.image_scores(evaluation, image_id), hide_index=True, key="evaluate.image_scores")


def _show_downloads(evaluation) -> None:  # type: ignore[no-untyped-def]
    folder = evaluation.folder
    tables = (folder.results_path, folder.summary_path, folder.comparisons_path, folder.method_comparisons_path,
              folder.curves_path)
    files = [*((path, "application/gzip" if path.suffix == ".gz" else "text/csv") for path in tables),
             (folder.json_path, "application/json"), *((path, "image/png") for path in folder.plots())]
    st.caption(f"The evaluation's folder: `{folder.path}`")
    slots = st.columns(4)
    for index, (path, mime) in enumerate(path for path in files if path[0].is_file()):
        label = f"plots/{path.name}" if path.parent == folder.plots_path else path.name
        slots[index % 4].download_button(label, data=path.read_bytes, file_name=f"{folder.name}-{path.name}",
                                         mime=mime, key=f"evaluate.download.{label}", on_click="ignore",
                                         icon=":material/download:")
    st.download_button("Everything (ZIP)", data=lambda: views.folder_zip(folder), file_name=f"{folder.name}.zip",
                       mime="application/zip", key="evaluate.download.zip", on_click="ignore", type="primary",
                       icon=":material/folder_zip:")
    if folder.plots():
        with st.expander("The plots in the folder (PNG)"):
            for path in folder.plots():
                st.image(str(path), caption=path.name)


def show_evaluation(item: views.Listed) -> None:
    with readable_errors(f"{item.label} cannot be shown"):
        evaluation = views.load(item.folder)
        st.subheader(f"{item.label}")
        st.markdown("\n".join(f"- {line}" for line in views.protocol_lines(evaluation)))
        with st.container(border=True, height=190):
            lines = [f"- **{metric_title(name, info)}** ({info.get('category')}): {info.get('protocol')}. "
                     f"_{info.get('source')}_" for name, info in evaluation.metrics.items()]
            st.markdown("**How each metric was measured** (every number below comes with this protocol)\n\n"
                        + "\n".join(lines))
        for problem in evaluation.protocol.get("problems") or []:
            metric = f", {problem['metric']}" if problem.get("metric") else ""
            what = f"{problem['method']} on {problem['model']}{metric}"
            st.warning(f"{what}: no values ({problem['reason']})")
        tabs = st.tabs(["Summary", "Models compared", "Methods compared", "Curves", "One image", "Downloads"],
                       key="evaluate.tabs")
        for tab, show in zip(tabs, (_show_summary, _show_models, _show_methods, _show_curves, _show_image,
                                    _show_downloads)):
            with tab, readable_errors("This view could not be drawn"):
                show(evaluation)


open_key = st.session_state.get("evaluate.open")
opened = next((item for item in listed if item.key == open_key), None)
if opened is None:
    st.session_state["evaluate.shown"] = None
    if any(item.folder.finished() for item in listed):
        st.info("Open a finished evaluation above to see its results.")
elif not opened.folder.finished():
    state = _state(opened.folder.read_status())
    st.session_state["evaluate.shown"] = (opened.key, state)
    st.info(f"{opened.label} is {'starting' if state == 'new' else state}: its results appear here when it finishes.")
else:
    st.session_state["evaluate.shown"] = (opened.key, "finished")
    show_evaluation(opened)
