"""Train: launch training runs in the background (the trainer's CLI), watch them live, stop, resume and delete them."""

from __future__ import annotations

import time

import streamlit as st
import torch

from appkit.charts import training_curves
from appkit.models import confirm_deletion
from appkit.page import page_setup
from appkit.training import follow_default
from appkit.widgets import JOB_BADGES, param_widgets, readable_errors, status_message
from interpgrad.data import DATASETS, SHAPES_DATASETS
from interpgrad.data.shapes import SPLIT_SIZES
from interpgrad.models import architectures
from interpgrad.regularizers import REGULARIZERS
from interpgrad.training import RunDir, RunProgress, delete_run, launch_run, list_runs, resume_run, stop_run
from interpgrad.training.config import OPTIMIZERS, SCHEDULES
from interpgrad.zoo import default_directories

page_setup("Train")
st.title("Train")
st.caption("Each run is `python -m interpgrad train` in the background: it keeps going when you close the browser, "
           "and appears among the models after its first epoch.")

RUNS = default_directories()["run"]
IMAGE_SIZES = [32, 64, 96, 128, 224]

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
    cifar = dataset.startswith("cifar")
    data_root = middle.text_input("Data folder", key="train.data_root", persist_state="session", disabled=dataset in SHAPES_DATASETS,
                                  help="the folder containing cifar-10-batches-py / cifar-100-python, or class subfolders")
    download = middle.checkbox("Download CIFAR into it", key="train.download", persist_state="session", disabled=not cifar)
    # Image size and the number of training images follow the dataset (CIFAR images are 32 px; CIFAR and image
    # folders train on all their images by default), unless changed for that dataset.
    follow_default("train.image_size", dataset, 64 if dataset == "imagefolder" else 32)
    image_size = middle.selectbox("Image size", [32] if cifar else IMAGE_SIZES, key="train.image_size", persist_state="session",
                                  disabled=cifar, help="CIFAR images are 32 px" if cifar else "images are resized to this size")
    epochs = right.number_input("Epochs", 1, 1000, 3, key="train.epochs", persist_state="session")
    follow_default("train.n_train", dataset, SPLIT_SIZES["train"] if dataset in SHAPES_DATASETS else 0)
    n_train = right.number_input("Training images (0 = all)", 0, 10_000_000, step=256, key="train.n_train",
                                 persist_state="session")
    devices = ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    device = right.selectbox("Device", devices, key="train.device", persist_state="session", help="auto: the GPU when there is one")
    with st.expander("Optimisation"):
        o1, o2, o3 = st.columns(3)
        batch_size = o1.number_input("Batch size", 2, 4096, 64, key="train.batch_size", persist_state="session")
        lr = o1.number_input("Learning rate", 1e-6, 10.0, 0.05, format="%g", key="train.lr", persist_state="session")
        optimizer = o2.selectbox("Optimizer", OPTIMIZERS, key="train.optimizer", persist_state="session")
        schedule = o2.selectbox("Schedule", SCHEDULES, index=SCHEDULES.index("cosine"), key="train.schedule", persist_state="session")
        clip = o2.number_input("Gradient clipping (0 = off)", 0.0, 1e6, 0.0, format="%g", key="train.clip_grad_norm",
                               persist_state="session", help="the largest gradient norm of a step (larger ones are scaled down)")
        weight_decay = o3.number_input("Weight decay", 0.0, 1.0, 5e-4, format="%g", key="train.weight_decay", persist_state="session")
        seed = o3.number_input("Seed", 0, 2**31 - 1, 0, key="train.seed", persist_state="session")
        has_lam = any(param.name == "lam" for param in REGULARIZERS[regularizer].params)
        lam_warmup = o3.number_input("Lambda warm-up epochs", 0.0, 1000.0, 0.0, format="%g", key="train.lam_warmup_epochs",
                                     persist_state="session", disabled=not has_lam,
                                     help="lambda ramps linearly from 0 over these first epochs")
        init = o1.text_input("Fine-tune checkpoint (optional)", key="train.init", persist_state="session",
                             help="a model.safetensors (or its run folder) of the same architecture and classes; "
                                  "the paper fine-tunes with Adam, lr 1e-5, 5 epochs")
    default_name = f"{regularizer}-{arch}-{time.strftime('%m%d-%H%M%S')}"
    name = st.text_input("Run name", value=default_name, key="train.name", persist_state="session")
    if st.button("Start training", type="primary", key="train.start"):
        options = {
            "arch": arch, "width": width if architectures()[arch].family == "cifar" else 1.0, "dataset": dataset,
            "data_root": data_root or None, "download": download, "image_size": image_size,
            "n_train": int(n_train) or None, "regularizer": regularizer, "regularizer_params": params,
            "epochs": int(epochs), "batch_size": int(batch_size), "lr": float(lr), "optimizer": optimizer,
            "schedule": schedule, "weight_decay": float(weight_decay), "seed": int(seed), "device": device,
            "clip_grad_norm": float(clip) or None, "warmup_epochs": 0.5 if schedule == "cosine" else 0.0,
            "alignment_samples": 256, "lam_warmup_epochs": float(lam_warmup) if has_lam else 0.0,
            "init": init.strip() or None,  # threads: the launcher divides the cores among the running runs
        }
        with readable_errors("The run was not started"):
            run, _ = launch_run(options, RUNS, name.strip())
            st.session_state["train.started"] = run.name
            del st.session_state["train.name"]  # the next run gets a fresh default name
            st.rerun()


