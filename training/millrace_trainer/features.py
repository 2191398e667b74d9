"""The feature columns a model reads, per feature version. Mirrors ``FEATURE_NAMES`` and ``FEATURE_VERSION`` in
``topologies/pipeline/contract.ts`` (a test checks that they agree): the ONNX input's columns are in this order.
"""

FEATURE_VERSION = "features-v1"

FEATURE_NAMES: tuple[str, ...] = (
    "amount",
    "count_10m",
    "sum_1h",
    "mean_1h",
    "sum_24h",
    "mean_24h",
    "seconds_since_last",
    "distinct_countries_24h",
    "amount_to_mean_24h",
    "prev_amount",
)

#: Feature versions this trainer can read, with their columns. A new version gets a new entry, never an edit.
FEATURES_BY_VERSION: dict[str, tuple[str, ...]] = {FEATURE_VERSION: FEATURE_NAMES}

ID_COLUMN = "transaction_id"
TIME_COLUMN = "at"
LABEL_COLUMN = "label"


def columns_for(feature_version: str) -> tuple[str, ...]:
    from .errors import BAD_ARGUMENT, TrainerError

    try:
        return FEATURES_BY_VERSION[feature_version]
    except KeyError:
        known = ", ".join(sorted(FEATURES_BY_VERSION))
        raise TrainerError(BAD_ARGUMENT, f"unknown feature version {feature_version!r} (this trainer reads {known})") from None
