"""Deprecated module: moved in 0.2.0 to :mod:`csdn.inference` (extractor, model loading) and
:mod:`csdn.data.images` (image helpers); this alias warns and is removed in 0.3.0."""

from ._deprecation import warn_deprecated
from .data.images import IMAGE_EXTENSIONS as IMAGE_EXTENSIONS
from .data.images import check_image_size as check_image_size
from .data.images import list_images as list_images
from .data.images import preprocess as preprocess
from .data.images import to_pil_image as to_pil_image
from .inference import FeatureExtractor as FeatureExtractor
from .inference import load_model as load_model

__all__ = [
    "IMAGE_EXTENSIONS",
    "FeatureExtractor",
    "check_image_size",
    "list_images",
    "load_model",
    "preprocess",
    "to_pil_image",
]

warn_deprecated("csdn.extract", "csdn.inference (images: csdn.data.images)", stacklevel=2)
