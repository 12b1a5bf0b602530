"""The thread pool of the library (thread_map) and how flows cut fan-outs into tasks."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from audiosim.runners import FanOut, fan_out, thread_map


def test_thread_map_keeps_the_order_of_the_items():
    def slow_first(x: int) -> int:
        time.sleep(0.05 if x == 0 else 0.0)
        return x * x

    assert list(thread_map(slow_first, range(10), workers=3)) == [x * x for x in range(10)]


def test_thread_map_bounds_the_work_in_flight():
    started, consumed = [], []

    def record(x: int) -> int:
        started.append(x)
        return x

    for x in thread_map(record, range(50), workers=2):
        consumed.append(x)
        time.sleep(0.002)
        assert len(started) <= len(consumed) + 2 * 2
    assert consumed == list(range(50))


def test_thread_map_runs_on_one_torch_thread_per_worker_then_restores():
    before = torch.get_num_threads()
    seen = list(thread_map(lambda _: torch.get_num_threads(), range(4), workers=2))
    assert seen == [1] * 4 and torch.get_num_threads() == before


def test_one_worker_runs_in_the_calling_thread_with_torch_untouched():
    before = torch.get_num_threads()
    me = threading.get_ident()
    assert list(thread_map(lambda _: (threading.get_ident(), torch.get_num_threads()), range(2), 1)) == [
        (me, before)] * 2


def test_thread_map_raises_the_error_of_an_item_in_its_turn():
    def fail_on_three(x: int) -> int:
        if x == 3:
            raise ValueError("three")
        return x

    got = []
    with pytest.raises(ValueError, match="three"):
        for x in thread_map(fail_on_three, range(10), workers=2):
            got.append(x)
    assert got == [0, 1, 2]


def test_fan_out_outside_dask_is_one_item_per_task():
    assert fan_out(100, 1) == FanOut(batch_size=1, in_flight=1, one_thread=False)  # a lone task may use every core
    assert fan_out(100, 3) == FanOut(batch_size=1, in_flight=3, one_thread=True)
    assert fan_out(100, 3, items_per_task=5).batch_size == 5
