"""The GAD & regions page's helpers: where GAD runs live, loading them once (cached, lock-guarded), one image's GAD
explanation with its convex-hull regions, RC and RS, and the views of a run's dataset study.

Everything computed here comes from the library (``interpgrad.gad``, ``interpgrad.regions``); this module only
prepares it for the page (display images, table rows). Our reading of the GAD paper: no number is the paper's."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import streamlit as st
import torch

from interpgrad.comparison import domain_note, image_digest
from interpgrad.data import prepare_image, resize_center_crop
from interpgrad.gad import GadDir, GadRun, gad_explanation, list_gad_runs, load_gad_run
from interpgrad.regions import (SHARES, Region, compare_regions, draw_regions, region_complexity, regions_of_maps,
                                summarise_regions)
from interpgrad.training.checkpoint import input_normalisation
from interpgrad.viz import normalize_map, overlay
from interpgrad.zoo import default_directories

__all__ = ["GadChoice", "GadView", "SHIPPED_DEFAULT", "cached_view", "describe_progress", "explain_image", "gad_choices",
           "gad_roots", "load_run", "read_study", "share_rows", "study_chart", "summary_rows"]

SHIPPED_DEFAULT = "shapes-resnet18-baseline-square-heart"  # the run the page opens on
GAD_COLOUR = (255, 0, 255)  # magenta: never a colour of the jet overlays
ORIGINAL_COLOUR = (0, 255, 255)  # cyan
PANEL = 160  # pixels of a panel as drawn


def gad_roots() -> dict[str, Path]:
    """Where GAD runs live: ``shipped`` (``gad/`` in the shipped checkpoints' folder, INTERPGRAD_CHECKPOINTS) and
    ``run`` (the page's own runs: INTERPGRAD_GAD_RUNS, else ``gad/`` in the training runs' folder, INTERPGRAD_RUNS)."""
    folders = default_directories()
    return {"shipped": folders["shipped"] / "gad",
            "run": Path(os.environ.get("INTERPGRAD_GAD_RUNS", folders["run"] / "gad"))}


@dataclass(frozen=True)
class GadChoice:
    """A GAD run that can be opened: shipped or made here, with the state it is in."""

    folder: GadDir
    source: str  # shipped | run
    state: str

    @property
    def key(self) -> str:
        return f"{self.source}/{self.folder.name}"

    @property
    def label(self) -> str:
        state = "" if self.state == "finished" else f" ({self.state})"
        return f"{self.folder.name} · {self.source}{state}"


def gad_choices() -> list[GadChoice]:
    """Every GAD run with at least one support model, shipped ones first (the default first among them)."""
    choices = []
    for source, root in gad_roots().items():
        folders = list_gad_runs(root)
        if source == "shipped":
            folders.sort(key=lambda folder: (folder.name != SHIPPED_DEFAULT, folder.name))
        for folder in folders:
            if any(folder.path.glob("support-*.safetensors")):
                choices.append(GadChoice(folder, source, str(folder.read_status().get("state", "new"))))
    return choices


def _stamp(folder: GadDir) -> float:
    """Changes whenever a support model is added or replaced (a run that goes on): the cache key of a loaded run."""
    files = [folder.config_path, *sorted(folder.path.glob("support-*.safetensors"))]
    return max((path.stat().st_mtime for path in files if path.is_file()), default=0.0) + len(files)


@dataclass(frozen=True)
class LoadedRun:
    run: GadRun
    lock: threading.Lock  # held while explaining: the methods hook into the shared models


@st.cache_resource(max_entries=8, show_spinner="loading the GAD run...")
def _load(path: str, stamp: float) -> LoadedRun:
    run = load_gad_run(path)
    for model in run.models:
        model.eval()
    return LoadedRun(run, threading.Lock())


def load_run(folder: GadDir) -> LoadedRun:
    """The cached GAD run of ``folder`` (reloaded when a support model is added)."""
    return _load(str(folder.path), _stamp(folder))


def describe_progress(status: Mapping[str, Any]) -> tuple[float, str]:
    """(fraction, text) of a GAD run's status: which support model, steps done."""
    fraction = float(status.get("fraction") or 0.0)
    supports, done = status.get("supports"), status.get("supports_done")
    if supports is None:
        return fraction, str(status.get("message") or "starting...")
    text = f"{done} of {supports} support models trained"
    if status.get("state") == "running" and done is not None and done < supports:
        text += f" · support model {status.get('support', done + 1)}: step {status.get('step', 0)} of " \
                f"{status.get('steps_per_support', '?')}"
    return fraction, text


# --------------------------------------------------------------------------------------------------- one image


@dataclass(frozen=True)
class GadView:
    """One image's GAD explanation as the page shows it. Panels are uint8 RGB, enlarged for display."""

    image: np.ndarray  # the model's input (resized, cropped), enlarged
    target: int
    target_name: str
    probability: float
    maps: list[np.ndarray]  # the original's overlay, then every support model's
    masks: list[np.ndarray]  # each map's top q % (white)
    fused: np.ndarray
    gad: np.ndarray  # the GAD map's overlay
    hulls_original: np.ndarray
    hulls_gad: np.ndarray
    regions_original: list[Region]
    regions_gad: list[Region]
    rc_original: tuple[int, float]  # (regions, hull area / image area)
    rc_gad: tuple[int, float]
    row: dict[str, float]  # compare_regions' row: rc, rs_gad, rs_removed, rs_random, ...
    fused_share: float  # share of the pixels in the fused mask
    domain: str | None


def _mask_image(mask: np.ndarray) -> np.ndarray:
    """A bool mask as white pixels on dark grey, RGB."""
    picture = np.full((*mask.shape, 3), 40, dtype=np.uint8)
    picture[mask] = 255
    return picture


def _enlarged(image: np.ndarray) -> np.ndarray:
    factor = max(1, PANEL // max(image.shape[:2]))
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1) if factor > 1 else image


def explain_image(
    loaded: LoadedRun,
    image: np.ndarray,
    dataset: str | None = None,
    base: str = "integrated_gradients",
    base_params: Mapping[str, Any] | None = None,
    q: float = 10.0,
    fusion: str = "intersection",
    min_size: int = 4,
    merge_distance: int = 0,
    occlusion: str = "black",
    seed: int = 0,
) -> GadView:
    """GAD of one RGB image (uint8 ``[H, W, 3]``, resized and cropped as the model expects): ``gad_explanation`` and
    ``compare_regions`` on it, with the same ``q`` for the binarised maps and the regions; the predicted class."""
    run = loaded.run
    size = int(run.metadata["model"]["image_size"])
    mean, std = input_normalisation(run.metadata)
    crop = resize_center_crop(image, size)
    x = prepare_image(image, size, mean, std)
    with loaded.lock:
        result = gad_explanation(run, x, base=base, base_params=dict(base_params or {}), q=q, fusion=fusion)
        row = compare_regions(run.original, x, result.original_map, result.gad_map, target=result.target, q=q,
                              min_size=min_size, merge_distance=merge_distance, occlusion=occlusion, mean=mean,
                              std=std, seed=seed).iloc[0].to_dict()
        with torch.no_grad():
            probabilities = torch.softmax(run.original(x).double(), dim=1)[0]
    target = int(result.target[0])
    maps = result.maps[:, 0]  # [S + 1, H, W]
    shown = normalize_map(maps)  # each on its own scale
    overlays = [overlay(crop, panel) for panel in shown]
    gad_overlay = overlay(crop, normalize_map(result.gad_map[0]))
    original_regions, gad_regions = (regions_of_maps(maps[0], q, None, min_size, merge_distance)[0],
                                     regions_of_maps(result.gad_map[0], q, None, min_size, merge_distance)[0])
    shape = (size, size)
    names = run.class_names
    return GadView(
        image=_enlarged(crop),
        target=target,
        target_name=names[target] if target < len(names) else str(target),
        probability=float(probabilities[target]),
        maps=[_enlarged(picture) for picture in overlays],
        masks=[_enlarged(_mask_image(mask.numpy())) for mask in result.masks[:, 0]],
        fused=_enlarged(_mask_image(result.fused[0].numpy())),
        gad=_enlarged(gad_overlay),
        hulls_original=draw_regions(_enlarged(overlays[0]), original_regions, ORIGINAL_COLOUR, outline=2),
        hulls_gad=draw_regions(_enlarged(overlays[0]), gad_regions, GAD_COLOUR, outline=2),
        regions_original=original_regions,
        regions_gad=gad_regions,
        rc_original=region_complexity(original_regions, shape),
        rc_gad=region_complexity(gad_regions, shape),
        row={key: float(value) for key, value in row.items()},
        fused_share=float(result.fused[0].float().mean()),
        domain=domain_note(dataset, (run.metadata.get("data") or {}).get("name")),
    )


@st.cache_resource(max_entries=32, show_spinner=False)
def _view(path: str, stamp: float, digest: str, dataset: str | None, base: str, params: tuple, q: float, fusion: str,
          min_size: int, merge_distance: int, occlusion: str, _image: np.ndarray) -> GadView:
    return explain_image(_load(path, stamp), _image, dataset, base, dict(params), q, fusion, min_size, merge_distance,
                         occlusion)


def cached_view(folder: GadDir, image: np.ndarray, dataset: str | None, base: str, base_params: Mapping[str, Any],
                q: float, fusion: str, min_size: int, merge_distance: int, occlusion: str) -> GadView:
    """``explain_image`` of the run in ``folder``, computed once per run, image and settings."""
    return _view(str(folder.path), _stamp(folder), image_digest(image), dataset, base,
                 tuple(sorted(base_params.items())), q, fusion, min_size, merge_distance, occlusion, image)


# --------------------------------------------------------------------------------------------------- the dataset


def read_study(folder: GadDir) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """``study/regions.csv`` of a run and its summary (``study/summary.csv``, or ``summarise_regions`` of the table
    when the file is missing), or None when the run has no study."""
    study = folder.path / "study"
    table_path = study / "regions.csv"
    if not table_path.is_file():
        return None
    table = pd.read_csv(table_path)
    summary_path = study / "summary.csv"
    summary = pd.read_csv(summary_path) if summary_path.is_file() else summarise_regions(table)
    return table, summary


QUANTITIES = {
    "regions_original": "regions of the original map",
    "regions_gad": "regions of the GAD map",
    "area_original": "hull area of the original (share of the image)",
    "area_gad": "hull area of GAD (share of the image)",
    "rc": "RC: GAD's hull area / the original's (< 1: GAD explains with less)",
    "rs_gad": "RS of GAD's regions (drop of p_c when occluded)",
    "rs_removed": "RS of what GAD removed (the original's regions outside GAD's)",
    "rs_random": "RS of random regions of GAD's area (control)",
}


def summary_rows(summary: pd.DataFrame) -> list[dict[str, Any]]:
    """The means of a summary (``summarise_regions``) with their intervals, each quantity said in words."""
    rows = []
    for record in summary.to_dict("records"):
        quantity = str(record["quantity"])
        if quantity not in QUANTITIES:
            continue
        rows.append({"quantity": quantity, "what it is": QUANTITIES[quantity], "mean": record["mean"],
                     "95% CI": f"[{record['ci_low']:.3g}, {record['ci_high']:.3g}]", "n": int(record["n"]),
                     "excluded": int(record.get("excluded") or 0)})
    return rows


def share_rows(summary: pd.DataFrame) -> list[dict[str, Any]]:
    """The shares of images where occluding GAD's regions hurts more than occluding the other mask."""
    against = {"rs_removed": "what GAD removed", "rs_random": "random regions of the same area"}
    rows = []
    for first, second in SHARES:
        found = summary[summary["quantity"] == f"{first} > {second}"]
        if not found.empty:
            record = found.iloc[0]
            rows.append({"against": against.get(second, second), "share": float(record["mean"]),
                         "low": float(record["ci_low"]), "high": float(record["ci_high"]), "n": int(record["n"])})
    return rows


def study_chart(summary: pd.DataFrame, height: int = 300) -> Any:
    """A bar chart of mean RS (GAD's regions, what GAD removed, random) and mean RC with their intervals."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    def bars(names: Sequence[str]) -> tuple[list[str], list[float], list[float], list[float]]:
        chosen = summary.set_index("quantity").reindex(list(names)).dropna(subset=["mean"])
        return (list(chosen.index), chosen["mean"].tolist(), (chosen["ci_high"] - chosen["mean"]).tolist(),
                (chosen["mean"] - chosen["ci_low"]).tolist())

    labels = {"rs_gad": "GAD's regions", "rs_removed": "removed by GAD", "rs_random": "random, same area",
              "rc": "GAD / original"}
    figure = make_subplots(rows=1, cols=2, column_widths=[0.7, 0.3], horizontal_spacing=0.15,
                           subplot_titles=("RS: relative drop of p_c when occluded ↑", "RC: hull area ratio ↓"))
    for column, names, colour in ((1, ("rs_gad", "rs_removed", "rs_random"), ("#c51b8a", "#7fcdbb", "#bdbdbd")),
                                  (2, ("rc",), ("#3182bd",))):
        found, means, plus, minus = bars(names)
        figure.add_trace(go.Bar(x=[labels[name] for name in found], y=means, marker_color=list(colour)[: len(found)],
                                error_y={"type": "data", "array": plus, "arrayminus": minus, "visible": True},
                                showlegend=False, hovertemplate="%{x}: %{y:.3f}<extra></extra>"), row=1, col=column)
    figure.update_layout(height=height, margin={"l": 40, "r": 10, "t": 40, "b": 40})
    figure.update_yaxes(title_text="mean (95% CI)", row=1, col=1)
    return figure


def study_progress(bar: Any) -> Callable[..., None]:
    """A progress callback for ``region_study`` drawing on a ``st.progress`` bar: ``(done, total[, message])`` as the
    library's ``Progress``, or ``(fraction[, message])``."""
    def progress(done: float, total: Any = None, message: str = "", *_: Any) -> None:
        if isinstance(total, str) or total is None:
            fraction, message = float(done), total or message
        else:
            fraction = float(done) / float(total) if total else 0.0
            message = message or f"{int(done)} of {int(total)} images"
        bar.progress(min(1.0, max(0.0, fraction)), text=message or "computing...")
    return progress
