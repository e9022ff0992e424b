"""``hlsflow rtl`` says what it is doing (issue 22): one stderr line per phase and per traced layer, with its
elapsed seconds once it took at least ``flow.rtl.progress.PROGRESS_SECONDS``, announced before it starts when
the model has at least ``LARGE_WEIGHTS`` nonzero weights; a small model stays quiet. The layer hook lives in
the loop the emulator shares (``flow.arith.walk.run``); tests/test_emulate.py shows the emulator unchanged."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_graph
from da4ml.trace import comb_trace

from flow.arith.netlist_eval import predict
from flow.arith.trace import trace_graph
from flow.arith.types import full_range_inputs
from flow.rtl import progress
from flow.rtl.generate import generate


@pytest.fixture(scope="module", name="tiny_graph")
def tiny_graph_fixture(tmp_path_factory):
    """Two traced Dense layers (conftest.tiny_graph)."""
    return tiny_graph(tmp_path_factory.mktemp("tiny"))


def _generate_stderr(graph, out: Path, capsys) -> list[str]:
    capsys.readouterr()
    generate(graph, out, "tiny", latency_cutoff=2.0, run_lint=False, check_samples=50)
    return capsys.readouterr().err.splitlines()


def test_a_small_model_prints_nothing_while_it_traces(tiny_graph, tmp_path, capsys):
    assert _generate_stderr(tiny_graph, tmp_path / "rtl", capsys) == []


@pytest.mark.parametrize("pattern", [
    r"tracing layer 1/3 d1 \(Dense 6×4\): \d+\.\d s",
    r"tracing layer 3/3 d2 \(Dense 4×3\): \d+\.\d s",
    r"tracing 3 layers: \d+\.\d s",
    r"building the netlist: \d+\.\d s",
    r"checking 50 samples against the emulator: \d+\.\d s",
    r"pipelining: \d+\.\d s",
    r"writing Verilog \(\d+ stages\): \d+\.\d s",
])
def test_every_phase_reports_its_seconds_when_the_threshold_is_zero(pattern, tiny_graph, tmp_path, capsys,
                                                                      monkeypatch):
    monkeypatch.setattr(progress, "PROGRESS_SECONDS", 0.0)
    lines = _generate_stderr(tiny_graph, tmp_path / "rtl", capsys)
    assert any(re.fullmatch(f"hlsflow rtl: {pattern}", line) for line in lines), lines


def test_a_large_model_announces_each_phase_before_it_runs(tiny_graph, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(progress, "LARGE_WEIGHTS", 1)
    lines = _generate_stderr(tiny_graph, tmp_path / "rtl", capsys)
    starts = [line.removeprefix("hlsflow rtl: ") for line in lines if line.endswith(" ...")]
    assert starts[:-1] == ["tracing 3 layers ...", "tracing layer 1/3 d1 (Dense 6×4) ...",
                           "tracing layer 2/3 r1 (Activation) ...", "tracing layer 3/3 d2 (Dense 4×3) ...",
                           "building the netlist ...", "checking 50 samples against the emulator ...",
                           "pipelining ..."]
    assert re.fullmatch(r"writing Verilog \(\d+ stages\) \.\.\.", starts[-1])


def test_the_size_counts_each_nonzero_weight_once(tiny_graph):
    dense = [layer for layer in tiny_graph.get_layers() if layer.name in ("d1", "d2")]
    nonzero = sum(int((layer.weights["weight"].data != 0).sum()) for layer in dense)
    assert progress.trace_size(tiny_graph) == (3, nonzero)
    w = dense[0].weights["weight"].data
    i = tuple(int(k) for k in zip(*w.nonzero()).__next__())
    old, w[i] = w[i], 0
    try:
        assert progress.trace_size(tiny_graph) == (3, nonzero - 1)
    finally:
        w[i] = old


def test_the_layer_hook_leaves_the_trace_unchanged(tiny_graph):
    seen: list[tuple[int, str, bool]] = []
    plain = trace_graph(tiny_graph)
    hooked = trace_graph(tiny_graph, on_layer=lambda i, step, s: seen.append((i, step.name, s is None)))
    x = full_range_inputs(plain.input_type, plain.input_shape, 300, seed=2).reshape(300, -1)
    netlists = [comb_trace(t.inputs, t.outputs, keep_dead_inputs=True) for t in (plain, hooked)]
    assert np.array_equal(predict(netlists[0], x), predict(netlists[1], x))
    assert netlists[0].cost == netlists[1].cost
    assert seen == [(1, "d1", True), (1, "d1", False), (2, "r1", True), (2, "r1", False), (3, "d2", True),
                    (3, "d2", False)]


def test_a_folded_core_reports_its_phases_when_the_threshold_is_zero(tiny_graph, tmp_path, capsys, monkeypatch):
    from flow.rtl.sequential import choose_architecture, generate_sequential

    monkeypatch.setattr(progress, "PROGRESS_SECONDS", 0.0)
    kind, reuse = choose_architecture(tiny_graph, "folded", 2)
    capsys.readouterr()
    generate_sequential(tiny_graph, tmp_path / "rtl", "tiny", kind, reuse, run_lint=False, check_samples=50)
    phases = [re.sub(r": \d+\.\d s$", "", line.removeprefix("hlsflow rtl: "))
              for line in capsys.readouterr().err.splitlines()]
    assert phases[0] == "tracing 3 layers into folded units"
    assert "checking 50 samples of the composed units against the emulator" in phases
    assert "building the units' netlists and Verilog" in phases
