"""Shape checks of an hls4ml config as users write it (``hlsflow convert --config``) and as ``project.json``
keeps it, before hls4ml sees it: every error names the file and the field (``HLSConfig.LayerName.fc1.Precision``).

Only the structure and the values hlsflow reads are checked (types, backend, IO type, clock, reuse
factor, precision strings), and that every key is one hls4ml reads (:mod:`flow.hls.hls4ml_keys`: hls4ml
silently ignores the others, so ``ReuseFacter: 4`` is an error naming the closest key, ``ReuseFactor``);
which layer names match the model is decided where the model is known.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from flow.core.errors import FlowError
from flow.spec import BACKENDS, IO_TYPES

INTEGER_SETTINGS = ("ReuseFactor", "TableSize", "BramFactor", "ParallelizationFactor")


def _fail(path: Path, where: str, msg: str) -> FlowError:
    return FlowError(f"{path}: field `{where}`: {msg}")


def _precision(path: Path, value: Any, where: str) -> None:
    """A precision: ``auto`` or an hls4ml type string (``fixed<16,6>``, ``ap_ufixed<8,3,AP_RND>``, ``int<8>``),
    or a mapping of such strings (``result``, ``accum``, ``weight``, ...)."""
    from flow.arith.types import parse_type

    if isinstance(value, dict):
        for key, sub in value.items():
            if not isinstance(key, str):
                raise _fail(path, where, f"keys must be names such as result or accum, got {key!r}")
            _precision(path, sub, f"{where}.{key}")
        return
    if not isinstance(value, str):
        raise _fail(path, where, f"must be a type such as 'ap_fixed<16,6>' or 'auto', got {value!r}")
    if value.strip() == "auto":
        return
    try:
        parse_type(value)
    except (ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise _fail(path, where, f"not a fixed-point or integer type: {value!r} ({exc})") from None


def _positive_int(path: Path, value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(path, where, f"must be an integer >= 1, got {value!r}")


def _known_keys(path: Path, value: dict, where: str, level: str) -> None:
    """Every key of ``value`` (the mapping at ``where``) is one hls4ml reads at ``level`` (``top``, ``hls_config``,
    ``model``, ``layer``, ``precision``, ``model_precision``)."""
    from flow.hls.hls4ml_keys import known_keys, unknown_key, unknown_layer_key

    known = known_keys()
    sets = {"top": known.top, "hls_config": known.hls_config, "model": known.model, "precision": known.precision,
            "model_precision": known.precision | {"maximum"}}
    for key in value:
        if not isinstance(key, str):
            continue  # the shape checks name non-string keys
        problem = unknown_layer_key(key) if level == "layer" else unknown_key(key, sets[level])
        if problem is not None:
            raise _fail(path, f"{where}.{key}" if where else key, problem)


def _layer_config(path: Path, value: Any, where: str, level: str = "layer") -> None:
    if not isinstance(value, dict):
        raise _fail(path, where, f"must be a mapping, got {type(value).__name__}")
    _known_keys(path, value, where, level)
    if isinstance(value.get("Precision"), dict):
        _known_keys(path, value["Precision"], f"{where}.Precision",
                    "model_precision" if level == "model" else "precision")
    if "Precision" in value:
        _precision(path, value["Precision"], f"{where}.Precision")
    for key in INTEGER_SETTINGS:
        if key in value:
            _positive_int(path, value[key], f"{where}.{key}")
    if "Trace" in value and not isinstance(value["Trace"], bool):
        raise _fail(path, f"{where}.Trace", f"must be true or false, got {value['Trace']!r}")
    if "Strategy" in value and not isinstance(value["Strategy"], str):
        raise _fail(path, f"{where}.Strategy", f"must be a name such as Latency, got {value['Strategy']!r}")


def check_hls_config(path: Path, hls_config: Any, where: str = "HLSConfig") -> dict:
    """``hls_config`` (an ``HLSConfig`` mapping: ``Model``, ``LayerType``, ``LayerName``) if well formed."""
    if not isinstance(hls_config, dict):
        raise _fail(path, where, f"must be a mapping, got {type(hls_config).__name__}")
    _known_keys(path, hls_config, where, "hls_config")
    if "Model" in hls_config:
        _layer_config(path, hls_config["Model"], f"{where}.Model", "model")
    for section in ("LayerType", "LayerName"):
        if section not in hls_config:
            continue
        layers = hls_config[section]
        if not isinstance(layers, dict):
            raise _fail(path, f"{where}.{section}", f"must be a mapping of names to settings, got {layers!r}")
        for name, cfg in layers.items():
            if not isinstance(name, str):
                raise _fail(path, f"{where}.{section}", f"names must be strings, got {name!r}")
            _layer_config(path, cfg, f"{where}.{section}.{name}")
    return hls_config


def check_hls4ml_yaml(path: Path, cfg: Any) -> dict:
    """A whole hls4ml config file (``Backend``, ``Part``, ``ClockPeriod``, ``IOType``, ``HLSConfig``, ...)."""
    if not isinstance(cfg, dict):
        raise FlowError(f"{path}: an hls4ml config must be a mapping with an `HLSConfig` mapping, "
                        f"got {type(cfg).__name__}")
    if not isinstance(cfg.get("HLSConfig"), dict):
        raise FlowError(f"{path}: an hls4ml config needs an `HLSConfig` mapping")
    _known_keys(path, cfg, "", "top")
    if "Backend" in cfg and cfg["Backend"] not in BACKENDS:
        raise _fail(path, "Backend", f"must be one of {', '.join(BACKENDS)}, got {cfg['Backend']!r}")
    if "IOType" in cfg and cfg["IOType"] not in IO_TYPES:
        raise _fail(path, "IOType", f"must be one of {', '.join(IO_TYPES)}, got {cfg['IOType']!r}")
    if "Part" in cfg and not isinstance(cfg["Part"], str):
        raise _fail(path, "Part", f"must be a part name, got {cfg['Part']!r}")
    if "ClockPeriod" in cfg:
        clock = cfg["ClockPeriod"]
        if isinstance(clock, bool) or not isinstance(clock, (int, float)) or not math.isfinite(clock) or clock <= 0:
            raise _fail(path, "ClockPeriod", f"must be a positive number of ns, got {clock!r}")
    check_hls_config(path, cfg["HLSConfig"])
    return cfg
