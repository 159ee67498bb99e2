"""Convex-hull regions of saliency maps (OpenCV) and their metrics, region complexity (RC) and region sensitivity
(RS): our reading of the GAD paper's region-based evaluation (Mazini Rodrigues, Boutry, Najman, Pattern Recognition
Letters 2024; only its abstract and a summary could be read, so every choice is a parameter; PAPERS.md, section 2).

    masks = important_pixels(explanation.map, q=10)              # top 10 % pixels of each map, bool [B, H, W]
    regions = convex_hull_regions(masks[0], min_size=4)          # [Region(polygon, area, mask, pixels), ...]
    count, area = region_complexity(regions, masks[0].shape)     # RC: regions and hull area / image area
    rs = region_sensitivity(model, x, masks, mean=..., std=...)  # RS: relative drop of p_c when occluded, [B]
    table = compare_regions(model, x, original_maps, gad_maps, mean=..., std=...)   # one row per image
    summarise_regions(table)                                     # means with bootstrap CIs, shares
    rgb = draw_regions(overlay(image, display_map), regions)     # hull fills and outlines over any overlay
"""

from .comparison import COLUMNS, SHARES, compare_regions, regions_of_maps, summarise_regions
from .drawing import DEFAULT_COLOUR, draw_regions
from .hulls import (
    MIN_SIZE,
    Q,
    Region,
    convex_hull_regions,
    important_pixels,
    random_regions_like,
    region_complexity,
    union_mask,
)
from .sensitivity import BLUR_KERNEL, BLUR_SIGMA, OCCLUSIONS, occlusion_values, region_sensitivity

__all__ = [
    "BLUR_KERNEL",
    "BLUR_SIGMA",
    "COLUMNS",
    "DEFAULT_COLOUR",
    "MIN_SIZE",
    "OCCLUSIONS",
    "Q",
    "SHARES",
    "Region",
    "compare_regions",
    "convex_hull_regions",
    "draw_regions",
    "important_pixels",
    "occlusion_values",
    "random_regions_like",
    "region_complexity",
    "region_sensitivity",
    "regions_of_maps",
    "summarise_regions",
    "union_mask",
]
