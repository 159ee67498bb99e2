"""Image display helpers for the pages."""

from __future__ import annotations

import html

import numpy as np
import torch

from interpgrad.data import load_image
from interpgrad.errors import InterpgradError
from interpgrad.samples import Sample
from interpgrad.viz import colorize, enlarge

__all__ = ["UPLOAD_EXTENSIONS", "UPLOAD_FORMATS", "colorbar_html", "crisp", "read_upload"]

# The image formats the pages' uploaders accept (format -> file extensions); decoding accepts these only.
UPLOAD_FORMATS = {"PNG": ["png"], "JPEG": ["jpg", "jpeg"], "TIFF": ["tif", "tiff"], "BMP": ["bmp"], "WEBP": ["webp"]}
UPLOAD_EXTENSIONS = [extension for extensions in UPLOAD_FORMATS.values() for extension in extensions]


def read_upload(upload) -> tuple[Sample | None, str | None]:  # type: ignore[no-untyped-def]
    """An uploaded file (``st.file_uploader``'s value) decoded as a Sample of the dataset "upload", or the readable
    reason it cannot be used: (sample, None) or (None, message)."""
    try:
        return Sample(upload.name, load_image(upload.getvalue(), formats=list(UPLOAD_FORMATS)), dataset="upload"), None
    except InterpgradError as error:
        return None, f"{upload.name} cannot be used: {error}"


def crisp(image: np.ndarray, size: int = 192) -> np.ndarray:
    """A small image enlarged by an integer factor with nearest neighbour (the browser would blur a 32x32 model
    input shown at 192 px); larger images are returned as they are (``interpgrad.viz.enlarge``)."""
    return enlarge(image, size)


def colorbar_html(cmap: str, signed: bool, labels: tuple[str, str | None, str]) -> str:
    """A colour scale as HTML, sharp at any column width: the colormap as ``interpgrad.viz.colorize`` uses it (signed:
    [-1, 1] with 0 in the middle) and the (low, middle, high) labels under its ends and centre."""
    colours = colorize(torch.linspace(-1.0 if signed else 0.0, 1.0, 17), cmap, signed)
    gradient = ", ".join(f"rgb({red},{green},{blue})" for red, green, blue in colours.tolist())
    low, middle, high = (html.escape(label or "") for label in labels)
    return (
        f'<div style="height:10px;border:1px solid #888;background:linear-gradient(to right, {gradient})"></div>'
        '<div style="display:flex;justify-content:space-between;font-size:0.75rem;line-height:1.2">'
        f"<span>{low}</span><span>{middle}</span><span>{high}</span></div>"
    )