_MESSAGE = {"failed": st.error, "interrupted": st.warning}  # any other state's reason is information
_FLASH_SECONDS = 10


def _show_run(run: RunDir) -> None:
    status = run.read_status()
    state = status.get("state", "new")
    progress = RunProgress.from_status(status)
    st.markdown(f"**{run.name}** — {JOB_BADGES.get(state, state)}")
    st.progress(progress.fraction, text=progress.describe())
    message = status_message(status)
    if message:
        _MESSAGE.get(state, st.info)(message)
    slots = iter(st.columns(6))  # the buttons that apply, side by side
    if state == "running" and next(slots).button("Stop", key=f"stop.{run.name}", help="saves and stops after the current step"):
        stop_run(run)
    if state in ("stopped", "failed", "interrupted") and run.can_resume():
        if next(slots).button("Resume", key=f"resume.{run.name}"):
            with readable_errors(f"{run.name} was not resumed"):
                resume_run(run)
    if state != "running" and next(slots).button("Delete", key=f"delete.{run.name}", help="asks to confirm first"):
        st.session_state["train.delete"] = run.name
    if confirm_deletion("train.delete", run.name, run.name, "Its checkpoint, curves and log are removed, and it leaves "
                        "the models.", f"delete.{run.name}"):
        with readable_errors(f"{run.name} was not deleted"):
            delete_run(run)
            st.session_state["train.flash"] = (f"Deleted {run.name}.", time.time())
            st.rerun()
    metrics = run.read_metrics()
    if metrics:
        st.plotly_chart(training_curves({run.name: metrics}, height=260), key=f"curves.{run.name}")
    if run.log_path.is_file():
        with st.expander("log"):
            st.code(run.log_path.read_text(errors="replace")[-3000:] or "(empty)")


def _started_banner(runs: list[RunDir]) -> None:
    """"Started <run>." while the run this session started is starting or running; gone once it has ended."""
    started = st.session_state.get("train.started")
    run = next((run for run in runs if run.name == started), None)
    if run is not None and run.read_status().get("state") in ("new", "running"):
        st.success(f"Started {run.name}.")
    else:
        st.session_state.pop("train.started", None)


@st.fragment(run_every=2)
def runs_panel() -> None:
    runs = list(list_runs(RUNS))
    if "train.flash" in st.session_state:  # what a button of a run left ("Deleted <run>."), for a few refreshes
        text, since = st.session_state["train.flash"]
        if time.time() - since < _FLASH_SECONDS:
            st.success(text)
        else:
            del st.session_state["train.flash"]
    _started_banner(runs)
    if not runs:
        st.info("No runs yet.")
    for run in runs:
        with st.container(border=True):
            _show_run(run)


st.subheader("Runs")
runs_panel()
