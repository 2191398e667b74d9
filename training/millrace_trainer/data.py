"""Reading a training set: ``transaction_id,at,<feature columns...>,label`` with a header, one row per transaction.

Rows are put in a canonical order (by transaction id) before anything else, so the model does not depend on the
order in which an export happened to write them. Every cell is checked: a feature must be a finite number and a
label 0 or 1; the first bad cell stops the run with its row and column.
"""

from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import BAD_DATA, TrainerError
from .features import ID_COLUMN, LABEL_COLUMN, TIME_COLUMN

#: Bounds a training set: a larger one is an export gone wrong, or a job for a bigger trainer.
MAX_ROWS = 5_000_000


@dataclass(frozen=True)
class Dataset:
    ids: list[str]
    times: list[str]
    #: Features as read (float64), columns in feature order.
    features: np.ndarray
    #: The same values as the model sees them: rounded to float32, the ONNX input's type.
    features32: np.ndarray
    labels: np.ndarray
    sha256: str

    @property
    def rows(self) -> int:
        return len(self.ids)

    @property
    def positives(self) -> int:
        return int(self.labels.sum())


def _parse_number(text: str, row: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TrainerError(BAD_DATA, f"row {row}, column {column}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise TrainerError(BAD_DATA, f"row {row}, column {column}: {text!r} is not a finite number")
    return value


def load_csv(path: str | Path, feature_names: tuple[str, ...]) -> Dataset:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TrainerError(BAD_DATA, f"no training set at {path}") from None
    except OSError as err:
        raise TrainerError(BAD_DATA, f"cannot read {path}: {err.strerror}") from None
    digest = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise TrainerError(BAD_DATA, f"{path} is not UTF-8 text (byte {err.start})") from None

    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None:
        raise TrainerError(BAD_DATA, f"{path} is empty: expected a header row")
    header = [name.strip() for name in header]
    expected = [ID_COLUMN, TIME_COLUMN, *feature_names, LABEL_COLUMN]
    missing = [name for name in expected if name not in header]
    unknown = [name for name in header if name not in expected]
    if missing or unknown or len(header) != len(expected):
        detail = []
        if missing:
            detail.append("missing " + ", ".join(missing))
        if unknown:
            detail.append("unexpected " + ", ".join(unknown))
        if not detail:
            detail.append("a column appears twice")
        raise TrainerError(BAD_DATA, f"{path}: header does not match the feature columns ({'; '.join(detail)})")
    # Columns are looked up by name, so the file's column order does not matter; the model's is feature order.
    position = {name: index for index, name in enumerate(header)}
    feature_positions = [position[name] for name in feature_names]

    ids: list[str] = []
    times: list[str] = []
    values: list[list[float]] = []
    labels: list[int] = []
    for line, cells in enumerate(reader, start=2):
        if not cells:
            continue
        if len(cells) != len(header):
            raise TrainerError(BAD_DATA, f"row {line}: {len(cells)} cells, the header has {len(header)}")
        if len(ids) >= MAX_ROWS:
            raise TrainerError(BAD_DATA, f"{path} has more than {MAX_ROWS} rows")
        transaction_id = cells[position[ID_COLUMN]].strip()
        if not transaction_id:
            raise TrainerError(BAD_DATA, f"row {line}, column {ID_COLUMN}: empty")
        label = cells[position[LABEL_COLUMN]].strip()
        if label not in ("0", "1"):
            raise TrainerError(BAD_DATA, f"row {line}, column {LABEL_COLUMN}: {label!r} is not 0 or 1")
        ids.append(transaction_id)
        times.append(cells[position[TIME_COLUMN]].strip())
        values.append([_parse_number(cells[p], line, feature_names[i]) for i, p in enumerate(feature_positions)])
        labels.append(int(label))

    if not ids:
        raise TrainerError(BAD_DATA, f"{path} has a header but no rows")
    order = sorted(range(len(ids)), key=ids.__getitem__)
    for previous, current in zip(order, order[1:]):
        if ids[previous] == ids[current]:
            raise TrainerError(BAD_DATA, f"transaction {ids[current]!r} appears more than once")

    features = np.asarray(values, dtype=np.float64)[order]
    return Dataset(
        ids=[ids[i] for i in order],
        times=[times[i] for i in order],
        features=features,
        features32=features.astype(np.float32),
        labels=np.asarray(labels, dtype=np.int64)[order],
        sha256=digest,
    )
