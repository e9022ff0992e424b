"""The one place that sets up Keras 2 (tf_keras) for QKeras and hls4ml.

TensorFlow 2.21 installs Keras 3 as ``keras``; QKeras 0.9 needs Keras 2. Setting
``TF_USE_LEGACY_KERAS=1`` before TensorFlow is imported makes ``tf.keras`` be ``tf_keras``.
hls4ml 1.3 picks its Keras frontend from ``keras.__version__``, so while hls4ml parses a
model, :func:`hls4ml_sees_keras2` points ``sys.modules['keras']`` at ``tf_keras``.
Every other module imports Keras, QKeras and hls4ml through this one.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import Any

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=FutureWarning)


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the body: TensorFlow's C++ start-up notices ("Could not
    find cuda drivers", absl's "All log messages before absl::InitializeLog()") are printed there at
    import time, before ``TF_CPP_MIN_LOG_LEVEL`` applies. Python exceptions still surface afterwards."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def keras() -> ModuleType:
    """Return the ``tf_keras`` module (Keras 2), importing TensorFlow quietly on first use."""
    if "tf_keras" not in sys.modules:
        with _native_stderr_silenced():
            import tf_keras  # noqa: F401
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")  # e.g. "triggered tf.function retracing" warnings of repeated predict()
    import tf_keras

    return tf_keras


def qkeras_objects() -> dict[str, Any]:
    """Custom objects needed to deserialize QKeras layers and quantizers."""
    from qkeras.utils import _add_supported_quantized_objects

    objects: dict[str, Any] = {}
    _add_supported_quantized_objects(objects)
    return objects


def _numpy2_shim_for_hls4ml() -> None:
    """hls4ml 1.3 writes power-of-two (``quantized_po2``) weights with ``np.product``, which numpy 2
    removed; alias it to ``np.prod`` (same function) so such models can be written."""
    import numpy as np

    if not hasattr(np, "product"):
        np.product = np.prod


@contextlib.contextmanager
def hls4ml_sees_keras2() -> Iterator[ModuleType]:
    """Run hls4ml with ``import keras`` resolving to ``tf_keras``; restore afterwards. Yields hls4ml."""
    tfk = keras()
    _numpy2_shim_for_hls4ml()
    saved = sys.modules.get("keras")
    sys.modules["keras"] = tfk
    try:
        import hls4ml

        yield hls4ml
    finally:
        if saved is None:
            sys.modules.pop("keras", None)
        else:
            sys.modules["keras"] = saved


def set_seed(seed: int) -> None:
    """Seed Python, numpy and TensorFlow and make TensorFlow ops deterministic."""
    k = keras()  # first: imports TensorFlow quietly
    import tensorflow as tf

    k.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
