"""The overload scenario's percentiles, and the CPU accounting its per-request figures rest on."""

import os
import time

import pytest

from bench.harness import cpu_seconds
from bench.scenarios.overload import _percentile


def test_cpu_seconds_reads_this_process_user_and_system_time() -> None:
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:  # burn some CPU so both readings move
        pass

    # /proc counts in clock ticks (usually 10 ms); process_time is exact.
    assert cpu_seconds(os.getpid()) == pytest.approx(time.process_time(), abs=0.1)


def test_percentiles_of_a_known_series() -> None:
    values = [float(v) for v in range(1, 101)]

    assert _percentile(values, 50) == pytest.approx(50.5)
    assert _percentile(values, 99) == pytest.approx(99.01)
    assert _percentile([7.0], 99) == 7.0
