"""Neuron pruning: remove the Dense units and Conv filters that rarely fire, and fine-tune what is left.

Keras-level surgery only (no fixed-point arithmetic here): the result is an ordinary, narrower model
of the same kind (plain Keras or QKeras) with the same layer names, quantizers and activations, so
hls4ml, the emulator and the RTL see smaller layers and nothing else.

* **Activity** (:func:`measure_activity`): for each unit (Dense) or filter (Conv1D/Conv2D), over the
  training data, the fraction of values that are non-zero and their mean magnitude, read where the
  next layer reads them: after the layer's activation and any batch normalization, pooling, dropout
  or zero padding in between (for a convolution, over every sample and output position). A unit whose
  values there are always zero contributes exactly nothing to the next layer.
* **Selection** (:func:`units_to_remove`): every unit below an activity threshold, or the least
  active share of each layer (ties: smaller mean magnitude first, then lower index).
* **Surgery** (:func:`narrow_model`): the pruned layers get fewer units; every weight that touches a
  removed unit is cut to match downstream: the next Dense/Conv layer's kernel rows (through Flatten,
  whose flattened index is ``position * channels + channel``, channels last) and the gamma, beta,
  moving mean and variance of batch normalization in between.
* **Rounds** (:func:`prune_neurons`): measure, cut, fine-tune, ``rounds`` times.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from flow.core.errors import FlowError
from flow.keras.env import keras, qkeras_objects

# Layers whose output units can be removed (kernel ``(..., inputs, units)``, bias ``(units,)``).
PRUNABLE = ("Dense", "QDense", "Conv1D", "Conv2D", "QConv1D", "QConv2D")
# Layers that act on each channel (last axis) on its own: a removed channel stays removed through them.
CHANNELWISE = ("Activation", "QActivation", "ReLU", "LeakyReLU", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
               "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D", "GlobalMaxPooling1D",
               "GlobalMaxPooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "ZeroPadding1D",
               "ZeroPadding2D", "BatchNormalization", "QBatchNormalization")


@dataclass
class UnitActivity:
    """What one layer's units do on the data: ``active_fraction[i]`` in [0, 1] is the fraction of the
    values of unit ``i`` that are non-zero, ``mean_magnitude[i]`` their mean absolute value, both read
    at the output of layer ``measured_at`` (what the next layer reads) over ``values_per_unit`` values
    (samples x output positions)."""

    layer: str
    measured_at: str
    active_fraction: np.ndarray
    mean_magnitude: np.ndarray
    values_per_unit: int


# ---------------------------------------------------------------------------------------------------
# The model's graph


def _consumers(model: Any) -> tuple[dict[str, list[str]], dict[str, list[str]], set[str]]:
    """``(inbound, outbound, outputs)``: layer names feeding each layer, fed by each layer, and the
    layers whose outputs are the model's outputs (read from the model's config)."""
    cfg = model.get_config()
    names = [layer.name for layer in model.layers]
    inbound: dict[str, list[str]] = {n: [] for n in names}
    if "output_layers" in cfg:  # functional
        for lc in cfg["layers"]:
            inbound[lc["name"]] = [t[0] for node in lc.get("inbound_nodes", []) for t in node]
        outputs = {t[0] for t in cfg["output_layers"]}
    else:  # Sequential: a chain
        for prev, cur in zip(names, names[1:]):
            inbound[cur] = [prev]
        outputs = {names[-1]}
    outbound: dict[str, list[str]] = {n: [] for n in names}
    for n, ins in inbound.items():
        for i in ins:
            outbound.setdefault(i, []).append(n)
    return inbound, outbound, outputs


def _is_channelwise(layer: Any) -> bool:
    cls = layer.__class__.__name__
    if cls not in CHANNELWISE:
        return False
    cfg = layer.get_config()
    if cfg.get("data_format") == "channels_first" or "softmax" in str(cfg.get("activation", "")):
        return False
    if "BatchNormalization" in cls:
        axis = cfg.get("axis", -1)
        axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
        return axis in (-1, len(layer.input_shape) - 1)
    return True


def _plain_kernel(layer: Any) -> bool:
    """A Dense/Conv layer whose kernel is ``(..., inputs, outputs)`` over channels last (no groups)."""
    cfg = layer.get_config()
    return layer.__class__.__name__ in PRUNABLE and cfg.get("groups", 1) == 1 and cfg.get("data_format") != "channels_first"


def _check_prunable(layer: Any) -> None:
    cls = layer.__class__.__name__
    cfg = layer.get_config()
    if not _plain_kernel(layer):
        raise FlowError(f"layer {layer.name!r} ({cls}) cannot be neuron-pruned: only {', '.join(PRUNABLE)} "
                        "layers (channels last, no groups) have units or filters to remove")
    if "softmax" in str(cfg.get("activation", "")):
        raise FlowError(f"layer {layer.name!r} ends in softmax, which couples its units: it cannot be neuron-pruned")


def width(layer: Any) -> int:
    """Units of a Dense layer, filters of a Conv layer."""
    cfg = layer.get_config()
    return int(cfg["units"] if "units" in cfg else cfg["filters"])


def model_widths(model: Any) -> dict[str, int]:
    """Units of every Dense and filters of every Conv layer of ``model``, by layer name."""
    return {layer.name: width(layer) for layer in model.layers if layer.__class__.__name__ in PRUNABLE}


def measured_at(model: Any, name: str) -> str:
    """The layer whose output the next layer reads from ``name``'s units: ``name`` followed through its
    chain of single, channel-wise successors (activation, batch normalization, pooling, dropout)."""
    _, outbound, _ = _consumers(model)
    end = name
    while len(outbound.get(end, [])) == 1 and _is_channelwise(model.get_layer(outbound[end][0])):
        end = outbound[end][0]
    return end


def _propagate(model: Any, keep: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray | None, np.ndarray | None]]:
    """For each layer, ``(input mask, output mask)``: the kept indices along the last axis of its input
    and output tensors in the original model (None: all kept). :class:`FlowError` names a layer that
    cannot carry a narrower input, or a pruned layer whose units reach a model output."""
    inbound, _, outputs = _consumers(model)
    unknown = sorted(set(keep) - set(inbound))
    if unknown:
        raise FlowError(f"no layer named {', '.join(map(repr, unknown))} in model {model.name!r}")
    out_mask: dict[str, np.ndarray | None] = {}
    masks: dict[str, tuple[np.ndarray | None, np.ndarray | None]] = {}
    pruned_from: dict[str, str] = {}  # layer -> the pruned layer whose narrower units reach it
    for layer in model.layers:
        name, cls = layer.name, layer.__class__.__name__
        ins = [out_mask[i] for i in inbound[name]]
        origin = next((pruned_from[i] for i in inbound[name] if i in pruned_from), None)
        in_mask = ins[0] if len(ins) == 1 else None
        if len(ins) > 1 and any(m is not None for m in ins):
            raise FlowError(f"layer {name!r} ({cls}) merges the narrower output of pruned layer {origin!r} with "
                            "other tensors: neuron pruning cannot carry it through")
        if name in keep:
            _check_prunable(layer)
            kept = np.asarray(keep[name], dtype=np.int64)
            n = width(layer)
            if kept.ndim != 1 or len(kept) == 0 or np.any(np.diff(kept) <= 0) or kept[0] < 0 or kept[-1] >= n:
                raise FlowError(f"layer {name!r}: units to keep must be increasing indices in [0, {n}), at least one")
            result = kept if len(kept) < n else None
            origin = name if result is not None else None
        elif in_mask is None:
            result = None
        elif _plain_kernel(layer):
            result = None  # consumes the narrower input (kernel rows cut), full width out
            origin = None
        elif _is_channelwise(layer):
            result = in_mask
        elif cls == "Flatten" and layer.get_config().get("data_format") != "channels_first":
            shape = layer.input_shape[1:]
            channels, positions = int(shape[-1]), int(np.prod(shape[:-1]))
            result = (np.arange(positions)[:, None] * channels + in_mask[None, :]).reshape(-1)
        else:
            raise FlowError(f"layer {name!r} ({cls}) follows pruned layer {origin!r}: neuron pruning carries a "
                            "narrower input only through Dense/Conv, activation, batch normalization, pooling, "
                            "dropout, zero padding and Flatten layers")
        if result is not None and name in outputs:
            raise FlowError(f"layer {origin!r} is the output layer: its units are the model's outputs "
                            + ("and cannot be removed" if origin == name else f"(through {name!r}) and cannot be removed"))
        out_mask[name] = result
        if result is not None:
            pruned_from[name] = origin
        masks[name] = (in_mask, result)
    return masks


# ---------------------------------------------------------------------------------------------------
# Surgery


def narrow_model(model: Any, keep: dict[str, np.ndarray]) -> Any:
    """A copy of ``model`` in which layer ``name`` keeps only the units (Dense) or filters (Conv) with
    the indices ``keep[name]`` (increasing), and every weight downstream is cut to match.

    Same model class and layer names; each layer is rebuilt from its own config (quantizers included)
    with ``units``/``filters`` changed where pruned. ``model`` is not changed.
    """
    k = keras()
    masks = _propagate(model, keep)

    def clone(layer: Any) -> Any:
        cfg = layer.get_config()
        if layer.name in keep:
            cfg["units" if "units" in cfg else "filters"] = len(keep[layer.name])
        return layer.__class__.from_config(cfg)

    with k.utils.custom_object_scope(qkeras_objects()):
        new = k.models.clone_model(model, clone_function=clone)
    for layer in new.layers:
        old = model.get_layer(layer.name)
        weights = old.get_weights()
        in_mask, out_mask = masks[layer.name]
        if not weights or (in_mask is None and out_mask is None):
            layer.set_weights(weights)
            continue
        if old.__class__.__name__ in PRUNABLE:
            kernel = weights[0]
            if in_mask is not None:
                kernel = np.take(kernel, in_mask, axis=-2)
            if out_mask is not None:
                kernel = np.take(kernel, out_mask, axis=-1)
            rest = [w if out_mask is None else np.take(w, out_mask, axis=-1) for w in weights[1:]]
            layer.set_weights([kernel, *rest])
        else:  # channel-wise with per-channel weights (batch normalization)
            layer.set_weights([np.take(w, in_mask, axis=-1) for w in weights])
    return new


# ---------------------------------------------------------------------------------------------------
# Activity and selection


def measure_activity(model: Any, x: np.ndarray, layers: list[str], batch_size: int = 1024) -> dict[str, UnitActivity]:
    """Activity of every unit of ``layers`` on the inputs ``x`` (inference mode: dropout off, batch
    normalization with its moving statistics)."""
    k = keras()
    ends = [measured_at(model, name) for name in layers]
    probe = k.Model(model.inputs, [model.get_layer(e).output for e in ends])
    nonzero: list[np.ndarray | None] = [None] * len(layers)
    magnitude: list[np.ndarray | None] = [None] * len(layers)
    counts = [0] * len(layers)
    for start in range(0, len(x), batch_size):
        outs = probe(x[start:start + batch_size], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for i, out in enumerate(outs):
            v = np.asarray(out, dtype=np.float64)
            v = v.reshape(-1, v.shape[-1])
            nz, mag = np.sum(v != 0, axis=0), np.sum(np.abs(v), axis=0)
            nonzero[i] = nz if nonzero[i] is None else nonzero[i] + nz
            magnitude[i] = mag if magnitude[i] is None else magnitude[i] + mag
            counts[i] += len(v)
    return {name: UnitActivity(name, end, nonzero[i] / max(1, counts[i]), magnitude[i] / max(1, counts[i]),
                               counts[i])
            for i, (name, end) in enumerate(zip(layers, ends))}


def least_active_first(activity: UnitActivity) -> np.ndarray:
    """Unit indices from least to most active: by active fraction, then mean magnitude, then index."""
    n = len(activity.active_fraction)
    return np.lexsort((np.arange(n), activity.mean_magnitude, activity.active_fraction))


def units_to_remove(activity: UnitActivity, threshold: float | None = None, count: int | None = None) -> np.ndarray:
    """Increasing indices of the units to remove: those with ``active_fraction < threshold``, or the
    ``count`` least active (:func:`least_active_first`). Exactly one of the two must be given."""
    if (threshold is None) == (count is None):
        raise ValueError("give exactly one of threshold and count")
    if threshold is not None:
        return np.flatnonzero(activity.active_fraction < threshold)
    return np.sort(least_active_first(activity)[:count])


# ---------------------------------------------------------------------------------------------------
# Rounds of measure, cut, fine-tune


def _outputs(model: Any, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Model outputs in inference mode by eager calls (``predict()`` would trace a new function per model)."""
    return np.concatenate([np.asarray(model(x[i:i + batch_size], training=False), dtype=np.float64)
                           for i in range(0, len(x), batch_size)]).reshape(len(x), -1)


