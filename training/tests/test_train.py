"""What one training run writes: the model, its metrics, its drift reference and its manifest."""

import hashlib
import json

import numpy as np

from millrace_trainer.evaluation import REFERENCE_SAMPLE_SIZE, bin_index
from millrace_trainer.features import FEATURE_NAMES
from millrace_trainer.model import OnnxModel, sklearn_probabilities
from millrace_trainer.synthetic import generate

from conftest import OFFSETS, ROWS


def test_onnx_probabilities_match_scikit_learn(trained):
    model = OnnxModel(trained.paths["model.onnx"].read_bytes())
    features, _ = generate(5000, seed=99)
    features32 = features.astype(np.float32)
    onnx = model.probabilities(features32)
    expected = sklearn_probabilities(trained.estimator, features32)
    assert onnx.dtype == np.float32 and onnx.shape == (5000, 2)
    np.testing.assert_allclose(onnx, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(onnx.sum(axis=1), 1.0, atol=1e-6)


def test_the_model_reads_features_and_writes_label_and_probabilities(trained):
    described = OnnxModel(trained.paths["model.onnx"].read_bytes()).describe()
    assert described["inputs"] == [{"name": "features", "type": "tensor(float)", "shape": [None, len(FEATURE_NAMES)]}]
    assert described["outputs"] == [
        {"name": "label", "type": "tensor(int64)", "shape": [None]},
        {"name": "probabilities", "type": "tensor(float)", "shape": [None, 2]},
    ]


def test_the_model_records_what_it_reads(trained):
    metadata = OnnxModel(trained.paths["model.onnx"].read_bytes()).metadata
    assert metadata["millrace.model"] == "fraud"
    assert metadata["millrace.version"] == "v1"
    assert metadata["millrace.feature_version"] == "features-v1"
    assert json.loads(metadata["millrace.feature_names"]) == list(FEATURE_NAMES)


def test_metrics_cover_the_holdout_and_the_training_split(trained):
    metrics = json.loads(trained.paths["metrics.json"].read_text())
    assert set(metrics) == {"holdout", "train"}
    for split in metrics.values():
        assert set(split) == {"auc", "logloss", "rows", "positives"}
        assert 0.5 < split["auc"] <= 1.0
        assert 0.0 < split["logloss"] < 1.0
        assert 0 < split["positives"] < split["rows"]
    assert metrics["holdout"]["rows"] + metrics["train"]["rows"] == ROWS
    # A stratified holdout of 20 % of each class.
    assert metrics["holdout"]["rows"] == round(0.2 * (ROWS - trained.dataset.positives)) + round(
        0.2 * trained.dataset.positives
    )
    assert metrics["holdout"]["positives"] == round(0.2 * trained.dataset.positives)


def test_reference_has_quantile_bins_and_a_sample_for_every_feature_and_the_score(trained):
    reference = json.loads(trained.paths["reference.json"].read_text())
    assert list(reference["features"]) == list(FEATURE_NAMES)
    entries = {**reference["features"], "score": reference["score"]}
    for name, entry in entries.items():
        edges, proportions = entry["edges"], entry["proportions"]
        assert 2 <= len(edges) <= 11, name
        assert edges == sorted(edges) and len(set(edges)) == len(edges) or len(edges) == 2, name
        assert len(proportions) == len(edges) - 1 == len(entry["counts"]), name
        assert abs(sum(proportions) - 1.0) < 1e-9, name
        assert sum(entry["counts"]) == entry["rows"], name
        assert all(p >= 0 for p in proportions), name
        sample = entry["sample"]
        assert len(sample) == min(entry["rows"], REFERENCE_SAMPLE_SIZE), name
        assert sample == sorted(sample), name
    assert reference["features"]["amount"]["rows"] == ROWS
    assert reference["score"]["rows"] == int(trained.holdout.sum())
    assert all(0.0 <= value <= 1.0 for value in reference["score"]["sample"])


def test_reference_proportions_follow_the_documented_bin_rule(trained):
    reference = json.loads(trained.paths["reference.json"].read_text())
    amounts = trained.dataset.features[:, FEATURE_NAMES.index("amount")]
    entry = reference["features"]["amount"]
    edges = np.array(entry["edges"])
    assert len(edges) == 11  # a continuous feature gets all ten bins
    counts = np.bincount(bin_index(edges, amounts), minlength=len(edges) - 1)
    assert counts.tolist() == entry["counts"]
    # Deciles: each bin holds about a tenth of the rows.
    assert all(abs(p - 0.1) < 0.01 for p in entry["proportions"])
    # Ties merge edges: count_10m takes a handful of small integers.
    assert len(reference["features"]["count_10m"]["edges"]) < 11


def test_manifest_records_everything_that_reproduces_the_run(trained, base_csv):
    manifest = json.loads(trained.paths["manifest.json"].read_text())
    model_bytes = trained.paths["model.onnx"].read_bytes()
    assert manifest["schema"] == 1
    assert manifest["model"] == "fraud" and manifest["version"] == "v1"
    assert manifest["artifact"]["file"] == "model.onnx"
    assert manifest["artifact"]["sha256"] == hashlib.sha256(model_bytes).hexdigest()
    assert manifest["artifact"]["bytes"] == len(model_bytes)
    assert manifest["artifact"]["input"] == "features"
    assert manifest["artifact"]["probabilities"] == "probabilities"
    assert manifest["artifact"]["fraud_class_index"] == 1
    assert manifest["feature_names"] == list(FEATURE_NAMES)
    assert manifest["feature_version"] == "features-v1"
    assert manifest["seed"] == 11 and manifest["holdout_fraction"] == 0.2
    assert manifest["trainer_version"] == "test-1"
    assert manifest["python"].startswith("3.")
    assert {"numpy", "scikit-learn", "skl2onnx", "onnx", "onnxruntime"} <= set(manifest["packages"])
    assert manifest["offsets"] == OFFSETS
    assert manifest["data"] == {
        "file": "train.csv",
        "sha256": hashlib.sha256(base_csv.read_bytes()).hexdigest(),
        "rows": ROWS,
        "positives": trained.dataset.positives,
    }
    assert manifest["rows"]["train"] + manifest["rows"]["holdout"] == ROWS
    assert manifest["metrics"] == json.loads(trained.paths["metrics.json"].read_text())
    assert manifest["estimator"]["params"]["random_state"] == 11
    assert 0 <= manifest["checks"]["onnx_max_abs_difference"] <= 1e-5
