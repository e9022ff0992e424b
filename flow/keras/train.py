"""Training: the float baseline and the QKeras model, same seed, same data, optional magnitude pruning."""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from flow.data import Split
from flow.keras.env import keras, set_seed
from flow.spec import Pruning, Training


def prunable_kernels(model: Any) -> list[Any]:
    """The kernel variables of Dense/Conv layers (float or QKeras)."""
    return [layer.kernel for layer in model.layers if hasattr(layer, "kernel")]


def target_sparsity(pruning: Pruning, epoch: int, epochs: int) -> float:
    """Sparsity to enforce after ``epoch`` (0-based): 0 before ``start_epoch``, then a cubic ramp
    (as in Zhu & Gupta, 2017) up to ``pruning.sparsity`` at ``end_epoch`` (default: 3/4 of training)."""
    end = pruning.end_epoch if pruning.end_epoch is not None else max(pruning.start_epoch + 1, (3 * epochs) // 4)
    if epoch < pruning.start_epoch:
        return 0.0
    progress = min(1.0, (epoch + 1 - pruning.start_epoch) / max(1, end - pruning.start_epoch))
    return pruning.sparsity * (1.0 - (1.0 - progress) ** 3)


def _make_callbacks(label: str, epochs: int, pruning: Pruning | None, model: Any) -> list[Any]:
    k = keras()
    kernels = prunable_kernels(model)
    state: dict[str, Any] = {"masks": None, "t0": 0.0}

    class EpochProgress(k.callbacks.Callback):
        """One tqdm bar per model on stderr (terminals only), then one summary line with the last epoch's figures."""

        def on_train_begin(self, logs: dict | None = None) -> None:
            from tqdm import tqdm

            state["t0"] = time.perf_counter()
            state["bar"] = tqdm(total=epochs, desc=f"  train {label}", unit="epoch", disable=None, leave=False,
                                file=sys.stderr)
            state["parts"] = []

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            parts = [f"loss {logs.get('loss', float('nan')):.4f}", f"acc {logs.get('accuracy', float('nan')):.4f}"]
            if "val_accuracy" in logs:
                parts.append(f"val_acc {logs['val_accuracy']:.4f}")
            if state["masks"] is not None:
                total = sum(m.size for m in state["masks"])
                parts.append(f"sparsity {sum((~m).sum() for m in state['masks']) / total:.2f}")
            state["parts"] = parts
            state["bar"].set_postfix_str("  ".join(parts), refresh=False)
            state["bar"].update(1)

        def on_train_end(self, logs: dict | None = None) -> None:
            state["bar"].close()
            print(f"  [{label}] {epochs} epochs  " + "  ".join(state["parts"])
                  + f"  ({time.perf_counter() - state['t0']:.1f} s)", file=sys.stderr, flush=True)

    class MagnitudePruning(k.callbacks.Callback):
        """Zero the smallest-magnitude kernel weights per layer; the mask is re-applied after every batch."""

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            s = target_sparsity(pruning, epoch, epochs)
            if s <= 0:
                return
            masks = []
            for var in kernels:
                w = np.abs(var.numpy())
                n_zero = int(round(s * w.size))
                mask = np.ones(w.size, dtype=bool)
                mask[np.argsort(w, axis=None, kind="stable")[:n_zero]] = False
                masks.append(mask.reshape(w.shape))
            state["masks"] = masks
            self._apply()

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self._apply()

        def _apply(self) -> None:
            if state["masks"] is not None:
                for var, mask in zip(kernels, state["masks"]):
                    var.assign(var.numpy() * mask)

    callbacks: list[Any] = [EpochProgress()]
    if pruning is not None:
        callbacks.insert(0, MagnitudePruning())
    return callbacks


def train(model: Any, split: Split, training: Training, pruning: Pruning | None, label: str,
          from_logits: bool) -> dict[str, list[float]]:
    """Compile and fit ``model`` in place; returns the per-epoch history. Seeded by ``training.seed``."""
    k = keras()
    set_seed(training.seed)
    model.compile(
        optimizer=k.optimizers.Adam(training.learning_rate),
        loss=k.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        metrics=["accuracy"],
    )
    history = model.fit(
        split.x_train, split.y_train, epochs=training.epochs, batch_size=training.batch_size,
        validation_split=training.validation_split if training.validation_split > 0 else 0.0,
        shuffle=True, verbose=0, callbacks=_make_callbacks(label, training.epochs, pruning, model),
    )
    return {key: [float(v) for v in vals] for key, vals in history.history.items()}


def predict(model: Any, x: np.ndarray) -> np.ndarray:
    """Model outputs as float64, batch first, flattened per sample."""
    y = model.predict(x, batch_size=1024, verbose=0)
    return np.asarray(y, dtype=np.float64).reshape(len(x), -1)
