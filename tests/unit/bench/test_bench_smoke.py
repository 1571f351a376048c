"""The benchmark's statistics and its alternating harness, on plain callables."""

from __future__ import annotations

import time

import pytest

from imgdiff_rt.bench import harness, stats


def test_summary_and_paired_ratios():
    s = stats.summarize([10, 12, 11, 30, 9], items_per_call=2)
    assert s["median_ms"] == 11 and s["min_ms"] == 9 and s["runs"] == 5
    assert s["p95_ms"] <= 30 and s["p99_ms"] <= 30 and s["throughput_per_s"] == pytest.approx(2000 / 11, rel=1e-3)
    r = stats.paired_ratios([20, 22, 60], [10, 11, 30])
    assert r["median"] == pytest.approx(2.0) and r["min"] == pytest.approx(2.0) and r["rounds"] == 3
    assert stats.rotated_orders(["a", "b", "c"], 3) == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]


def test_alternated_measurement_and_concurrency_on_plain_callables():
    order: list[str] = []

    def sleeper(name, seconds):
        return lambda: (order.append(name), time.sleep(seconds))

    loads = [harness.Workload("fast", sleeper("fast", 0.001)), harness.Workload("slow", sleeper("slow", 0.004))]
    with harness.MemorySampler() as sampler:
        out = harness.measure_alternated(loads, runs=4, warmup=1, sampler=sampler)
    assert order[:2] == ["fast", "slow"]  # warm-up, excluded from the times
    assert order[2:] == ["fast", "slow", "slow", "fast", "fast", "slow", "slow", "fast"]  # rotated rounds
    assert len(out["fast"]["times_ms"]) == 4 and out["slow"]["median_ms"] > out["fast"]["median_ms"]
    assert out["fast"]["peak_rss_bytes"] > 0
    rows = harness.concurrency_sweep(lambda: (lambda: time.sleep(0.002)), [1, 2], requests_per_client=3)
    assert [r["clients"] for r in rows] == [1, 2] and rows[1]["requests"] == 6
    assert all(r["throughput_per_s"] > 0 for r in rows)
