"""Datasets and transforms: synthetic ``shapes`` (with ground-truth masks), CIFAR-10/100, image folders; user images.

The trainer and the app use :func:`build_datasets`; every dataset carries a :class:`DataInfo` that goes into
checkpoint metadata. User-caused problems (missing or corrupt files, unknown names, bad sizes) raise ``DataError``.
"""

from __future__ import annotations

from .base import ArrayDataset
from .build import DATASETS, SHAPES_DATASETS, build_datasets, canonical_dataset_name, check_dataset, has_masks
from .cifar import CIFARDataset, download_cifar, load_cifar_arrays
from .folder import IMAGENET_MEAN, IMAGENET_STD, ImageFolderDataset
from .images import IMAGE_FORMATS, MAX_IMAGE_PIXELS, describe_resize, load_image, prepare_image, resize_center_crop
from .info import DataInfo
from .shapes import (
    SHAPE_CLASSES,
    SHAPES_MEAN,
    SHAPES_STD,
    ShapesArrays,
    ShapesDataset,
    clear_shapes_cache,
    generate_shapes,
    shapes_info,
)
from .transforms import RandomCropFlip, augmentation_from_names, denormalize, normalize

__all__ = [
    "ArrayDataset",
    "CIFARDataset",
    "DATASETS",
    "DataInfo",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_FORMATS",
    "ImageFolderDataset",
    "MAX_IMAGE_PIXELS",
    "RandomCropFlip",
    "SHAPES_MEAN",
    "SHAPES_STD",
    "SHAPES_DATASETS",
    "SHAPE_CLASSES",
    "ShapesArrays",
    "ShapesDataset",
    "augmentation_from_names",
    "build_datasets",
    "canonical_dataset_name",
    "check_dataset",
    "clear_shapes_cache",
    "denormalize",
    "describe_resize",
    "download_cifar",
    "generate_shapes",
    "has_masks",
    "load_cifar_arrays",
    "load_image",
    "normalize",
    "prepare_image",
    "resize_center_crop",
    "shapes_info",
]
