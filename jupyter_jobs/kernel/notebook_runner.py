"""The notebook runner's old name (``python -m jupyter_jobs.kernel.notebook_runner``), kept for specs that
use it; jobs now run :mod:`jupyter_jobs.jobside.notebook` as ``jupyter_jobs_jobside.notebook``."""
import sys

from ..jobside.notebook import inject, main, read_value

__all__ = ["inject", "main", "read_value"]

if __name__ == "__main__":
    sys.exit(main())
