"""Latency statistics and speed-up ratios, plain numpy (no scipy): what every measurement row reports."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def percentile(values: Sequence[float], q: float) -> float:
    # "linear" interpolation: with few runs p99 lies between the two slowest, never beyond the slowest.
    return float(np.percentile(np.asarray(values, np.float64), q))


def summarize(times_ms: Sequence[float], items_per_call: int = 1) -> dict:
    """median / p95 / p99 / min / mean / stdev (ms) of one measurement, and throughput from the median.

    Throughput uses the median call time (not the mean), so one stall from a neighbouring job does not
    move it; ``items_per_call`` is how many units (images, crops, pairs) one call processes.
    """
    t = np.asarray(times_ms, np.float64)
    if t.size == 0:
        raise ValueError("no timings to summarise")
    median = float(np.median(t))
    return {
        "runs": int(t.size),
        "median_ms": round(median, 3),
        "p95_ms": round(percentile(t, 95), 3),
        "p99_ms": round(percentile(t, 99), 3),
        "min_ms": round(float(t.min()), 3),
        "mean_ms": round(float(t.mean()), 3),
        "stdev_ms": round(float(t.std(ddof=1)) if t.size > 1 else 0.0, 3),
        "throughput_per_s": round(items_per_call * 1000.0 / median, 4) if median > 0 else None,
    }


def paired_ratios(reference_ms: Sequence[float], test_ms: Sequence[float]) -> dict:
    """Speed-up of ``test`` over ``reference`` (reference time / test time) per round, then summarised.

    Both lists come from the same alternated rounds, so round i of each saw the same machine state; the
    ratio per round cancels most drift, and its spread (p10..p90, min..max) says how stable the speed-up is.
    The headline ``median`` is the median of the per-round ratios.
    """
    ref = np.asarray(reference_ms, np.float64)
    test = np.asarray(test_ms, np.float64)
    n = min(ref.size, test.size)
    if n == 0:
        raise ValueError("no paired rounds")
    r = ref[:n] / np.maximum(test[:n], 1e-9)
    return {
        "median": round(float(np.median(r)), 3),
        "p10": round(percentile(r, 10), 3),
        "p90": round(percentile(r, 90), 3),
        "min": round(float(r.min()), 3),
        "max": round(float(r.max()), 3),
        "of_medians": round(float(np.median(ref) / max(np.median(test), 1e-9)), 3),
        "rounds": int(n),
    }


def rotated_orders(names: Sequence[str], rounds: int) -> list[list[str]]:
    """Round-robin order per round, rotated by one each round: no backend always runs first (cold caches)
    or always right after the same neighbour (its memory traffic)."""
    names = list(names)
    k = len(names)
    return [names[i % k:] + names[:i % k] if k else [] for i in range(rounds)]
