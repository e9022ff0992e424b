"""The keys hls4ml reads in a config, derived from the installed hls4ml (1.3.0) itself, not written by hand.

hls4ml takes any key of a layer's config as a layer attribute and ignores the ones no code reads, so a
misspelt ``ReuseFacter: 4`` converts at reuse factor 1 without a word. :func:`known_keys` collects, per level
of an hls4ml config file, what hls4ml does read:

- top level (``Backend``, ``Part``, ``IOType``, ``KerasJson``, ...): the keys of every backend's
  ``create_initial_config()``, of ``hls4ml.utils.config.create_config`` and the ones its converters read;
- ``HLSConfig`` (``Model``, ``LayerType``, ``LayerName``, ``Flows``, ...) and ``HLSConfig.Model``: the keys
  ``HLSConfig._parse_hls_config`` reads and the ones hls4ml's ``config_from_*`` functions write (PyTorch's
  ``InputShape``), the ``['Model']`` keys any hls4ml module reads, and the keys
  ``get_layer_config_value`` looks up (in a layer's settings, else in ``Model``);
- a layer's settings (``LayerName.<name>``, ``LayerType.<class>``): the keys ``HLSConfig.parse_name_config`` and
  ``get_layer_config_value`` read, and every configurable attribute of every hls4ml layer class and backend
  (``ReuseFactor``, ``TableSize``, ``Trace``, ``ResultT``, ...), compared as hls4ml compares them, in snake case;
- a ``Precision`` mapping: the names of the configurable type attributes (``result``, ``accum``, ``weight``,
  ``table``, ...), plus ``default`` (and ``maximum`` for ``Model``).
"""

from __future__ import annotations

import difflib
import functools
import inspect
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class KnownKeys:
    """The keys hls4ml reads, per config level. ``layer`` maps hls4ml's snake-case form to the PascalCase name
    shown in suggestions (``reuse_factor`` -> ``ReuseFactor``)."""

    top: frozenset[str]
    hls_config: frozenset[str]
    model: frozenset[str]
    layer: dict[str, str]
    precision: frozenset[str]


def _read_keys(source: str, *patterns: str) -> set[str]:
    """The capitalised keys matched by ``patterns`` (regexes with one group) in ``source``."""
    return {m for p in patterns for m in re.findall(p, source) if m[:1].isupper()}


@functools.cache
def known_keys() -> KnownKeys:
    """What the installed hls4ml reads (see the module docstring); computed once per process."""
    from flow.keras.env import hls4ml_sees_keras2

    with hls4ml_sees_keras2() as hls4ml:
        from hls4ml.backends import get_available_backends, get_backend
        from hls4ml.model.attributes import TypeAttribute
        from hls4ml.model.graph import HLSConfig
        from hls4ml.model.layers import layer_map
        from hls4ml.utils.config import create_config
        from hls4ml.utils.string_utils import convert_to_snake_case

        root = Path(hls4ml.__file__).parent
        top = _read_keys(inspect.getsource(create_config), r"config\['(\w+)'\]")
        for converter in ("__init__.py", "keras_v2_to_hls.py", "keras_v3_to_hls.py", "pytorch_to_hls.py",
                          "onnx_to_hls.py"):
            top |= _read_keys((root / "converters" / converter).read_text(),
                              r"config\[['\"](\w+)['\"]\]", r"config\.get\(['\"](\w+)['\"]")
        attributes = [a for cls in set(layer_map.values()) for a in cls.expected_attributes]
        for name in get_available_backends():
            try:
                backend = get_backend(name)
                top |= set(backend.create_initial_config())
            except Exception:  # a backend that cannot even start here (oneAPI, Libero): its keys are not needed
                continue
            attributes += [a for attrs in backend.attribute_map.values() for a in attrs]
        parse = inspect.getsource(HLSConfig._parse_hls_config)
        hls_config = _read_keys(parse, r"hls_config\.get\('(\w+)'", r"'(\w+)' in hls_config")
        for name, function in inspect.getmembers(hls4ml.utils.config, inspect.isfunction):
            if name.startswith("config_from_"):  # what hls4ml's own config makers write (PyTorch's InputShape)
                hls_config |= _read_keys(inspect.getsource(function), r"\bconfig\['(\w+)'\] *=")
        model = _read_keys(parse, r"model_cfg\.get\('(\w+)'")
        fallback = set()  # read by get_layer_config_value: a layer's settings, else its type's, else Model's
        for path in root.rglob("*.py"):
            source = path.read_text(errors="replace")
            model |= _read_keys(source, r"\['Model'\](?:\.get\(|\[)\s*'(\w+)'", r"model_config\['(\w+)'\]")
            fallback |= _read_keys(source, r"get_layer_config_value\(\w+, *['\"](\w+)['\"]")
        model |= fallback
        layer_names = fallback | _read_keys(inspect.getsource(HLSConfig.parse_name_config), r"layer_cfg\.get\('(\w+)'")
        configurable = [a for a in attributes if a.configurable]
        layer = {convert_to_snake_case(k): k for k in layer_names}
        layer |= {a.name: a.config_name for a in configurable}
        precision = {a.name[:-2] for a in configurable if isinstance(a, TypeAttribute)}
    return KnownKeys(top=frozenset(top), hls_config=frozenset(hls_config), model=frozenset(model), layer=layer,
                     precision=frozenset(precision | {"default"}))


def closest(key: str, candidates: list[str] | frozenset[str]) -> str | None:
    """The candidate nearest to ``key`` (difflib ratio >= 0.6, case ignored), or None."""
    lowered = {c.lower(): c for c in candidates}
    found = difflib.get_close_matches(key.lower(), list(lowered), n=1)
    return lowered[found[0]] if found else None


def unknown_layer_key(key: str) -> str | None:
    """None when hls4ml reads ``key`` in a layer's settings; else the message: what it is and the closest key."""
    keys = known_keys().layer  # first: imports hls4ml as flow.keras.env sets it up
    from hls4ml.utils.string_utils import convert_to_snake_case

    if convert_to_snake_case(key) in keys:
        return None
    return _unknown(key, sorted(set(keys.values())))


def unknown_key(key: str, known: frozenset[str]) -> str | None:
    """None when ``key`` is one of ``known``; else the message naming the closest known key."""
    return None if key in known else _unknown(key, sorted(known))


def _unknown(key: str, known: list[str]) -> str:
    near = closest(key, known)
    hint = f"did you mean `{near}`?" if near else f"hls4ml reads {', '.join(known)}" if len(known) <= 20 else \
        "hls4ml reads no such setting"
    return f"unknown hls4ml setting (hls4ml would ignore it); {hint}"
