"""Errors the trainer reports on purpose. Each has a stable code that the job runners read from the last stderr
line (``{"event": "error", "code": ..., "message": ...}``); a traceback instead means a bug in the trainer.
"""


class TrainerError(Exception):
    """An operating error: bad input, a bad argument, or an output that fails its own checks."""

    #: Exit status of the process for this error.
    exit_code = 2

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# The codes, never reused or renamed.
BAD_ARGUMENT = "bad-argument"
BAD_DATA = "bad-data"
OUTPUT_EXISTS = "output-exists"
CONVERSION = "conversion"
