"""The trainer's command line.

  python -m millrace_trainer train --data train.csv --out DIR --seed N --holdout 0.2 --model-name fraud \\
      --version V --feature-version features-v1 --offsets offsets.json [--trainer-version X] [--max-iter N]
  python -m millrace_trainer evaluate --model DIR/model.onnx --data data.csv
  python -m millrace_trainer synth --rows N --seed S --out data.csv [--drift]

stdout carries the result as one JSON line; stderr carries one JSON object per line:
``{"event": "progress", "stage": ..., "message": ...}`` while it works and, when it fails on purpose,
``{"event": "error", "code": ..., "message": ...}`` last. Exit status: 0 done, 2 an operating error (bad input or
argument, see errors.py), 1 a bug (with a traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import __version__
from .errors import BAD_ARGUMENT, TrainerError
from .features import FEATURE_VERSION


def _emit(event: dict) -> None:
    sys.stderr.write(json.dumps(event) + "\n")
    sys.stderr.flush()


def _progress(stage: str, message: str) -> None:
    _emit({"event": "progress", "stage": stage, "message": message})


def _offsets(args: argparse.Namespace) -> dict:
    if args.offsets_json is not None:
        text, where = args.offsets_json, "--offsets-json"
    elif args.offsets is not None:
        try:
            text, where = Path(args.offsets).read_text(encoding="utf-8"), args.offsets
        except OSError as err:
            raise TrainerError(BAD_ARGUMENT, f"cannot read --offsets {args.offsets}: {err.strerror}") from None
    else:
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise TrainerError(BAD_ARGUMENT, f"{where} is not JSON: {err.msg} at line {err.lineno}") from None


def _seed_default() -> int | None:
    # A Kubernetes Job passes the seed in the environment too (MILLRACE_TRAINER_SEED); --seed wins.
    value = os.environ.get("MILLRACE_TRAINER_SEED")
    return int(value) if value and value.isdigit() else None


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m millrace_trainer", description="Millrace's fraud model trainer")
    root.add_argument("--version", action="version", version=__version__)
    commands = root.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model and write model.onnx, metrics, reference, manifest")
    train.add_argument("--data", required=True, type=Path, help="training set CSV")
    train.add_argument("--out", required=True, type=Path, help="output directory (must not hold a manifest yet)")
    seed = _seed_default()
    train.add_argument("--seed", type=int, default=seed, required=seed is None, help="seeds the split and the model")
    train.add_argument("--holdout", type=float, default=0.2, help="fraction of each class held out (default 0.2)")
    train.add_argument("--model-name", required=True)
    train.add_argument("--version", dest="model_version", required=True, help="the model version to write")
    train.add_argument("--feature-version", default=FEATURE_VERSION)
    offsets = train.add_mutually_exclusive_group()
    offsets.add_argument("--offsets", help="JSON file: the log ranges the set was exported from")
    offsets.add_argument("--offsets-json", help="the same, inline")
    train.add_argument("--trainer-version", default=__version__)
    train.add_argument("--max-iter", type=int, default=None, help="boosting iterations (default 200)")

    evaluate = commands.add_parser("evaluate", help="AUC of a model on a data set, as JSON")
    evaluate.add_argument("--model", required=True, type=Path)
    evaluate.add_argument("--data", required=True, type=Path)
    evaluate.add_argument("--feature-version", default=None, help="default: the one the model records")

    synth = commands.add_parser("synth", help="write a synthetic training set (for demos and tests)")
    synth.add_argument("--rows", type=int, required=True)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--out", type=Path, required=True)
    synth.add_argument("--drift", action="store_true", help="shifted amounts and a new fraud pattern")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "train":
            from .train import TrainOptions, train

            result = train(
                TrainOptions(
                    data=args.data,
                    out=args.out,
                    seed=args.seed,
                    holdout=args.holdout,
                    model_name=args.model_name,
                    version=args.model_version,
                    feature_version=args.feature_version,
                    offsets=_offsets(args),
                    trainer_version=args.trainer_version,
                    max_iter=args.max_iter,
                ),
                progress=_progress,
            )
            summary = {
                "manifest": str(result.paths["manifest.json"]),
                "sha256": result.manifest["artifact"]["sha256"],
                "metrics": result.metrics,
            }
            print(json.dumps(summary))
        elif args.command == "evaluate":
            from .train import evaluate

            print(json.dumps(evaluate(args.model, args.data, args.feature_version)))
        elif args.command == "synth":
            from .synthetic import write_csv

            if args.rows < 10:
                raise TrainerError(BAD_ARGUMENT, "--rows must be at least 10")
            rows = write_csv(args.out, rows=args.rows, seed=args.seed, drift=args.drift)
            print(json.dumps({"out": str(args.out), "rows": rows}))
        return 0
    except TrainerError as err:
        _emit({"event": "error", "code": err.code, "message": err.message})
        return err.exit_code
