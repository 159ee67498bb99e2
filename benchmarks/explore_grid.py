"""Time of the app's Explore grid: 2 models x 8 methods on one image, as the page computes and draws it.

    python benchmarks/explore_grid.py                  # the shipped starter checkpoints, a shapes test image
    python benchmarks/explore_grid.py --repeats 9 --image astronaut

For each setting (ours only; ours with Captum beside it) the median of interleaved runs of
``interpgrad.comparison.compare`` (preprocessing, predictions, cos(standard, guided), every map) plus drawing every
panel the page shows (``Comparison.render`` at the default display options: overlays, A - B maps), and the same
through the real page in Streamlit's AppTest (click "Explain" to the rendered grid; includes Streamlit's own work).
Per-method medians show where the time goes.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from interpgrad.comparison import ComparedModel, compare  # noqa: E402
from interpgrad.samples import sample_images  # noqa: E402
from interpgrad.training import load_checkpoint  # noqa: E402
from interpgrad.viz import DisplayOptions  # noqa: E402
from interpgrad.zoo import discover_models  # noqa: E402

METHODS = ["gradient", "guided_backprop", "smoothgrad", "gradcam", "gradcam++", "scorecam", "layercam", "guided_gradcam"]


def _grid_seconds(models: list[ComparedModel], image, with_captum: bool) -> tuple[float, dict[str, float]]:
    start = time.perf_counter()
    result = compare(models, image, METHODS, with_captum=with_captum)
    result.render(DisplayOptions(), 192)  # every panel, colour scale and A - B map, as the page draws them
    per_column = {}
    for row in result.rows:
        for cell in row.cells:
            per_column[cell.column] = per_column.get(cell.column, 0.0) + cell.seconds
    return time.perf_counter() - start, per_column


def _page_seconds(with_captum: bool) -> float:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "pages" / "2_Explore.py"), default_timeout=300)
    at.run()
    at.toggle(key="explore.captum").set_value(with_captum)
    at.run()
    at.button(key="explore.run").click()
    start = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - start
    assert not at.exception and "explore.result" in at.session_state, at.exception
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--image", default="shapes", help="'shapes' (a bundled test image) or a bundled photo name")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.chdir(ROOT)

    shipped = [entry for entry in discover_models() if entry.source == "shipped"][:2]
    if len(shipped) < 2:
        raise SystemExit("needs the two shipped starter checkpoints in checkpoints/ (make checkpoints)")
    models = []
    for entry in shipped:
        model, metadata = load_checkpoint(entry.path)
        models.append(ComparedModel(entry.name, model, metadata))
    samples = sample_images()
    sample = next(s for s in samples if (s.label is not None if args.image == "shapes" else s.name.startswith(args.image)))
    print(f"{len(models)} models ({', '.join(m.name for m in models)}) x {len(METHODS)} methods on {sample.name} "
          f"{sample.image.shape[1]}x{sample.image.shape[0]}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs")

    settings = {"ours": False, "ours + Captum": True}
    for with_captum in settings.values():  # warm-up: first calls, caches
        _grid_seconds(models, sample.image, with_captum)
    times: dict[str, list[float]] = {name: [] for name in settings}
    columns: dict[str, list[float]] = {}
    order = random.Random(0)
    for _ in range(args.repeats):
        for name in order.sample(list(settings), len(settings)):
            seconds, per_column = _grid_seconds(models, sample.image, settings[name])
            times[name].append(seconds)
            if settings[name]:
                for column, value in per_column.items():
                    columns.setdefault(column, []).append(value)
    page = {name: statistics.median(_page_seconds(with_captum) for _ in range(3)) for name, with_captum in settings.items()}

    print(f"\n{'setting':<16} {'grid (library) s':>17} {'page (AppTest) s':>17}")
    for name in settings:
        print(f"{name:<16} {statistics.median(times[name]):>17.3f} {page[name]:>17.3f}")
    print("\nper column, both models (median ms):")
    for column, values in columns.items():
        print(f"  {column:<28} {statistics.median(values) * 1000:8.1f}")


if __name__ == "__main__":
    main()
