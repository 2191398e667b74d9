import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from millrace_trainer.synthetic import write_csv
from millrace_trainer.train import TrainOptions, train

TRAINING_DIR = Path(__file__).resolve().parent.parent
OFFSETS = {"features": [{"partition": 0, "from": 0, "to": 2000}, {"partition": 1, "from": 10, "to": 1010}]}
ROWS = 3000
MAX_ITER = 60


@pytest.fixture(scope="session")
def base_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "train.csv"
    write_csv(path, rows=ROWS, seed=1)
    return path


@pytest.fixture(scope="session")
def trained(base_csv, tmp_path_factory):
    options = TrainOptions(
        data=base_csv,
        out=tmp_path_factory.mktemp("run") / "out",
        seed=11,
        holdout=0.2,
        model_name="fraud",
        version="v1",
        feature_version="features-v1",
        offsets=OFFSETS,
        trainer_version="test-1",
        max_iter=MAX_ITER,
    )
    return train(options)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The trainer as the job runners start it: ``python -m millrace_trainer`` in a fresh process."""
    full_env = {**os.environ, "PYTHONPATH": str(TRAINING_DIR), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "millrace_trainer", *args], capture_output=True, text=True, env=full_env, timeout=300
    )


def train_args(data: Path, out: Path, seed: int = 11, version: str = "v1") -> list[str]:
    return [
        "train",
        "--data", str(data),
        "--out", str(out),
        "--seed", str(seed),
        "--holdout", "0.2",
        "--model-name", "fraud",
        "--version", version,
        "--feature-version", "features-v1",
        "--offsets-json", json.dumps(OFFSETS),
        "--trainer-version", "test-1",
        "--max-iter", str(MAX_ITER),
    ]


def last_error(stderr: str) -> dict:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return json.loads(lines[-1])
