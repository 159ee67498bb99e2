"""Train: launch training runs in the background (the trainer's CLI), watch them live, stop and resume them."""

from __future__ import annotations

import time

import streamlit as st
import torch

from appkit.charts import training_curves
from appkit.widgets import param_widgets, readable_errors
from interpgrad.data import DATASETS
from interpgrad.models import architectures
from interpgrad.regularizers import REGULARIZERS
from interpgrad.training import RunDir, launch_run, list_runs, resume_run, stop_run
from interpgrad.training.config import OPTIMIZERS, SCHEDULES
from interpgrad.zoo import default_directories

st.set_page_config(page_title="interpgrad · Train", layout="wide")
st.title("Train")
st.caption("Each run is `python -m interpgrad train` in the background: it keeps going when you close the browser, "
           "and appears among the models after its first epoch.")

RUNS = default_directories()["run"]

if "train.flash" in st.session_state:
    st.success(st.session_state.pop("train.flash"))

with st.expander("New run", expanded=not list(list_runs(RUNS))):
    regularizer = st.selectbox("Regularizer", list(REGULARIZERS), index=list(REGULARIZERS).index("guided"),
                               format_func=lambda name: f"{name} — {REGULARIZERS[name].description}", key="train.regularizer", persist_state="session")
    params = param_widgets(REGULARIZERS[regularizer].params, f"train.reg.{regularizer}")
    left, middle, right = st.columns(3)
    arch = left.selectbox("Architecture", list(architectures()), key="train.arch", persist_state="session",
                          help="CIFAR-style models train on small images; torchvision models expect ~224 px")
    width = left.select_slider("Width", options=[0.125, 0.25, 0.5, 0.75, 1.0], value=0.25, key="train.width", persist_state="session",
                               disabled=architectures()[arch].family != "cifar")
    dataset = middle.selectbox("Dataset", DATASETS, key="train.dataset", persist_state="session", help="shapes: synthetic, with ground-truth masks")
    data_root = middle.text_input("Data folder", key="train.data_root", persist_state="session", disabled=dataset == "shapes",
                                  help="the folder containing cifar-10-batches-py / cifar-100-python, or class subfolders")
    download = middle.checkbox("Download CIFAR into it", key="train.download", persist_state="session", disabled=not dataset.startswith("cifar"))
    image_size = middle.selectbox("Image size", [32, 64, 96, 128, 224], key="train.image_size", persist_state="session",
                                  index=1 if dataset == "imagefolder" else 0)
    epochs = right.number_input("Epochs", 1, 1000, 3, key="train.epochs", persist_state="session")
    n_train = right.number_input("Training images (0 = all)", 0, 10_000_000, 10000 if dataset == "shapes" else 0,
                                 step=256, key="train.n_train", persist_state="session")
    devices = ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    device = right.selectbox("Device", devices, key="train.device", persist_state="session", help="auto: the GPU when there is one")
    with st.expander("Optimisation"):
        o1, o2, o3 = st.columns(3)
        batch_size = o1.number_input("Batch size", 2, 4096, 64, key="train.batch_size", persist_state="session")
        lr = o1.number_input("Learning rate", 1e-6, 10.0, 0.05, format="%g", key="train.lr", persist_state="session")
        optimizer = o2.selectbox("Optimizer", OPTIMIZERS, key="train.optimizer", persist_state="session")
        schedule = o2.selectbox("Schedule", SCHEDULES, index=SCHEDULES.index("cosine"), key="train.schedule", persist_state="session")
        weight_decay = o3.number_input("Weight decay", 0.0, 1.0, 5e-4, format="%g", key="train.weight_decay", persist_state="session")
        seed = o3.number_input("Seed", 0, 2**31 - 1, 0, key="train.seed", persist_state="session")
    default_name = f"{regularizer}-{arch}-{time.strftime('%m%d-%H%M%S')}"
    name = st.text_input("Run name", value=default_name, key="train.name", persist_state="session")
    if st.button("Start training", type="primary", key="train.start"):
        options = {
            "arch": arch, "width": width if architectures()[arch].family == "cifar" else 1.0, "dataset": dataset,
            "data_root": data_root or None, "download": download, "image_size": image_size,
            "n_train": int(n_train) or None, "regularizer": regularizer, "regularizer_params": params,
            "epochs": int(epochs), "batch_size": int(batch_size), "lr": float(lr), "optimizer": optimizer,
            "schedule": schedule, "weight_decay": float(weight_decay), "seed": int(seed), "device": device,
            "warmup_epochs": 0.5 if schedule == "cosine" else 0.0, "alignment_samples": 256,
        }
        with readable_errors("The run was not started"):
            run, _ = launch_run(options, RUNS, name.strip())
            st.session_state["train.flash"] = f"Started {run.name}."
            del st.session_state["train.name"]  # the next run gets a fresh default name
            st.rerun()


def _progress(status: dict) -> float:
    epochs, steps = status.get("epochs") or 1, status.get("steps_per_epoch") or 1
    return min(1.0, (status.get("epoch", 0) + status.get("step", 0) / steps) / epochs)


_BADGES = {"running": "🟢 running", "finished": "✅ finished", "failed": "❌ failed", "stopped": "⏸ stopped",
           "interrupted": "⚠️ interrupted", "new": "… starting"}


def _show_run(run: RunDir) -> None:
    status = run.read_status()
    state = status.get("state", "new")
    label = "starting" if status.get("starting") else f"epoch {status.get('epoch', 0)}/{status.get('epochs', '?')}"
    st.markdown(f"**{run.name}** — {_BADGES.get(state, state)} · {label}")
    st.progress(_progress(status), text=f"step {status.get('step', 0)}/{status.get('steps_per_epoch', '?')} of the current epoch"
                if state == "running" else None)
    if status.get("reason"):
        (st.error if state == "failed" else st.warning)(status["reason"])
    buttons = st.columns(6)
    if state == "running" and buttons[0].button("Stop", key=f"stop.{run.name}", help="saves and stops after the current step"):
        stop_run(run)
    if state in ("stopped", "failed", "interrupted") and run.can_resume():
        if buttons[0].button("Resume", key=f"resume.{run.name}"):
            with readable_errors(f"{run.name} was not resumed"):
                resume_run(run)
    metrics = run.read_metrics()
    if metrics:
        st.plotly_chart(training_curves({run.name: metrics}, height=260), key=f"curves.{run.name}")
    if run.log_path.is_file():
        with st.expander("log"):
            st.code(run.log_path.read_text(errors="replace")[-3000:] or "(empty)")


@st.fragment(run_every=2)
def runs_panel() -> None:
    runs = list(list_runs(RUNS))
    if not runs:
        st.info("No runs yet.")
    for run in runs:
        with st.container(border=True):
            _show_run(run)


st.subheader("Runs")
runs_panel()
