"""Generation speed of the synthetic ``shapes`` dataset: images per second for 10,000 images at 32 and 64 px.

    python benchmarks/shapes.py                    # 10,000 images at 32 and 64 px, best of 3
    python benchmarks/shapes.py --n 2000 --sizes 32 --repeats 5

Each run generates from scratch (the in-process cache is cleared first; no disk cache), so the figure is what a
first training run or test session pays. The best of the repeats is reported: the generator is deterministic, so a
slower repeat only measures the machine's other load.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from interpgrad.data import clear_shapes_cache, generate_shapes  # noqa: E402


def images_per_second(n: int, size: int, seed: int) -> float:
    """One uncached generation of ``n`` images of ``size`` px; its rate."""
    clear_shapes_cache()
    start = time.perf_counter()
    arrays = generate_shapes(n, size, seed=seed)
    elapsed = time.perf_counter() - start
    if len(arrays) != n:
        raise RuntimeError(f"generated {len(arrays)} images instead of {n}")
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="images per run (default 10,000)")
    parser.add_argument("--sizes", type=lambda text: [int(s) for s in text.split(",")], default=[32, 64],
                        help="image sizes, comma-separated (default 32,64)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=99)
    args = parser.parse_args()
    for size in args.sizes:
        rates = [images_per_second(args.n, size, args.seed) for _ in range(args.repeats)]
        print(f"shapes {size}x{size}: {max(rates):,.0f} images/s ({args.n:,} images in {args.n / max(rates):.2f} s; "
              f"best of {args.repeats})", flush=True)
    clear_shapes_cache()


if __name__ == "__main__":
    main()
