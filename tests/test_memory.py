"""Peak memory is measured per run, not carried over from earlier runs in the same process."""
import pytest
import torch

from common.memory import MemoryMeter


def test_peak_memory_is_per_run():
    cpu = torch.device("cpu")
    first = MemoryMeter(cpu)
    if not first.reset:
        pytest.skip("this system cannot reset the peak resident set size (/proc/self/clear_refs)")
    big = torch.ones(50_000_000)  # 200 MB, touched
    big.add_(1)
    del big
    first_peak, first_delta = first.read()
    second = MemoryMeter(cpu)
    small = torch.ones(1000)
    second_peak, second_delta = second.read()
    assert first_delta > 150
    assert first_peak - second_peak > 150, "the second run still reports the first run's peak"
    assert second_delta < 50
    assert small.sum().item() == 1000
