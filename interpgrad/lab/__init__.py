"""The gradient lab: the experiments of Srinivas & Fleuret (ICLR 2021), "Rethinking the role of gradient-based
attribution methods for model interpretability" (PAPERS.md section 3), on interpgrad checkpoints.

Everything works in pixel space [0, 1]: a checkpoint is loaded as a ``PixelSpaceModel`` that applies its own input
normalisation (``load_lab_model``).

- ``class_samples``: class-conditional samples by gradient ascent on a logit (the official "SGLD" sampler; Langevin
  with ``noise > 0``), ``gan_test``: their accuracy under an independent judge.
- ``density_ratio_profile``: mean f_y(x + eta) - f_y(x) over data for Gaussian eta of growing std.
- ``add_to_logits`` / ``InnerProductField`` and the patterns: gradients are arbitrary (the softmax does not change);
  ``fool``: fine-tune a model so its gradients show a pattern (the ``gradient_pattern`` regularizer).
- ``pixel_perturbation_curves``: accuracy as the least salient pixels are removed, with any model's saliency.
- ``cached_*``: the heavier results, cached on disk per checkpoint (sha256) and parameters.
"""

from .arbitrary import AddToLogits, InnerProductField, add_to_logits
from .cache import CacheEntry, cache_key, cached, lab_cache_dir
from .density import DEFAULT_STDS, DensityProfile, density_ratio_profile
from .experiments import cached_class_samples, cached_density_profile, cached_gan_test, cached_perturbation
from .fooling import fool, fool_options, gradient_pattern_cosine, mean_logit_gradient_norm
from .gan_test import GanTest, gan_test
from .images import LabImages, lab_images
from .patterns import (PATTERN_KINDS, make_pattern, pattern_from_image, shape_pattern, smooth_random_pattern,
                       standardise_pattern, text_pattern)
from .perturbation import PerturbationCurves, channel_std_saliency, pixel_perturbation_curves
from .pixel_space import LabModel, PixelSpaceModel, class_indices, load_lab_model
from .sampling import DEFAULT_KEEP, ClassSamples, class_samples

__all__ = [
    "AddToLogits", "CacheEntry", "ClassSamples", "DEFAULT_KEEP", "DEFAULT_STDS", "DensityProfile", "GanTest",
    "InnerProductField", "LabImages", "LabModel", "PATTERN_KINDS", "PerturbationCurves", "PixelSpaceModel",
    "add_to_logits", "cache_key", "cached", "cached_class_samples", "cached_density_profile", "cached_gan_test",
    "cached_perturbation", "channel_std_saliency", "class_indices", "class_samples", "density_ratio_profile", "fool",
    "fool_options", "gan_test", "gradient_pattern_cosine", "lab_cache_dir", "lab_images", "load_lab_model",
    "make_pattern", "mean_logit_gradient_norm", "pattern_from_image", "pixel_perturbation_curves", "shape_pattern",
    "smooth_random_pattern", "standardise_pattern", "text_pattern",
]
