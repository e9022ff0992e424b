"""Bit-width and hardware sweeps (``hlsflow sweep``): sweep files, points, workers, Pareto reports."""
