"""Millrace's trainer: reads a training set exported by replay, trains a fraud classifier and writes an ONNX model
with its metrics, drift reference and manifest. The command line is in ``cli.py``; ``python -m millrace_trainer``.
"""

__version__ = "0.1.0"
