"""GAD, gradient artificial distancing: support models that push the logits of chosen classes apart, and the fusion
of their saliency maps with the original's. Our reading of Mazini Rodrigues, Boutry & Najman, Pattern Recognition
Letters 2024 (arXiv 2401.14434): the published algorithm could not be read, so this is a reconstruction (PAPERS.md
section 2) in which every choice is a declared parameter, and no number it gives is the paper's.

    strategy = Pair("circle", "square")          # or OneVsAll("star"), Split(("circle", "ring"), ("square", "cross"))
    run = train_gad("checkpoints/shapes-resnet18-baseline", strategy, "gad/circle-square")   # 3 support models
    run = load_gad_run("gad/circle-square")      # the original, the supports, alphas, strategy, reports
    result = gad_explanation(run, x, base="integrated_gradients", q=10.0, fusion="intersection")
    result.gad_map                               # [B, H, W]; also result.maps, .masks, .fused
    x, labels, names = study_images(run, "val", n=500)                 # the first 500 val images of its classes
    table = region_study(run, x, labels, names=names)  # regions.csv: image, label, RC and RS per image
    interpgrad.explain(model, x, "gad", support="gad/circle-square")   # the registry method

    distanced_logits(logits, sides, strategy, alpha, mode)   # the support models' regression targets
    launch_gad(options, root, name) / resume_gad(folder) / stop_gad(folder)   # background runs for the app

Nothing here imports Streamlit.
"""

from __future__ import annotations

from .combination import (
    COMBINATION_PARAMS,
    FUSIONS,
    GadExplanation,
    fuse_masks,
    gad_bases,
    gad_explanation,
    pixel_map,
)
from .distancing import DISTANCING_MODES, GAP_REDUCTIONS, alpha_schedule, distanced_logits, logit_gap
from .launcher import command_line, launch_gad, resume_gad, stop_gad
from .run import GadDir, GadRun, list_gad_runs, load_gad_run, load_supports, parameters_sha256, train_gad
from .settings import SCHEDULES, TRAINING_PARAMS, gad_settings
from .strategies import STRATEGIES, OneVsAll, Pair, Split, Strategy, parse_strategy, strategy_from_dict
from .study import STUDY_COLUMNS, region_study, study_images
from .support import TRAINED_PARTS, StrategyImages, SupportReport, SupportStopped, head_module, trained_modules

from . import method  # noqa: F401  isort: skip  (registers "gad" with interpgrad.explain)

__all__ = [
    "COMBINATION_PARAMS",
    "DISTANCING_MODES",
    "FUSIONS",
    "GAP_REDUCTIONS",
    "GadDir",
    "GadExplanation",
    "GadRun",
    "OneVsAll",
    "Pair",
    "SCHEDULES",
    "STRATEGIES",
    "STUDY_COLUMNS",
    "Split",
    "Strategy",
    "StrategyImages",
    "SupportReport",
    "SupportStopped",
    "TRAINED_PARTS",
    "TRAINING_PARAMS",
    "alpha_schedule",
    "command_line",
    "distanced_logits",
    "fuse_masks",
    "gad_bases",
    "gad_explanation",
    "gad_settings",
    "head_module",
    "launch_gad",
    "list_gad_runs",
    "load_gad_run",
    "load_supports",
    "logit_gap",
    "parameters_sha256",
    "parse_strategy",
    "pixel_map",
    "region_study",
    "resume_gad",
    "stop_gad",
    "strategy_from_dict",
    "study_images",
    "train_gad",
    "trained_modules",
]
