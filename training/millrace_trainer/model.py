"""The classifier, its ONNX export, and running the export.

Histogram gradient boosting: trees split on quantile bins learnt from the training set, so a retrained model follows
a shifted amount distribution without any rescaling, and a new fraud pattern (an interaction such as "many
countries in 24 h and a small amount") is a few splits away rather than something a linear model cannot express.
skl2onnx converts it to one ``TreeEnsembleClassifier`` node.

Determinism: no early stopping (it draws a validation split), bins computed from every row (the bin subsample only
applies above 200,000 rows, and is then drawn with the same seed), one thread in scikit-learn's OpenMP loops and in
ONNX Runtime (a parallel sum adds in a different order), and the rows in a canonical order (``data.py``).
"""

from __future__ import annotations

import json
import warnings

import numpy as np

from .errors import CONVERSION, TrainerError

INPUT_NAME = "features"
LABEL_OUTPUT = "label"
PROBABILITIES_OUTPUT = "probabilities"
#: Column of the probabilities output that holds P(fraud).
FRAUD_CLASS_INDEX = 1

#: Hyperparameters; ``random_state`` is the run's seed.
ESTIMATOR_PARAMS: dict[str, object] = {
    "learning_rate": 0.1,
    "max_iter": 200,
    "max_leaf_nodes": 31,
    "min_samples_leaf": 20,
    "l2_regularization": 1.0,
    "max_bins": 255,
    "early_stopping": False,
}

#: The largest difference allowed between the ONNX model's probabilities and scikit-learn's on the same float32
#: input: trees add up their leaves in float32 in ONNX Runtime and in float64 in scikit-learn.
MAX_CONVERSION_ERROR = 1e-4


def build_estimator(seed: int, max_iter: int | None = None):
    from sklearn.ensemble import HistGradientBoostingClassifier

    params = dict(ESTIMATOR_PARAMS)
    if max_iter is not None:
        params["max_iter"] = max_iter
    return HistGradientBoostingClassifier(random_state=seed, **params)


def fit(estimator, features32: np.ndarray, labels: np.ndarray):
    from threadpoolctl import threadpool_limits

    # float32 values held as float64: the model learns thresholds between the values ONNX Runtime will see.
    with threadpool_limits(limits=1):
        estimator.fit(features32.astype(np.float64), labels)
    return estimator


def sklearn_probabilities(estimator, features32: np.ndarray) -> np.ndarray:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return estimator.predict_proba(features32.astype(np.float64))


def to_onnx(estimator, *, graph_name: str, feature_count: int, metadata: dict[str, str], doc: str) -> bytes:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType

    with warnings.catch_warnings():
        # See requirements.in: skl2onnx passes booleans where onnx wants ints; protobuf 6 warns and accepts them.
        warnings.filterwarnings("ignore", message=".*Expected an int, got a boolean", category=DeprecationWarning)
        try:
            model = convert_sklearn(
                estimator,
                name=graph_name,
                initial_types=[(INPUT_NAME, FloatTensorType([None, feature_count]))],
                final_types=[
                    (LABEL_OUTPUT, Int64TensorType([None])),
                    (PROBABILITIES_OUTPUT, FloatTensorType([None, 2])),
                ],
                options={id(estimator): {"zipmap": False}},
            )
        except Exception as err:  # the converter raises plain exceptions; report them as a conversion failure
            raise TrainerError(CONVERSION, f"skl2onnx could not convert the model: {err}") from err
    # skl2onnx collects the opset domains in a set, whose order follows Python's per-process string hashing:
    # sort them, or two runs of the same command write different bytes.
    opsets = sorted((entry.domain, entry.version) for entry in model.opset_import)
    del model.opset_import[:]
    for domain, version in opsets:
        entry = model.opset_import.add()
        entry.domain = domain
        entry.version = version
    model.doc_string = doc
    for key in sorted(metadata):
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = metadata[key]
    return model.SerializeToString()


class OnnxModel:
    """An exported model in ONNX Runtime, single-threaded so that its sums are always added in the same order."""

    def __init__(self, model: bytes) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        self.metadata: dict[str, str] = dict(meta)

    def probabilities(self, features32: np.ndarray) -> np.ndarray:
        (probabilities,) = self.session.run([PROBABILITIES_OUTPUT], {INPUT_NAME: features32})
        return probabilities

    def fraud_probability(self, features32: np.ndarray) -> np.ndarray:
        return self.probabilities(features32)[:, FRAUD_CLASS_INDEX]

    def feature_names(self) -> tuple[str, ...] | None:
        names = self.metadata.get("millrace.feature_names")
        return tuple(json.loads(names)) if names else None

    def describe(self) -> dict[str, object]:
        def tensor(node) -> dict[str, object]:
            return {"name": node.name, "type": node.type, "shape": [d if isinstance(d, int) else None for d in node.shape]}

        return {
            "inputs": [tensor(node) for node in self.session.get_inputs()],
            "outputs": [tensor(node) for node in self.session.get_outputs()],
        }
