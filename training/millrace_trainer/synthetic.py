"""Synthetic card transactions with the features the pipeline computes, for demos and tests.

The base set's fraud is large amounts in quick bursts; ``drift=True`` inflates every amount by 80 % and adds a new
pattern (small amounts from many countries) that a model trained on the base set has never seen.
"""

from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from .features import FEATURE_NAMES, ID_COLUMN, LABEL_COLUMN, TIME_COLUMN

FRAUD_RATE = 0.05
LABEL_NOISE = 0.01
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def generate(rows: int, seed: int, drift: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Features (rows × FEATURE_NAMES) and labels."""
    rng = np.random.default_rng(seed)
    fraud = rng.random(rows) < FRAUD_RATE
    # Under drift, half of the fraud follows the new pattern.
    new_pattern = fraud & (rng.random(rows) < 0.5) if drift else np.zeros(rows, dtype=bool)
    old_pattern = fraud & ~new_pattern

    mean_24h = rng.lognormal(3.4, 0.5, rows)
    amount = rng.lognormal(3.4, 0.9, rows)
    amount[old_pattern] = rng.lognormal(5.2, 0.8, old_pattern.sum())
    amount[new_pattern] = rng.lognormal(2.0, 0.5, new_pattern.sum())
    count_10m = 1 + rng.poisson(0.2, rows)
    count_10m[old_pattern] = 1 + rng.poisson(3.0, old_pattern.sum())
    seconds_since_last = rng.exponential(4 * 3600.0, rows)
    seconds_since_last[old_pattern] = rng.exponential(120.0, old_pattern.sum())
    distinct_countries = 1 + rng.binomial(1, 0.05, rows)
    distinct_countries[old_pattern] = 1 + rng.poisson(1.0, old_pattern.sum())
    distinct_countries[new_pattern] = 2 + rng.poisson(2.0, new_pattern.sum())
    if drift:
        amount = amount * 1.8
        mean_24h = mean_24h * 1.8

    count_1h = count_10m + rng.poisson(0.5, rows)
    count_24h = count_1h + rng.poisson(3.0, rows)
    mean_1h = mean_24h * rng.lognormal(0.0, 0.2, rows)
    features = {
        "amount": amount,
        "count_10m": count_10m.astype(np.float64),
        "sum_1h": mean_1h * count_1h,
        "mean_1h": mean_1h,
        "sum_24h": mean_24h * count_24h,
        "mean_24h": mean_24h,
        "seconds_since_last": seconds_since_last,
        "distinct_countries_24h": distinct_countries.astype(np.float64),
        "amount_to_mean_24h": amount / mean_24h,
        "prev_amount": rng.lognormal(3.4, 0.9, rows) * (1.8 if drift else 1.0),
    }
    matrix = np.column_stack([features[name] for name in FEATURE_NAMES])
    labels = fraud.astype(np.int64)
    flip = rng.random(rows) < LABEL_NOISE
    labels[flip] = 1 - labels[flip]
    return np.round(matrix, 4), labels


def write_csv(path: str | Path, *, rows: int, seed: int, drift: bool = False) -> int:
    matrix, labels = generate(rows, seed, drift)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([ID_COLUMN, TIME_COLUMN, *FEATURE_NAMES, LABEL_COLUMN])
        for index in range(rows):
            at = (START + timedelta(seconds=7 * index)).strftime("%Y-%m-%dT%H:%M:%SZ")
            writer.writerow([f"tx-{seed}-{index:07d}", at, *(repr(float(v)) for v in matrix[index]), int(labels[index])])
    return rows
