"""What runs inside a job, on any image and in any environment: the headless notebook runner.

Job-side code is a product of its own: it imports nothing of jupyter-jobs and only the standard
library at module level, so it runs where the server's packages are not. The server copies this
package, versioned, to ``<data_dir>/jobside/<version>/jupyter_jobs_jobside`` (:func:`install`), and
every backend puts that folder on the job's ``PYTHONPATH`` (a read-only mount in a container), so a
job runs ``python -m jupyter_jobs_jobside.notebook NB OUT`` whatever its image has.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

#: The name jobs import this package by (never ``jupyter_jobs``, which a job's environment may hold in another version).
JOB_PACKAGE = "jupyter_jobs_jobside"


def install(data_dir: str | os.PathLike[str]) -> Path:
    """The folder to put on jobs' ``PYTHONPATH``, holding this package as :data:`JOB_PACKAGE` (copied once per content)."""
    here = Path(__file__).parent
    sources = sorted(p for p in here.glob("*.py"))
    digest = hashlib.sha256(b"".join(p.name.encode() + b"\0" + p.read_bytes() for p in sources)).hexdigest()[:16]
    root = Path(data_dir) / "jobside" / digest
    if (root / JOB_PACKAGE / "__init__.py").is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root.parent))
    try:
        (staging / JOB_PACKAGE).mkdir()
        for source in sources:
            shutil.copyfile(source, staging / JOB_PACKAGE / source.name)
        os.chmod(staging, 0o755)
        try:
            staging.rename(root)
        except OSError:
            if not (root / JOB_PACKAGE / "__init__.py").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root
