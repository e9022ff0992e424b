"""The cycle model of the units' handshakes (flow/rtl/schedule.py): latency, initiation interval, FIFO depths.

Each expectation is derived from the unit's rule as its docstring states it, not read off a run: a comb unit
shifts its valid bits every cycle, a fold unit needs one step per slice and output block of every beat, a
FIFO is as deep as the most beats it held plus one. ``hlsflow sim`` measures the same figures on the RTL
(tests/test_rtl_sim*.py); these tests pin the model itself.
"""

from __future__ import annotations

import pytest

from flow.core.errors import FlowError
from flow.rtl import units
from flow.rtl.schedule import CollectModel, CombModel, FifoModel, FoldModel, WindowModel, timing


@pytest.mark.parametrize("regs", [1, 2, 3, 5, 8])
def test_comb_unit_with_its_fifo_takes_a_sample_every_cycle_after_regs_cycles(regs):
    t, _ = timing(lambda depths: [CombModel(regs, units.comb_fifo_depth(regs))], 1, 1, samples=4 * regs)
    assert (t.latency, t.ii) == (regs, 1)


@pytest.mark.parametrize("regs", [2, 3, 5, 8])
def test_comb_unit_one_credit_short_of_its_fifo_cannot_take_a_sample_every_cycle(regs):
    """Enough samples to use up the credits: the shortfall shows only once ``regs`` samples are in flight."""
    t, _ = timing(lambda depths: [CombModel(regs, units.comb_fifo_depth(regs) - 1)], 1, 1, samples=4 * regs)
    assert t.ii > 1


@pytest.mark.parametrize("regs", [1, 3, 8])
def test_comb_unit_with_one_credit_waits_for_each_sample_to_leave(regs):
    """One sample in flight: the next is accepted the cycle after the previous one's credit returns."""
    t, _ = timing(lambda depths: [CombModel(regs, 1)], 1, 1)
    assert (t.latency, t.ii) == (regs, regs + 1)


@pytest.mark.parametrize("slices,blocks,group", [(1, 1, 1), (4, 1, 1), (2, 3, 1), (3, 1, 2), (2, 2, 3)])
def test_fold_unit_takes_one_step_per_slice_and_block_of_every_beat(slices, blocks, group):
    """A sample of ``group`` beats costs slices*blocks steps per beat; its result is registered one cycle after
    the last beat's last step."""
    t, _ = timing(lambda depths: [FoldModel(slices, blocks, group)], group, 1)
    assert t.ii == slices * blocks * group
    assert t.latency == slices * blocks + 1


@pytest.mark.parametrize("group", [1, 2, 3, 7])
def test_collect_unit_gathers_group_beats_into_one(group):
    t, _ = timing(lambda depths: [CollectModel(group)], group, 1)
    assert (t.latency, t.ii) == (1, group)


def test_window_unit_pushes_one_pixel_per_cycle_and_emits_complete_windows():
    """One row of 4 pixels, windows complete at pixels 2 and 3: 4 cycles a sample, the last window one cycle
    after the last pixel."""
    t, _ = timing(lambda depths: [WindowModel([[False] * 4], [[False, False, True, True]])], 4, 2)
    assert (t.latency, t.ii) == (1, 4)


def test_window_unit_pushes_padding_without_an_input_beat():
    """Pads at both ends of a row of 4: 2 input beats, still 4 pushes a sample; the window completed by the
    trailing pad leaves one cycle after the one completed by the last pixel."""
    pad, done = [[True, False, False, True]], [[False, False, True, True]]
    t, _ = timing(lambda depths: [WindowModel(pad, done)], 2, 2)
    assert (t.latency, t.ii) == (2, 4)


def _fold_fifo_comb(depths):
    return [FoldModel(4, 1, 1), FifoModel(None if depths is None else depths[1]), CombModel(2, units.comb_fifo_depth(2))]


def test_fifo_depth_is_the_largest_occupancy_plus_one_and_at_least_two():
    t, nodes = timing(_fold_fifo_comb, 1, 1)
    assert nodes[1].depth == max(2, t.fifo_peaks[1] + 1)


def test_a_chain_runs_at_its_slowest_unit_and_adds_the_latencies_of_its_units():
    """fold (4 steps, latency 5) -> FIFO (passes a beat through in one cycle) -> comb (2 registers)."""
    t, _ = timing(_fold_fifo_comb, 1, 1)
    assert t.ii == 4
    assert t.latency == 5 + 1 + 2


def test_every_sample_sees_the_same_latency():
    t, _ = timing(_fold_fifo_comb, 1, 1, samples=10)
    assert len(t.latencies) == 10
    assert set(t.latencies) == {t.latency}
    assert all(b - a == t.ii for a, b in zip(t.starts, t.starts[1:]))


class _NeverReady(FifoModel):
    def in_ready(self, out_ready: bool) -> bool:
        return False


def test_a_unit_that_never_takes_a_beat_is_reported_as_a_deadlock():
    with pytest.raises(FlowError, match="deadlock"):
        timing(lambda depths: [_NeverReady(None)], 1, 1)
