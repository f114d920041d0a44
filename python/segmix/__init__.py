"""segmix: latent segments in tables of categorical columns, free text and numeric metrics.

One joint latent class model fitted by EM (a multinomial per categorical column times a Gaussian
over the reduced text embedding and the standardized metrics), K chosen by BIC, every class
explained in words. ``SegMix`` is a scikit-learn estimator over the same Rust engine as the
``segmix`` command; models saved by either are read by both.
"""

import os as _os

# On a machine without a desktop session (no XDG_RUNTIME_DIR: a server, a container, CI), Mesa's
# Vulkan device-select layer prints "error: XDG_RUNTIME_DIR is invalid" whenever the GPU is
# probed; segmix chooses adapters itself, so the layer is switched off there unless the user set
# it (as the `segmix` command does).
if not _os.path.isdir(_os.environ.get("XDG_RUNTIME_DIR", "")) and "NODEVICE_SELECT" not in _os.environ:
    _os.environ["NODEVICE_SELECT"] = "1"

from . import _native  # noqa: E402
from ._estimator import SegMix, SegmixWarning  # noqa: E402
from ._explain import ClassExplanation, Explanation, Prototype  # noqa: E402

__version__ = _native.version()

__all__ = ["SegMix", "SegmixWarning", "Explanation", "ClassExplanation", "Prototype", "__version__"]
