"""Data sets that ship offline: scikit-learn's digits, or a user's ``.npz``/``.csv`` file.

Features are multiplied by ``dataset.scale`` and then quantized to the spec's input type
(``ap_fixed<W,I>``: W total bits, I integer bits incl. sign) so that training, QKeras
evaluation and hls4ml's C simulation all see exactly the same, representable inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flow.arith.types import FixedType, quantize
from flow.core.errors import FlowError
from flow.spec import Dataset


def accuracy(y_score: np.ndarray, y_true: np.ndarray) -> float:
    """Fraction of samples whose highest score (argmax over axis 1 of ``y_score``, (N, classes)) is the label."""
    return float(np.mean(np.argmax(y_score, axis=1) == y_true))


@dataclass(frozen=True)
class Split:
    """Train/test split. ``x_*`` are float32 on the input type's grid, shape (N, *input_shape)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    inputs_changed: int  # input values moved by quantization to the input type
    inputs_out_of_range: int  # input values outside the input type's range before quantization


def _load_raw(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    if ds.source == "digits":
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        return x.astype(np.float64), y
    if ds.source.endswith(".npz"):
        try:
            with np.load(ds.source) as z:
                missing = [k for k in (ds.x_key, ds.y_key) if k not in z.files]
                if missing:
                    raise FlowError(f"{ds.source}: missing array(s) {', '.join(missing)}; file has {', '.join(z.files)}")
                return np.asarray(z[ds.x_key], dtype=np.float64), np.asarray(z[ds.y_key])
        except (OSError, ValueError) as exc:
            raise FlowError(f"{ds.source}: cannot read .npz file: {exc}") from None
    try:
        table = np.loadtxt(ds.source, delimiter=",", ndmin=2)
    except ValueError:
        try:  # one header line
            table = np.loadtxt(ds.source, delimiter=",", ndmin=2, skiprows=1)
        except ValueError as exc:
            raise FlowError(f"{ds.source}: cannot read numeric CSV: {exc}") from None
    if table.shape[1] < 2:
        raise FlowError(f"{ds.source}: CSV needs feature columns and a label column, found {table.shape[1]} column(s)")
    col = ds.label_column % table.shape[1]
    return np.delete(table, col, axis=1), table[:, col]


def load_dataset(ds: Dataset, input_type: FixedType, seed: int) -> Split:
    """Load, scale, reshape to ``ds.input_shape``, quantize to ``input_type`` and split (stratified)."""
    from sklearn.model_selection import train_test_split

    x, y = _load_raw(ds)
    if len(x) != len(y):
        raise FlowError(f"{ds.source}: {len(x)} samples but {len(y)} labels")
    if ds.max_samples is not None:
        x, y = x[: ds.max_samples], y[: ds.max_samples]
    n_features = int(np.prod(x.shape[1:]))
    want = int(np.prod(ds.input_shape))
    if n_features != want:
        raise FlowError(
            f"{ds.source}: each sample has {n_features} features but dataset.input_shape "
            f"{list(ds.input_shape)} needs {want}"
        )
    if not np.all(np.isfinite(x)):
        raise FlowError(f"{ds.source}: features contain NaN or infinity")
    if not np.all(y == np.round(y)) or y.min() < 0:
        raise FlowError(f"{ds.source}: labels must be non-negative integers (class indices)")
    y = y.astype(np.int64)
    x = x.reshape(len(x), *ds.input_shape) * ds.scale
    xq = quantize(x, input_type)
    out_of_range = int(np.sum((x < input_type.min_value) | (x > input_type.max_value)))
    changed = int(np.sum(xq != x))
    n_classes = int(y.max()) + 1
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 else None
    try:
        x_tr, x_te, y_tr, y_te = train_test_split(
            xq.astype(np.float32), y, test_size=ds.test_fraction, random_state=seed, stratify=stratify
        )
    except ValueError as exc:
        raise FlowError(f"{ds.source}: cannot split {len(y)} samples with test_fraction {ds.test_fraction}: {exc}") from None
    return Split(x_tr, y_tr, x_te, y_te, n_classes, changed, out_of_range)
