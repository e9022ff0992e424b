"""What differs by backend and io type, in one place the layer descriptions receive.

hls4ml's Vivado/Vitis templates (``ap_fixed``) and Catapult's (``ac_fixed``, the same rounding and overflow
semantics for the modes hls4ml uses) differ in the order in which a convolution adds its products, and
Catapult's activations other than ReLU/linear use ac_math piecewise-linear functions that are not described
here. ``io_stream`` changes when pooling layers cast to ``accum_t`` and restricts a few layouts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flow.arith.hls_layer import is_latency_strategy


@dataclass(frozen=True)
class Target:
    """``backend``: hls4ml backend name (Vivado, Vitis, Catapult, ...); ``io_type``: io_parallel or io_stream."""

    backend: str = "Vivado"
    io_type: str = "io_parallel"

    @classmethod
    def of(cls, graph: Any) -> Target:
        backend = getattr(graph.config, "backend", None)
        name = str(getattr(backend, "name", None) or graph.config.get_config_value("Backend", "Vivado"))
        return cls(name, str(graph.config.get_config_value("IOType", "io_parallel")))

    @property
    def catapult(self) -> bool:
        return self.backend == "Catapult"

    @property
    def stream(self) -> bool:
        return self.io_type == "io_stream"

    def dense_in_order(self, layer: Any) -> bool:
        """Dense adds its products in index order under the Latency strategy (``nnet_dense_latency.h``)."""
        return is_latency_strategy(layer)

    def conv_in_order(self, layer: Any) -> bool:
        """A convolution adds in im2col (fh, fw, channel) order only with the Latency strategy in io_parallel on
        Vivado/Vitis; Catapult's io_parallel conv adds in (channel, fh, fw) order."""
        return is_latency_strategy(layer) and not self.stream and not self.catapult
