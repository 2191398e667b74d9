"""The trainer's feature columns are the pipeline's: the same names, order and version as contract.ts."""

import re
from pathlib import Path

from millrace_trainer.features import FEATURE_NAMES, FEATURE_VERSION

CONTRACT = Path(__file__).resolve().parents[2] / "topologies" / "pipeline" / "contract.ts"


def test_feature_names_and_version_match_the_pipeline_contract():
    source = CONTRACT.read_text(encoding="utf-8")
    names = re.search(r"export const FEATURE_NAMES = \[(.*?)\] as const", source, re.S)
    version = re.search(r"export const FEATURE_VERSION = '([^']+)'", source)
    assert names and version, "contract.ts no longer declares FEATURE_NAMES / FEATURE_VERSION as expected"
    assert tuple(re.findall(r"'([^']+)'", names.group(1))) == FEATURE_NAMES
    assert version.group(1) == FEATURE_VERSION