def prune_neurons(model: Any, split: Any, pruning: Any, training: Any, from_logits: bool, source: str) -> tuple[Any, dict]:
    """Neuron pruning of a trained ``model`` as a :class:`flow.spec.NeuronPruning` asks, on the data
    ``split`` (:class:`flow.data.Split`); fine-tuning uses ``training`` (:class:`flow.spec.Training`)
    with ``pruning.finetune_epochs`` epochs, seeded. Returns the pruned model and a JSON-able record.

    Per round: activity on ``split.x_train``, selection, :func:`narrow_model`, fine-tuning; the
    accuracy on ``split.x_test`` before the cut, after it and after fine-tuning. ``fraction`` F removes
    ``floor(F * n * r / rounds)`` of a layer's ``n`` original units by the end of round ``r``. A
    threshold that would remove every unit of a layer is a :class:`FlowError` naming ``source``
    (the spec file) and the field.
    """
    from flow.data import accuracy
    from flow.keras.train import train

    layers = list(pruning.layers)
    for name in layers:
        _check_prunable(model.get_layer(name))
    original = {name: width(model.get_layer(name)) for name in layers}
    index = {name: np.arange(n) for name, n in original.items()}  # current unit -> original unit
    kinds = {name: "filters" if "filters" in model.get_layer(name).get_config() else "units" for name in layers}
    finetune = dataclasses.replace(training, epochs=pruning.finetune_epochs)
    acc = accuracy(_outputs(model, split.x_test), split.y_test)
    accuracy_unpruned = acc
    rounds = []
    for r in range(1, pruning.rounds + 1):
        activity = measure_activity(model, split.x_train, layers)
        keep, per_layer = {}, []
        for name in layers:
            a = activity[name]
            n = len(a.active_fraction)
            if pruning.threshold is not None:
                drop = units_to_remove(a, threshold=pruning.threshold)
                if len(drop) == n:
                    raise FlowError(
                        f"{source}: field `pruning.threshold`: {pruning.threshold:g} would remove every unit of "
                        f"layer {name!r} (round {r}: its most active unit is non-zero on "
                        f"{a.active_fraction.max():.4f} of its values); use a lower threshold or `fraction`")
            else:
                target = int(np.floor(pruning.fraction * original[name] * r / pruning.rounds + 1e-9))
                drop = units_to_remove(a, count=max(0, target - (original[name] - n)))
            kept = np.setdiff1d(np.arange(n), drop)
            if len(drop):
                keep[name] = kept
            per_layer.append({
                "layer": name, "kind": kinds[name], "measured_at": a.measured_at, "values_per_unit": a.values_per_unit,
                "before": n, "after": int(len(kept)),
                "removed": [int(i) for i in index[name][drop]],
                "units": [int(i) for i in index[name]],
                "active_fraction": [float(v) for v in a.active_fraction],
                "mean_magnitude": [float(v) for v in a.mean_magnitude],
                "max_removed_activity": float(a.active_fraction[drop].max()) if len(drop) else None,
                "min_kept_activity": float(a.active_fraction[kept].min()),
            })
            index[name] = index[name][kept]
        before = acc
        model = narrow_model(model, keep)  # a new model even when nothing is cut: the caller's stays as it was
        after_cut = accuracy(_outputs(model, split.x_test), split.y_test)
        if pruning.finetune_epochs > 0:
            train(model, split, finetune, None, f"fine-tune {r}/{pruning.rounds}", from_logits)
        acc = accuracy(_outputs(model, split.x_test), split.y_test)
        rounds.append({"round": r, "accuracy_before": before, "accuracy_after_cut": after_cut,
                       "accuracy_after_finetune": acc, "layers": per_layer})
        print(f"  [prune] round {r}/{pruning.rounds}: "
              + ", ".join(f"{p['layer']} {p['before']} -> {p['after']} {p['kind']}" for p in per_layer)
              + f"; test accuracy {before:.4f} -> {after_cut:.4f} (cut) -> {acc:.4f} (fine-tuned)",
              file=sys.stderr, flush=True)
    return model, {
        "method": "neurons", "fraction": pruning.fraction, "threshold": pruning.threshold,
        "finetune_epochs": pruning.finetune_epochs, "rounds_asked": pruning.rounds,
        "measured_on": {"data": "training split", "samples": int(len(split.x_train))},
        "accuracy_unpruned": accuracy_unpruned, "accuracy_pruned": acc,
        "layers": [{"layer": name, "kind": kinds[name], "before": original[name], "after": int(len(index[name])),
                    "kept": [int(i) for i in index[name]]} for name in layers],
        "rounds": rounds,
    }
