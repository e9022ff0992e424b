"""The one place that sets up Keras for the models and hls4ml.

TensorFlow 2.21 installs Keras 3 as ``keras``; QKeras 0.9 needs Keras 2. In the ``keras2`` front end
(the default, see :mod:`flow.keras.frontends`) setting ``TF_USE_LEGACY_KERAS=1`` before TensorFlow is
imported makes ``tf.keras`` be ``tf_keras``; hls4ml 1.3 picks its Keras frontend from
``keras.__version__``, so while hls4ml parses a model, :func:`hls4ml_sees_keras2` points
``sys.modules['keras']`` at ``tf_keras``. In a Keras-3 worker (``HLSFLOW_FRONTEND=keras3`` or ``hgq2``)
nothing is swapped: :func:`keras` is Keras 3 and hls4ml takes its Keras-3 frontend.
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

from flow.keras.frontends import current

FRONTEND = current()
KERAS_MAJOR = FRONTEND.keras_major
if KERAS_MAJOR == 2:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
else:
    os.environ.pop("TF_USE_LEGACY_KERAS", None)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
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
    """The Keras of this front end: ``tf_keras`` (Keras 2) or ``keras`` (Keras 3), imported quietly on first use
    (TensorFlow's C++ start-up notices silenced, its Python warnings such as tf.function retracing off)."""
    name = "tf_keras" if KERAS_MAJOR == 2 else "keras"
    if name not in sys.modules or "tensorflow" not in sys.modules:
        with _native_stderr_silenced():
            import tensorflow as tf

            __import__(name)
        tf.get_logger().setLevel("ERROR")
    if KERAS_MAJOR == 2:
        import tf_keras

        return tf_keras
    import keras as keras3

    return keras3


def qkeras_objects() -> dict[str, Any]:
    """Custom objects needed to deserialize the quantized layers of this front end.

    QKeras 0.9 (Keras 2) takes them as a dict; QKeras v3 and HGQ2 register their classes with Keras 3
    when imported, so importing them is all that is needed (an empty dict).
    """
    if FRONTEND.name == "keras2":
        from qkeras.utils import _add_supported_quantized_objects

        objects: dict[str, Any] = {}
        _add_supported_quantized_objects(objects)
        objects["QActivation"] = _qactivation_loader()
        return objects
    if FRONTEND.name == "hgq2":
        import hgq  # noqa: F401 - registers HGQ2's layers and quantizers
    else:
        import qkeras  # noqa: F401 - QKeras v3 (the overlay's): registers its layers and quantizers
    return {}


def _qactivation_loader() -> type:
    """QKeras 0.9's ``QActivation.from_config`` keeps a serialized quantizer object (``QActivation(
    quantized_relu(6, 2))`` saved to JSON/.h5 stores a dict) as the quantizer itself, so loading such a model
    fails ("could not be deserialized properly"). This loader deserializes the dict first and returns a
    plain ``QActivation``."""
    from qkeras import QActivation
    from qkeras.quantizers import get_quantizer

    class QActivationLoader(QActivation):
        @classmethod
        def from_config(cls, config: dict[str, Any]) -> Any:
            config = dict(config)
            if isinstance(config.get("activation"), dict):
                config["activation"] = get_quantizer(config["activation"])
            return QActivation(**config)

    return QActivationLoader


def _numpy2_shim_for_hls4ml() -> None:
    """hls4ml 1.3 writes power-of-two (``quantized_po2``) weights with ``np.product``, which numpy 2
    removed; alias it to ``np.prod`` (same function) so such models can be written."""
    import numpy as np

    if not hasattr(np, "product"):
        np.product = np.prod


@contextlib.contextmanager
def hls4ml_sees_keras2() -> Iterator[ModuleType]:
    """Run hls4ml with ``import keras`` resolving to this front end's Keras (``tf_keras`` in ``keras2``);
    restore afterwards. Yields hls4ml."""
    tfk = keras()
    _numpy2_shim_for_hls4ml()
    if KERAS_MAJOR == 3:
        import hls4ml

        yield hls4ml
        return
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
