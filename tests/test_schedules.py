"""Learning-rate schedules at chosen points of training, against hand-computed values."""
import pytest

from pipeline.schedules import one_cycle_lr


def test_one_cycle_lr_shape():
    peak = 0.1
    assert one_cycle_lr(0.0, peak) == pytest.approx(peak / 25)  # start
    assert one_cycle_lr(0.125, peak) == pytest.approx((peak / 25 + peak) / 2)  # half-way up the cosine
    assert one_cycle_lr(0.25, peak) == pytest.approx(peak)  # the peak at 25 %
    assert one_cycle_lr(0.625, peak) == pytest.approx((peak + peak / 25e4) / 2)  # half-way down
    assert one_cycle_lr(1.0, peak) == pytest.approx(peak / 25e4)  # the end
