"""The estimate ``hlsflow rtl`` makes before tracing, and ``--max-luts`` (flow/rtl/budget.py): what it counts,
that folding lowers it, and how the budget chooses (or refuses, or only warns) without writing a wrong RTL folder.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import assert_one_error_line, tiny_graph

from flow.keras.env import keras  # noqa: F401  (first: Keras 2 set up before conftest.tiny_graph imports QKeras)
from flow.rtl.budget import LayerSize, csd_digits, estimate, layer_sizes, reuse_candidates, used_reuse


@pytest.mark.parametrize("code,digits", [(0, 0), (1, 1), (-1, 1), (2, 1), (3, 2), (7, 2), (-7, 2), (11, 3),
                                         (85, 4), (-128, 1), (127, 2)])
def test_csd_digits_count_the_shift_add_terms_of_a_constant(code, digits):
    """7 = 8 - 1 (two terms), 11 = 16 - 4 - 1 (three), 85 = 64 + 16 + 4 + 1 (four)."""
    assert int(csd_digits(np.array([code]))[0]) == digits


def test_the_estimate_grows_with_the_nonzero_weights(tmp_path):
    graph = tiny_graph(tmp_path)
    full = estimate(*layer_sizes(graph), {})
    w = next(layer for layer in graph.get_layers() if layer.name == "d1").weights["weight"]
    data = np.array(w.data)
    data[: data.shape[0] // 2] = 0  # the first three inputs of d1 unused
    w.data = data
    sparse = estimate(*layer_sizes(graph), {})
    assert sparse.multiplications < full.multiplications
    assert sparse.adders < full.adders and sparse.luts < full.luts


def _layer(n_in: int, n_out: int, bits: int, seed: int) -> LayerSize:
    """A Dense layer of random ``bits``-bit weight codes (8-bit inputs, 20-bit accumulators)."""
    codes = np.random.default_rng(seed).integers(-(2 ** (bits - 1)), 2 ** (bits - 1), (n_in, n_out))
    return LayerSize("fc", n_in, n_out, 1, int(np.count_nonzero(codes)), int(csd_digits(codes).sum()),
                     int(np.any(codes, axis=0).sum()), 8, bits, 20, n_out * 8)


@pytest.mark.parametrize("n_in,n_out,bits", [(64, 32, 6), (16, 64, 13), (32, 32, 4)])
def test_the_folded_lut_estimate_falls_as_the_reuse_factor_doubles(n_in, n_out, bits):
    """From R = 2 on; R = 2 itself may cost more than unrolled (a truncating accum_t keeps the sums of the shared
    products in LUTs, docs/rtl.md), R = 16 never does."""
    size = _layer(n_in, n_out, bits, 1)
    unrolled, *folded = [estimate([size], 0, {"fc": r}).luts for r in (1, 2, 4, 8, 16)]
    assert all(a > b for a, b in zip(folded, folded[1:])), folded
    assert folded[-1] < unrolled


@pytest.fixture
def project(small_project, tmp_path):
    """A copy of conftest's small project (no rtl/), so every test starts from the same folder."""
    copy = tmp_path / "p"
    shutil.copytree(small_project, copy)
    return copy


def _estimates(project, tmp_path):
    from flow.hls.project import rebuild

    _, graph, _ = rebuild(project, tmp_path / "hls")
    sizes, other = layer_sizes(graph)
    return sizes, {r: estimate(sizes, other, {s.name: r for s in sizes}) for r in reuse_candidates(sizes)}


def test_auto_under_a_budget_traces_the_smallest_folding_estimated_to_fit(project, hlsflow, tmp_path):
    sizes, ests = _estimates(project, tmp_path)
    budget = min(e.luts for r, e in ests.items() if r > 1)  # the cheapest folding's estimate
    assert ests[1].luts > budget, "the small project must be cheaper folded for this test to say anything"
    want = min(r for r, e in ests.items() if e.luts <= budget)
    code, out, err = hlsflow("rtl", project, "--max-luts", budget, "--check-samples", 300)
    assert code == 0, err
    assert out["architecture"] == "folded" and out["estimate"]["luts"] <= budget
    pm = json.loads((project / "rtl" / "port_map.json").read_text())
    assert {k: v["used"] for k, v in pm["reuse_factors"].items()} == {
        s.name: used_reuse(s, want) for s in sizes if used_reuse(s, want) > 1}
    assert out["kernels_composed_vs_emulator"]["differing_outputs"] == 0  # still bit-exact to the emulator
    lines = err.splitlines()
    chosen = next(k for k, line in enumerate(lines) if line.startswith("hlsflow rtl: --architecture auto: "))
    assert lines[chosen + 1].startswith("hlsflow rtl: estimate: ") and "LUTs" in lines[chosen + 1]
    assert "tracing" in lines[chosen + 2]  # the estimate comes before tracing


def test_nothing_within_the_budget_exits_2_with_one_line_and_no_rtl_folder(project, hlsflow):
    code, _, err = hlsflow("rtl", project, "--max-luts", 1)
    assert code == 2
    line = assert_one_error_line(err, "rtl")
    assert "no folding fits 1 LUTs" in line and "pass --max-luts" in line
    assert not (project / "rtl").exists()


@pytest.mark.parametrize("args,architecture,reuse", [
    (["--architecture", "unrolled"], "unrolled", None),
    (["--reuse-factor", "2"], "folded", 2),
])
def test_an_explicit_architecture_is_kept_over_the_budget_with_a_warning(project, hlsflow, args, architecture,
                                                                        reuse):
    code, out, err = hlsflow("rtl", project, "--max-luts", 1, "--check-samples", 200, *args)
    assert code == 0, err
    assert out["architecture"] == architecture
    if reuse is not None:
        assert {v["requested"] for v in out["reuse_factors"].values()} == {reuse}
    assert "hlsflow rtl: warning: " in err and "over the budget of 1 (--max-luts 1)" in err
