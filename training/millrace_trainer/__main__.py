"""``python -m millrace_trainer``. One thread everywhere, set before numpy loads its BLAS and OpenMP runtimes:
a parallel reduction adds in an order that depends on the thread count, and the model's bytes must not."""

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

from .cli import main  # noqa: E402  (after the thread settings on purpose)

raise SystemExit(main())
