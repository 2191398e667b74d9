"""Holdout split, metrics and drift reference distributions."""

from __future__ import annotations

import numpy as np

from .errors import BAD_ARGUMENT, BAD_DATA, TrainerError

#: Quantile bins per distribution in reference.json.
REFERENCE_BINS = 10
#: Values kept per distribution for two-sample Kolmogorov–Smirnov tests.
REFERENCE_SAMPLE_SIZE = 2000
#: Probabilities are clipped this far from 0 and 1 for the log loss.
LOGLOSS_EPSILON = 1e-7


def holdout_mask(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A stratified holdout: ``round(fraction × n)`` rows of each class, drawn with the seed. The rows must already be
    in canonical order; the same rows, fraction and seed always give the same split."""
    if not 0.0 < fraction < 1.0:
        raise TrainerError(BAD_ARGUMENT, f"--holdout must be between 0 and 1 (exclusive), got {fraction}")
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    for label in (0, 1):
        rows = np.flatnonzero(labels == label)
        if len(rows) < 2:
            name = "fraudulent" if label == 1 else "legitimate"
            raise TrainerError(
                BAD_DATA, f"the training set has {len(rows)} {name} row(s): at least 2 of each class are needed"
            )
        count = min(max(int(round(fraction * len(rows))), 1), len(rows) - 1)
        mask[rng.permutation(rows)[:count]] = True
    return mask


def split_metrics(labels: np.ndarray, fraud_probability: np.ndarray) -> dict[str, float | int]:
    from sklearn.metrics import log_loss, roc_auc_score

    probability = np.clip(fraud_probability.astype(np.float64), LOGLOSS_EPSILON, 1 - LOGLOSS_EPSILON)
    # The trapezoid sum can land a rounding error above 1 (1.0000000000000002) on a perfectly separated split.
    auc = min(1.0, max(0.0, float(roc_auc_score(labels, probability))))
    return {
        "auc": auc,
        "logloss": float(log_loss(labels, probability, labels=[0, 1])),
        "rows": int(len(labels)),
        "positives": int(labels.sum()),
    }


def bin_index(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The bin of each value: the number of interior edges at or below it. Values below the first edge fall in the
    first bin and values above the last edge in the last, so live values outside the reference's range still count."""
    return np.searchsorted(edges[1:-1], values, side="right")


def reference_distribution(values: np.ndarray, seed: int, stream: int) -> dict[str, object]:
    """Quantile bin edges (duplicates merged, so ties make fewer bins), the share of values in each bin, and a
    sample of at most REFERENCE_SAMPLE_SIZE values drawn with (seed, stream), sorted."""
    values = np.asarray(values, dtype=np.float64)
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, REFERENCE_BINS + 1)))
    if len(edges) == 1:
        edges = np.array([edges[0], edges[0]])
    counts = np.bincount(bin_index(edges, values), minlength=len(edges) - 1)
    if len(values) > REFERENCE_SAMPLE_SIZE:
        rng = np.random.default_rng([seed, stream])
        sample = values[rng.choice(len(values), size=REFERENCE_SAMPLE_SIZE, replace=False)]
    else:
        sample = values
    return {
        "rows": int(len(values)),
        "edges": [float(edge) for edge in edges],
        "counts": [int(count) for count in counts],
        "proportions": [float(count) / len(values) for count in counts],
        "sample": [float(value) for value in np.sort(sample)],
    }
