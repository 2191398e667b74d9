"""The same command on the same data writes the same bytes: model, metrics, reference and manifest.

Each run is a fresh process with a different PYTHONHASHSEED, because set and dict orders that follow string hashing
are the usual way nondeterminism gets into a serialised model.
"""

import csv
import hashlib
import random

from conftest import run_cli, train_args

FILES = ("model.onnx", "metrics.json", "reference.json", "manifest.json")


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_runs_of_the_same_command_write_identical_files(base_csv, tmp_path):
    first = run_cli(*train_args(base_csv, tmp_path / "a"), env={"PYTHONHASHSEED": "1"})
    second = run_cli(*train_args(base_csv, tmp_path / "b"), env={"PYTHONHASHSEED": "2"})
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    for name in FILES:
        assert sha256(tmp_path / "a" / name) == sha256(tmp_path / "b" / name), name


def test_row_and_column_order_of_the_csv_do_not_change_the_model(base_csv, tmp_path):
    with open(base_csv, newline="") as handle:
        header, *rows = list(csv.reader(handle))
    random.Random(5).shuffle(rows)
    columns = list(range(len(header)))
    columns[2], columns[5] = columns[5], columns[2]
    shuffled = tmp_path / "shuffled.csv"
    with open(shuffled, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([header[c] for c in columns])
        writer.writerows([[row[c] for c in columns] for row in rows])

    original = run_cli(*train_args(base_csv, tmp_path / "a"))
    reordered = run_cli(*train_args(shuffled, tmp_path / "b"))
    assert original.returncode == 0 and reordered.returncode == 0, original.stderr + reordered.stderr
    assert sha256(tmp_path / "a" / "model.onnx") == sha256(tmp_path / "b" / "model.onnx")
    assert sha256(tmp_path / "a" / "reference.json") == sha256(tmp_path / "b" / "reference.json")


def test_another_seed_draws_another_holdout_and_trains_another_model(base_csv, tmp_path):
    first = run_cli(*train_args(base_csv, tmp_path / "a", seed=11))
    second = run_cli(*train_args(base_csv, tmp_path / "b", seed=12))
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert sha256(tmp_path / "a" / "model.onnx") != sha256(tmp_path / "b" / "model.onnx")
