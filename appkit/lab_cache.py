"""Fill the Gradient lab page's disk caches for the shipped models, so that the page opens on their results at once:
``python -m appkit.lab_cache`` (``make lab-cache``, part of ``make checkpoints``).

It computes what the page's buttons compute, with the page's own settings (``appkit.lab``'s constants) and through the
same ``interpgrad.lab`` ``cached_*`` functions, so the page finds every result under the same cache key: the class
samples and their GAN-test by the default judge, the density-ratio profiles, the pixel-perturbation curves of each
model with its own gradients and of the Softplus baseline judging each model's gradients. Results already cached are
read, not recomputed.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence

from appkit.lab import (DATA, DENSITY, KEEP, PERTURBATION, RESAMPLES, SAMPLING, dataset_of, judge_entries,
                        perturbation_fractions, softplus_entries)
from interpgrad.lab import (cached_class_samples, cached_density_profile, cached_gan_test, cached_perturbation,
                            lab_images, load_lab_model)
from interpgrad.zoo import discover_models


def _bar(description: str, show: bool):  # type: ignore[no-untyped-def]
    from tqdm import tqdm

    bar = tqdm(total=1, desc=description, disable=None if show else True, file=sys.stderr, dynamic_ncols=True)

    def update(done: int, total: int) -> None:
        bar.total, bar.n = total, done
        bar.refresh()

    return bar, update


def fill(sources: Sequence[str] = ("shipped",), progress: bool = True) -> list[str]:
    """Compute (or find) every result the page shows for the Softplus models of ``sources``; returns what was done,
    one line per result."""
    entries = [entry for entry in discover_models() if entry.source in sources]
    generators = softplus_entries(entries)
    if not generators:
        return ["no Softplus model: nothing to fill (make lab-checkpoints trains them)"]
    models = {entry.name: load_lab_model(entry.path) for entry in generators}
    judges = judge_entries(entries, generators)
    judge = load_lab_model(judges[0].path) if judges else None
    baselines = [entry for entry in generators if entry.regularizer == "none"]
    baseline = models[baselines[0].name] if baselines else None
    done = []

    def run(label: str, compute, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        bar, update = _bar(label, progress)
        try:
            compute(*args, progress=update, **kwargs)
        finally:
            bar.close()
        done.append(f"{label}: {time.perf_counter() - started:.0f} s")

    for entry in generators:
        name, model = entry.name, models[entry.name]
        run(f"samples {name}", cached_class_samples, model, None, keep=KEEP, **SAMPLING)
        if judge is not None:
            run(f"gan-test {name} by {judge.name}", cached_gan_test, model, judge, None, resamples=RESAMPLES,
                **SAMPLING)
        data = lab_images(dataset_of(entry), DATA["n"], DATA["split"], model.image_size)
        run(f"density {name}", cached_density_profile, model, data, **DENSITY)
        for judging in ([model] + ([baseline] if baseline is not None and baseline is not model else [])):
            run(f"perturbation {name} judged by {judging.name}", cached_perturbation, judging, data,
                saliency_model=model, fractions=perturbation_fractions(), constant=PERTURBATION["constant"],
                seed=PERTURBATION["seed"])
    return done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appkit.lab_cache", description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    args = parser.parse_args(argv)
    for line in fill(progress=args.progress):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
