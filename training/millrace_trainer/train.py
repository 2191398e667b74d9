"""One training run: read, split, fit, export, check the export, and write the run's four files.

The output directory gets ``model.onnx``, ``metrics.json``, ``reference.json`` and, last, ``manifest.json``: a
directory with a manifest is a complete run. Every file is a function of the data, the arguments and the pinned
packages only (no clock, no host name, no path), so the same command on the same data writes the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Callable

import numpy as np

from . import __version__
from .data import Dataset, load_csv
from .errors import BAD_ARGUMENT, CONVERSION, OUTPUT_EXISTS, TrainerError
from .evaluation import holdout_mask, reference_distribution, split_metrics
from .features import columns_for
from .model import (
    ESTIMATOR_PARAMS,
    FRAUD_CLASS_INDEX,
    INPUT_NAME,
    MAX_CONVERSION_ERROR,
    PROBABILITIES_OUTPUT,
    OnnxModel,
    build_estimator,
    fit,
    sklearn_probabilities,
    to_onnx,
)

MANIFEST_SCHEMA = 1
MODEL_FILE = "model.onnx"
METRICS_FILE = "metrics.json"
REFERENCE_FILE = "reference.json"
MANIFEST_FILE = "manifest.json"

#: Packages whose versions decide the model's bytes; recorded in the manifest.
RECORDED_PACKAGES = ("numpy", "scipy", "scikit-learn", "skl2onnx", "onnx", "onnxruntime", "protobuf", "threadpoolctl")

Progress = Callable[[str, str], None]


def _quiet(stage: str, message: str) -> None:
    pass


@dataclass(frozen=True)
class TrainOptions:
    data: Path
    out: Path
    seed: int
    holdout: float
    model_name: str
    version: str
    feature_version: str
    offsets: dict
    trainer_version: str = __version__
    max_iter: int | None = None


@dataclass
class TrainResult:
    manifest: dict
    metrics: dict
    reference: dict
    model_bytes: bytes
    estimator: object
    dataset: Dataset
    holdout: np.ndarray
    paths: dict[str, Path] = field(default_factory=dict)


def validate_offsets(offsets: object) -> dict:
    """The log ranges the set was exported from: topic → [{partition, from, to}], from ≤ to."""
    if not isinstance(offsets, dict):
        raise TrainerError(BAD_ARGUMENT, "offsets must be a JSON object: topic → [{partition, from, to}]")
    for topic, ranges in offsets.items():
        if not isinstance(ranges, list):
            raise TrainerError(BAD_ARGUMENT, f"offsets[{topic!r}] must be a list of {{partition, from, to}}")
        for index, entry in enumerate(ranges):
            where = f"offsets[{topic!r}][{index}]"
            if not isinstance(entry, dict) or set(entry) != {"partition", "from", "to"}:
                raise TrainerError(BAD_ARGUMENT, f"{where} must have exactly partition, from and to")
            if not all(isinstance(entry[k], int) and not isinstance(entry[k], bool) and entry[k] >= 0 for k in entry):
                raise TrainerError(BAD_ARGUMENT, f"{where}: partition, from and to must be integers ≥ 0")
            if entry["from"] > entry["to"]:
                raise TrainerError(BAD_ARGUMENT, f"{where}: from {entry['from']} is after to {entry['to']}")
    return offsets


def package_versions() -> dict[str, str]:
    return {name: package_metadata.version(name) for name in RECORDED_PACKAGES}


def _json_bytes(value: object, *, compact: bool = False) -> bytes:
    if compact:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    else:
        text = json.dumps(value, indent=2, allow_nan=False)
    return (text + "\n").encode("utf-8")


def _write(path: Path, content: bytes) -> None:
    # Write beside, then rename: a reader never sees half a file, and a killed run leaves no manifest.
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def train(options: TrainOptions, progress: Progress = _quiet) -> TrainResult:
    feature_names = columns_for(options.feature_version)
    validate_offsets(options.offsets)
    if options.seed < 0 or options.seed > 2**32 - 1:
        raise TrainerError(BAD_ARGUMENT, f"--seed must be between 0 and 2^32 - 1, got {options.seed}")
    if options.max_iter is not None and options.max_iter < 1:
        raise TrainerError(BAD_ARGUMENT, f"--max-iter must be at least 1, got {options.max_iter}")
    out = Path(options.out)
    if (out / MANIFEST_FILE).exists():
        raise TrainerError(OUTPUT_EXISTS, f"{out} already holds a trained model ({MANIFEST_FILE}); use a new directory")

    progress("load", f"reading {options.data}")
    dataset = load_csv(options.data, feature_names)
    progress("load", f"{dataset.rows} rows, {dataset.positives} fraudulent, sha256 {dataset.sha256}")

    holdout = holdout_mask(dataset.labels, options.holdout, options.seed)
    train_rows = ~holdout
    progress("split", f"{int(train_rows.sum())} training rows, {int(holdout.sum())} holdout rows (seed {options.seed})")

    estimator = build_estimator(options.seed, options.max_iter)
    progress("fit", f"{type(estimator).__name__} with {estimator.max_iter} iterations")
    fit(estimator, dataset.features32[train_rows], dataset.labels[train_rows])

    progress("export", "converting to ONNX")
    model_bytes = to_onnx(
        estimator,
        graph_name=options.model_name,
        feature_count=len(feature_names),
        metadata={
            "millrace.model": options.model_name,
            "millrace.version": options.version,
            "millrace.feature_version": options.feature_version,
            "millrace.feature_names": json.dumps(list(feature_names)),
            "millrace.trainer_version": options.trainer_version,
            "millrace.seed": str(options.seed),
        },
        doc=f"{options.model_name} {options.version}: P(fraud) from {options.feature_version} features",
    )
    onnx_model = OnnxModel(model_bytes)

    # The served artifact is the ONNX model: metrics and the score reference come from it, after checking that it
    # agrees with the estimator it was converted from.
    holdout_features = dataset.features32[holdout]
    onnx_holdout = onnx_model.probabilities(holdout_features)
    conversion_error = float(np.max(np.abs(onnx_holdout - sklearn_probabilities(estimator, holdout_features))))
    if not conversion_error <= MAX_CONVERSION_ERROR:
        raise TrainerError(
            CONVERSION,
            f"the ONNX model's probabilities differ from scikit-learn's by {conversion_error:.3g} (> {MAX_CONVERSION_ERROR})",
        )
    holdout_score = onnx_holdout[:, FRAUD_CLASS_INDEX]
    train_score = onnx_model.fraud_probability(dataset.features32[train_rows])

    metrics = {
        "holdout": split_metrics(dataset.labels[holdout], holdout_score),
        "train": split_metrics(dataset.labels[train_rows], train_score),
    }
    progress("evaluate", f"holdout AUC {metrics['holdout']['auc']:.4f}, log loss {metrics['holdout']['logloss']:.4f}")

    reference = {
        "model": options.model_name,
        "version": options.version,
        "feature_version": options.feature_version,
        "bins": "quantile bins: edges[0] is the minimum and edges[-1] the maximum; a value's bin is the number of "
        "edges[1:-1] at or below it, so values outside the range fall in the first or last bin",
        "features_source": "all rows",
        "score_source": "holdout rows, P(fraud) from model.onnx",
        "features": {
            name: reference_distribution(dataset.features[:, index], options.seed, index)
            for index, name in enumerate(feature_names)
        },
        "score": reference_distribution(holdout_score, options.seed, len(feature_names)),
    }

    sha256 = hashlib.sha256(model_bytes).hexdigest()
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "model": options.model_name,
        "version": options.version,
        "artifact": {
            "file": MODEL_FILE,
            "sha256": sha256,
            "bytes": len(model_bytes),
            "format": "onnx",
            **onnx_model.describe(),
            "input": INPUT_NAME,
            "probabilities": PROBABILITIES_OUTPUT,
            "fraud_class_index": FRAUD_CLASS_INDEX,
        },
        "files": {"metrics": METRICS_FILE, "reference": REFERENCE_FILE},
        "feature_names": list(feature_names),
        "feature_version": options.feature_version,
        "seed": options.seed,
        "holdout_fraction": options.holdout,
        "trainer_version": options.trainer_version,
        "python": platform.python_version(),
        "packages": package_versions(),
        "estimator": {
            "class": f"{type(estimator).__module__}.{type(estimator).__name__}",
            "params": {**ESTIMATOR_PARAMS, "max_iter": estimator.max_iter, "random_state": options.seed},
        },
        "offsets": options.offsets,
        "data": {
            "file": Path(options.data).name,
            "sha256": dataset.sha256,
            "rows": dataset.rows,
            "positives": dataset.positives,
        },
        "rows": {"train": int(train_rows.sum()), "holdout": int(holdout.sum())},
        "metrics": metrics,
        "checks": {"onnx_max_abs_difference": conversion_error},
    }

    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in (MODEL_FILE, METRICS_FILE, REFERENCE_FILE, MANIFEST_FILE)}
    _write(paths[MODEL_FILE], model_bytes)
    _write(paths[METRICS_FILE], _json_bytes(metrics))
    _write(paths[REFERENCE_FILE], _json_bytes(reference, compact=True))
    _write(paths[MANIFEST_FILE], _json_bytes(manifest))
    progress("write", f"wrote {out} (model sha256 {sha256})")

    return TrainResult(
        manifest=manifest,
        metrics=metrics,
        reference=reference,
        model_bytes=model_bytes,
        estimator=estimator,
        dataset=dataset,
        holdout=holdout,
        paths=paths,
    )


def evaluate(model_path: Path, data: Path, feature_version: str | None = None) -> dict[str, float | int]:
    """AUC, log loss, rows and positives of an exported model on a data set, computed by ONNX Runtime."""
    try:
        model_bytes = Path(model_path).read_bytes()
    except OSError as err:
        raise TrainerError(BAD_ARGUMENT, f"cannot read the model {model_path}: {err.strerror}") from None
    try:
        onnx_model = OnnxModel(model_bytes)
    except Exception as err:  # ONNX Runtime raises its own exception types for a file that is not a model
        raise TrainerError(BAD_ARGUMENT, f"{model_path} is not a loadable ONNX model: {err}") from err
    version = feature_version or onnx_model.metadata.get("millrace.feature_version")
    feature_names = columns_for(version) if version else onnx_model.feature_names()
    if feature_names is None:
        raise TrainerError(BAD_ARGUMENT, f"{model_path} does not say which features it reads; pass --feature-version")
    dataset = load_csv(data, feature_names)
    if dataset.positives in (0, dataset.rows):
        raise TrainerError(BAD_ARGUMENT, f"{data} has rows of only one class: AUC is undefined")
    result = split_metrics(dataset.labels, onnx_model.fraud_probability(dataset.features32))
    return {**result, "model_sha256": hashlib.sha256(model_bytes).hexdigest(), "data_sha256": dataset.sha256}


def python_description() -> str:
    return f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})"
