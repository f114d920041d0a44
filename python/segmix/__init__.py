"""segmix: latent segments in tables of categorical columns, free text and numeric metrics.

One joint latent class model fitted by EM (a multinomial per categorical column times a Gaussian
over the reduced text embedding and the standardized metrics), K chosen by BIC, every class
explained in words. ``SegMix`` is a scikit-learn estimator over the same Rust engine as the
``segmix`` command; models saved by either are read by both.
"""

from . import _native
from ._estimator import SegMix, SegmixWarning
from ._explain import ClassExplanation, Explanation, Prototype

__version__ = _native.version()

__all__ = ["SegMix", "SegmixWarning", "Explanation", "ClassExplanation", "Prototype", "__version__"]
