"""Combining per-process RSS buckets into the cluster's memory over time."""

from __future__ import annotations

import math

from framework.in_runtime.memory import combine_probes, memory_summary


def test_the_peak_is_the_peak_of_the_sum_not_the_sum_of_peaks():
    # Worker A peaks at t=1, worker B at t=3: never both at once.
    a = {"pid": 1, "buckets": {0: 100, 1: 500, 2: 100, 3: 100}}
    b = {"pid": 2, "buckets": {0: 100, 1: 100, 2: 100, 3: 500}}
    assert combine_probes([a, b]) == [200, 600, 200, 600]
    assert max(combine_probes([a, b])) == 600  # the sum of peaks would say 1000


def test_a_process_keeps_its_last_value_between_its_samples_and_its_first_before_them():
    a = {"pid": 1, "buckets": {0: 100, 1: 110, 2: 120, 3: 130}}
    b = {"pid": 2, "buckets": {2: 50}}  # started late, sampled once
    assert combine_probes([a, b]) == [150, 160, 170, 180]


def test_workers_sharing_a_process_count_once():
    one = {"pid": 7, "buckets": {0: 100, 1: 200}}
    same_process = {"pid": 7, "buckets": {0: 100, 1: 200}}
    assert combine_probes([one, same_process]) == [100, 200]


def test_bucket_keys_may_arrive_as_strings():
    # Through JSON (msgpack keeps ints, but a dict may round-trip as text keys elsewhere).
    assert combine_probes([{"pid": 1, "buckets": {"5": 10, "6": 20}}]) == [10, 20]


def test_no_samples_gives_nothing():
    assert combine_probes([]) == []
    assert combine_probes([{"pid": 1, "buckets": {}}]) == []


def test_memory_summary():
    assert memory_summary([100.0, 300.0, 200.0], "rss-probe") == {
        "peak_memory_bytes": 300,
        "mean_memory_bytes": 200,
        "memory_samples": 3,
        "memory_method": "rss-probe",
    }
    # Nothing measured: no value at all (never 0), only the count and the method.
    assert memory_summary([], "memory-sampler") == {"memory_samples": 0, "memory_method": "memory-sampler"}
    assert memory_summary([math.nan], "rss-probe") == {"memory_samples": 0, "memory_method": "rss-probe"}


def test_the_probe_s_own_samples_are_counted_so_a_soak_can_subtract_them():
    import time

    from framework.in_runtime.memory import _start_probe, _stop_probe, probe_bytes

    class Worker:
        pass

    worker = Worker()
    assert probe_bytes(worker) == 0  # no probe running
    _start_probe(worker, interval=0.001)
    try:
        time.sleep(0.2)
        held = probe_bytes(worker)
        time.sleep(0.2)
        later = probe_bytes(worker)
    finally:
        _stop_probe(worker)
    # Each 1 ms bucket holds two ints (≥ 28 bytes each) and a table slot: it grows while the probe samples.
    assert held >= 56 * 5
    assert later > held
